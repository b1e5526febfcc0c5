//! Registry client: references, credentials and auth, blob upload, manifests, push.
//! Takes a finished image; never builds layers.

pub mod auth;
pub mod client;
pub mod known;
pub mod pull;
pub mod push;
pub mod reference;

pub use reference::Reference;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{registry} rejected the credentials from {source_desc} ({detail})")]
    Unauthorized { registry: String, source_desc: String, detail: String },
    #[error("{registry} denied {what} on {repository} to the credentials from {source_desc} ({detail})")]
    Denied { registry: String, repository: String, what: String, source_desc: String, detail: String },
    #[error("{registry} has no repository {repository} ({detail})")]
    NameUnknown { registry: String, repository: String, detail: String },
    #[error("{registry} has no {what} in {repository} ({detail})")]
    NotFound { registry: String, repository: String, what: String, detail: String },
    #[error("{registry} answered {status} to {what}: {detail}")]
    Http { registry: String, what: String, status: u16, detail: String },
    #[error("cannot reach {registry}: {detail}")]
    Unreachable { registry: String, detail: String },
    #[error("{registry} stored the manifest as {got}, not {want}")]
    DigestMismatch { registry: String, want: String, got: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Unauthorized { .. } => {
                "check the username and token (for GHCR, a token with write:packages); ship reads --username/--password-stdin, SHIP_REGISTRY_USERNAME/SHIP_REGISTRY_PASSWORD, GITHUB_TOKEN, then docker and podman logins".into()
            }
            Error::Denied { .. } => "the credentials are valid but may not do this: use a token with push rights to that repository".into(),
            Error::NameUnknown { .. } => "check the repository name; some registries (GHCR) need the package created or linked first".into(),
            Error::NotFound { .. } => "check the repository and tag (and that these credentials can see them)".into(),
            Error::Unreachable { .. } => "check the registry host and port, and --insecure-registry for plain-HTTP registries".into(),
            Error::DigestMismatch { .. } => "the registry rewrote the manifest; push to a registry that stores manifests as given".into(),
            _ => return None,
        })
    }
}
