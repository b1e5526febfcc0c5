//! The image config and manifest JSON, written canonically.

use super::elf::Platform;
use super::layer::Layer;
use super::{Error, digest};
use oci_spec::image::{
    Arch, Config, Descriptor, History, HistoryBuilder, ImageConfiguration, ImageManifestBuilder, MediaType, Os, RootFs,
};
use serde::Serialize;
use std::collections::HashMap;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Canonical JSON: object keys sorted, no insignificant whitespace. `serde_json::Value` keeps
/// objects in a BTreeMap (the `preserve_order` feature is off; a unit test guards that), so a
/// round trip through it sorts every map, including ones the typed structs keep in HashMaps.
pub fn canonical<T: Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("image JSON types always serialise");
    serde_json::to_vec(&value).expect("a JSON value always serialises")
}

/// The descriptor of `image`'s manifest with its platform (os, architecture, variant), as an
/// image index lists it.
pub fn manifest_descriptor(image: &super::Image) -> Descriptor {
    // The manifest's own media type (a pulled image may be a docker v2 manifest).
    let media_type = serde_json::from_slice::<oci_spec::image::ImageManifest>(&image.manifest)
        .ok()
        .and_then(|m| m.media_type().clone())
        .unwrap_or(MediaType::ImageManifest);
    let mut desc = Descriptor::new(media_type, image.manifest.len() as u64, parse_digest(&image.manifest_digest));
    let mut platform = oci_spec::image::PlatformBuilder::default()
        .architecture(Arch::from(image.platform.architecture.as_str()))
        .os(Os::from(image.platform.os.as_str()))
        .variant(image.platform.variant.clone().unwrap_or_default())
        .build()
        .expect("architecture and os are set");
    if image.platform.variant.is_none() {
        platform.set_variant(None);
    }
    desc.set_platform(Some(platform));
    desc
}

/// An OCI image index (schema 2, with its media type) listing `manifests`.
pub fn new_index(manifests: Vec<Descriptor>) -> oci_spec::image::ImageIndex {
    oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .expect("the required fields are set")
}

/// An OCI image index over `images` (one per platform, in the order given): canonical JSON.
pub fn index(images: &[&super::Image]) -> Vec<u8> {
    canonical(&new_index(images.iter().map(|i| manifest_descriptor(i)).collect()))
}

/// RFC 3339 in UTC with second precision, as `created` fields use.
pub fn rfc3339(epoch: i64) -> Result<String, Error> {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch).map_err(|_| Error::BadEpoch(epoch))?;
    t.format(&time::format_description::well_known::Rfc3339).map_err(|_| Error::BadEpoch(epoch))
}

/// An empty config for `platform`, to stack layers on.
pub fn empty_config(platform: &Platform) -> ImageConfiguration {
    let mut cfg = ImageConfiguration::default();
    cfg.set_architecture(Arch::from(platform.architecture.as_str()));
    cfg.set_os(Os::from(platform.os.as_str()));
    cfg.set_variant(platform.variant.clone());
    cfg.set_rootfs(RootFs::default());
    cfg
}

/// Record one more layer in the config: its diff_id and its history entry.
pub fn push_layer(cfg: &mut ImageConfiguration, layer: &Layer, created: &str, created_by: String) {
    cfg.rootfs_mut().diff_ids_mut().push(layer.diff_id.clone());
    let entry: History = HistoryBuilder::default()
        .created(created.to_string())
        .created_by(created_by)
        .build()
        .expect("every history field is optional");
    cfg.history_mut().get_or_insert_with(Vec::new).push(entry);
}

/// What ship sets on the runtime config, over whatever the base had.
pub struct RuntimeSettings<'a> {
    pub entrypoint: String,
    pub user: &'a str,
    pub workdir: Option<&'a str>,
    /// `3000/tcp` form.
    pub ports: &'a [String],
    /// Applied in order; a later key replaces an earlier one in place.
    pub env: Vec<(String, String)>,
    pub labels: &'a std::collections::BTreeMap<String, String>,
}

pub fn apply_runtime(cfg: &mut ImageConfiguration, s: RuntimeSettings<'_>) {
    let mut c: Config = cfg.config().clone().unwrap_or_default();
    c.set_entrypoint(Some(vec![s.entrypoint]));
    // A base image's Cmd would become arguments to our binary.
    c.set_cmd(None);
    c.set_user(Some(s.user.to_string()));
    if let Some(w) = s.workdir {
        c.set_working_dir(Some(w.to_string()));
    }
    let mut ports = c.exposed_ports().clone().unwrap_or_default();
    ports.extend(s.ports.iter().cloned());
    ports.sort();
    ports.dedup();
    c.set_exposed_ports((!ports.is_empty()).then_some(ports));
    let mut env = c.env().clone().unwrap_or_default();
    for (k, v) in s.env {
        let line = format!("{k}={v}");
        match env.iter_mut().find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(&k)) {
            Some(existing) => *existing = line,
            None => env.push(line),
        }
    }
    c.set_env(Some(env));
    let mut labels: HashMap<String, String> = c.labels().clone().unwrap_or_default();
    labels.extend(s.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    c.set_labels((!labels.is_empty()).then_some(labels));
    cfg.set_config(Some(c));
}

/// Config bytes, then manifest bytes, for a finished config and its layers.
pub fn finish(cfg: &ImageConfiguration, layers: &[Layer]) -> (Vec<u8>, Vec<u8>) {
    let config = canonical(cfg);
    let config_desc =
        Descriptor::new(MediaType::ImageConfig, config.len() as u64, parse_digest(&digest::sha256(&config)));
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| Descriptor::new(MediaType::from(l.media_type.as_str()), l.size, parse_digest(&l.digest)))
        .collect();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc)
        .layers(layer_descs)
        .build()
        .expect("schema version, config and layers are set");
    (config, canonical(&manifest))
}

pub fn parse_digest(d: &str) -> oci_spec::image::Digest {
    d.parse().expect("ship only makes well-formed sha256 digests")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Unsorted {
        zeta: u8,
        alpha: HashMap<&'static str, u8>,
    }

    #[test]
    fn canonical_json_sorts_every_map_and_has_no_whitespace() {
        let v = Unsorted { zeta: 1, alpha: HashMap::from([("b", 2), ("a", 1), ("c", 3)]) };
        assert_eq!(String::from_utf8(canonical(&v)).unwrap(), r#"{"alpha":{"a":1,"b":2,"c":3},"zeta":1}"#);
    }

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(rfc3339(0).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000).unwrap(), "2023-11-14T22:13:20Z");
    }
}
