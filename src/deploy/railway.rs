//! Railway's GraphQL API: point the service at the digest, deploy, wait for the deployment to
//! be final, check health, roll back on failure when asked.

use super::{Auth, Error, Railway, Report, Target};
use crate::net::{self, Deadline};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The documents, as sent. Each is a file beside this one, validated against Railway's schema
/// by the test suite.
pub const SERVICE_INSTANCE_UPDATE: &str = include_str!("graphql/service_instance_update.graphql");
pub const SERVICE_INSTANCE_DEPLOY: &str = include_str!("graphql/service_instance_deploy.graphql");
pub const DEPLOYMENT: &str = include_str!("graphql/deployment.graphql");
pub const SUCCESSFUL_DEPLOYMENTS: &str = include_str!("graphql/successful_deployments.graphql");
pub const DEPLOYMENT_ROLLBACK: &str = include_str!("graphql/deployment_rollback.graphql");

/// Every document and its operation name, for the schema test.
pub const DOCUMENTS: &[(&str, &str)] = &[
    ("ServiceInstanceUpdate", SERVICE_INSTANCE_UPDATE),
    ("ServiceInstanceDeploy", SERVICE_INSTANCE_DEPLOY),
    ("Deployment", DEPLOYMENT),
    ("SuccessfulDeployments", SUCCESSFUL_DEPLOYMENTS),
    ("DeploymentRollback", DEPLOYMENT_ROLLBACK),
];

pub const DEFAULT_API: &str = "https://backboard.railway.com/graphql/v2";

/// Attempts of one API call after the first, for connection failures, 5xx and 429.
const RETRIES: u32 = 4;

/// How long a rollback may take, whatever time the deploy used.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(60);

/// Statuses after which a deployment does not change by itself.
const FAILED: &[&str] = &["FAILED", "CRASHED", "REMOVED", "SKIPPED"];

#[derive(Deserialize)]
struct Response<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<GraphqlError>,
}

#[derive(Deserialize)]
struct GraphqlError {
    message: String,
}

struct Api<'a> {
    http: Client,
    settings: &'a Railway,
    deadline: Deadline,
}

impl Api<'_> {
    /// POST one document; retry what can be retried within the deploy's deadline; GraphQL
    /// `errors` become one sentence with Railway's message.
    fn call<T: DeserializeOwned>(&self, op: &'static str, document: &str, variables: Value) -> Result<T, Error> {
        let body = json!({"query": document, "operationName": op, "variables": variables});
        let mut attempt = 0;
        loop {
            let remaining = self.deadline.remaining().ok_or_else(|| Error::Unreachable {
                url: self.settings.api_url.clone(),
                detail: format!(
                    "the deploy timeout of {} passed during {op}",
                    net::human_duration(self.deadline.overall)
                ),
            })?;
            let mut rb = self
                .http
                .post(&self.settings.api_url)
                .json(&body)
                .timeout(self.settings.timeouts.request.min(remaining));
            rb = match &self.settings.auth {
                Auth::Bearer(t) => rb.bearer_auth(t.expose()),
                Auth::Project(t) => rb.header("Project-Access-Token", t.expose()),
            };
            let retry_in = match rb.send() {
                Err(_) if attempt < RETRIES => Some(backoff(attempt, None).min(remaining)),
                Err(e) => {
                    return Err(Error::Unreachable {
                        url: self.settings.api_url.clone(),
                        detail: net::describe(&e.without_url(), &self.settings.timeouts),
                    });
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        return Err(Error::Unauthorized {
                            source_desc: self.settings.auth.source(),
                            status: status.as_u16(),
                        });
                    }
                    if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) && attempt < RETRIES {
                        let after =
                            resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse().ok());
                        Some(backoff(attempt, after.map(Duration::from_secs)).min(remaining))
                    } else {
                        let text = resp.text().unwrap_or_default();
                        let parsed: Option<Response<T>> = serde_json::from_str(&text).ok();
                        return match parsed {
                            Some(r) if !r.errors.is_empty() => Err(Error::Railway {
                                op,
                                message: r.errors.iter().map(|e| e.message.trim()).collect::<Vec<_>>().join("; "),
                            }),
                            Some(Response { data: Some(d), .. }) if status.is_success() => Ok(d),
                            _ => Err(Error::Http {
                                op,
                                status: status.as_u16(),
                                detail: text.chars().take(200).collect(),
                            }),
                        };
                    }
                }
            };
            std::thread::sleep(retry_in.expect("set when retrying"));
            attempt += 1;
        }
    }
}

fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .unwrap_or_else(|| Duration::from_millis(500).saturating_mul(1 << attempt.min(5)))
        .min(Duration::from_secs(30))
}

#[derive(Deserialize)]
struct Deployment {
    id: String,
    status: String,
    url: Option<String>,
    #[serde(rename = "staticUrl")]
    static_url: Option<String>,
}

/// Deploy `target` on Railway and wait. `progress` hears about each status change.
pub fn deploy(settings: &Railway, target: &Target, progress: &dyn Fn(&str)) -> Result<Report, Error> {
    let start = Instant::now();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = Client::builder()
        .user_agent(concat!("ship/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(settings.timeouts.connect)
        .timeout(settings.timeouts.request)
        .build()
        .map_err(|e| Error::Unreachable { url: settings.api_url.clone(), detail: e.to_string() })?;
    let api = Api { http, settings, deadline: Deadline::start(settings.timeout) };
    let image = target.image();
    let ids = json!({"serviceId": settings.service, "environmentId": settings.environment});

    // What to roll back to, asked before the new deployment exists.
    let previous = if settings.rollback_on_failure {
        #[derive(Deserialize)]
        struct Edges {
            deployments: Connection,
        }
        #[derive(Deserialize)]
        struct Connection {
            edges: Vec<Edge>,
        }
        #[derive(Deserialize)]
        struct Edge {
            node: Deployment,
        }
        let found: Edges = api.call("SuccessfulDeployments", SUCCESSFUL_DEPLOYMENTS, ids.clone())?;
        found.deployments.edges.into_iter().next().map(|e| e.node.id)
    } else {
        None
    };

    let mut input = json!({"source": {"image": image}});
    if let Some(p) = &settings.healthcheck_path {
        input["healthcheckPath"] = json!(p);
    }
    if let Some(t) = settings.healthcheck_timeout {
        input["healthcheckTimeout"] = json!(t);
    }
    if let Some(r) = &settings.restart_policy {
        input["restartPolicyType"] = json!(r);
    }
    if let Some((user, password)) = &settings.registry_credentials {
        input["registryCredentials"] = json!({"username": user, "password": password.expose()});
    }
    progress(&format!("pointing Railway service {} at {image}", settings.service));
    let _: Value = api.call(
        "ServiceInstanceUpdate",
        SERVICE_INSTANCE_UPDATE,
        json!({"serviceId": settings.service, "environmentId": settings.environment, "input": input}),
    )?;
    #[derive(Deserialize)]
    struct Deployed {
        #[serde(rename = "serviceInstanceDeployV2")]
        id: String,
    }
    let deployed: Deployed = api.call("ServiceInstanceDeploy", SERVICE_INSTANCE_DEPLOY, ids)?;
    let id = deployed.id;
    progress(&format!("deployment {id} started"));

    let mut report = Report {
        mode: "railway",
        image,
        deployment_id: Some(id.clone()),
        status: None,
        statuses: Vec::new(),
        url: None,
        health: None,
        rolled_back_to: None,
        duration_ms: 0,
    };
    // A rollback is the safety net: it gets a deadline of its own, so that a deploy that used
    // up its time can still be rolled back.
    let rescue = Api { http: api.http.clone(), settings, deadline: Deadline::start(ROLLBACK_TIMEOUT) };
    let rollback = |report: &mut Report| -> Result<Option<String>, Error> {
        let Some(prev) = &previous else { return Ok(None) };
        let _: Value = rescue.call("DeploymentRollback", DEPLOYMENT_ROLLBACK, json!({"id": prev}))?;
        progress(&format!("rolled back to deployment {prev}"));
        report.rolled_back_to = Some(prev.clone());
        Ok(Some(prev.clone()))
    };

    // Poll with backoff until the status is final or the deploy timeout passes.
    let mut wait = Duration::from_millis(500);
    loop {
        #[derive(Deserialize)]
        struct Found {
            deployment: Deployment,
        }
        let polled = match api.call::<Found>("Deployment", DEPLOYMENT, json!({"id": id})) {
            Ok(f) => f.deployment,
            Err(Error::Unreachable { .. }) if api.deadline.remaining().is_none() => {
                let status = report.status.clone().unwrap_or_else(|| "unknown".into());
                let rolled_back = rollback(&mut report)?;
                return Err(Error::TimedOut {
                    id,
                    status,
                    timeout: net::human_duration(settings.timeout),
                    rolled_back,
                });
            }
            Err(e) => return Err(e),
        };
        if report.status.as_deref() != Some(polled.status.as_str()) {
            progress(&format!("deployment {id}: {}", polled.status));
            report.statuses.push(polled.status.clone());
        }
        report.status = Some(polled.status.clone());
        report.url = polled.static_url.or(polled.url).filter(|u| !u.is_empty());
        if polled.status == "SUCCESS" {
            break;
        }
        if FAILED.contains(&polled.status.as_str()) {
            let rolled_back = rollback(&mut report)?;
            return Err(Error::Failed { id, status: polled.status, rolled_back });
        }
        let Some(remaining) = api.deadline.remaining() else {
            let rolled_back = rollback(&mut report)?;
            return Err(Error::TimedOut {
                id,
                status: polled.status,
                timeout: net::human_duration(settings.timeout),
                rolled_back,
            });
        };
        std::thread::sleep(wait.min(remaining));
        wait = (wait * 2).min(Duration::from_secs(5));
    }

    if let Some(url) = &settings.health_url {
        match check_health(&api, url, progress) {
            Ok(code) => report.health = Some(code),
            Err(last) => {
                let rolled_back = rollback(&mut report)?;
                return Err(Error::Unhealthy { id, url: url.clone(), last, rolled_back });
            }
        }
    }
    report.duration_ms = start.elapsed().as_millis();
    Ok(report)
}

/// GET the health URL until it answers 2xx: at most 10 tries, 2 s apart, within the deadline.
/// Err is the last answer or failure, in words.
fn check_health(api: &Api, url: &str, progress: &dyn Fn(&str)) -> Result<u16, String> {
    let mut last = String::from("no answer");
    for attempt in 0..10 {
        let Some(remaining) = api.deadline.remaining() else { break };
        match api.http.get(url).timeout(Duration::from_secs(10).min(remaining)).send() {
            Ok(r) if r.status().is_success() => {
                progress(&format!("{url} answered {}", r.status().as_u16()));
                return Ok(r.status().as_u16());
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = net::describe(&e.without_url(), &api.settings.timeouts),
        }
        if attempt < 9 {
            std::thread::sleep(Duration::from_secs(2).min(api.deadline.remaining().unwrap_or_default()));
        }
    }
    Err(last)
}
