//! HTTP to one registry: auth (Basic, Bearer tokens cached per scope), retries with capped
//! exponential backoff and jitter, every request bounded (connect, per request, overall
//! deadline), request counting, and errors parsed from the OCI error envelope in one place.
//!
//! Credentials go only to the registry's own origin (scheme, host, port): an upload `Location`
//! or a redirect to another host (a CDN, an S3 presigned URL) gets no `Authorization`, and
//! nothing is ever sent from https down to http.

use super::Error;
use super::auth::{Challenge, Credentials, Secret};
use crate::net::{self, Deadline, Timeouts};
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use url::Url;

/// Retries after the first attempt, for 5xx, 429 and connection failures.
pub const RETRIES: u32 = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
const MAX_REDIRECTS: usize = 10;

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub bytes_uploaded: AtomicU64,
}

pub struct Client {
    http: Http,
    pub registry: String,
    base: Url,
    pub credentials: Credentials,
    /// Bearer tokens by scope, with when they expire.
    tokens: Mutex<HashMap<String, (Secret, Instant)>>,
    /// The registry asked for Basic auth.
    basic: Mutex<bool>,
    pub stats: Stats,
    verbose: bool,
    pub timeouts: Timeouts,
    deadline: Deadline,
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

/// The OCI distribution error envelope: `{"errors": [{"code", "message", "detail"}]}`.
#[derive(Debug, serde::Deserialize)]
struct Envelope {
    errors: Vec<EnvelopeError>,
}

#[derive(Debug, serde::Deserialize)]
struct EnvelopeError {
    code: String,
    #[serde(default)]
    message: String,
}

fn envelope(body: &str) -> Option<Envelope> {
    serde_json::from_str::<Envelope>(body).ok().filter(|e| !e.errors.is_empty())
}

/// The `errors` of an OCI error envelope as one line: `CODE: message; CODE: message` (the
/// body's start when it is not an envelope).
pub fn envelope_detail(body: &str) -> String {
    match envelope(body) {
        Some(e) => e.errors.iter().map(|e| format!("{}: {}", e.code, e.message)).collect::<Vec<_>>().join("; "),
        None => body.chars().take(200).collect::<String>().trim().to_string(),
    }
}

/// The OCI error codes of an envelope (`BLOB_UNKNOWN`, `DENIED`, ...).
pub fn envelope_codes(body: &str) -> Vec<String> {
    envelope(body).map(|e| e.errors.into_iter().map(|e| e.code).collect()).unwrap_or_default()
}

fn jitter(d: Duration) -> Duration {
    // Up to +50%, from the hasher's per-process random keys: no rand crate for one number.
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let frac = (h.finish() % 1000) as f64 / 2000.0;
    d.mul_f64(1.0 + frac)
}

pub fn backoff(attempt: u32) -> Duration {
    jitter(BACKOFF_BASE.saturating_mul(1 << attempt.min(10)).min(BACKOFF_CAP))
}

fn retry_after(resp: &Response) -> Option<Duration> {
    let secs: u64 = resp.headers().get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(Duration::from_secs(60)))
}

/// A URL for logs and errors: no query string (upload state tokens, presigned signatures).
fn loggable(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The redirects ship follows: at most ten, never from https to http. reqwest itself drops
/// `Authorization` on a redirect to another host, port or scheme.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let from_https = attempt.previous().iter().any(|u| u.scheme() == "https");
        if from_https && attempt.url().scheme() != "https" {
            let to = attempt.url().host_str().unwrap_or_default().to_string();
            return attempt.error(format!("refused a redirect from https down to plain http ({to})"));
        }
        attempt.follow()
    })
}

impl Client {
    pub fn new(
        registry: &str,
        insecure: &[String],
        credentials: Credentials,
        verbose: bool,
        timeouts: Timeouts,
    ) -> Result<Client, Error> {
        // reqwest is built without a default crypto provider; ring is ours.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let scheme = if is_insecure(registry, insecure) { "http" } else { "https" };
        let http = Http::builder()
            .user_agent(concat!("ship/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .redirect(redirect_policy())
            .build()
            .map_err(|e| Error::Unreachable { registry: registry.into(), detail: e.to_string() })?;
        let docker_hub = registry == super::reference::DOCKER_HUB;
        let base =
            if docker_hub { "https://registry-1.docker.io".to_string() } else { format!("{scheme}://{registry}") };
        let base = Url::parse(&base).map_err(|e| Error::Unreachable {
            registry: registry.into(),
            detail: format!("{base} is not a valid URL ({e})"),
        })?;
        Ok(Client {
            http,
            registry: registry.to_string(),
            base,
            credentials,
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(false),
            stats: Stats::default(),
            verbose,
            timeouts,
            deadline: Deadline::start(timeouts.overall),
        })
    }

    /// Time left before the overall deadline, or the error that says it passed.
    pub fn remaining(&self, what: &str) -> Result<Duration, Error> {
        self.deadline.remaining().ok_or_else(|| Error::Deadline {
            registry: self.registry.clone(),
            what: what.to_string(),
            overall: net::human_duration(self.timeouts.overall),
        })
    }

    /// Sleep for `d`, or until the deadline if that comes first (then Err).
    pub fn pause(&self, d: Duration, what: &str) -> Result<(), Error> {
        std::thread::sleep(d.min(self.remaining(what)?));
        self.remaining(what).map(|_| ())
    }

    /// `path` (starting with /v2/), a relative `Location` or an absolute URL, as a full URL.
    pub fn url(&self, path_or_url: &str) -> Result<Url, Error> {
        self.base.join(path_or_url).map_err(|e| Error::Http {
            registry: self.registry.clone(),
            what: "following a Location".into(),
            status: 0,
            detail: format!("{:?} is not a URL ({e})", loggable(path_or_url)),
        })
    }

    /// Whether `url` is the registry itself: the only place credentials go.
    fn is_registry(&self, url: &Url) -> bool {
        net::origin(url) == net::origin(&self.base)
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
        if *self.basic.lock().expect("basic lock")
            && let Some((u, p)) = self.credentials.basic()
        {
            return rb.basic_auth(u, Some(p));
        }
        rb
    }

    fn unauthorized(&self, detail: String) -> Error {
        Error::Unauthorized {
            registry: self.registry.clone(),
            source_desc: self.credentials.source.describe().to_string(),
            detail: super::Detail(detail),
        }
    }

    pub fn unreachable(&self, e: &reqwest::Error) -> Error {
        Error::Unreachable { registry: self.registry.clone(), detail: net::describe(e, &self.timeouts) }
    }

    /// Answer a 401: fetch a token for `scope`, or switch to Basic.
    fn handle_challenge(&self, resp: &Response, scope: &str) -> Result<(), Error> {
        let headers = resp.headers().get_all("www-authenticate").iter().filter_map(|h| h.to_str().ok());
        let challenge = super::auth::parse_challenges(headers)
            .map_err(|why| Error::BadChallenge { registry: self.registry.clone(), why })?;
        match challenge {
            Challenge::Basic => {
                if self.credentials.basic().is_none() {
                    return Err(self.unauthorized("the registry requires a login".into()));
                }
                *self.basic.lock().expect("basic lock") = true;
                Ok(())
            }
            Challenge::Bearer { realm, service, .. } => self.fetch_token(&realm, service.as_deref(), scope),
        }
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<(), Error> {
        let bad_realm = |why: String| Error::BadChallenge { registry: self.registry.clone(), why };
        let realm_url =
            Url::parse(realm).map_err(|e| bad_realm(format!("its token realm {realm:?} is not a URL ({e})")))?;
        if self.base.scheme() == "https" && realm_url.scheme() != "https" {
            return Err(bad_realm(format!(
                "its token realm {} is plain http while the registry is https; ship does not send credentials down to http",
                loggable(realm)
            )));
        }
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            query.push(("scope", s));
        }
        let what = format!("the token request to {}", loggable(realm));
        let mut rb = self.http.get(realm_url).query(&query).timeout(self.timeouts.request.min(self.remaining(&what)?));
        // The registry named this realm in its challenge: it is where its credentials go.
        if let Some((u, p)) = self.credentials.basic() {
            rb = rb.basic_auth(u, Some(p));
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let resp = rb.send().map_err(|e| Error::Unreachable {
            registry: self.registry.clone(),
            detail: format!("token service {}: {}", loggable(realm), net::describe(&e, &self.timeouts)),
        })?;
        let status = resp.status();
        if self.verbose {
            eprintln!("ship: GET {} (token) -> {}", loggable(realm), status.as_u16());
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(format!("the token service answered {}", status.as_u16())));
        }
        let token_error = |detail: String| Error::Http {
            registry: self.registry.clone(),
            what: "token request".into(),
            status: status.as_u16(),
            detail,
        };
        if !status.is_success() {
            let body = resp.text().unwrap_or_default();
            return Err(token_error(envelope_detail(&body)));
        }
        let body: serde_json::Value =
            resp.json().map_err(|e| token_error(format!("unreadable token response: {}", e.without_url())))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| token_error("the token response has no token".into()))?;
        // Refresh a little early; 60 s is the spec's default lifetime.
        let lifetime = body.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(60).max(10);
        let expiry = Instant::now() + Duration::from_secs(lifetime - lifetime / 10);
        self.tokens.lock().expect("token lock").insert(scope.to_string(), (Secret::new(token), expiry));
        Ok(())
    }

    /// Send with auth; retry 5xx, 429 and connection failures when `retry`, within the overall
    /// deadline. The caller reads every other status itself.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        retry: bool,
        build: &dyn Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Error> {
        self.send_sized(method, url, scope, retry, 0, build)
    }

    /// [`Client::send`] for a request whose body is `body_size` bytes: its deadline is the
    /// per-request one for every 4 MiB it carries (the rate a 4 MiB chunk is allowed), still
    /// within the overall deadline.
    pub fn send_sized(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        retry: bool,
        body_size: u64,
        build: &dyn Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let per_request = self.timeouts.request.saturating_mul(body_size.div_ceil(4 << 20).max(1) as u32);
        let url = self.url(url)?;
        let shown = format!("{method} {}", loggable(url.as_str()));
        let to_registry = self.is_registry(&url);
        if self.base.scheme() == "https" && url.scheme() != "https" {
            return Err(Error::Downgrade { registry: self.registry.clone(), url: loggable(url.as_str()).to_string() });
        }
        let mut attempt = 0;
        let mut challenged = false;
        loop {
            let remaining = self.remaining(&shown)?;
            let mut rb = build(self.http.request(method.clone(), url.clone())).timeout(per_request.min(remaining));
            if to_registry {
                rb = self.authorize(rb, scope);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let result = rb.send().map_err(|e| e.without_url());
            if self.verbose {
                match &result {
                    Ok(r) => eprintln!("ship: {shown} -> {}", r.status().as_u16()),
                    Err(e) => eprintln!("ship: {shown} -> {}", net::describe(e, &self.timeouts)),
                }
            }
            match result {
                Err(e) => {
                    if retry && attempt < RETRIES {
                        self.pause(backoff(attempt), &shown)?;
                        attempt += 1;
                        continue;
                    }
                    return Err(self.unreachable(&e));
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !to_registry => {
                    return Err(Error::ForeignUnauthorized {
                        registry: self.registry.clone(),
                        url: loggable(url.as_str()).to_string(),
                    });
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    // One challenge per call: a cached token may have expired, so the first 401
                    // fetches a new one; a 401 to a token fetched just now is final.
                    self.tokens.lock().expect("token lock").remove(scope);
                    if challenged {
                        let insufficient = resp
                            .headers()
                            .get_all("www-authenticate")
                            .iter()
                            .any(|h| h.to_str().is_ok_and(|h| h.contains("insufficient_scope")));
                        let body = resp.text().unwrap_or_default();
                        if insufficient {
                            return Err(Error::Denied {
                                registry: self.registry.clone(),
                                repository: scope.split(':').nth(1).unwrap_or_default().to_string(),
                                what: format!("{method} (scope {scope})"),
                                source_desc: self.credentials.source.describe().to_string(),
                                detail: super::Detail(envelope_detail(&body)),
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
                    self.pause(wait, &shown)?;
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
            }
        }
    }

    /// An error for an unexpected answer to `what` on `repository`.
    pub fn status_error(&self, resp: Response, what: &str, repository: &str) -> Error {
        self.status_error_codes(resp, what, repository).0
    }

    /// The same, with the OCI error codes of the answer's envelope.
    pub fn status_error_codes(&self, resp: Response, what: &str, repository: &str) -> (Error, Vec<String>) {
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        let codes = envelope_codes(&body);
        let err = self.error_for(status, &body, &codes, what, repository);
        (err, codes)
    }

    fn error_for(&self, status: StatusCode, body: &str, codes: &[String], what: &str, repository: &str) -> Error {
        let detail = super::Detail(envelope_detail(body));
        match status {
            StatusCode::FORBIDDEN => Error::Denied {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                what: what.to_string(),
                source_desc: self.credentials.source.describe().to_string(),
                detail,
            },
            StatusCode::NOT_FOUND if codes.iter().any(|c| c == "NAME_UNKNOWN") => {
                Error::NameUnknown { registry: self.registry.clone(), repository: repository.to_string(), detail }
            }
            StatusCode::NOT_FOUND => Error::NotFound {
                registry: self.registry.clone(),
                repository: repository.to_string(),
                what: what.to_string(),
                detail,
            },
            StatusCode::UNAUTHORIZED => self.unauthorized(detail.0),
            _ => Error::Http {
                registry: self.registry.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                detail: if detail.0.is_empty() { "(no explanation in the answer)".into() } else { detail.0 },
            },
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
    fn nothing_goes_from_https_down_to_http_and_other_hosts_are_not_the_registry() {
        let creds = Credentials {
            source: super::super::auth::Source::Flags,
            username: Some("u".into()),
            password: Some(Secret::new("p")),
        };
        let c = Client::new("registry.example", &[], creds, false, Timeouts::default()).unwrap();
        let err = c.send(Method::PUT, "http://127.0.0.1:9/v2/x/blobs/uploads/1", "s", false, &|rb| rb).unwrap_err();
        assert!(matches!(err, Error::Downgrade { .. }), "{err}");
        assert!(c.is_registry(&c.url("/v2/x").unwrap()));
        assert!(c.is_registry(&c.url("https://registry.example:443/v2/x").unwrap()));
        assert!(!c.is_registry(&c.url("https://cdn.example/blob").unwrap()));
        assert!(!c.is_registry(&c.url("https://registry.example:8443/v2/x").unwrap()));
        assert_eq!(c.stats.requests.load(Ordering::Relaxed), 0, "no request may have been sent");
    }

    #[test]
    fn empty_details_print_nothing() {
        assert_eq!(super::super::Detail(String::new()).to_string(), "");
        assert_eq!(super::super::Detail("DENIED: no".into()).to_string(), " (DENIED: no)");
    }

    #[test]
    fn backoff_is_capped() {
        assert!(backoff(0) >= BACKOFF_BASE && backoff(0) <= BACKOFF_BASE.mul_f64(1.5));
        assert!(backoff(30) <= BACKOFF_CAP.mul_f64(1.5));
    }
}
