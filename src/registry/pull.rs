//! Pull an image into local files: every manifest and blob verified against its digest, and an
//! image index resolved to one platform.

use super::client::Client;
use super::{Error, Reference};
use crate::image::digest::{self, HashingWriter};
use crate::image::{Image, Layer, Platform};
use reqwest::{Method, StatusCode};
use serde_json::Value;
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
    if let Some(w) = want.map(str::to_string).or(header) {
        if w != got {
            return Err(corrupt(client, format!("manifest {reference}")));
        }
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
    let (_, got, n) = w.finish();
    if got != digest || n != size {
        let _ = std::fs::remove_file(&path);
        return Err(corrupt(client, format!("blob {digest}")));
    }
    Ok(path)
}

/// Pull `reference` for `platform` into `dir` (files named by digest hex). The returned image's
/// layers are files in `dir`.
pub fn pull(client: &Client, reference: &Reference, platform: &Platform, dir: &Path) -> Result<Image, Error> {
    let repo = &reference.repository;
    let first = reference.digest.clone().unwrap_or_else(|| reference.tag_or_latest().to_string());
    let (mut manifest, mut manifest_digest) = get_manifest(client, repo, &first, reference.digest.as_deref())?;
    let mut doc: Value = serde_json::from_slice(&manifest).map_err(|_| corrupt(client, format!("manifest {first}")))?;
    if let Some(list) = doc.get("manifests").and_then(Value::as_array) {
        let chosen = crate::image::layout::select_platform(list, platform).ok_or_else(|| Error::Http {
            registry: client.registry.clone(),
            what: format!("selecting {}/{} from {reference}", platform.os, platform.architecture),
            status: 404,
            detail: format!("the index has no {}/{} image", platform.os, platform.architecture),
        })?;
        let d = chosen["digest"].as_str().unwrap_or_default().to_string();
        (manifest, manifest_digest) = get_manifest(client, repo, &d, Some(&d))?;
        doc = serde_json::from_slice(&manifest).map_err(|_| corrupt(client, format!("manifest {d}")))?;
    }
    let config_digest = doc.pointer("/config/digest").and_then(Value::as_str).unwrap_or_default().to_string();
    let config_size = doc.pointer("/config/size").and_then(Value::as_u64).unwrap_or_default();
    let config_path = get_blob(client, repo, &config_digest, config_size, dir)?;
    let config =
        std::fs::read(&config_path).map_err(|e| Error::Io { context: "reading the config".into(), source: e })?;
    let cfg: Value = serde_json::from_slice(&config).map_err(|_| corrupt(client, format!("config {config_digest}")))?;
    let diff_ids: Vec<String> = cfg
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.as_str().map(str::to_string))
        .collect();
    let descs = doc.get("layers").and_then(Value::as_array).cloned().unwrap_or_default();
    if descs.len() != diff_ids.len() {
        return Err(corrupt(client, format!("config {config_digest} (diff_ids do not match the layers)")));
    }
    let mut layers = Vec::new();
    for (d, diff_id) in descs.iter().zip(diff_ids) {
        let digest = d["digest"].as_str().unwrap_or_default().to_string();
        let size = d["size"].as_u64().unwrap_or_default();
        let path = get_blob(client, repo, &digest, size, dir)?;
        layers.push(Layer::from_file(
            d["mediaType"].as_str().unwrap_or_default().to_string(),
            digest,
            diff_id,
            size,
            path,
        ));
    }
    Ok(Image {
        platform: Platform {
            architecture: cfg["architecture"].as_str().unwrap_or_default().to_string(),
            variant: cfg["variant"].as_str().map(str::to_string),
            os: cfg["os"].as_str().unwrap_or_default().to_string(),
        },
        layers,
        config,
        config_digest,
        manifest,
        manifest_digest,
    })
}
