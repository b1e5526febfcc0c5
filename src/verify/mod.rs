//! Reproducibility: the recipe an image records about its own making (a label), and the
//! comparison of two images down to the file and the ELF section that differ. Read-only: the
//! rebuild itself is the ordinary build and image steps, run by `ship verify`.

use crate::image::{self, Image, Layer};
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The label holding the [`Recipe`].
pub const LABEL_RECIPE: &str = "dev.ship.recipe";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the image records no build recipe (label {LABEL_RECIPE}): it was not built by ship from a project, or by a ship older than 0.1"
    )]
    NoRecipe,
    #[error("the image's build recipe cannot be read: {0}")]
    BadRecipe(String),
    #[error("the image records no git revision (label org.opencontainers.image.revision)")]
    NoRevision,
    #[error("the image was built with the toolchain {0}, which is not on this machine")]
    ToolchainUnavailable(String),
    #[error("the revision {revision} is not in the repository {repo}")]
    UnknownRevision { revision: String, repo: String },
    #[error("{0}")]
    Git(String),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NoRecipe | Error::BadRecipe(_) => {
                "only images ship built from a Cargo project (ship image/run without --binary) can be rebuilt".into()
            }
            Error::NoRevision => "build from a git checkout so that the image names its revision".into(),
            Error::ToolchainUnavailable(p) => format!(
                "realise that exact toolchain first (nix build of the flake at the image's revision gives {p}), or verify on a machine that has it"
            ),
            Error::UnknownRevision { .. } => {
                "fetch it (git fetch origin), or point --source at a clone that has it".into()
            }
            Error::Git(_) => "check --source: it must be a git checkout".into(),
        })
    }
}

/// A file put into the app layer, relative to the repository when it is inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipeFile {
    pub src: String,
    pub dest: String,
    pub mode: u32,
}

/// Everything besides the toolchain, the revision and the lock files (labels of their own) that
/// an image's bytes depend on: enough to build it again from its revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    /// The Cargo.toml, relative to the repository's root.
    pub manifest_path: String,
    pub package: String,
    pub bin: String,
    pub name: String,
    /// `ship`, `scratch`, `REGISTRY/REPO@sha256:…`, or `oci:…` (a local layout: not rebuildable
    /// elsewhere).
    pub base: String,
    pub ports: Vec<String>,
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub files: Vec<RecipeFile>,
    pub user: String,
    pub workdir: Option<String>,
    pub compression: String,
    pub source_date_epoch: i64,
    /// The platform it was cross-built for (`linux/arm64`); absent for the builder's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl Recipe {
    /// The label value: canonical JSON.
    pub fn to_label(&self) -> String {
        String::from_utf8(image::spec::canonical(self)).expect("JSON is UTF-8")
    }
}

/// What an image says about itself, from its config's labels.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub recipe: Recipe,
    pub revision: String,
    pub toolchain: Option<String>,
    pub ship_version: Option<String>,
    pub ca_bundle_sha256: Option<String>,
    pub cargo_lock_sha256: Option<String>,
    pub flake_lock_sha256: Option<String>,
}

pub fn labels(config: &ImageConfiguration) -> BTreeMap<String, String> {
    config.config().as_ref().and_then(|c| c.labels().clone()).map(|l| l.into_iter().collect()).unwrap_or_default()
}

/// Read the recipe and the other recorded inputs from an image.
pub fn recorded(image: &Image) -> Result<Recorded, Error> {
    let config: ImageConfiguration = serde_json::from_slice(&image.config)
        .map_err(|e| Error::BadRecipe(format!("the config is unreadable ({e})")))?;
    let labels = labels(&config);
    let recipe = labels.get(LABEL_RECIPE).ok_or(Error::NoRecipe)?;
    let recipe: Recipe = serde_json::from_str(recipe).map_err(|e| Error::BadRecipe(e.to_string()))?;
    Ok(Recorded {
        recipe,
        revision: labels.get("org.opencontainers.image.revision").cloned().ok_or(Error::NoRevision)?,
        toolchain: labels.get("dev.ship.toolchain").cloned(),
        ship_version: labels.get(image::LABEL_SHIP_VERSION).cloned(),
        ca_bundle_sha256: labels.get(image::LABEL_CA_SHA256).cloned(),
        cargo_lock_sha256: labels.get("dev.ship.cargo-lock.sha256").cloned(),
        flake_lock_sha256: labels.get("dev.ship.flake-lock.sha256").cloned(),
    })
}

/// One difference, in words and as data.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// `config`, `layer 2`, `layer 2: /app/hello`, `layer 2: /app/hello section .text`, `toolchain`.
    pub place: String,
    pub what: String,
    pub expected: String,
    pub got: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} differs: expected {}, rebuilt {}", self.place, self.what, self.expected, self.got)
    }
}

fn diff(out: &mut Vec<Difference>, place: &str, what: &str, a: impl std::fmt::Debug, b: impl std::fmt::Debug) {
    // Debug output, without the quotes of a plain string.
    let show = |v: String| match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if !inner.contains('"') => inner.to_string(),
        _ => v,
    };
    let (a, b) = (show(format!("{a:?}")), show(format!("{b:?}")));
    if a != b {
        out.push(Difference { place: place.into(), what: what.into(), expected: a, got: b });
    }
}

/// Why `got` is not `expected`: config fields, layers, and inside differing layers the files
/// (path, size, sha256, mode, owner, mtime) and, for ELF files, the sections.
pub fn explain(expected: &Image, got: &Image) -> Vec<Difference> {
    let mut out = Vec::new();
    let parse = |i: &Image| serde_json::from_slice::<ImageConfiguration>(&i.config).ok();
    if let (Some(a), Some(b)) = (parse(expected), parse(got)) {
        diff(&mut out, "config", "created", a.created(), b.created());
        diff(&mut out, "config", "architecture", a.architecture().to_string(), b.architecture().to_string());
        let (ca, cb) = (a.config().clone().unwrap_or_default(), b.config().clone().unwrap_or_default());
        diff(&mut out, "config", "entrypoint", ca.entrypoint(), cb.entrypoint());
        diff(&mut out, "config", "env", ca.env(), cb.env());
        diff(&mut out, "config", "user", ca.user(), cb.user());
        diff(&mut out, "config", "working dir", ca.working_dir(), cb.working_dir());
        diff(&mut out, "config", "exposed ports", ca.exposed_ports(), cb.exposed_ports());
        let (la, lb) = (labels(&a), labels(&b));
        for key in la.keys().chain(lb.keys()).collect::<std::collections::BTreeSet<_>>() {
            diff(&mut out, "config", &format!("label {key}"), la.get(key), lb.get(key));
        }
    }
    diff(&mut out, "image", "number of layers", expected.layers.len(), got.layers.len());
    for (i, (a, b)) in expected.layers.iter().zip(&got.layers).enumerate() {
        if a.digest == b.digest {
            continue;
        }
        let place = format!("layer {}", i + 1);
        if a.diff_id == b.diff_id {
            // Same files, other compressed bytes: the compressor or its settings.
            diff(&mut out, &place, "compressed blob (same content: compressor or level)", &a.digest, &b.digest);
            continue;
        }
        diff(&mut out, &place, "content", &a.diff_id, &b.diff_id);
        match (entries(a), entries(b)) {
            (Ok(ea), Ok(eb)) => files(&mut out, &place, &ea, &eb),
            (Err(e), _) | (_, Err(e)) => diff(&mut out, &place, "readability", "a readable layer", e.to_string()),
        }
    }
    out
}

/// A tar entry, as far as the image's bytes are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    size: u64,
    sha256: String,
    mode: u32,
    owner: (u64, u64),
    mtime: u64,
    kind: u8,
    data: Vec<u8>,
}

fn entries(layer: &Layer) -> Result<BTreeMap<String, Entry>, image::Error> {
    let tar = layer.tar()?;
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(&tar[..]);
    let io = image::Error::io("reading a layer");
    for e in archive.entries().map_err(&io)? {
        let mut e = e.map_err(&io)?;
        let path = format!("/{}", e.path().map_err(&io)?.to_string_lossy().trim_end_matches('/'));
        let h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).map_err(&io)?;
        out.insert(
            path,
            Entry {
                size: h.size().unwrap_or(0),
                sha256: image::digest::sha256(&data),
                mode: h.mode().unwrap_or(0),
                owner: (h.uid().unwrap_or(0), h.gid().unwrap_or(0)),
                mtime: h.mtime().unwrap_or(0),
                kind: h.entry_type().as_byte(),
                data,
            },
        );
    }
    Ok(out)
}

fn files(out: &mut Vec<Difference>, layer: &str, a: &BTreeMap<String, Entry>, b: &BTreeMap<String, Entry>) {
    for path in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
        let place = format!("{layer}: {path}");
        match (a.get(path), b.get(path)) {
            (Some(_), None) => diff(out, &place, "presence", "present", "missing"),
            (None, Some(_)) => diff(out, &place, "presence", "absent", "present"),
            (Some(x), Some(y)) => {
                diff(out, &place, "size", x.size, y.size);
                diff(out, &place, "sha256", &x.sha256, &y.sha256);
                diff(out, &place, "mode", format!("{:o}", x.mode), format!("{:o}", y.mode));
                diff(out, &place, "owner", x.owner, y.owner);
                diff(out, &place, "mtime", x.mtime, y.mtime);
                diff(out, &place, "type", x.kind as char, y.kind as char);
                if x.sha256 != y.sha256 {
                    sections(out, &place, &x.data, &y.data);
                }
            }
            (None, None) => {}
        }
    }
}

/// The ELF sections (name → sha256 of their bytes) of a file, if it is ELF.
fn elf_sections(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let elf = goblin::elf::Elf::parse(bytes).ok()?;
    let mut out = BTreeMap::new();
    for sh in &elf.section_headers {
        let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("?").to_string();
        let range = sh.file_range();
        let hash = match range.and_then(|r| bytes.get(r)) {
            Some(data) => image::digest::sha256(data),
            None => format!("{} bytes, not in the file", sh.sh_size),
        };
        out.insert(name, hash);
    }
    Some(out)
}

fn sections(out: &mut Vec<Difference>, place: &str, a: &[u8], b: &[u8]) {
    let (Some(sa), Some(sb)) = (elf_sections(a), elf_sections(b)) else { return };
    for name in sa.keys().chain(sb.keys()).collect::<std::collections::BTreeSet<_>>() {
        diff(out, &format!("{place} section {name}"), "sha256", sa.get(name), sb.get(name));
    }
}

/// The bytes of the file at `path` (absolute, like `/etc/ssl/certs/ca-certificates.crt`) in a
/// layer, if it is there.
pub fn file_in_layer(layer: &Layer, path: &str) -> Result<Option<Vec<u8>>, image::Error> {
    Ok(entries(layer)?.remove(path).map(|e| e.data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_round_trip_through_their_label() {
        let r = Recipe {
            manifest_path: "examples/hello-service/Cargo.toml".into(),
            package: "hello-service".into(),
            bin: "hello-service".into(),
            name: "hello-service".into(),
            base: "ship".into(),
            ports: vec!["3000/tcp".into()],
            env: vec![("RUST_LOG".into(), "info".into())],
            labels: BTreeMap::new(),
            files: vec![],
            user: "65532:65532".into(),
            workdir: None,
            compression: "gzip".into(),
            source_date_epoch: 1,
            platform: None,
        };
        let back: Recipe = serde_json::from_str(&r.to_label()).unwrap();
        assert_eq!(back, r);
        assert!(!r.to_label().contains(' '), "canonical JSON");
        assert!(!r.to_label().contains("platform"), "a native build's recipe does not name it");
        let cross = Recipe { platform: Some("linux/arm64".into()), ..r };
        assert_eq!(serde_json::from_str::<Recipe>(&cross.to_label()).unwrap(), cross);
    }
}
