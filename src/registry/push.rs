//! Push an image: every blob (HEAD → skip; mount; else upload, chunked when large), concurrently
//! and bounded, then the manifest by each tag. A manifest is never sent while a blob failed.

use super::Error;
use super::client::Client;
use crate::image::Image;
use crate::image::artifact::{self, Artifact};
use crate::image::layer::Blob;
use oci_spec::image::ImageIndex;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// GHCR rejects PATCH bodies over 4 MiB; the same cap suits every registry.
pub const MAX_CHUNK: u64 = 4 << 20;

pub struct Options {
    pub tags: Vec<String>,
    /// Repositories on the same registry that may hold the blobs already.
    pub mount_from: Vec<String>,
    pub concurrency: usize,
    pub chunk_size: u64,
    /// Send a blob larger than a chunk in one streamed PUT; where this is false, and once a
    /// registry answered 413 to that, in PATCH chunks of `chunk_size`.
    pub monolithic: AtomicBool,
}

/// Whether a registry takes a large blob in one request. GHCR refuses request bodies over
/// about 4 MiB, so it gets chunks from the start; every other registry is tried whole, and a
/// 413 switches the rest of the push to chunks.
pub fn takes_monolithic(registry: &str) -> bool {
    registry != "ghcr.io"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Skipped,
    Mounted,
    Uploaded,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlobReport {
    pub digest: String,
    pub size: u64,
    pub outcome: Outcome,
    /// Bytes sent for it (0 unless uploaded; more than size if a chunk was resent).
    pub bytes_sent: u64,
    pub chunks: u64,
    /// The repository it was mounted from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub reference: String,
    pub digest: String,
    pub tags: Vec<String>,
    pub bytes_uploaded: u64,
    pub blobs_skipped: usize,
    pub blobs_mounted: usize,
    pub blobs_uploaded: usize,
    pub requests: u64,
    pub blobs: Vec<BlobReport>,
    /// The image's artifacts (SBOM, provenance) and how the registry links them to it.
    pub referrers: Vec<Referrer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Referrer {
    pub artifact_type: String,
    pub digest: String,
    /// `referrers API` when the registry links subjects itself (it answers `OCI-Subject`), else
    /// `tag sha256-<hex>`: the index under that tag that registries without the API (GHCR,
    /// distribution 2.x) are read through.
    pub via: String,
}

/// The tag under which registries without the referrers API keep an image's referrers.
pub fn referrers_tag(subject: &str) -> String {
    subject.replace(':', "-")
}

/// Push one artifact about `subject`: its blobs, its manifest by digest, and, unless the
/// registry links it by itself, an entry in the `sha256-<hex>` index.
fn push_artifact(
    client: &Client,
    repo: &str,
    subject: &str,
    a: &Artifact,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Referrer, Error> {
    let empty = crate::image::digest::sha256(artifact::EMPTY);
    for (digest, bytes) in [(empty.as_str(), artifact::EMPTY), (a.document_digest.as_str(), &a.document[..])] {
        let src = Source { digest, size: bytes.len() as u64, bytes: Some(bytes), file: None };
        push_blob(client, repo, &src, opts, progress)?;
    }
    let sc = scope(repo);
    let resp = client.send(Method::PUT, &format!("/v2/{repo}/manifests/{}", a.manifest_digest), &sc, true, &|rb| {
        rb.header("content-type", crate::image::spec::MANIFEST_MEDIA_TYPE).body(a.manifest.clone())
    })?;
    if resp.status() != StatusCode::CREATED {
        return Err(client.status_error(resp, &format!("pushing the {} artifact", a.artifact_type), repo));
    }
    let referrer =
        |via: String| Referrer { artifact_type: a.artifact_type.clone(), digest: a.manifest_digest.clone(), via };
    if resp.headers().contains_key("oci-subject") {
        return Ok(referrer("referrers API".into()));
    }
    // The fallback: an index of referrers under the tag sha256-<hex> of the subject.
    let tag = referrers_tag(subject);
    let url = format!("/v2/{repo}/manifests/{tag}");
    let got =
        client.send(Method::GET, &url, &sc, true, &|rb| rb.header("accept", crate::image::spec::INDEX_MEDIA_TYPE))?;
    let mut index: ImageIndex = match got.status() {
        StatusCode::OK => {
            let bytes = got.bytes().map_err(|e| client.unreachable(&e.without_url()))?;
            serde_json::from_slice(&bytes).map_err(|e| Error::Http {
                registry: client.registry.clone(),
                what: format!("reading the referrers index {tag}"),
                status: 200,
                detail: format!("it is not an image index ({e})"),
            })?
        }
        StatusCode::NOT_FOUND => crate::image::spec::new_index(Vec::new()),
        _ => return Err(client.status_error(got, &format!("reading the referrers index {tag}"), repo)),
    };
    let mut manifests = index.manifests().clone();
    if !manifests.iter().any(|m| m.digest().to_string() == a.manifest_digest) {
        manifests.push(a.descriptor());
        index.set_manifests(manifests);
        let body = crate::image::spec::canonical(&index);
        let put = client.send(Method::PUT, &url, &sc, true, &|rb| {
            rb.header("content-type", crate::image::spec::INDEX_MEDIA_TYPE).body(body.clone())
        })?;
        if put.status() != StatusCode::CREATED {
            return Err(client.status_error(put, &format!("pushing the referrers index {tag}"), repo));
        }
    }
    Ok(referrer(format!("tag {tag}")))
}

/// One blob to push and where to read it.
struct Source<'a> {
    digest: &'a str,
    size: u64,
    bytes: Option<&'a [u8]>,
    file: Option<&'a std::path::Path>,
}

impl Source<'_> {
    /// The whole blob as a request body, read from its file while it is sent (so memory does
    /// not grow with the blob); `read` counts the bytes taken.
    fn body(&self, read: &Arc<AtomicU64>) -> reqwest::blocking::Body {
        if let Some(b) = self.bytes {
            read.fetch_add(b.len() as u64, Ordering::Relaxed);
            return reqwest::blocking::Body::from(bytes::Bytes::copy_from_slice(b));
        }
        let path = self.file.expect("a blob is bytes or a file").to_path_buf();
        reqwest::blocking::Body::sized(Streamed { path, file: None, read: read.clone() }, self.size)
    }

    /// A range of the blob; `Bytes` so that a retried request resends it without a copy.
    fn read(&self, offset: u64, len: u64) -> std::io::Result<bytes::Bytes> {
        if let Some(b) = self.bytes {
            return Ok(bytes::Bytes::copy_from_slice(&b[offset as usize..(offset + len) as usize]));
        }
        let mut f = std::fs::File::open(self.file.expect("a blob is bytes or a file"))?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0; len as usize];
        f.read_exact(&mut buf)?;
        Ok(buf.into())
    }
}

/// A blob file opened when the request first reads it (each attempt opens it afresh).
struct Streamed {
    path: std::path::PathBuf,
    file: Option<std::fs::File>,
    read: Arc<AtomicU64>,
}

impl Read for Streamed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.file.is_none() {
            self.file = Some(std::fs::File::open(&self.path)?);
        }
        let n = self.file.as_mut().expect("opened").read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn sources(image: &Image) -> Vec<Source<'_>> {
    let mut out: Vec<Source> = image
        .layers
        .iter()
        .map(|l| match l.blob() {
            Blob::Memory(b) => Source { digest: &l.digest, size: l.size, bytes: Some(&b[..]), file: None },
            Blob::File(p) | Blob::Staged(p) => Source { digest: &l.digest, size: l.size, bytes: None, file: Some(p) },
        })
        .collect();
    out.push(Source {
        digest: &image.config_digest,
        size: image.config.len() as u64,
        bytes: Some(&image.config),
        file: None,
    });
    // The same layer twice in one image is pushed once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|s| seen.insert(s.digest));
    out
}

fn scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn location(resp: &reqwest::blocking::Response) -> Option<String> {
    resp.headers().get("location")?.to_str().ok().map(str::to_string)
}

/// The registry's `OCI-Chunk-Min-Length`, 0 if it sets none.
fn chunk_min_length(resp: &reqwest::blocking::Response) -> u64 {
    resp.headers().get("oci-chunk-min-length").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0)
}

fn with_digest(loc: &str, digest: &str) -> String {
    let sep = if loc.contains('?') { '&' } else { '?' };
    format!("{loc}{sep}digest={digest}")
}

/// The end of the `Range: 0-N` the registry reports for an upload, as the next offset.
/// distribution reports an empty upload as `0-0` too, so `0-0` counts as nothing received; if
/// one byte had arrived, the registry refuses the resend with 416 and says so again.
fn next_offset(resp: &reqwest::blocking::Response) -> Option<u64> {
    let range = resp.headers().get("range")?.to_str().ok()?;
    parse_range_end(range)
}

fn parse_range_end(range: &str) -> Option<u64> {
    let range = range.trim().trim_start_matches("bytes=");
    if range == "0-0" {
        return Some(0);
    }
    let end: u64 = range.split('-').nth(1)?.parse().ok()?;
    Some(end + 1)
}

/// Progress callbacks, so the caller can draw bars or print lines.
pub trait Progress: Sync {
    fn start(&self, digest: &str, size: u64);
    fn advance(&self, digest: &str, bytes: u64);
    fn finish(&self, digest: &str, outcome: Outcome, from: Option<&str>);
}

/// How one upload session ended.
enum Attempt {
    Done {
        sent: u64,
        chunks: u64,
    },
    /// The session failed in a way a new session may not: a lost reply, a 5xx, a registry that
    /// forgot the session. `why` is the error to show if no retry is left.
    Retry {
        sent: u64,
        chunks: u64,
        why: Error,
    },
}

/// Whether an answer to an upload request means "try a new session".
fn retriable(client: &Client, resp: reqwest::blocking::Response, what: &str, repo: &str) -> Result<Error, Error> {
    let status = resp.status();
    let (err, codes) = client.status_error_codes(resp, what, repo);
    // The registry forgot or refused the session (distribution says BLOB_UPLOAD_UNKNOWN or
    // BLOB_UPLOAD_INVALID after a request it saw late): a new session may well succeed.
    let session_lost = matches!(status, StatusCode::NOT_FOUND | StatusCode::RANGE_NOT_SATISFIABLE)
        && (codes.is_empty() || codes.iter().any(|c| c.starts_with("BLOB_UPLOAD_")));
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || session_lost { Ok(err) } else { Err(err) }
}

fn blob_exists(client: &Client, repo: &str, digest: &str) -> Result<bool, Error> {
    let head = client.send(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"), &scope(repo), true, &|rb| rb)?;
    match head.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(client.status_error(head, &format!("HEAD blob {digest}"), repo)),
    }
}

/// POST an upload session: its Location and the registry's minimum chunk length.
fn start_upload(client: &Client, repo: &str) -> Result<(String, u64), Error> {
    let resp = client.send(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), &scope(repo), true, &|rb| {
        rb.header("content-length", "0")
    })?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(client.status_error(resp, "starting a blob upload", repo));
    }
    let min = chunk_min_length(&resp);
    let loc = location(&resp).ok_or_else(|| Error::Http {
        registry: client.registry.clone(),
        what: "starting a blob upload".into(),
        status: 202,
        detail: "no Location header".into(),
    })?;
    Ok((loc, min))
}

fn push_blob(
    client: &Client,
    repo: &str,
    src: &Source,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<BlobReport, Error> {
    let report = |outcome, bytes_sent, chunks, from: Option<String>| BlobReport {
        digest: src.digest.to_string(),
        size: src.size,
        outcome,
        bytes_sent,
        chunks,
        from,
    };
    progress.start(src.digest, src.size);
    if blob_exists(client, repo, src.digest)? {
        progress.finish(src.digest, Outcome::Skipped, None);
        return Ok(report(Outcome::Skipped, 0, 0, None));
    }

    // Cross-repository mount; a 202 opens an ordinary upload instead.
    let sc = scope(repo);
    let mut session: Option<(String, u64)> = None;
    for from in opts.mount_from.iter().filter(|f| *f != repo) {
        let mount_scope = format!("{sc} repository:{from}:pull");
        let url = format!("/v2/{repo}/blobs/uploads/?mount={}&from={from}", src.digest);
        let resp = client.send(Method::POST, &url, &mount_scope, true, &|rb| rb.header("content-length", "0"))?;
        match resp.status() {
            StatusCode::CREATED => {
                progress.finish(src.digest, Outcome::Mounted, Some(from));
                return Ok(report(Outcome::Mounted, 0, 0, Some(from.clone())));
            }
            StatusCode::ACCEPTED => {
                let min = chunk_min_length(&resp);
                session = location(&resp).map(|l| (l, min));
                break;
            }
            _ => {}
        }
    }
    let (mut sent, mut chunks) = (0, 0);
    let mut attempt = 0;
    loop {
        let (loc, min_chunk) = match session.take() {
            Some(s) => s,
            None => start_upload(client, repo)?,
        };
        match upload(client, repo, src, loc, min_chunk, opts, progress)? {
            Attempt::Done { sent: s, chunks: c } => {
                (sent, chunks) = (sent + s, chunks + c);
                break;
            }
            Attempt::Retry { sent: s, chunks: c, why } => {
                (sent, chunks) = (sent + s, chunks + c);
                if attempt >= super::client::RETRIES {
                    return Err(why);
                }
                client.pause(super::client::backoff(attempt), &format!("uploading blob {}", src.digest))?;
                attempt += 1;
                // The registry may have stored the blob and lost the reply: then it is done, and
                // the old session is gone (a retry there gets BLOB_UPLOAD_UNKNOWN).
                if blob_exists(client, repo, src.digest)? {
                    break;
                }
            }
        }
    }
    progress.finish(src.digest, Outcome::Uploaded, None);
    Ok(report(Outcome::Uploaded, sent, chunks, None))
}

/// One upload session: a single PUT for small blobs, else PATCH chunks and a closing PUT.
fn upload(
    client: &Client,
    repo: &str,
    src: &Source,
    mut loc: String,
    min_chunk: u64,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Attempt, Error> {
    let monolithic = &opts.monolithic;
    let sc = scope(repo);
    let io_err = |e: std::io::Error| Error::Io { context: format!("reading blob {}", src.digest), source: e };
    let chunk = opts.chunk_size.max(min_chunk);
    let mut sent = 0u64;
    let mut chunks = 0u64;
    let what = format!("uploading blob {}", src.digest);
    // Requests here are not retried blindly: a resend to the same session after a lost reply
    // fails, so the caller decides (HEAD the blob, then a new session).
    let closing = |client: &Client, resp: Result<reqwest::blocking::Response, Error>, sent, chunks| match resp {
        Ok(r) if r.status() == StatusCode::CREATED => Ok(Attempt::Done { sent, chunks }),
        Ok(r) => retriable(client, r, &what, repo).map(|why| Attempt::Retry { sent, chunks, why }),
        Err(why @ Error::Unreachable { .. }) => Ok(Attempt::Retry { sent, chunks, why }),
        Err(e) => Err(e),
    };
    if src.size <= chunk || monolithic.load(Ordering::Relaxed) {
        let url = with_digest(&loc, src.digest);
        let read = Arc::new(AtomicU64::new(0));
        let sending = AtomicBool::new(true);
        let shown = AtomicU64::new(0);
        let show = || {
            let now = read.load(Ordering::Relaxed).min(src.size);
            let before = shown.fetch_max(now, Ordering::Relaxed);
            progress.advance(src.digest, now.saturating_sub(before));
        };
        let resp = std::thread::scope(|s| {
            // The bar moves while one long request is under way.
            s.spawn(|| {
                while sending.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    show();
                }
            });
            let resp = client.send_sized(Method::PUT, &url, &sc, false, src.size, &|rb| {
                read.store(0, Ordering::Relaxed);
                rb.header("content-type", "application/octet-stream").body(src.body(&read))
            });
            sending.store(false, Ordering::Relaxed);
            resp
        });
        client.stats.bytes_uploaded.fetch_add(src.size, Ordering::Relaxed);
        if let Ok(r) = &resp
            && r.status() == StatusCode::PAYLOAD_TOO_LARGE
            && src.size > chunk
        {
            // Too large for one request here: chunks from now on, for every blob of this push.
            monolithic.store(false, Ordering::Relaxed);
            let why = Error::Http {
                registry: client.registry.clone(),
                what: format!("uploading blob {} in one request", src.digest),
                status: 413,
                detail: "too large for one request; uploading in chunks instead".into(),
            };
            return Ok(Attempt::Retry { sent: src.size, chunks: 1, why });
        }
        if matches!(resp, Err(Error::Unreachable { .. })) && src.size > chunk {
            // A proxy that refuses large bodies may cut the connection instead of answering
            // 413; chunked uploads also resume where they stopped. Chunks from now on.
            monolithic.store(false, Ordering::Relaxed);
        }
        let done = closing(client, resp, src.size, 1)?;
        if matches!(done, Attempt::Done { .. }) {
            read.store(src.size, Ordering::Relaxed);
            show();
        }
        return Ok(done);
    }
    let mut offset = 0u64;
    let mut failures = 0u32;
    while offset < src.size {
        let len = chunk.min(src.size - offset);
        let body = src.read(offset, len).map_err(io_err)?;
        let range = format!("{offset}-{}", offset + len - 1);
        let result = client.send(Method::PATCH, &loc, &sc, false, &|rb| {
            rb.header("content-type", "application/octet-stream")
                .header("content-range", range.clone())
                .header("content-length", len.to_string())
                .body(body.clone())
        });
        sent += len;
        chunks += 1;
        client.stats.bytes_uploaded.fetch_add(len, Ordering::Relaxed);
        match result {
            Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                let next = next_offset(&resp).unwrap_or(offset + len);
                if let Some(l) = location(&resp) {
                    loc = l;
                }
                progress.advance(src.digest, next.saturating_sub(offset));
                offset = next;
                failures = 0;
            }
            Ok(resp)
                if !(resp.status().is_server_error()
                    || resp.status() == StatusCode::TOO_MANY_REQUESTS
                    || resp.status() == StatusCode::RANGE_NOT_SATISFIABLE) =>
            {
                return retriable(client, resp, &format!("uploading a chunk of blob {}", src.digest), repo)
                    .map(|why| Attempt::Retry { sent, chunks, why });
            }
            Ok(_) | Err(Error::Unreachable { .. }) if failures < 5 => {
                failures += 1;
                client.pause(std::time::Duration::from_millis(200 << failures), &what)?;
                // Resume from what the registry holds; a session it forgot means a new one.
                let status = client.send(Method::GET, &loc, &sc, true, &|rb| rb)?;
                if status.status() != StatusCode::NO_CONTENT {
                    let what = format!("resuming the upload of blob {}", src.digest);
                    return retriable(client, status, &what, repo).map(|why| Attempt::Retry { sent, chunks, why });
                }
                if let Some(l) = location(&status) {
                    loc = l;
                }
                offset = next_offset(&status).unwrap_or(0);
            }
            Ok(resp) => {
                return retriable(client, resp, &format!("uploading a chunk of blob {}", src.digest), repo)
                    .map(|why| Attempt::Retry { sent, chunks, why });
            }
            Err(why @ Error::Unreachable { .. }) => return Ok(Attempt::Retry { sent, chunks, why }),
            Err(e) => return Err(e),
        }
    }
    let url = with_digest(&loc, src.digest);
    let resp = client.send(Method::PUT, &url, &sc, false, &|rb| rb.header("content-length", "0"));
    closing(client, resp, sent, chunks)
}

/// Push `image` to `repo` on `client`'s registry under every tag (or by digest alone).
pub fn push(
    client: &Client,
    repo: &str,
    image: &Image,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Report, Error> {
    push_refs(client, repo, image, opts, &opts.tags, progress)
}

/// Push the images of `multi` by digest, then its index under every tag (or by its digest):
/// the registry's digest of the index must be ours. The report counts every image's blobs.
pub fn push_multi(
    client: &Client,
    repo: &str,
    multi: &crate::image::MultiImage,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Report, Error> {
    let mut blobs: Vec<BlobReport> = Vec::new();
    let mut referrers = Vec::new();
    for image in &multi.images {
        let r = push_refs(client, repo, image, opts, &[], progress)?;
        // The generated base layer is one blob for every platform: report it once.
        blobs.extend(r.blobs.into_iter().filter(|b| !blobs.iter().any(|x| x.digest == b.digest)).collect::<Vec<_>>());
        referrers.extend(r.referrers);
    }
    put_manifest(client, repo, &multi.index, &multi.index_digest, crate::image::spec::INDEX_MEDIA_TYPE, &opts.tags)?;
    Ok(report(client, repo, &multi.index_digest, opts, blobs, referrers))
}

/// PUT `manifest` (`digest`, `media_type`) under each of `tags`, or by its digest without one.
fn put_manifest(
    client: &Client,
    repo: &str,
    manifest: &[u8],
    digest: &str,
    media_type: &str,
    tags: &[String],
) -> Result<(), Error> {
    let refs: Vec<String> = if tags.is_empty() { vec![digest.to_string()] } else { tags.to_vec() };
    for r in &refs {
        let resp = client.send(Method::PUT, &format!("/v2/{repo}/manifests/{r}"), &scope(repo), true, &|rb| {
            rb.header("content-type", media_type).body(manifest.to_vec())
        })?;
        if resp.status() != StatusCode::CREATED {
            return Err(client.status_error(resp, &format!("pushing the manifest as {r}"), repo));
        }
        let got = resp.headers().get("docker-content-digest").and_then(|d| d.to_str().ok()).map(str::to_string);
        if let Some(got) = got.filter(|g| *g != digest) {
            return Err(Error::DigestMismatch { registry: client.registry.clone(), want: digest.to_string(), got });
        }
    }
    Ok(())
}

fn report(
    client: &Client,
    repo: &str,
    digest: &str,
    opts: &Options,
    reports: Vec<BlobReport>,
    referrers: Vec<Referrer>,
) -> Report {
    let count = |o| reports.iter().filter(|r| r.outcome == o).count();
    Report {
        reference: format!("{}/{repo}@{digest}", client.registry),
        digest: digest.to_string(),
        tags: opts.tags.clone(),
        // The image's own blobs; artifacts (a new provenance every build) are counted apart.
        bytes_uploaded: reports.iter().map(|r| r.bytes_sent).sum(),
        blobs_skipped: count(Outcome::Skipped),
        blobs_mounted: count(Outcome::Mounted),
        blobs_uploaded: count(Outcome::Uploaded),
        requests: client.stats.requests.load(Ordering::Relaxed),
        blobs: reports,
        referrers,
    }
}

/// Push `image`'s blobs, then its manifest under `tags` (or by digest), then its artifacts.
fn push_refs(
    client: &Client,
    repo: &str,
    image: &Image,
    opts: &Options,
    tags: &[String],
    progress: &dyn Progress,
) -> Result<Report, Error> {
    let blobs = sources(image);
    let mut reports = Vec::new();
    for r in super::bounded(&blobs, opts.concurrency, |src| push_blob(client, repo, src, opts, progress))
        .into_iter()
        .flatten()
    {
        reports.push(r?);
    }

    let media_type = serde_json::from_slice::<oci_spec::image::ImageManifest>(&image.manifest)
        .ok()
        .and_then(|m| m.media_type().clone())
        .map(|t| t.to_string())
        .unwrap_or_else(|| crate::image::spec::MANIFEST_MEDIA_TYPE.to_string());
    put_manifest(client, repo, &image.manifest, &image.manifest_digest, &media_type, tags)?;
    // The artifacts come after the image: their subject must exist first where the registry
    // checks it.
    let mut referrers = Vec::new();
    for a in &image.artifacts {
        referrers.push(push_artifact(client, repo, &image.manifest_digest, a, opts, progress)?);
    }
    Ok(report(client, repo, &image.manifest_digest, opts, reports, referrers))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges() {
        assert_eq!(super::parse_range_end("0-4194303"), Some(4194304));
        assert_eq!(super::parse_range_end("bytes=0-9"), Some(10));
        assert_eq!(super::parse_range_end("0-0"), Some(0));
        assert_eq!(super::parse_range_end("0--1"), None);
    }
}
