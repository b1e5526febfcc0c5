//! The layer cache: an uncompressed layer (its diff_id) compressed with given settings by a
//! given ship (which pins the compressors' versions) always gives the same blob, so the mapping
//! diff_id + settings → blob digest and size is remembered, and the blob, when it is still on
//! disk (in the output layout, or in ship's cache directory), is reused instead of compressed
//! again. A reused blob is always hashed first: a damaged or missing one means a miss.
//!
//! The mappings are small files named by their key, written by rename: concurrent runs never see
//! half a mapping, and two runs writing the same key write the same bytes.

use super::compress::{self, Compression};
use super::digest;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where to look.
#[derive(Debug, Clone)]
pub struct LayerCache {
    /// The mapping files.
    pub dir: PathBuf,
    /// Directories of blobs by digest hex (`blobs/sha256` of the output layout, ...).
    pub blob_dirs: Vec<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Mapping {
    digest: String,
    size: u64,
}

/// What decides the compressed bytes besides the tar: the compression, its level and chunk
/// size, and ship's version (Cargo.lock pins the compressors with it).
fn key(diff_id: &str, compression: Compression) -> String {
    let settings = format!(
        "{diff_id} {} gzip-level={} zstd-level={} chunk={} ship={}",
        compression.name(),
        compress::GZIP_LEVEL,
        compress::ZSTD_LEVEL,
        compress::CHUNK_SIZE,
        env!("CARGO_PKG_VERSION")
    );
    digest::sha256(settings.as_bytes()).trim_start_matches("sha256:").to_string()
}

impl LayerCache {
    /// The blob a tar with `diff_id` compressed as `compression` was, if one is on disk and
    /// whole: (digest, size, path).
    pub fn lookup(&self, diff_id: &str, compression: Compression) -> Option<(String, u64, PathBuf)> {
        let text = std::fs::read(self.dir.join(key(diff_id, compression))).ok()?;
        let m: Mapping = serde_json::from_slice(&text).ok()?;
        let hex = digest::hex_part(&m.digest)?;
        self.blob_dirs
            .iter()
            .map(|d| d.join(hex))
            .find(|p| verified(p, &m.digest, m.size))
            .map(|p| (m.digest, m.size, p))
    }

    /// Remember that `diff_id` compressed as `compression` is the blob `digest` of `size` bytes.
    /// Best effort: a cache that cannot be written only means no reuse next time.
    pub fn record(&self, diff_id: &str, compression: Compression, digest: &str, size: u64) {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            std::io::Write::write_all(
                &mut tmp,
                &serde_json::to_vec(&Mapping { digest: digest.into(), size }).expect("JSON"),
            )?;
            tmp.persist(self.dir.join(key(diff_id, compression))).map_err(|e| e.error)?;
            Ok(())
        };
        let _ = write();
    }
}

/// Whether the file at `path` is exactly the blob `digest` of `size` bytes.
pub fn verified(path: &Path, digest: &str, size: u64) -> bool {
    digest::verify_file(path, digest, size).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_is_used_only_with_a_whole_blob() {
        let d = tempfile::tempdir().unwrap();
        let blobs = d.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        let cache = LayerCache { dir: d.path().join("layers"), blob_dirs: vec![blobs.clone()] };
        let blob = b"compressed bytes".to_vec();
        let digest = digest::sha256(&blob);
        let path = blobs.join(digest::hex_part(&digest).unwrap());
        assert!(cache.lookup("sha256:tar", Compression::Gzip).is_none(), "nothing recorded yet");
        cache.record("sha256:tar", Compression::Gzip, &digest, blob.len() as u64);
        assert!(cache.lookup("sha256:tar", Compression::Gzip).is_none(), "no blob on disk");
        std::fs::write(&path, &blob).unwrap();
        assert_eq!(cache.lookup("sha256:tar", Compression::Gzip).unwrap().2, path);
        assert!(cache.lookup("sha256:tar", Compression::Zstd).is_none(), "other settings, other key");
        // A damaged blob of the same size is not reused.
        std::fs::write(&path, b"compressed BYTES").unwrap();
        assert!(cache.lookup("sha256:tar", Compression::Gzip).is_none());
    }
}
