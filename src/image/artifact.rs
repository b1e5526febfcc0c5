//! Artifacts about an image (its SBOM, its provenance): OCI 1.1 manifests whose `subject` is
//! the image's manifest, with an empty config and the document as their one layer. Writers
//! (layout, registry push) take them with the image.

use super::{digest, spec};
use oci_spec::image::{Descriptor, ImageManifestBuilder, MediaType};

/// The empty JSON config OCI 1.1 artifacts use.
pub const EMPTY: &[u8] = b"{}";
pub const SBOM_TYPE: &str = "application/vnd.cyclonedx+json";
pub const PROVENANCE_TYPE: &str = "application/vnd.in-toto+json";

#[derive(Debug, Clone)]
pub struct Artifact {
    pub artifact_type: String,
    /// The document (the SBOM or the in-toto statement).
    pub document: Vec<u8>,
    pub document_digest: String,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
}

impl Artifact {
    /// An artifact of `artifact_type` holding `document`, about the manifest `subject`.
    pub fn new(artifact_type: &str, document: Vec<u8>, subject_digest: &str, subject_size: u64) -> Artifact {
        let document_digest = digest::sha256(&document);
        let config =
            Descriptor::new(MediaType::EmptyJSON, EMPTY.len() as u64, spec::parse_digest(&digest::sha256(EMPTY)));
        let layer = Descriptor::new(
            MediaType::Other(artifact_type.to_string()),
            document.len() as u64,
            spec::parse_digest(&document_digest),
        );
        let subject = Descriptor::new(MediaType::ImageManifest, subject_size, spec::parse_digest(subject_digest));
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .artifact_type(MediaType::Other(artifact_type.to_string()))
            .config(config)
            .layers(vec![layer])
            .subject(subject)
            .build()
            .expect("every required field is set");
        let manifest = spec::canonical(&manifest);
        Artifact {
            artifact_type: artifact_type.to_string(),
            manifest_digest: digest::sha256(&manifest),
            manifest,
            document,
            document_digest,
        }
    }

    /// Read one back from its manifest and document, checking that they belong together.
    pub fn from_parts(manifest: Vec<u8>, document: Vec<u8>) -> Option<Artifact> {
        let m: oci_spec::image::ImageManifest = serde_json::from_slice(&manifest).ok()?;
        let layer = m.layers().first()?;
        let document_digest = digest::sha256(&document);
        (layer.digest().to_string() == document_digest).then(|| Artifact {
            artifact_type: m
                .artifact_type()
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_else(|| layer.media_type().to_string()),
            manifest_digest: digest::sha256(&manifest),
            manifest,
            document,
            document_digest,
        })
    }

    /// Its manifest's descriptor, with its artifact type, as an index lists it.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            self.manifest.len() as u64,
            spec::parse_digest(&self.manifest_digest),
        );
        d.set_artifact_type(Some(MediaType::Other(self.artifact_type.clone())));
        d
    }

    /// The digest of the manifest it is about.
    pub fn subject(&self) -> Option<String> {
        let m: oci_spec::image::ImageManifest = serde_json::from_slice(&self.manifest).ok()?;
        m.subject().as_ref().map(|s| s.digest().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_names_its_subject_and_holds_its_document() {
        let subject = digest::sha256(b"manifest");
        let a = Artifact::new(SBOM_TYPE, b"{\"bomFormat\":\"CycloneDX\"}".to_vec(), &subject, 8);
        assert_eq!(a.subject(), Some(subject));
        let m: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(m["artifactType"], SBOM_TYPE);
        assert_eq!(m["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
        let back = Artifact::from_parts(a.manifest.clone(), a.document.clone()).unwrap();
        assert_eq!(back.manifest_digest, a.manifest_digest);
        assert!(Artifact::from_parts(a.manifest.clone(), b"other".to_vec()).is_none());
    }
}
