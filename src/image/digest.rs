//! sha256 digests in the `sha256:<hex>` form the OCI specs use.

use sha2::{Digest as _, Sha256};
use std::io::{self, Write};

/// `sha256:<hex>` of a byte slice.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The hex part of a `sha256:<hex>` digest, if it is one.
pub fn hex_part(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))).then_some(hex)
}

/// Check that the file at `path` is exactly the blob `digest` of `size` bytes (a wrong size is
/// caught before any hashing); the error says what is wrong with it.
pub fn verify_file(path: &std::path::Path, digest: &str, size: u64) -> Result<(), String> {
    let unreadable = |e: io::Error| format!("blob {digest} cannot be read ({e})");
    let mismatch = || format!("blob {digest} does not match its digest or size");
    if std::fs::metadata(path).map_err(unreadable)?.len() != size {
        return Err(mismatch());
    }
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut io::BufReader::with_capacity(1 << 20, file), &mut w).map_err(unreadable)?;
    let (_, got, n) = w.finish();
    if got != digest || n != size {
        return Err(mismatch());
    }
    Ok(())
}

/// Blobs are world-readable, like every registry's and tool's.
pub fn blob_permissions() -> std::fs::Permissions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::Permissions::from_mode(0o644)
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(".").unwrap().permissions()
    }
}

/// A writer that hashes and counts everything passing through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), written: 0 }
    }

    /// The inner writer, the `sha256:<hex>` digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_of_empty_input() {
        assert_eq!(sha256(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn hashing_writer_matches_one_shot_digest() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (bytes, digest, n) = w.finish();
        assert_eq!(bytes, b"hello world");
        assert_eq!(n, 11);
        assert_eq!(digest, sha256(b"hello world"));
    }

    #[test]
    fn hex_part_rejects_malformed_digests() {
        assert!(hex_part(&sha256(b"x")).is_some());
        assert!(hex_part("sha256:abc").is_none());
        assert!(hex_part("sha512:00").is_none());
        assert!(hex_part(&sha256(b"x").to_uppercase()).is_none());
    }
}
