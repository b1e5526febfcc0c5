//! Image assembly: layers, config, manifest, and the writers that consume the finished image
//! (OCI layout, docker-archive; the registry client takes the same [`Image`]). No network and
//! no child processes here: everything this module needs arrives in a [`Request`].

pub mod archive;
pub mod artifact;
pub mod base;
pub mod cache;
pub mod compress;
pub mod digest;
pub mod elf;
pub mod layer;
pub mod layout;
pub mod spec;

pub use compress::Compression;
pub use elf::Platform;
pub use layer::Layer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the {what} {path}: {source}")]
    ReadInput { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the binary {0} is not an ELF executable")]
    NotElf(PathBuf),
    #[error("the {what} {path} is not a regular file")]
    NotAFile { what: &'static str, path: PathBuf },
    #[error("the binary {path} is linked dynamically (it needs {interpreter}), and the {base} base has no C library")]
    Dynamic { path: PathBuf, interpreter: String, base: &'static str },
    #[error("the binary {path} is for ELF machine {machine}, which has no OCI architecture name")]
    UnsupportedArch { path: PathBuf, machine: u16 },
    #[error("the CA bundle {0} contains no PEM certificate")]
    BadCaBundle(PathBuf),
    #[error("the image path {path:?} is invalid: {why}")]
    BadPath { path: String, why: String },
    #[error("two image entries claim the path {0}")]
    PathConflict(String),
    #[error("SOURCE_DATE_EPOCH {0} is out of range")]
    BadEpoch(i64),
    #[error("{dir} is not an OCI image layout: {why}")]
    NotALayout { dir: PathBuf, why: String },
    #[error("the layout {dir} has no image tagged {tag:?}")]
    TagNotFound { dir: PathBuf, tag: String, tags: Vec<String> },
    #[error("{what} has no image for platform {platform}")]
    NoPlatform { what: String, platform: String },
    #[error("the base image is {base}, but the binary is {binary}")]
    PlatformMismatch { base: String, binary: String },
    #[error("layer media type {0} is not one ship can read")]
    UnsupportedMediaType(String),
    #[error("layer {digest} is corrupt: {why}")]
    CorruptLayer { digest: String, why: String },
    #[error("cannot write {path}: {source}")]
    Output { path: PathBuf, source: std::io::Error },
    #[error("an input file changed while the image was being made")]
    ChangedInput,
    #[error("{context}: {source}")]
    Io { context: &'static str, source: std::io::Error },
}

impl Error {
    pub fn io(context: &'static str) -> impl Fn(std::io::Error) -> Error {
        move |source| Error::Io { context, source }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::ReadInput { what, .. } => format!("check that the {what} exists and is readable"),
            Error::NotElf(_) => {
                "pass the compiled executable (target/<triple>/release/NAME), not a script or source file".into()
            }
            Error::NotAFile { .. } => "pass the path of the file itself, not a directory, FIFO or device".into(),
            Error::Dynamic { .. } => {
                "build it statically (`ship build` does: static glibc), or use a base image with a C library (--base REF)".into()
            }
            Error::UnsupportedArch { .. } => "build for amd64, arm64, arm, 386, riscv64, ppc64le or s390x".into(),
            Error::BadCaBundle(_) => {
                "pass a PEM bundle with --ca-bundle, e.g. /etc/ssl/certs/ca-certificates.crt".into()
            }
            Error::BadPath { .. } => "image paths are absolute, like /app/config.toml".into(),
            Error::PathConflict(_) => "give each --file a destination of its own, away from /app/<name>".into(),
            Error::BadEpoch(_) => "SOURCE_DATE_EPOCH is seconds since 1970, e.g. 1700000000".into(),
            Error::NotALayout { .. } => "point --output or --base at an OCI layout directory, or at a new path".into(),
            Error::TagNotFound { tags, .. } if !tags.is_empty() => format!("tags in that layout: {}", tags.join(", ")),
            Error::TagNotFound { .. } => "that layout has no tags at all".into(),
            Error::NoPlatform { .. } | Error::PlatformMismatch { .. } => {
                "use a base image for the binary's architecture, or build the binary for the base's".into()
            }
            Error::Output { .. } => "choose an output path in a directory you can write to".into(),
            Error::ChangedInput => "run ship again once the build that writes the binary has finished".into(),
            _ => return None,
        })
    }
}

/// How the base of the image is made.
#[derive(Debug, Clone)]
pub enum Base {
    /// ship's own minimal base layer with this PEM CA bundle.
    Generated { ca_bundle: PathBuf },
    /// No base layer: just the app layer.
    Scratch,
    /// An image from a local OCI layout.
    Layout { dir: PathBuf, tag: String },
}

/// A file to copy into the app layer.
#[derive(Debug, Clone)]
pub struct FileMapping {
    pub src: PathBuf,
    /// Absolute path in the image.
    pub dest: String,
    pub mode: u32,
}

/// Everything needed to assemble an image, already resolved and validated by `config`.
#[derive(Debug, Clone)]
pub struct Request {
    pub binary: PathBuf,
    /// The app's short name: the binary lands at `/app/<name>`.
    pub name: String,
    pub base: Base,
    /// `3000/tcp` form.
    pub ports: Vec<String>,
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub user: String,
    pub workdir: Option<String>,
    pub files: Vec<FileMapping>,
    pub compression: Compression,
    pub source_date_epoch: i64,
    pub threads: usize,
    /// Reuse blobs made before instead of compressing again (see [`cache`]).
    pub layer_cache: Option<cache::LayerCache>,
    /// Where the layers' blobs are written as they are compressed: a directory the caller
    /// owns and removes once the image is written or pushed.
    pub staging: PathBuf,
}

/// The layer of `tree`: the cached blob when there is one on disk, else streamed through the
/// compressor into the staging directory now (and remembered).
fn make_layer(tree: &layer::Tree, mtime: u64, req: &Request) -> Result<Layer, Error> {
    let stream = || Layer::stream(tree, mtime, req.compression, req.threads, &req.staging);
    let Some(c) = &req.layer_cache else { return stream() };
    // A hash of the tar decides whether compressing can be skipped.
    let diff_id = tree.tar_digest(mtime)?;
    if let Some((digest, size, path)) = c.lookup(&diff_id, req.compression) {
        return Ok(Layer::cached(req.compression, digest, diff_id, size, path));
    }
    let layer = stream()?;
    if layer.diff_id != diff_id {
        return Err(Error::ChangedInput);
    }
    c.record(&layer.diff_id, req.compression, &layer.digest, layer.size);
    Ok(layer)
}

/// A finished image: what every writer takes.
#[derive(Debug, Clone)]
pub struct Image {
    pub platform: Platform,
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    /// Artifacts about this image (SBOM, provenance); not part of its digest.
    pub artifacts: Vec<artifact::Artifact>,
}

/// One app's images for several platforms and the OCI image index over them: what a
/// multi-platform layout or push takes.
#[derive(Debug, Clone)]
pub struct MultiImage {
    pub images: Vec<Image>,
    pub index: Vec<u8>,
    pub index_digest: String,
}

impl MultiImage {
    /// The index over `images`, in the order given (the order of `--platform`). Attestations
    /// are not carried into an index yet: the images' artifacts are dropped.
    pub fn new(images: Vec<Image>) -> MultiImage {
        let images: Vec<Image> = images.into_iter().map(|i| Image { artifacts: Vec::new(), ..i }).collect();
        let index = spec::index(&images.iter().collect::<Vec<_>>());
        MultiImage { index_digest: digest::sha256(&index), images, index }
    }
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const LABEL_CA_SHA256: &str = "dev.ship.ca-bundle.sha256";
/// ship's version: it decides the compressors' versions, so it decides digests.
pub const LABEL_SHIP_VERSION: &str = "dev.ship.version";

fn read_input(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::ReadInput { what, path: path.to_path_buf(), source })
}

/// Refuse anything but a regular file before opening it: opening a FIFO blocks forever, and a
/// device or directory is never what was meant.
pub fn require_file(what: &'static str, path: &std::path::Path) -> Result<(), Error> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::NotAFile { what, path: path.to_path_buf() }),
        Err(source) => Err(Error::ReadInput { what, path: path.to_path_buf(), source }),
    }
}

/// The platform of a binary, from its ELF header (only the header is read).
pub fn binary_platform(binary: &std::path::Path) -> Result<Platform, Error> {
    require_file("binary", binary)?;
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(binary)
        .and_then(|f| std::io::Read::read_to_end(&mut std::io::Read::take(f, 64), &mut head))
        .map_err(|source| Error::ReadInput { what: "binary", path: binary.to_path_buf(), source })?;
    match elf::platform(&head) {
        None => Err(Error::NotElf(binary.to_path_buf())),
        Some(Err(machine)) => Err(Error::UnsupportedArch { path: binary.to_path_buf(), machine }),
        Some(Ok(p)) => Ok(p),
    }
}

/// The binary's platform, once it is known to be an ELF file that can run on `base`: a
/// dynamically linked one needs a base with a C library.
pub fn check_binary(binary: &std::path::Path, base: &Base) -> Result<Platform, Error> {
    let platform = binary_platform(binary)?;
    let no_libc = match base {
        Base::Generated { .. } => Some("ship"),
        Base::Scratch => Some("scratch"),
        Base::Layout { .. } => None,
    };
    if let Some(base) = no_libc {
        let interp = elf::interpreter(binary).map_err(|source| Error::ReadInput {
            what: "binary",
            path: binary.to_path_buf(),
            source,
        })?;
        if let Some(interpreter) = interp {
            return Err(Error::Dynamic { path: binary.to_path_buf(), interpreter, base });
        }
    }
    Ok(platform)
}

/// Assemble the image. Reads the binary, the files and the base; writes only the new layers'
/// blobs, into `req.staging`.
pub fn build(req: &Request) -> Result<Image, Error> {
    // The tar reads the binary straight from the file later.
    let platform = check_binary(&req.binary, &req.base)?;
    let created = spec::rfc3339(req.source_date_epoch)?;
    let mtime = u64::try_from(req.source_date_epoch).map_err(|_| Error::BadEpoch(req.source_date_epoch))?;

    // The app tree is checked (paths, conflicts, unreadable files) before any compression.
    let entry = format!("/app/{}", req.name);
    let mut app = layer::Tree::new();
    app.file_from(&entry, &req.binary, 0o755).map_err(|e| match e {
        Error::ReadInput { path, source, .. } => Error::ReadInput { what: "binary", path, source },
        e => e,
    })?;
    for f in &req.files {
        require_file("file", &f.src)?;
        let data = read_input("file", &f.src)?;
        app.file(&f.dest, Arc::new(data), f.mode)?;
    }

    let mut labels = req.labels.clone();
    let mut env = Vec::new();
    let (mut cfg, mut layers) = match &req.base {
        Base::Generated { ca_bundle } => {
            let ca = read_input("CA bundle", ca_bundle)?;
            if !base::check_ca_bundle(&ca) {
                return Err(Error::BadCaBundle(ca_bundle.clone()));
            }
            let ca_digest = digest::sha256(&ca);
            let layer = make_layer(&base::tree(Arc::new(ca))?, base::BASE_MTIME, req)?;
            let mut cfg = spec::empty_config(&platform);
            spec::push_layer(
                &mut cfg,
                &layer,
                &created,
                format!("ship base: passwd, group, nsswitch.conf, /tmp, CA bundle {ca_digest}"),
            );
            labels.insert(LABEL_CA_SHA256.into(), ca_digest);
            env.push(("PATH".to_string(), DEFAULT_PATH.to_string()));
            env.push(("SSL_CERT_FILE".to_string(), base::CA_PATH.to_string()));
            (cfg, vec![layer])
        }
        Base::Scratch => {
            env.push(("PATH".to_string(), DEFAULT_PATH.to_string()));
            (spec::empty_config(&platform), vec![])
        }
        Base::Layout { dir, tag } => {
            let b = layout::read_image(dir, tag, &platform)?;
            let base_arch = b.config.architecture().to_string();
            if base_arch != platform.architecture {
                return Err(Error::PlatformMismatch { base: base_arch, binary: platform.architecture.clone() });
            }
            let has_path = b
                .config
                .config()
                .as_ref()
                .and_then(|c| c.env().as_ref())
                .is_some_and(|e| e.iter().any(|v| v.starts_with("PATH=")));
            if !has_path {
                env.push(("PATH".to_string(), DEFAULT_PATH.to_string()));
            }
            let mut cfg = b.config;
            cfg.set_created(Some(created.clone()));
            (cfg, b.layers)
        }
    };
    env.extend(req.env.iter().cloned());
    labels.insert("org.opencontainers.image.created".into(), created.clone());

    let app_layer = make_layer(&app, mtime, req)?;
    spec::push_layer(&mut cfg, &app_layer, &created, format!("ship app: {entry}"));
    layers.push(app_layer);
    cfg.set_created(Some(created));
    spec::apply_runtime(
        &mut cfg,
        spec::RuntimeSettings {
            entrypoint: entry,
            user: &req.user,
            workdir: req.workdir.as_deref(),
            ports: &req.ports,
            env,
            labels: &labels,
        },
    );
    let (config, manifest) = spec::finish(&cfg, &layers);
    Ok(Image {
        platform,
        config_digest: digest::sha256(&config),
        manifest_digest: digest::sha256(&manifest),
        layers,
        config,
        manifest,
        artifacts: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal x86_64 ELF header followed by a fixed payload: enough for `elf::platform`.
    pub fn synthetic_elf() -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&2u16.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b.extend((0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 & 0x0f));
        b
    }

    fn request(dir: &std::path::Path, compression: Compression, threads: usize) -> Request {
        let staging = dir.join("staging");
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(dir.join("app"), synthetic_elf()).unwrap();
        std::fs::write(dir.join("ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIBfixed\n-----END CERTIFICATE-----\n")
            .unwrap();
        std::fs::write(dir.join("app.toml"), "answer = 42\n").unwrap();
        Request {
            binary: dir.join("app"),
            name: "golden".into(),
            base: Base::Generated { ca_bundle: dir.join("ca.pem") },
            ports: vec!["3000/tcp".into()],
            env: vec![("RUST_LOG".into(), "info".into())],
            labels: BTreeMap::from([("org.opencontainers.image.title".into(), "golden".into())]),
            user: "65532:65532".into(),
            workdir: None,
            files: vec![FileMapping { src: dir.join("app.toml"), dest: "/etc/app.toml".into(), mode: 0o644 }],
            compression,
            source_date_epoch: 1_700_000_000,
            threads,
            layer_cache: None,
            staging,
        }
    }

    /// The format pin: if this fails, every user's digests changed. Update the constants only
    /// on purpose, with a note in the changelog that digests change in this release.
    #[test]
    fn golden_manifest_digests() {
        let dir = tempfile::tempdir().unwrap();
        let golden = [
            (Compression::Gzip, "sha256:97eef190f1110112eb8c33078f9ae65498e410da4cbca6f3ba5454131f2196ed"),
            (Compression::Zstd, "sha256:b8821c9d8a95b1bb85abc5cd45fc8c6bf46a4fc53384061f21489d5f021190c7"),
            (Compression::None, "sha256:405bd88c628f365c1f03df4826935455cf66e63e7b122660fee2c3e7dba21a16"),
        ];
        for (c, want) in golden {
            let one = build(&request(dir.path(), c, 1)).unwrap();
            let two = build(&request(dir.path(), c, 2)).unwrap();
            assert_eq!(one.manifest_digest, two.manifest_digest, "{c:?}: thread count changed the digest");
            assert_eq!(one.manifest_digest, want, "{c:?}: the image format drifted");
        }
    }

    #[test]
    fn base_layer_does_not_depend_on_the_app() {
        let dir = tempfile::tempdir().unwrap();
        let a = build(&request(dir.path(), Compression::Gzip, 2)).unwrap();
        let mut other = request(dir.path(), Compression::Gzip, 2);
        other.source_date_epoch = 1_800_000_000;
        other.name = "other".into();
        let b = build(&other).unwrap();
        assert_eq!(a.layers[0].digest, b.layers[0].digest);
        assert_ne!(a.layers[1].digest, b.layers[1].digest);
    }

    #[test]
    fn config_carries_platform_entrypoint_user_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let img = build(&request(dir.path(), Compression::Gzip, 2)).unwrap();
        let cfg: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
        assert_eq!(cfg["architecture"], "amd64");
        assert_eq!(cfg["os"], "linux");
        assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
        assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["/app/golden"]));
        assert_eq!(cfg["config"]["User"], "65532:65532");
        assert_eq!(cfg["config"]["ExposedPorts"], serde_json::json!({"3000/tcp": {}}));
        let env: Vec<&str> = cfg["config"]["Env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(
            env,
            [&format!("PATH={DEFAULT_PATH}"), "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "RUST_LOG=info"]
        );
        assert!(cfg["config"]["Labels"][LABEL_CA_SHA256].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn non_elf_binary_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut req = request(dir.path(), Compression::Gzip, 1);
        std::fs::write(&req.binary, "#!/bin/sh\n").unwrap();
        assert!(matches!(build(&req), Err(Error::NotElf(_))));
        req.binary = dir.path().join("missing");
        assert!(matches!(build(&req), Err(Error::ReadInput { .. })));
    }
}
