//! The weaker option, for teams that only have a deploy webhook: POST the image, digest and
//! revision, and take a 2xx as "accepted". There is no status to wait for: whether the deploy
//! then succeeds is not known to ship.

use super::{Error, Report, Target};
use crate::net::{self, Timeouts};
use std::time::Instant;

pub fn notify(url: &str, target: &Target, timeouts: &Timeouts) -> Result<Report, Error> {
    let start = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A webhook URL is a credential (whoever knows it can deploy): only its host is shown.
    let shown = url::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}://{}/…", u.scheme(), u.host_str()?)))
        .unwrap_or_else(|| "(an unparsable URL)".into());
    let http = reqwest::blocking::Client::builder()
        .user_agent(concat!("ship/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .build()
        .map_err(|e| Error::Webhook { url: shown.clone(), detail: e.to_string() })?;
    let body = serde_json::json!({
        "image": target.image(),
        "digest": target.reference.digest,
        "revision": target.revision,
    });
    let resp = http
        .post(url)
        .json(&body)
        .send()
        .map_err(|e| Error::Webhook { url: shown.clone(), detail: net::describe(&e.without_url(), timeouts) })?;
    if !resp.status().is_success() {
        return Err(Error::Webhook { url: shown, detail: format!("HTTP {}", resp.status().as_u16()) });
    }
    Ok(Report {
        mode: "webhook",
        image: target.image(),
        deployment_id: None,
        status: Some("ACCEPTED".into()),
        statuses: vec!["ACCEPTED".into()],
        url: None,
        health: None,
        rolled_back_to: None,
        duration_ms: start.elapsed().as_millis(),
    })
}
