//! OCI image layout 1.0: write an image under a tag, read one back as a base.
//!
//! Writers take an advisory lock (`flock` on `.ship-lock` inside the layout) from reading
//! index.json to renaming the new one into place, so concurrent writers of different tags all
//! land. Writing never leaves a half-written layout: every blob goes through a temporary file
//! renamed only when complete (a blob already there is re-hashed before it is trusted),
//! index.json is replaced by rename, a new layout's `oci-layout` file comes last, and what this
//! run added is removed again if anything fails (or ship is interrupted) before that.

use super::elf::Platform;
use super::layer::Layer;
use super::spec;
use super::{Error, Image, artifact, digest};
use crate::cleanup;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The lock file inside a layout; OCI tools ignore files they do not know.
pub const LOCK_FILE: &str = ".ship-lock";
/// Temporary files of ship's writers; any left inside a layout whose lock is ours are stale.
const TMP_BLOB: &str = ".tmp-";
const TMP_INDEX: &str = ".index.json.";
/// Staging directories beside a layout, from ship versions before the lock.
const OLD_STAGING: &str = ".ship-layout-";

/// An exclusive `flock` on a layout's lock file, released on drop.
pub struct Lock {
    _file: fs::File,
}

impl Lock {
    /// Lock the layout at `dir`, creating the directory if needed. `waiting` is called once if
    /// another writer holds the lock.
    pub fn acquire(dir: &Path, waiting: &dyn Fn(&str)) -> std::io::Result<Lock> {
        let path = dir.join(LOCK_FILE);
        let mut told = false;
        loop {
            fs::create_dir_all(dir)?;
            let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => {
                    if !told {
                        waiting(&format!("waiting for {}: another ship is writing it", dir.display()));
                        told = true;
                    }
                    file.lock()?;
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
            // A writer that failed to create the layout removes it, lock file and all: a lock
            // on a file that is no longer at `path` protects nothing, so start again.
            if same_file(&file, &path) {
                return Ok(Lock { _file: file });
            }
        }
    }
}

#[cfg(unix)]
fn same_file(file: &fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &fs::File, path: &Path) -> bool {
    path.exists()
}

/// What a directory without an `oci-layout` file may hold for ship to make a layout of it:
/// nothing, or what an interrupted ship left.
fn is_ship_litter(name: &str) -> bool {
    name == LOCK_FILE || name == "blobs" || name.starts_with(TMP_INDEX)
}

/// Write `image` into the layout at `dir` under `tag`, keeping other tags. `waiting` hears
/// about a wait for another writer's lock.
pub fn write(image: &Image, dir: &Path, tag: &str, waiting: &dyn Fn(&str)) -> Result<(), Error> {
    write_with(dir, waiting, &|root, added| write_blobs(image, root, added), &|old| index_with(old, image, tag))
}

/// Write the images of `multi` and their index into the layout at `dir`, the tag naming the
/// index; otherwise as [`write`].
pub fn write_multi(multi: &super::MultiImage, dir: &Path, tag: &str, waiting: &dyn Fn(&str)) -> Result<(), Error> {
    let blobs = &|root: &Path, added: &mut Vec<(PathBuf, cleanup::Registered)>| {
        for image in &multi.images {
            write_blobs(image, root, added)?;
        }
        let index = &multi.index;
        put_blob(&root.join("blobs/sha256"), &multi.index_digest, index.len() as u64, added, |f| f.write_all(index))
    };
    let entry = &|old: Option<ImageIndex>| {
        let desc =
            Descriptor::new(MediaType::ImageIndex, multi.index.len() as u64, spec::parse_digest(&multi.index_digest));
        tag_entry(old, desc, tag)
    };
    write_with(dir, waiting, blobs, entry)
}

type Added = Vec<(PathBuf, cleanup::Registered)>;

/// The body of every layout write: lock, put the blobs (`blobs`), make the new index.json from
/// the old (`entry`), and commit, or leave the layout as it was.
fn write_with(
    dir: &Path,
    waiting: &dyn Fn(&str),
    blobs_of: &dyn Fn(&Path, &mut Added) -> std::io::Result<()>,
    entry: &dyn Fn(Option<ImageIndex>) -> ImageIndex,
) -> Result<(), Error> {
    let out_err = |source: std::io::Error| Error::Output { path: dir.to_path_buf(), source };
    let not_layout = |why: &str| Error::NotALayout { dir: dir.to_path_buf(), why: why.to_string() };
    let existed = match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(not_layout("it is a file")),
        Ok(_) => {
            // Checked before taking the lock too, so that a user's directory never gets one.
            if !dir.join("oci-layout").exists() && !only_litter(dir).map_err(out_err)? {
                return Err(not_layout("it is a non-empty directory without an oci-layout file"));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(out_err(e)),
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        cleanup::sweep(parent, &[OLD_STAGING]);
    }
    // Interrupted while waiting for another writer's lock: the directory made for the lock goes
    // (unless that writer is filling it).
    let _waiting_guard = (!existed).then(|| cleanup::lock_dir(dir, LOCK_FILE));
    let _lock = Lock::acquire(dir, waiting).map_err(out_err)?;
    let is_layout = dir.join("oci-layout").exists();
    if !is_layout && !only_litter(dir).map_err(out_err)? {
        return Err(not_layout("it is a non-empty directory without an oci-layout file"));
    }
    // A layout this run creates is removed whole if ship is interrupted while making it.
    let mut interrupt_guard = (!is_layout).then(|| cleanup::tree(dir));
    let old = if is_layout { Some(read_index(dir)?) } else { None };
    let blobs = dir.join("blobs/sha256");
    // We hold the lock: every temporary file in here belongs to a writer that is gone.
    cleanup::sweep_all(&blobs, &[TMP_BLOB]);
    cleanup::sweep_all(dir, &[TMP_INDEX]);
    // Blobs this run adds, each removed again if ship is interrupted before the index names it.
    let mut added: Vec<(PathBuf, cleanup::Registered)> = Vec::new();
    let result = (|| {
        fs::create_dir_all(&blobs)?;
        blobs_of(dir, &mut added)?;
        let index = entry(old);
        let (mut tmp, _interrupt) = cleanup::temp_file_in(dir, TMP_INDEX)?;
        tmp.write_all(&spec::canonical(&index))?;
        tmp.as_file().set_permissions(digest::blob_permissions())?;
        // The commit: after it the tag is there and nothing is removed on an interrupt.
        cleanup::commit(|| {
            tmp.persist(dir.join("index.json")).map_err(|e| e.error)?;
            if !is_layout {
                // Last: a directory is a layout from the moment this file is there.
                fs::write(dir.join("oci-layout"), OCI_LAYOUT)?;
                set_dir_mode(dir)?;
            }
            drop(std::mem::take(&mut added));
            drop(interrupt_guard.take());
            Ok::<_, std::io::Error>(())
        })?;
        Ok(())
    })();
    if let Err(e) = result {
        for (path, _) in added {
            let _ = fs::remove_file(path);
        }
        if !is_layout {
            // Nothing of a layout that never was: the blob folders, the lock, the directory
            // (only if empty: it may hold an interrupted run's litter, or be the user's).
            let _ = fs::remove_dir(&blobs);
            let _ = fs::remove_dir(dir.join("blobs"));
            let _ = fs::remove_file(dir.join(LOCK_FILE));
            if !existed {
                let _ = fs::remove_dir(dir);
            }
        }
        return Err(out_err(e));
    }
    Ok(())
}

/// Whether `dir` holds nothing but what ship itself leaves while writing a layout.
fn only_litter(dir: &Path) -> std::io::Result<bool> {
    for e in fs::read_dir(dir)? {
        if !is_ship_litter(&e?.file_name().to_string_lossy()) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(unix)]
fn set_dir_mode(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let umask_default = 0o755;
    fs::set_permissions(dir, fs::Permissions::from_mode(umask_default))
}

#[cfg(not(unix))]
fn set_dir_mode(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Every blob of `image` into `root/blobs/sha256`, reusing blobs already there whole.
fn write_blobs(image: &Image, root: &Path, added: &mut Vec<(PathBuf, cleanup::Registered)>) -> std::io::Result<()> {
    let blobs = root.join("blobs/sha256");
    for layer in &image.layers {
        // A layer from the layer cache that is this very file was verified when it was found.
        let in_place = matches!(layer.blob(), super::layer::Blob::File(p)
            if digest::hex_part(&layer.digest).is_some_and(|h| *p == blobs.join(h)));
        if in_place {
            continue;
        }
        if let super::layer::Blob::Staged(p) = layer.blob()
            && link_blob(&blobs, p, &layer.digest, added)
        {
            continue;
        }
        put_blob(&blobs, &layer.digest, layer.size, added, |f| layer.write_to(f))?;
    }
    put_blob(&blobs, &image.config_digest, image.config.len() as u64, added, |f| f.write_all(&image.config))?;
    put_blob(&blobs, &image.manifest_digest, image.manifest.len() as u64, added, |f| f.write_all(&image.manifest))?;
    for a in &image.artifacts {
        let empty = artifact::EMPTY;
        put_blob(&blobs, &digest::sha256(empty), empty.len() as u64, added, |f| f.write_all(empty))?;
        put_blob(&blobs, &a.document_digest, a.document.len() as u64, added, |f| f.write_all(&a.document))?;
        put_blob(&blobs, &a.manifest_digest, a.manifest.len() as u64, added, |f| f.write_all(&a.manifest))?;
    }
    Ok(())
}

/// Put a staged blob (ship's own, verified, world-readable) into the layout as a hard link:
/// no second copy of a large layer. False when it cannot (another file system, or the blob is
/// there already): the caller then copies, or checks what is there, as for any blob.
fn link_blob(blobs: &Path, staged: &Path, digest: &str, added: &mut Vec<(PathBuf, cleanup::Registered)>) -> bool {
    let Some(hex) = digest::hex_part(digest) else { return false };
    let target = blobs.join(hex);
    // A hard link appears whole, and fails if the name exists: never a half blob, never a
    // replaced one.
    cleanup::commit(|| match fs::hard_link(staged, &target) {
        Ok(()) => {
            added.push((target.clone(), cleanup::file(&target)));
            true
        }
        Err(_) => false,
    })
}

fn put_blob(
    blobs: &Path,
    digest: &str,
    size: u64,
    added: &mut Vec<(PathBuf, cleanup::Registered)>,
    write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let hex = digest::hex_part(digest).expect("ship's own digests are well-formed");
    let target = blobs.join(hex);
    // A blob already under its digest's name is trusted only if it hashes to it: a disk error,
    // another tool or a hand edit may have damaged it. Hashing is cheap next to compressing.
    if digest::verify_file(&target, digest, size).is_ok() {
        return Ok(());
    }
    let (mut tmp, _interrupt) = cleanup::temp_file_in(blobs, TMP_BLOB)?;
    write(tmp.as_file_mut())?;
    tmp.as_file().set_permissions(digest::blob_permissions())?;
    let guard = cleanup::commit(|| {
        tmp.persist(&target).map_err(|e| e.error)?;
        Ok::<_, std::io::Error>(cleanup::file(&target))
    })?;
    added.push((target, guard));
    Ok(())
}

/// The index with `image` under `tag`, replacing whatever had that tag before.
fn index_with(old: Option<ImageIndex>, image: &Image, tag: &str) -> ImageIndex {
    let mut index = tag_entry(old, spec::manifest_descriptor(image), tag);
    let mut manifests = index.manifests().clone();
    // The image's artifacts: untagged entries that name their subject.
    for a in &image.artifacts {
        let mut d = a.descriptor();
        d.set_annotations(Some(HashMap::from([(SUBJECT.to_string(), image.manifest_digest.clone())])));
        manifests.retain(|m| m.digest() != d.digest());
        manifests.push(d);
    }
    index.set_manifests(manifests);
    index
}

/// The index with `desc` under `tag`, replacing whatever had that tag before; artifacts of
/// manifests no tag names any more go.
fn tag_entry(old: Option<ImageIndex>, mut desc: Descriptor, tag: &str) -> ImageIndex {
    let mut index = old.unwrap_or_else(|| spec::new_index(Vec::new()));
    index.set_schema_version(2);
    index.set_media_type(Some(MediaType::ImageIndex));
    let mut manifests: Vec<Descriptor> =
        index.manifests().iter().filter(|m| ref_name(m) != Some(tag)).cloned().collect();
    desc.set_annotations(Some(HashMap::from([(REF_NAME.to_string(), tag.to_string())])));
    manifests.push(desc);
    let tagged: Vec<String> =
        manifests.iter().filter(|m| ref_name(m).is_some()).map(|m| m.digest().to_string()).collect();
    manifests.retain(|m| subject_of(m).is_none_or(|s| tagged.iter().any(|t| t == s)));
    index.set_manifests(manifests);
    index
}

/// The annotation on an artifact's entry in index.json: the digest of the manifest it is about.
pub const SUBJECT: &str = "dev.ship.subject";

/// The manifest an index.json entry is an artifact about.
fn subject_of(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(SUBJECT).map(String::as_str)
}

/// The tag a descriptor of index.json carries.
fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

fn read_index(dir: &Path) -> Result<ImageIndex, Error> {
    let bad = |why: String| Error::NotALayout { dir: dir.to_path_buf(), why };
    let bytes = fs::read(dir.join("index.json")).map_err(|e| bad(format!("its index.json cannot be read ({e})")))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("its index.json is not an OCI image index ({e})")))
}

/// The tags of a layout, in index order.
pub fn tags(dir: &Path) -> Result<Vec<String>, Error> {
    Ok(read_index(dir)?.manifests().iter().filter_map(|m| ref_name(m).map(str::to_string)).collect())
}

/// A verified blob's bytes (small blobs only: manifests, configs, indexes).
fn read_blob(dir: &Path, digest: &str) -> Result<Vec<u8>, Error> {
    let bad = |why: String| Error::NotALayout { dir: dir.to_path_buf(), why };
    let hex = digest::hex_part(digest).ok_or_else(|| bad(format!("it names a malformed digest {digest:?}")))?;
    let bytes =
        fs::read(dir.join("blobs/sha256").join(hex)).map_err(|e| bad(format!("blob {digest} cannot be read ({e})")))?;
    if digest::sha256(&bytes) != digest {
        return Err(bad(format!("blob {digest} does not match its digest")));
    }
    Ok(bytes)
}

/// A base image read from a layout: its config and its layers (verified, left on disk).
pub struct BaseImage {
    pub config: ImageConfiguration,
    pub layers: Vec<Layer>,
}

/// The digest of what `tag` names in the layout at `dir` (a manifest or an index).
pub fn tagged_digest(dir: &Path, tag: &str) -> Result<String, Error> {
    Ok(tagged(dir, tag)?.digest().to_string())
}

/// The index descriptor tagged `tag` in the layout at `dir`.
fn tagged(dir: &Path, tag: &str) -> Result<Descriptor, Error> {
    if !dir.join("oci-layout").is_file() {
        return Err(Error::NotALayout { dir: dir.to_path_buf(), why: "it has no oci-layout file".into() });
    }
    let index = read_index(dir)?;
    index.manifests().iter().find(|m| ref_name(m) == Some(tag)).cloned().ok_or_else(|| Error::TagNotFound {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        tags: index.manifests().iter().filter_map(|m| ref_name(m).map(str::to_string)).collect(),
    })
}

/// The entry of an image index's `manifests` for `want`: the same os and architecture, and
/// the same variant when both name one (arm64's `v8` is what no variant means). An exact
/// variant match wins over an entry without a variant.
pub fn select_platform<'a>(manifests: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let normal = |arch: &str, variant: Option<&str>| match (arch, variant) {
        ("arm64", None) => Some("v8".to_string()),
        (_, v) => v.map(str::to_string),
    };
    let want_variant = normal(&want.architecture, want.variant.as_deref());
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|m| {
            m.platform()
                .as_ref()
                .is_some_and(|p| p.architecture().to_string() == want.architecture && p.os().to_string() == want.os)
        })
        .collect();
    let variant_of = |m: &Descriptor| {
        let p = m.platform().as_ref().expect("filtered on platform");
        normal(&p.architecture().to_string(), p.variant().as_deref())
    };
    candidates
        .iter()
        .find(|m| variant_of(m) == want_variant)
        .or_else(|| candidates.iter().find(|m| variant_of(m).is_none() || want_variant.is_none()))
        .copied()
}

fn is_index(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageIndex => true,
        MediaType::Other(t) => t == "application/vnd.docker.distribution.manifest.list.v2+json",
        _ => false,
    }
}

/// Read the image tagged `tag` for `platform` (choosing from an image index if it is one).
pub fn read_image(dir: &Path, tag: &str, platform: &Platform) -> Result<BaseImage, Error> {
    let bad = |why: String| Error::NotALayout { dir: dir.to_path_buf(), why };
    let mut desc = tagged(dir, tag)?;
    // Nested indexes are followed until a manifest for our platform turns up.
    for _ in 0..4 {
        let digest = desc.digest().to_string();
        let bytes = read_blob(dir, &digest)?;
        if is_index(desc.media_type()) {
            let index: ImageIndex = serde_json::from_slice(&bytes)
                .map_err(|e| bad(format!("blob {digest} is not an image index ({e})")))?;
            desc = select_platform(index.manifests(), platform).cloned().ok_or_else(|| Error::NoPlatform {
                what: format!("{}:{tag}", dir.display()),
                platform: format!("{}/{}", platform.os, platform.architecture),
            })?;
            continue;
        }
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("blob {digest} is not an image manifest ({e})")))?;
        return read_manifest(dir, &manifest, Verify::Digest);
    }
    Err(bad("its indexes nest too deeply".into()))
}

/// What a tag names: one image, or an index over one image per platform.
pub enum Tagged {
    Image(Image),
    Index(super::MultiImage),
}

/// The image or image index tagged `tag`, exactly as stored (as [`load`]): what `ship push`
/// uploads.
pub fn load_tagged(dir: &Path, tag: &str) -> Result<Tagged, Error> {
    let bad = |why: String| Error::NotALayout { dir: dir.to_path_buf(), why };
    let desc = tagged(dir, tag)?;
    let digest = desc.digest().to_string();
    let bytes = read_blob(dir, &digest)?;
    if !names_index(&desc, &bytes) {
        return load_manifest(dir, digest, bytes).map(Tagged::Image);
    }
    let index: ImageIndex =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("blob {digest} is not an image index ({e})")))?;
    let mut images = Vec::new();
    for d in index.manifests() {
        if is_index(d.media_type()) {
            return Err(bad(format!("the index {digest} holds another index; ship pushes one level")));
        }
        let m = d.digest().to_string();
        let manifest = read_blob(dir, &m)?;
        images.push(load_manifest(dir, m, manifest)?);
    }
    Ok(Tagged::Index(super::MultiImage { images, index: bytes, index_digest: digest }))
}

/// The image tagged `tag`, exactly as stored (manifest and config bytes unchanged), with every
/// manifest and config verified and every layer blob's size checked. An index is not an
/// image: an error says so (see [`load_tagged`]).
pub fn load(dir: &Path, tag: &str) -> Result<Image, Error> {
    let bad = |why: String| Error::NotALayout { dir: dir.to_path_buf(), why };
    let desc = tagged(dir, tag)?;
    let manifest_digest = desc.digest().to_string();
    let manifest = read_blob(dir, &manifest_digest)?;
    if names_index(&desc, &manifest) {
        return Err(bad(format!("{tag} is an image index, not one image")));
    }
    load_manifest(dir, manifest_digest, manifest)
}

/// Whether the index.json entry `desc`, whose blob is `bytes`, is an image index: by its media
/// type, or by its content where the entry's media type does not say.
fn names_index(desc: &Descriptor, bytes: &[u8]) -> bool {
    is_index(desc.media_type()) || serde_json::from_slice::<ImageIndex>(bytes).is_ok()
}

/// The image whose manifest (`manifest_digest`) is `manifest`, with its artifacts.
fn load_manifest(dir: &Path, manifest_digest: String, manifest: Vec<u8>) -> Result<Image, Error> {
    let bad = |why: String| Error::NotALayout { dir: dir.to_path_buf(), why };
    let doc: ImageManifest = serde_json::from_slice(&manifest)
        .map_err(|e| bad(format!("manifest {manifest_digest} is not an image manifest ({e})")))?;
    // Layer bytes are checked by the registry against their digest on upload, and a blob the
    // registry already has is not sent: hashing them here would only slow every push.
    let base = read_manifest(dir, &doc, Verify::Size)?;
    let config_digest = doc.config().digest().to_string();
    let config = read_blob(dir, &config_digest)?;
    let platform = Platform {
        architecture: base.config.architecture().to_string(),
        variant: base.config.variant().clone(),
        os: base.config.os().to_string(),
    };
    let mut artifacts = Vec::new();
    for d in read_index(dir)?.manifests().iter().filter(|m| subject_of(m) == Some(manifest_digest.as_str())) {
        let bytes = read_blob(dir, d.digest().as_ref())?;
        let m: ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("artifact {} is not a manifest ({e})", d.digest())))?;
        let Some(layer) = m.layers().first() else { continue };
        let document = read_blob(dir, layer.digest().as_ref())?;
        artifacts.extend(artifact::Artifact::from_parts(bytes, document));
    }
    Ok(Image { platform, layers: base.layers, config, config_digest, manifest, manifest_digest, artifacts })
}

/// How much of each layer blob to check when reading a manifest.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    Size,
    Digest,
}

fn read_manifest(dir: &Path, manifest: &ImageManifest, verify: Verify) -> Result<BaseImage, Error> {
    let bad = |why: String| Error::NotALayout { dir: dir.to_path_buf(), why };
    let config_digest = manifest.config().digest().to_string();
    let config_bytes = read_blob(dir, &config_digest)?;
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| bad(format!("config {config_digest} is not an image config ({e})")))?;
    let descs = manifest.layers();
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != descs.len() {
        return Err(bad(format!(
            "config {config_digest} lists {} diff_ids for {} layers",
            diff_ids.len(),
            descs.len()
        )));
    }
    let mut layers = Vec::new();
    for (d, diff_id) in descs.iter().zip(diff_ids) {
        let digest = d.digest().to_string();
        let size = d.size();
        let hex = digest::hex_part(&digest).ok_or_else(|| bad(format!("a layer has a malformed digest {digest:?}")))?;
        let path = dir.join("blobs/sha256").join(hex);
        match verify {
            Verify::Digest => digest::verify_file(&path, &digest, size).map_err(bad)?,
            Verify::Size => {
                let len = fs::metadata(&path).map_err(|e| bad(format!("blob {digest} cannot be read ({e})")))?.len();
                if len != size {
                    return Err(bad(format!("blob {digest} is {len} bytes, not {size}")));
                }
            }
        }
        layers.push(Layer::from_file(d.media_type().to_string(), digest, diff_id, size, path));
    }
    Ok(BaseImage { config, layers })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{Arch, Os, PlatformBuilder};

    fn desc(arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        let mut p = PlatformBuilder::default().architecture(Arch::from(arch)).os(Os::Linux).build().unwrap();
        p.set_variant(variant.map(str::to_string));
        let mut d = Descriptor::new(MediaType::ImageManifest, 1, spec::parse_digest(&digest::sha256(&[n])));
        d.set_platform(Some(p));
        d
    }

    #[test]
    fn platform_selection_respects_variants() {
        let list =
            [desc("arm", Some("v6"), 1), desc("arm", Some("v7"), 2), desc("arm64", None, 3), desc("amd64", None, 4)];
        let want = |arch: &str, variant: Option<&str>| Platform {
            architecture: arch.into(),
            variant: variant.map(str::to_string),
            os: "linux".into(),
        };
        let pick = |p: Platform| select_platform(&list, &p).map(|d| d.digest().to_string());
        assert_eq!(pick(want("arm", Some("v7"))), Some(list[1].digest().to_string()));
        assert_eq!(pick(want("arm", Some("v6"))), Some(list[0].digest().to_string()));
        assert_eq!(pick(want("arm64", Some("v8"))), Some(list[2].digest().to_string()), "no variant means v8 on arm64");
        assert_eq!(pick(want("amd64", None)), Some(list[3].digest().to_string()));
        assert_eq!(pick(want("arm", Some("v5"))), None);
        assert_eq!(pick(want("riscv64", None)), None);
    }
}
