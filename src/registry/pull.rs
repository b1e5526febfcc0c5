//! Pull an image into local files: every manifest and blob verified against its digest, and an
//! image index resolved to one platform.

use super::client::Client;
use super::{Error, Reference};
use crate::image::artifact::Artifact;
use crate::image::digest::{self, HashingWriter};
use crate::image::{Image, Layer, Platform};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use reqwest::{Method, StatusCode};
use std::path::Path;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

fn corrupt(client: &Client, what: String) -> Error {
    Error::Http {
        registry: client.registry.clone(),
        what,
        status: 200,
        detail: "the content does not match its digest".into(),
    }
}

/// GET a manifest by tag or digest; verify it against `want` (or the registry's digest header).
fn get_manifest(client: &Client, repo: &str, reference: &str, want: Option<&str>) -> Result<(Vec<u8>, String), Error> {
    let scope = format!("repository:{repo}:pull");
    let resp = client.send(Method::GET, &format!("/v2/{repo}/manifests/{reference}"), &scope, true, &|rb| {
        rb.header("accept", ACCEPT)
    })?;
    if resp.status() != StatusCode::OK {
        return Err(client.status_error(resp, &format!("manifest {reference}"), repo));
    }
    let header = resp.headers().get("docker-content-digest").and_then(|d| d.to_str().ok()).map(str::to_string);
    let body = resp.bytes().map_err(|e| client.unreachable(&e.without_url()))?.to_vec();
    let got = digest::sha256(&body);
    if let Some(w) = want.map(str::to_string).or(header)
        && w != got
    {
        return Err(corrupt(client, format!("manifest {reference}")));
    }
    Ok((body, got))
}

/// Download a blob into `dir/<hex>`, verifying digest and size.
fn get_blob(client: &Client, repo: &str, digest: &str, size: u64, dir: &Path) -> Result<std::path::PathBuf, Error> {
    let hex = digest::hex_part(digest).ok_or_else(|| corrupt(client, format!("blob {digest:?}")))?;
    let path = dir.join(hex);
    let scope = format!("repository:{repo}:pull");
    let mut resp = client.send(Method::GET, &format!("/v2/{repo}/blobs/{digest}"), &scope, true, &|rb| rb)?;
    if resp.status() != StatusCode::OK {
        return Err(client.status_error(resp, &format!("blob {digest}"), repo));
    }
    let io = |e: std::io::Error| Error::Io { context: format!("writing blob {digest}"), source: e };
    let file = std::fs::File::create(&path).map_err(io)?;
    let mut w = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
    resp.copy_to(&mut w).map_err(|e| client.unreachable(&e.without_url()))?;
    let (w, got, n) = w.finish();
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    if got != digest || n != size {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(corrupt(client, format!("blob {digest}")));
    }
    file.set_permissions(digest::blob_permissions()).map_err(io)?;
    Ok(path)
}

/// A layer blob's file, and whether ship downloaded it just now (else the layout had it).
type Fetched = (std::path::PathBuf, bool);

/// Pull `reference` for `platform` into `dir` (files named by digest hex). The returned image's
/// layers are files in `dir`.
pub fn pull(client: &Client, reference: &Reference, platform: &Platform, dir: &Path) -> Result<Image, Error> {
    pull_reusing(client, reference, platform, dir, None)
}

/// The same, taking every layer blob already whole in `have` (a layout's `blobs/sha256`) from
/// there instead of downloading it, and fetching the others concurrently (at most 3 at once).
pub fn pull_reusing(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    dir: &Path,
    have: Option<&Path>,
) -> Result<Image, Error> {
    let repo = &reference.repository;
    let first = reference.digest.clone().unwrap_or_else(|| reference.tag_or_latest().to_string());
    let (mut manifest, mut manifest_digest) = get_manifest(client, repo, &first, reference.digest.as_deref())?;
    // An index (OCI or docker's manifest list) is resolved to the platform's manifest.
    if let Ok(index) = serde_json::from_slice::<ImageIndex>(&manifest) {
        let chosen = crate::image::layout::select_platform(index.manifests(), platform).ok_or_else(|| Error::Http {
            registry: client.registry.clone(),
            what: format!("selecting {}/{} from {reference}", platform.os, platform.architecture),
            status: 404,
            detail: format!("the index has no {}/{} image", platform.os, platform.architecture),
        })?;
        let d = chosen.digest().to_string();
        (manifest, manifest_digest) = get_manifest(client, repo, &d, Some(&d))?;
    }
    let doc: ImageManifest =
        serde_json::from_slice(&manifest).map_err(|_| corrupt(client, format!("manifest {manifest_digest}")))?;
    let config_digest = doc.config().digest().to_string();
    let config_path = get_blob(client, repo, &config_digest, doc.config().size(), dir)?;
    let config =
        std::fs::read(&config_path).map_err(|e| Error::Io { context: "reading the config".into(), source: e })?;
    let cfg: ImageConfiguration =
        serde_json::from_slice(&config).map_err(|_| corrupt(client, format!("config {config_digest}")))?;
    let diff_ids = cfg.rootfs().diff_ids();
    if doc.layers().len() != diff_ids.len() {
        return Err(corrupt(client, format!("config {config_digest} (diff_ids do not match the layers)")));
    }
    let fetch = |d: &oci_spec::image::Descriptor| -> Result<Fetched, Error> {
        let digest = d.digest().to_string();
        let local = have.zip(digest::hex_part(&digest)).map(|(h, hex)| h.join(hex));
        if let Some(p) = local.filter(|p| crate::image::cache::verified(p, &digest, d.size())) {
            return Ok((p, false));
        }
        Ok((get_blob(client, repo, &digest, d.size(), dir)?, true))
    };
    let paths = super::bounded(doc.layers(), 3, fetch);
    let mut layers = Vec::new();
    for ((d, diff_id), path) in doc.layers().iter().zip(diff_ids).zip(paths) {
        let (path, downloaded) = match path {
            Some(p) => p?,
            None => continue,
        };
        let layer = if downloaded { Layer::from_staged } else { Layer::from_file };
        layers.push(layer(d.media_type().to_string(), d.digest().to_string(), diff_id.clone(), d.size(), path));
    }
    if layers.len() != doc.layers().len() {
        return Err(corrupt(client, format!("manifest {manifest_digest} (a layer could not be fetched)")));
    }
    Ok(Image {
        platform: Platform {
            architecture: cfg.architecture().to_string(),
            variant: cfg.variant().clone(),
            os: cfg.os().to_string(),
        },
        layers,
        config,
        config_digest,
        manifest,
        manifest_digest,
        artifacts: Vec::new(),
    })
}

/// The artifacts about `subject` in `repo` (SBOM, provenance): through the referrers API, else
/// through the `sha256-<hex>` tag index that registries without it keep. Each is verified
/// against its digests.
pub fn referrers(client: &Client, repo: &str, subject: &str) -> Result<Vec<Artifact>, Error> {
    let scope = format!("repository:{repo}:pull");
    let accept = crate::image::spec::INDEX_MEDIA_TYPE;
    let mut resp = client.send(Method::GET, &format!("/v2/{repo}/referrers/{subject}"), &scope, true, &|rb| {
        rb.header("accept", accept)
    })?;
    if resp.status() == StatusCode::NOT_FOUND {
        let tag = super::push::referrers_tag(subject);
        resp = client.send(Method::GET, &format!("/v2/{repo}/manifests/{tag}"), &scope, true, &|rb| {
            rb.header("accept", accept)
        })?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
    }
    if resp.status() != StatusCode::OK {
        return Err(client.status_error(resp, &format!("the referrers of {subject}"), repo));
    }
    let bytes = resp.bytes().map_err(|e| client.unreachable(&e.without_url()))?;
    let index: ImageIndex =
        serde_json::from_slice(&bytes).map_err(|_| corrupt(client, format!("the referrers of {subject}")))?;
    let mut out = Vec::new();
    for d in index.manifests() {
        let digest = d.digest().to_string();
        let (manifest, _) = get_manifest(client, repo, &digest, Some(&digest))?;
        let doc: ImageManifest =
            serde_json::from_slice(&manifest).map_err(|_| corrupt(client, format!("artifact {digest}")))?;
        let Some(layer) = doc.layers().first() else { continue };
        let dir = tempfile::tempdir().map_err(|e| Error::Io { context: "a staging directory".into(), source: e })?;
        let path = get_blob(client, repo, layer.digest().as_ref(), layer.size(), dir.path())?;
        let document =
            std::fs::read(&path).map_err(|e| Error::Io { context: "reading an artifact".into(), source: e })?;
        out.extend(Artifact::from_parts(manifest, document).filter(|a| a.subject().as_deref() == Some(subject)));
    }
    Ok(out)
}
