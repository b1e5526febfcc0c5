//! Layers: a deterministic file tree, its tar, and the compressed blob.

use super::Error;
use super::compress::{self, Compression};
use super::digest;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// What a tree entry is.
#[derive(Debug, Clone)]
pub enum Content {
    Dir,
    File(Arc<Vec<u8>>),
    /// A file read straight into the tar when it is written: a large binary is then copied
    /// once (page cache → tar buffer) instead of twice.
    Path {
        path: PathBuf,
        size: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub content: Content,
}

/// A file tree for one layer. Paths are kept relative (`app/hello`) and sorted; every parent
/// directory is present, so the tar has no implicit directories whose mode a runtime would
/// have to guess.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

/// Check and normalise an absolute container path: `/app//x/` → `app/x`.
pub fn normalize_path(path: &str) -> Result<String, Error> {
    let bad = |why: &str| Error::BadPath { path: path.to_string(), why: why.to_string() };
    if !path.starts_with('/') {
        return Err(bad("it must be absolute"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("it must not contain '..'")),
            p if p.contains('\0') => return Err(bad("it must not contain NUL")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(bad("it names the root directory, not a file"));
    }
    Ok(parts.join("/"))
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a directory (and its parents, mode 0755 root:root).
    pub fn dir(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> Result<(), Error> {
        let rel = normalize_path(path)?;
        self.parents(&rel)?;
        match self.entries.get(&rel) {
            Some(Entry { content: Content::File(_), .. }) => Err(Error::PathConflict(format!("/{rel}"))),
            _ => {
                self.entries.insert(rel, Entry { mode, uid, gid, content: Content::Dir });
                Ok(())
            }
        }
    }

    /// Add a regular file (and its parents). Adding the same path twice is an error.
    pub fn file(&mut self, path: &str, data: Arc<Vec<u8>>, mode: u32) -> Result<(), Error> {
        let rel = normalize_path(path)?;
        self.parents(&rel)?;
        if self.entries.contains_key(&rel) {
            return Err(Error::PathConflict(format!("/{rel}")));
        }
        self.entries.insert(rel, Entry { mode, uid: 0, gid: 0, content: Content::File(data) });
        Ok(())
    }

    /// Add a regular file whose bytes are read from `src` when the tar is made.
    pub fn file_from(&mut self, path: &str, src: &std::path::Path, mode: u32) -> Result<(), Error> {
        let read_err = |source| Error::ReadInput { what: "file", path: src.to_path_buf(), source };
        let size = std::fs::metadata(src).map_err(read_err)?.len();
        let rel = normalize_path(path)?;
        self.parents(&rel)?;
        if self.entries.contains_key(&rel) {
            return Err(Error::PathConflict(format!("/{rel}")));
        }
        let content = Content::Path { path: src.to_path_buf(), size };
        self.entries.insert(rel, Entry { mode, uid: 0, gid: 0, content });
        Ok(())
    }

    fn parents(&mut self, rel: &str) -> Result<(), Error> {
        let mut end = 0;
        while let Some(i) = rel[end..].find('/') {
            end += i;
            let parent = &rel[..end];
            match self.entries.get(parent) {
                Some(Entry { content: Content::File(_), .. }) => {
                    return Err(Error::PathConflict(format!("/{parent}")));
                }
                Some(_) => {}
                None => {
                    let dir = Entry { mode: 0o755, uid: 0, gid: 0, content: Content::Dir };
                    self.entries.insert(parent.to_string(), dir);
                }
            }
            end += 1;
        }
        Ok(())
    }

    /// The tar of this tree in memory (see [`Tree::write_tar`]).
    pub fn to_tar(&self, mtime: u64) -> Result<Vec<u8>, Error> {
        self.write_tar(mtime, Vec::new())
    }

    /// The digest (diff_id) of this tree's tar, without keeping the tar.
    pub fn tar_digest(&self, mtime: u64) -> Result<String, Error> {
        let (_, digest, _) = self.write_tar(mtime, digest::HashingWriter::new(std::io::sink()))?.finish();
        Ok(digest)
    }

    /// Write the tar of this tree to `out`: entries in byte order of their paths, every mtime
    /// `mtime`, owners numeric only (no user or group names), GNU headers (long names as
    /// `././@LongLink`). Files named by path are read in pieces, never whole.
    pub fn write_tar<W: std::io::Write>(&self, mtime: u64, out: W) -> Result<W, Error> {
        let mut builder = tar::Builder::new(out);
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_mode(entry.mode);
            header.set_uid(entry.uid);
            header.set_gid(entry.gid);
            header.set_mtime(mtime);
            let result = match &entry.content {
                Content::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(Error::io("writing a tar"))
                }
                Content::File(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, &data[..]).map_err(Error::io("writing a tar"))
                }
                Content::Path { path: src, size } => {
                    let read_err = |source| Error::ReadInput { what: "file", path: src.clone(), source };
                    let file = std::fs::File::open(src).map_err(read_err)?;
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(*size);
                    // The size went into the header already: a file that changed size since
                    // must fail rather than produce a tar whose header lies.
                    let reader = SizeChecked { inner: file.take(*size), left: *size };
                    let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
                    builder.append_data(&mut header, path, &mut reader).map_err(read_err)
                }
            };
            result?;
        }
        builder.into_inner().map_err(Error::io("writing a tar"))
    }
}

/// A reader that fails if its source ends before `left` bytes.
struct SizeChecked<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for SizeChecked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank while being read"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Where a layer's compressed bytes live.
#[derive(Debug, Clone)]
pub enum Blob {
    Memory(Arc<Vec<u8>>),
    /// A verified file someone else owns: a base layout's blob, or the layer cache's.
    File(PathBuf),
    /// A verified file ship wrote for this run into a staging directory (a layer it compressed,
    /// a blob it downloaded), world-readable: a layout writer may link it instead of copying.
    Staged(PathBuf),
}

/// One layer, in the shape every writer (layout, archive, registry) consumes.
#[derive(Debug, Clone)]
pub struct Layer {
    pub media_type: String,
    /// Digest of the compressed blob.
    pub digest: String,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Size of the compressed blob.
    pub size: u64,
    blob: Blob,
}

impl Layer {
    /// Compress a tar held in memory into a layer held in memory.
    pub fn from_tar(tar: Vec<u8>, compression: Compression, threads: usize) -> Layer {
        let blob = compress::compress(&tar, compression, threads);
        Layer {
            media_type: compression.media_type().to_string(),
            digest: digest::sha256(&blob),
            diff_id: digest::sha256(&tar),
            size: blob.len() as u64,
            blob: Blob::Memory(Arc::new(blob)),
        }
    }

    /// Stream the tar of `tree` through the compressor into a new file in `dir`: the binary is
    /// read in pieces, the tar and the blob are hashed as they pass, and memory stays bounded
    /// whatever the binary's size (see [`compress::compress_to`]).
    pub fn stream(
        tree: &Tree,
        mtime: u64,
        compression: Compression,
        threads: usize,
        dir: &std::path::Path,
    ) -> Result<Layer, Error> {
        let staging_err = |source| Error::Output { path: dir.to_path_buf(), source };
        let tmp = tempfile::Builder::new().prefix("layer-").tempfile_in(dir).map_err(staging_err)?;
        let (file, path) = tmp.keep().map_err(|e| staging_err(e.error))?;
        let out = digest::HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
        let mut tar_error = None;
        let result = compress::compress_to(out, compression, threads, |w| {
            let tar = digest::HashingWriter::new(w);
            // The tar's own error (which file, what went wrong) is kept; the compressor only
            // sees that the producer stopped.
            match tree.write_tar(mtime, tar) {
                Ok(tar) => {
                    let (_, diff_id, _) = tar.finish();
                    Ok(diff_id)
                }
                Err(e) => {
                    tar_error = Some(e);
                    Err(std::io::Error::other("the tar could not be made"))
                }
            }
        });
        let (diff_id, out) = match result {
            Ok(done) => done,
            Err(_) if tar_error.is_some() => return Err(tar_error.expect("checked")),
            Err(e) => return Err(staging_err(e)),
        };
        let (writer, blob_digest, size) = out.finish();
        let file = writer.into_inner().map_err(|e| staging_err(e.into_error()))?;
        file.set_permissions(digest::blob_permissions()).map_err(staging_err)?;
        Ok(Layer {
            media_type: compression.media_type().to_string(),
            digest: blob_digest,
            diff_id,
            size,
            blob: Blob::Staged(path),
        })
    }

    /// A layer ship made before, whose verified blob is the file at `path` (the layer cache).
    pub fn cached(compression: Compression, digest: String, diff_id: String, size: u64, path: PathBuf) -> Layer {
        Layer { media_type: compression.media_type().to_string(), digest, diff_id, size, blob: Blob::File(path) }
    }

    /// A layer whose blob is a file that has already been verified against `digest`.
    pub fn from_file(media_type: String, digest: String, diff_id: String, size: u64, path: PathBuf) -> Layer {
        Layer { media_type, digest, diff_id, size, blob: Blob::File(path) }
    }

    /// The same for a file ship downloaded or wrote for this run (see [`Blob::Staged`]).
    pub fn from_staged(media_type: String, digest: String, diff_id: String, size: u64, path: PathBuf) -> Layer {
        Layer { media_type, digest, diff_id, size, blob: Blob::Staged(path) }
    }

    pub fn blob(&self) -> &Blob {
        &self.blob
    }

    /// The compressed bytes.
    pub fn open(&self) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(match &self.blob {
            Blob::Memory(b) => Box::new(&b[..]),
            Blob::File(p) | Blob::Staged(p) => Box::new(std::fs::File::open(p)?),
        })
    }

    /// Write the compressed bytes to `out` in large writes (8 KiB `io::copy` writes cost more
    /// in syscalls than compressing on some file systems).
    pub fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        match &self.blob {
            Blob::Memory(b) => out.write_all(b),
            Blob::File(p) | Blob::Staged(p) => {
                let mut r = std::io::BufReader::with_capacity(1 << 22, std::fs::File::open(p)?);
                std::io::copy(&mut r, out).map(|_| ())
            }
        }
    }

    /// The uncompressed tar, in memory (for comparing two images file by file).
    pub fn tar(&self) -> Result<Arc<Vec<u8>>, Error> {
        let mut out = Vec::new();
        self.copy_tar(&mut out)?;
        Ok(Arc::new(out))
    }

    /// Decompress the blob into `out`, checking that what comes out is the diff_id. Streams:
    /// memory does not grow with the layer. `out` has seen corrupt bytes when this fails.
    pub fn copy_tar(&self, out: &mut dyn std::io::Write) -> Result<u64, Error> {
        let compression = Compression::from_media_type(&self.media_type)
            .ok_or_else(|| Error::UnsupportedMediaType(self.media_type.clone()))?;
        let corrupt = |why: String| Error::CorruptLayer { digest: self.digest.clone(), why };
        let mut hashed = digest::HashingWriter::new(out);
        let blob = self.open().map_err(Error::io("reading layer blob"))?;
        let reader = compress::decoder(std::io::BufReader::with_capacity(1 << 20, blob), compression)
            .map_err(|e| corrupt(e.to_string()))?;
        std::io::copy(&mut std::io::BufReader::with_capacity(1 << 20, reader), &mut hashed).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData || e.kind() == std::io::ErrorKind::UnexpectedEof {
                corrupt(e.to_string())
            } else {
                Error::io("decompressing a layer")(e)
            }
        })?;
        let (_, got, n) = hashed.finish();
        if got != self.diff_id {
            return Err(corrupt(format!("its uncompressed digest is not the diff_id {}", self.diff_id)));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<(String, u32, u64, u64)> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn parents_are_created_and_entries_sorted() {
        let mut t = Tree::new();
        t.file("/z/b", Arc::new(b"b".to_vec()), 0o644).unwrap();
        t.file("/a/x/y", Arc::new(b"y".to_vec()), 0o755).unwrap();
        t.dir("/tmp", 0o1777, 0, 0).unwrap();
        let got = names(&t.to_tar(42).unwrap());
        let paths: Vec<_> = got.iter().map(|g| g.0.trim_end_matches('/').to_string()).collect();
        assert_eq!(paths, ["a", "a/x", "a/x/y", "tmp", "z", "z/b"]);
        assert!(got.iter().all(|g| g.3 == 42 && g.2 == 0));
        assert_eq!(got[3].1, 0o1777);
        assert_eq!(got[2].1, 0o755);
    }

    #[test]
    fn tar_does_not_depend_on_insertion_order() {
        let mut a = Tree::new();
        a.file("/b", Arc::new(vec![1]), 0o644).unwrap();
        a.file("/a/c", Arc::new(vec![2]), 0o644).unwrap();
        let mut b = Tree::new();
        b.file("/a/c", Arc::new(vec![2]), 0o644).unwrap();
        b.file("/b", Arc::new(vec![1]), 0o644).unwrap();
        assert_eq!(a.to_tar(0).unwrap(), b.to_tar(0).unwrap());
    }

    #[test]
    fn long_paths_survive() {
        let long = format!("/{}/file", "d".repeat(150));
        let mut t = Tree::new();
        t.file(&long, Arc::new(vec![]), 0o644).unwrap();
        let got = names(&t.to_tar(0).unwrap());
        assert_eq!(got.last().unwrap().0, long[1..]);
    }

    #[test]
    fn bad_paths_and_conflicts_are_errors() {
        assert!(normalize_path("relative").is_err());
        assert!(normalize_path("/a/../b").is_err());
        assert!(normalize_path("/").is_err());
        assert_eq!(normalize_path("/app//x/").unwrap(), "app/x");
        let mut t = Tree::new();
        t.file("/a", Arc::new(vec![]), 0o644).unwrap();
        assert!(matches!(t.file("/a", Arc::new(vec![]), 0o644), Err(Error::PathConflict(_))));
        assert!(matches!(t.file("/a/b", Arc::new(vec![]), 0o644), Err(Error::PathConflict(_))));
    }

    #[test]
    fn layer_digests_are_of_blob_and_tar() {
        let mut t = Tree::new();
        t.file("/f", Arc::new(b"data".to_vec()), 0o644).unwrap();
        let tar = t.to_tar(0).unwrap();
        let layer = Layer::from_tar(tar.clone(), Compression::Gzip, 2);
        assert_eq!(layer.diff_id, digest::sha256(&tar));
        let mut blob = Vec::new();
        layer.open().unwrap().read_to_end(&mut blob).unwrap();
        assert_eq!(layer.digest, digest::sha256(&blob));
        assert_eq!(layer.size, blob.len() as u64);
    }
}
