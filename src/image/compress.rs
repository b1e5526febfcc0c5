//! Layer compression, pinned so that the same tar gives the same blob on every machine.
//!
//! Both compressors split the tar into fixed [`CHUNK_SIZE`] pieces, compress the pieces in
//! parallel and concatenate the results: gzip as a multi-member stream (RFC 1952 §2.2, read by
//! Go's `compress/gzip`, which containerd, podman, skopeo and umoci use, as well as by `gzip -d`),
//! zstd as a sequence of frames (RFC 8878 §3.1). The chunk size is a constant, so the bytes do not
//! depend on the number of threads that compressed them.
//!
//! gzip uses libdeflate (through `libdeflater`, which builds the C source bundled in
//! `libdeflate-sys`, pinned by Cargo.lock). Its compressor has no run-time CPU dispatch that
//! affects output: the SIMD paths it selects at run time only compute checksums and initialise
//! hash tables, so its output is a function of input, level and library version alone. zlib-ng
//! and zlib-rs, by contrast, choose hash functions per CPU and produce different streams on
//! different machines. libdeflate's gzip header has MTIME 0 and no file name.
//!
//! zstd uses the reference libzstd (bundled in `zstd-sys`, pinned by Cargo.lock), single-threaded
//! per chunk; libzstd's output depends on level, parameters and version only.
//!
//! Changing the library version, the level or the chunk size changes every user's layer digests:
//! the golden digest test in `image::tests` must then be updated on purpose.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

/// Uncompressed bytes per independently compressed piece. Big enough that the 32 KiB deflate
/// window loses almost nothing at the seams (under 0.5% on binaries), small enough to spread a
/// 10 MB binary over two cores.
pub const CHUNK_SIZE: usize = 1 << 20;

/// libdeflate level 5: within about 1% of `gzip -6`'s size and four to five times faster (a
/// 54 MB debug binary: 13.75 MB vs 13.62 MB). Level 6 is 20% slower for 1% less.
pub const GZIP_LEVEL: i32 = 5;
/// zstd's default level.
pub const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

impl Compression {
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            "none" => Some(Compression::None),
            _ => None,
        }
    }

    /// The compression a layer media type implies, for layers read from a base image.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd" => Some(Compression::Zstd),
            "application/vnd.oci.image.layer.v1.tar" | "application/vnd.docker.image.rootfs.diff.tar" => {
                Some(Compression::None)
            }
            _ => None,
        }
    }
}

/// Compress `data` with up to `threads` threads. The result does not depend on `threads`.
pub fn compress(data: &[u8], compression: Compression, threads: usize) -> Vec<u8> {
    let ((), out) = compress_to(Vec::new(), compression, threads, |w| w.write_all(data))
        .expect("compressing into memory cannot fail");
    out
}

/// One worker's compressor (libdeflate keeps its tables between chunks).
struct Chunks {
    compression: Compression,
    gzip: libdeflater::Compressor,
}

impl Chunks {
    fn new(compression: Compression) -> Self {
        let level = libdeflater::CompressionLvl::new(GZIP_LEVEL).expect("the pinned level is valid");
        Chunks { compression, gzip: libdeflater::Compressor::new(level) }
    }

    fn compress(&mut self, chunk: &[u8]) -> Vec<u8> {
        match self.compression {
            Compression::Gzip => {
                let mut out = vec![0; self.gzip.gzip_compress_bound(chunk.len())];
                let n = self.gzip.gzip_compress(chunk, &mut out).expect("the buffer is at least the compress bound");
                out.truncate(n);
                out
            }
            Compression::Zstd => {
                zstd::bulk::compress(chunk, ZSTD_LEVEL).expect("in-memory zstd compression cannot fail")
            }
            Compression::None => chunk.to_vec(),
        }
    }
}

/// Compress what `produce` writes, in [`CHUNK_SIZE`] pieces on up to `threads` worker threads,
/// and write the compressed pieces in order to `out`: the same bytes as [`compress`] of all of
/// it, in bounded memory. At most about `4 * threads + 1` pieces are held at once (queued,
/// being compressed, waiting for an earlier one, being filled), whatever the input's size.
///
/// Hand-written because no maintained crate does chunked, order-preserving, parallel
/// compression into concatenated gzip members or zstd frames whose bytes do not depend on the
/// thread count (the layer digests must not): gzp and zstd's own multithreading each choose
/// their own framing.
pub fn compress_to<W: Write + Send, T>(
    out: W,
    compression: Compression,
    threads: usize,
    produce: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> io::Result<(T, W)> {
    if compression == Compression::None {
        let mut out = out;
        let t = produce(&mut out)?;
        return Ok((t, out));
    }
    let threads = threads.max(1);
    let (chunk_tx, chunk_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads);
    let (done_tx, done_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads);
    let chunk_rx = Mutex::new(chunk_rx);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (done_tx, chunk_rx) = (done_tx.clone(), &chunk_rx);
            s.spawn(move || {
                let mut chunks = Chunks::new(compression);
                loop {
                    let next = chunk_rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((i, chunk)) = next else { break };
                    if done_tx.send((i, chunks.compress(&chunk))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let failed = &failed;
        // The writer drains the results whatever happens, so that no worker waits forever.
        let writer = s.spawn(move || -> io::Result<W> {
            let mut out = out;
            let mut pending = BTreeMap::new();
            let (mut next, mut error) = (0, None);
            for (i, data) in done_rx {
                pending.insert(i, data);
                while let Some(data) = pending.remove(&next) {
                    if error.is_none()
                        && let Err(e) = out.write_all(&data)
                    {
                        failed.store(true, Ordering::Relaxed);
                        error = Some(e);
                    }
                    next += 1;
                }
            }
            error.map_or(Ok(out), Err)
        });
        let mut pieces = Pieces { buf: Vec::with_capacity(CHUNK_SIZE), sent: 0, tx: Some(chunk_tx), failed };
        let produced = produce(&mut pieces).and_then(|t| pieces.finish().map(|()| t));
        drop(pieces);
        let written = writer.join().expect("the writer does not panic");
        match (produced, written) {
            (_, Err(e)) => Err(e),
            (Err(e), _) => Err(e),
            (Ok(t), Ok(out)) => Ok((t, out)),
        }
    })
}

/// The producer's side of [`compress_to`]: cuts what is written into pieces and queues them.
struct Pieces<'a> {
    buf: Vec<u8>,
    sent: usize,
    tx: Option<mpsc::SyncSender<(usize, Vec<u8>)>>,
    failed: &'a AtomicBool,
}

impl Pieces<'_> {
    fn send(&mut self) -> io::Result<()> {
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_SIZE));
        let tx = self.tx.as_ref().expect("not finished");
        if self.failed.load(Ordering::Relaxed) || tx.send((self.sent, piece)).is_err() {
            return Err(io::Error::other("the compressed output could not be written"));
        }
        self.sent += 1;
        Ok(())
    }

    /// Queue the last piece (an empty input is one empty piece, as in [`compress`]).
    fn finish(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() || self.sent == 0 {
            self.send()?;
        }
        self.tx = None;
        Ok(())
    }
}

impl Write for Pieces<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK_SIZE - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_SIZE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The number of threads to compress with: every core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A reader of the uncompressed bytes of a compressed layer.
pub fn decoder<'a, R: std::io::Read + 'a>(
    reader: R,
    compression: Compression,
) -> std::io::Result<Box<dyn std::io::Read + 'a>> {
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        Compression::None => Box::new(reader),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: a simple LCG over a small alphabet.
        let mut x: u32 = 12345;
        (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b"abcdefgh\0\x01"[(x >> 16) as usize % 10]
            })
            .collect()
    }

    fn roundtrip(data: &[u8], c: Compression) -> Vec<u8> {
        let z = compress(data, c, 3);
        let mut out = Vec::new();
        decoder(&z[..], c).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let data = sample(3 * CHUNK_SIZE + 777);
        for c in [Compression::Gzip, Compression::Zstd] {
            let one = compress(&data, c, 1);
            assert_eq!(one, compress(&data, c, 2), "{c:?}");
            assert_eq!(one, compress(&data, c, 7), "{c:?}");
        }
    }

    #[test]
    fn streamed_output_is_the_same_in_any_write_sizes() {
        let data = sample(3 * CHUNK_SIZE + 4099);
        for c in [Compression::Gzip, Compression::Zstd] {
            let whole = compress(&data, c, 2);
            let ((), streamed) = compress_to(Vec::new(), c, 3, |w| {
                for piece in data.chunks(70_001) {
                    w.write_all(piece)?;
                }
                Ok(())
            })
            .unwrap();
            assert_eq!(streamed, whole, "{c:?}");
        }
        // A multiple of the chunk size has no empty piece at the end.
        let exact = sample(2 * CHUNK_SIZE);
        let mut out = Vec::new();
        decoder(&compress(&exact, Compression::Gzip, 2)[..], Compression::Gzip).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, exact);
    }

    #[test]
    fn a_failing_output_or_producer_is_an_error_not_a_hang() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = sample(5 * CHUNK_SIZE);
        let err = compress_to(Full, Compression::Gzip, 2, |w| w.write_all(&data)).err().unwrap();
        assert_eq!(err.to_string(), "disk full");
        let err = compress_to(Vec::new(), Compression::Zstd, 2, |w| {
            w.write_all(&data)?;
            Err::<(), _>(io::Error::other("the file shrank"))
        })
        .err()
        .unwrap();
        assert_eq!(err.to_string(), "the file shrank");
    }

    #[test]
    fn multi_chunk_streams_decompress_to_the_input() {
        let data = sample(2 * CHUNK_SIZE + 5);
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            assert_eq!(roundtrip(&data, c), data, "{c:?}");
        }
        assert_eq!(roundtrip(b"", Compression::Gzip), b"");
    }

    #[test]
    fn gzip_header_has_zero_mtime_and_no_name() {
        let z = compress(b"hello", Compression::Gzip, 1);
        assert_eq!(&z[..3], &[0x1f, 0x8b, 8], "gzip magic and deflate method");
        assert_eq!(z[3], 0, "no FNAME/FEXTRA/FCOMMENT flags");
        assert_eq!(&z[4..8], &[0, 0, 0, 0], "MTIME is zero");
    }

    #[test]
    fn media_types_round_trip() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            assert_eq!(Compression::from_media_type(c.media_type()), Some(c));
            assert_eq!(Compression::parse(c.name()), Some(c));
        }
    }
}
