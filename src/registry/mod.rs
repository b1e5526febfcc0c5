//! Registry client: references, credentials and auth, blob upload, manifests, push.
//! Takes a finished image; never builds layers.

pub mod auth;
pub mod client;
pub mod known;
pub mod pull;
pub mod push;
pub mod reference;

pub use reference::Reference;

/// Run `f` on each of `items` on at most `workers` threads (this one among them); once one
/// fails, no further item starts. The results stand in the items' order, `None` for an item
/// that never started. Blob transfers, whose time is mostly waiting on the network, overlap.
pub(crate) fn bounded<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> Result<R, Error> + Sync,
) -> Vec<Option<Result<R, Error>>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<std::sync::Mutex<Option<Result<R, Error>>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let worker = || {
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let r = f(item);
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        }
    };
    std::thread::scope(|s| {
        for _ in 1..workers.clamp(1, items.len().max(1)) {
            s.spawn(worker);
        }
        worker();
    });
    results.into_iter().map(|r| r.into_inner().unwrap_or_else(|e| e.into_inner())).collect()
}

/// What a registry said about an error, shown in parentheses after the sentence; nothing at
/// all when it said nothing (never an empty `()`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail(pub String);

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.trim() {
            "" => Ok(()),
            d => write!(f, " ({d})"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{registry} rejected the credentials from {source_desc}{detail}")]
    Unauthorized { registry: String, source_desc: String, detail: Detail },
    #[error("{registry} denied {what} on {repository} to the credentials from {source_desc}{detail}")]
    Denied { registry: String, repository: String, what: String, source_desc: String, detail: Detail },
    #[error("{registry} has no repository {repository}{detail}")]
    NameUnknown { registry: String, repository: String, detail: Detail },
    #[error("{registry} has no {what} in {repository}{detail}")]
    NotFound { registry: String, repository: String, what: String, detail: Detail },
    #[error("{registry} answered {status} to {what}: {detail}")]
    Http { registry: String, what: String, status: u16, detail: String },
    #[error("cannot reach {registry}: {detail}")]
    Unreachable { registry: String, detail: String },
    #[error("gave up on {what} at {registry}: the overall deadline of {overall} passed")]
    Deadline { registry: String, what: String, overall: String },
    #[error("{registry} cannot be logged in to: {why}")]
    BadChallenge { registry: String, why: String },
    #[error("{registry} sent ship to {url}, plain http, from https; ship does not downgrade")]
    Downgrade { registry: String, url: String },
    #[error("{url} answered 401, but it is not {registry}, and ship sends credentials only to the registry itself")]
    ForeignUnauthorized { registry: String, url: String },
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
            Error::Deadline { .. } => "the registry is slow or stalled: try again, or allow more time with --timeout (e.g. --timeout 30m)".into(),
            Error::BadChallenge { .. } => "the registry (or a proxy in front of it) answered with a login challenge ship cannot use; check the registry URL".into(),
            Error::Downgrade { .. } | Error::ForeignUnauthorized { .. } => "the registry, or something between ship and it, redirects uploads elsewhere; check for a proxy rewriting Location headers".into(),
            Error::DigestMismatch { .. } => "the registry rewrote the manifest; push to a registry that stores manifests as given".into(),
            _ => return None,
        })
    }
}
