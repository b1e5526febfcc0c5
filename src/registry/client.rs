//! HTTP to one registry: auth (Basic, Bearer tokens cached per scope), retries with capped
//! exponential backoff and jitter, request counting, and errors parsed from the OCI error
//! envelope in one place.

use super::Error;
use super::auth::{Challenge, Credentials, Secret};
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Retries after the first attempt, for 5xx, 429 and connection failures.
const RETRIES: u32 = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub bytes_uploaded: AtomicU64,
}

pub struct Client {
    http: Http,
    pub registry: String,
    base: String,
    pub credentials: Credentials,
    /// Bearer tokens by scope, with when they expire.
    tokens: Mutex<HashMap<String, (Secret, Instant)>>,
    /// The registry asked for Basic auth.
    basic: Mutex<bool>,
    pub stats: Stats,
    verbose: bool,
}

/// Plain HTTP only for loopback registries and the ones named insecure, as docker does.
pub fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || insecure.iter().any(|i| i == registry || i == host)
}

/// The `errors` of an OCI error envelope as one line: `CODE: message; CODE: message`.
pub fn envelope_detail(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let errors = parsed.as_ref().and_then(|v| v.get("errors")).and_then(|e| e.as_array());
    match errors {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|e| {
                format!("{}: {}", e["code"].as_str().unwrap_or("UNKNOWN"), e["message"].as_str().unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.chars().take(200).collect::<String>().trim().to_string(),
    }
}

fn jitter(d: Duration) -> Duration {
    // Up to +50%, from the hasher's per-process random keys: no rand crate for one number.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let frac = (h.finish() % 1000) as f64 / 2000.0;
    d.mul_f64(1.0 + frac)
}

fn backoff(attempt: u32) -> Duration {
    jitter(BACKOFF_BASE.saturating_mul(1 << attempt.min(10)).min(BACKOFF_CAP))
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let secs: u64 = resp.headers().get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(Duration::from_secs(60)))
}

/// A URL for logs: no query string (upload state tokens are noise, and never credentials).
fn loggable(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

impl Client {
    pub fn new(registry: &str, insecure: &[String], credentials: Credentials, verbose: bool) -> Result<Client, Error> {
        // reqwest is built without a default crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let scheme = if is_insecure(registry, insecure) { "http" } else { "https" };
        let http = Http::builder()
            .user_agent(concat!("ship/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| Error::Unreachable { registry: registry.into(), detail: e.to_string() })?;
        let docker_hub = registry == super::reference::DOCKER_HUB;
        let base =
            if docker_hub { "https://registry-1.docker.io".to_string() } else { format!("{scheme}://{registry}") };
        Ok(Client {
            http,
            registry: registry.to_string(),
            base,
            credentials,
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(false),
            stats: Stats::default(),
            verbose,
        })
    }

    /// `path` (starting with /v2/) or an absolute URL, as a full URL.
    pub fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    fn authorize(&self, rb: RequestBuilder, scope: &str) -> RequestBuilder {
        let token = self
            .tokens
            .lock()
            .expect("token lock")
            .get(scope)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(t, _)| t.clone());
        if let Some(t) = token {
            return rb.bearer_auth(t.expose());
        }
        if *self.basic.lock().expect("basic lock") {
            if let Some((u, p)) = self.credentials.basic() {
                return rb.basic_auth(u, Some(p));
            }
        }
        rb
    }

    fn unauthorized(&self, detail: String) -> Error {
        Error::Unauthorized {
            registry: self.registry.clone(),
            source_desc: self.credentials.source.describe().to_string(),
            detail,
        }
    }

    /// Answer a 401: fetch a token for `scope`, or switch to Basic.
    fn handle_challenge(&self, resp: &Response, scope: &str) -> Result<(), Error> {
        let header = resp.headers().get("www-authenticate").and_then(|h| h.to_str().ok()).unwrap_or_default();
        match super::auth::parse_challenge(header) {
            Some(Challenge::Basic) => {
                if self.credentials.basic().is_none() {
                    return Err(self.unauthorized("the registry requires a login".into()));
                }
                *self.basic.lock().expect("basic lock") = true;
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, .. }) => self.fetch_token(&realm, service.as_deref(), scope),
            None => Err(self.unauthorized(format!("unsupported challenge {header:?}"))),
        }
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<(), Error> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(("scope", s));
        }
        let mut rb = self.http.get(realm).query(&query);
        if let Some((u, p)) = self.credentials.basic() {
            rb = rb.basic_auth(u, Some(p));
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let resp = rb.send().map_err(|e| Error::Unreachable {
            registry: self.registry.clone(),
            detail: format!("token service {}: {e}", loggable(realm)),
        })?;
        let status = resp.status();
        if self.verbose {
            eprintln!("ship: GET {} (token) -> {}", loggable(realm), status.as_u16());
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(format!("the token service answered {}", status.as_u16())));
        }
        if !status.is_success() {
            let body = resp.text().unwrap_or_default();
            return Err(Error::Http {
                registry: self.registry.clone(),
                what: "token request".into(),
                status: status.as_u16(),
                detail: envelope_detail(&body),
            });
        }
        let body: serde_json::Value = resp.json().map_err(|e| Error::Http {
            registry: self.registry.clone(),
            what: "token request".into(),
            status: status.as_u16(),
            detail: format!("unreadable token response: {e}"),
        })?;
        let token =
            body.get("token").or_else(|| body.get("access_token")).and_then(|t| t.as_str()).ok_or_else(|| {
                Error::Http {
                    registry: self.registry.clone(),
                    what: "token request".into(),
                    status: status.as_u16(),
                    detail: "the token response has no token".into(),
                }
            })?;
        // Refresh a little early; 60 s is the spec's default lifetime.
        let lifetime = body.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(60).max(10);
        let expiry = Instant::now() + Duration::from_secs(lifetime - lifetime / 10);
        self.tokens.lock().expect("token lock").insert(scope.to_string(), (Secret::new(token), expiry));
        Ok(())
    }

    /// Send with auth; retry 5xx, 429 and connection failures when `retry`. The caller reads
    /// every other status itself.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        retry: bool,
        build: &dyn Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let url = self.url(url);
        let mut attempt = 0;
        let mut challenged = false;
        loop {
            let rb = self.authorize(build(self.http.request(method.clone(), &url)), scope);
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let result = rb.send().map_err(|e| e.without_url());
            if self.verbose {
                match &result {
                    Ok(r) => eprintln!("ship: {method} {} -> {}", loggable(&url), r.status().as_u16()),
                    Err(e) => eprintln!("ship: {method} {} -> {e}", loggable(&url)),
                }
            }
            match result {
                Err(e) => {
                    if retry && attempt < RETRIES {
                        std::thread::sleep(backoff(attempt));
                        attempt += 1;
                        continue;
                    }
                    return Err(Error::Unreachable { registry: self.registry.clone(), detail: e.to_string() });
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    // One challenge per call: a cached token may have expired, so the first 401
                    // fetches a new one; a 401 to a token fetched just now is final.
                    self.tokens.lock().expect("token lock").remove(scope);
                    if challenged {
                        let header = resp
                            .headers()
                            .get("www-authenticate")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        let body = resp.text().unwrap_or_default();
                        if header.contains("insufficient_scope") {
                            return Err(Error::Denied {
                                registry: self.registry.clone(),
                                repository: scope.split(':').nth(1).unwrap_or_default().to_string(),
                                what: format!("{method} (scope {scope})"),
                                source_desc: self.credentials.source.describe().to_string(),
                                detail: envelope_detail(&body),
                            });
                        }
                        return Err(self.unauthorized(envelope_detail(&body)));
                    }
                    self.handle_challenge(&resp, scope)?;
                    challenged = true;
                }
                Ok(resp)
                    if retry
                        && attempt < RETRIES
                        && (resp.status() == StatusCode::TOO_MANY_REQUESTS || resp.status().is_server_error()) =>
                {
                    let wait = retry_after(&resp).unwrap_or_else(|| backoff(attempt));
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    /// An error for an unexpected answer to `what` on `repository`.
    pub fn status_error(&self, resp: Response, what: &str, repository: &str) -> Error {
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        let detail = envelope_detail(&body);
        match status {
            StatusCode::FORBIDDEN => Error::Denied {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                what: what.to_string(),
                source_desc: self.credentials.source.describe().to_string(),
                detail,
            },
            StatusCode::NOT_FOUND if detail.contains("NAME_UNKNOWN") => {
                Error::NameUnknown { registry: self.registry.clone(), repository: repository.to_string(), detail }
            }
            StatusCode::NOT_FOUND => Error::NotFound {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                what: what.to_string(),
                detail,
            },
            StatusCode::UNAUTHORIZED => self.unauthorized(detail),
            _ => {
                Error::Http { registry: self.registry.clone(), what: what.to_string(), status: status.as_u16(), detail }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_named_registries_are_plain_http() {
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("127.1.2.3", &[]));
        assert!(is_insecure("[::1]:5000", &[]));
        assert!(!is_insecure("ghcr.io", &[]));
        assert!(!is_insecure("10.0.0.1:5000", &[]));
        assert!(is_insecure("reg.internal:5000", &["reg.internal".into()]));
    }

    #[test]
    fn envelopes_become_one_line() {
        let body = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        assert_eq!(envelope_detail(body), "DENIED: requested access to the resource is denied");
        assert_eq!(envelope_detail("plain text"), "plain text");
    }

    #[test]
    fn backoff_is_capped() {
        assert!(backoff(0) >= BACKOFF_BASE && backoff(0) <= BACKOFF_BASE.mul_f64(1.5));
        assert!(backoff(30) <= BACKOFF_CAP.mul_f64(1.5));
    }
}
