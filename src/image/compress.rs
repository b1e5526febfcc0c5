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

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    if compression == Compression::None {
        return data.to_vec();
    }
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![data] } else { data.chunks(CHUNK_SIZE).collect() };
    let results: Vec<Mutex<Vec<u8>>> = chunks.iter().map(|_| Mutex::new(Vec::new())).collect();
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut gzip =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(GZIP_LEVEL).expect("level 6 is valid"));
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = chunks.get(i) else { break };
            let out = match compression {
                Compression::Gzip => {
                    let mut out = vec![0; gzip.gzip_compress_bound(chunk.len())];
                    let n = gzip.gzip_compress(chunk, &mut out).expect("the buffer is at least the compress bound");
                    out.truncate(n);
                    out
                }
                Compression::Zstd => {
                    zstd::bulk::compress(chunk, ZSTD_LEVEL).expect("in-memory zstd compression cannot fail")
                }
                Compression::None => unreachable!(),
            };
            *results[i].lock().expect("no worker panics holding it") = out;
        }
    };
    let threads = threads.clamp(1, chunks.len());
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(worker);
        }
        worker();
    });
    let mut out = Vec::with_capacity(results.iter().map(|r| r.lock().unwrap().len()).sum());
    for r in results {
        out.extend_from_slice(&r.into_inner().expect("no worker panicked"));
    }
    out
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
