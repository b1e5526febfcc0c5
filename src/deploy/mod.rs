//! Deploy a pushed image on Railway by its digest, and wait until it is healthy; or, for teams
//! that only have a deploy webhook, notify it. Deploys by digest only; never pushes.
//!
//! Railway's API is GraphQL: every document ship sends is a `.graphql` file in `graphql/`,
//! validated against Railway's published schema by the test suite.

pub mod railway;
pub mod webhook;

use crate::net::Timeouts;
use crate::registry::Reference;
use crate::registry::auth::Secret;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} names no digest; ship deploys exactly what it pushed, by digest")]
    NoDigest(String),
    #[error("no Railway token: RAILWAY_TOKEN (an account or workspace token) or RAILWAY_PROJECT_TOKEN is needed")]
    NoToken,
    #[error("no Railway {what} to deploy to")]
    Missing { what: &'static str },
    #[error("Railway rejected the token from {source_desc} (HTTP {status})")]
    Unauthorized { source_desc: &'static str, status: u16 },
    #[error("Railway refused {op}: {message}")]
    Railway { op: &'static str, message: String },
    #[error("Railway answered HTTP {status} to {op}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Http { op: &'static str, status: u16, detail: String },
    #[error("cannot reach Railway at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("deployment {id} ended {status}{}", rolled_back.as_ref().map(|r| format!("; rolled back to deployment {r}")).unwrap_or_default())]
    Failed { id: String, status: String, rolled_back: Option<String> },
    #[error("deployment {id} was still {status} when the deploy timeout of {timeout} passed{}", rolled_back.as_ref().map(|r| format!("; rolled back to deployment {r}")).unwrap_or_default())]
    TimedOut { id: String, status: String, timeout: String, rolled_back: Option<String> },
    #[error("deployment {id} is up, but {url} did not answer 2xx ({last}){}", rolled_back.as_ref().map(|r| format!("; rolled back to deployment {r}")).unwrap_or_default())]
    Unhealthy { id: String, url: String, last: String, rolled_back: Option<String> },
    #[error("the deploy webhook {url} answered {detail}")]
    Webhook { url: String, detail: String },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NoDigest(_) => "pass the REPO@sha256:... that `ship push` or `ship run` printed".into(),
            Error::NoToken => {
                "create a token in Railway (account settings, or the project's settings for a project token) and set RAILWAY_TOKEN or RAILWAY_PROJECT_TOKEN".into()
            }
            Error::Missing { .. } => {
                "pass --service ID and --environment ID, or set service and environment in [deploy.railway] of ship.toml".into()
            }
            Error::Unauthorized { .. } => {
                "check the token; a project token goes in RAILWAY_PROJECT_TOKEN, an account or workspace token in RAILWAY_TOKEN".into()
            }
            Error::Railway { .. } => "check the service and environment ids (Railway's message is above)".into(),
            Error::Http { .. } | Error::Unreachable { .. } => {
                "Railway may be having trouble: try again, or check --api-url / SHIP_RAILWAY_API".into()
            }
            Error::Failed { .. } => "read the deployment's logs in Railway's dashboard; `ship deploy` can redeploy a known-good digest".into(),
            Error::TimedOut { .. } => "the deployment may still finish: check Railway's dashboard, or allow more with --timeout".into(),
            Error::Unhealthy { .. } => "check the service's logs and the health URL; --health-url must answer 2xx once it is up".into(),
            Error::Webhook { .. } => "check the webhook URL (RAILWAY_WEBHOOK_URL or [deploy] webhook-url)".into(),
        })
    }
}

/// How Railway is told.
#[derive(Debug, Clone)]
pub enum Auth {
    /// An account or workspace token: `Authorization: Bearer`.
    Bearer(Secret),
    /// A project token: `Project-Access-Token`.
    Project(Secret),
}

impl Auth {
    pub fn source(&self) -> &'static str {
        match self {
            Auth::Bearer(_) => "RAILWAY_TOKEN",
            Auth::Project(_) => "RAILWAY_PROJECT_TOKEN",
        }
    }
}

/// What the Railway deploy needs, resolved by `settings`.
#[derive(Debug, Clone)]
pub struct Railway {
    pub api_url: String,
    pub auth: Auth,
    pub service: String,
    pub environment: String,
    pub healthcheck_path: Option<String>,
    pub healthcheck_timeout: Option<i64>,
    pub restart_policy: Option<String>,
    /// Credentials Railway pulls a private image with (from the push credential chain).
    pub registry_credentials: Option<(String, Secret)>,
    /// How long to wait for the deployment to succeed.
    pub timeout: std::time::Duration,
    pub health_url: Option<String>,
    pub rollback_on_failure: bool,
    /// Connect and per-request bounds of every API call.
    pub timeouts: Timeouts,
}

/// The image to deploy: a reference with a digest, and the revision it was built from.
#[derive(Debug, Clone)]
pub struct Target {
    pub reference: Reference,
    pub revision: Option<String>,
}

impl Target {
    pub fn new(reference: Reference, revision: Option<String>) -> Result<Target, Error> {
        if reference.digest.is_none() {
            return Err(Error::NoDigest(reference.to_string()));
        }
        Ok(Target { reference, revision })
    }

    /// `REGISTRY/REPO@sha256:...`: never a tag, which could move.
    pub fn image(&self) -> String {
        let r = &self.reference;
        format!("{}/{}@{}", r.registry, r.repository, r.digest.as_deref().expect("checked in new"))
    }
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub image: String,
    pub deployment_id: Option<String>,
    pub status: Option<String>,
    /// The statuses seen, in order, each once.
    pub statuses: Vec<String>,
    pub url: Option<String>,
    pub health: Option<u16>,
    pub rolled_back_to: Option<String>,
    pub duration_ms: u128,
}
