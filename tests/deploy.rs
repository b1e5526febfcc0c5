//! `ship deploy` against a local stand-in for Railway's GraphQL API that validates every
//! document against Railway's published schema, and a deploy webhook.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const TOKEN: &str = "railway-secret-token-123";
const IMAGE: &str = "ghcr.io/acme/hello@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn deploy(rw: &RailwayStandIn, extra: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = ship();
    cmd.args(["deploy", IMAGE, "--service", "svc-1", "--environment", "env-1", "--api-url", &rw.url()])
        .args(extra)
        .env_remove("RAILWAY_TOKEN")
        .env_remove("RAILWAY_PROJECT_TOKEN")
        .env_remove("RAILWAY_WEBHOOK_URL")
        .env_remove("SHIP_RAILWAY_API");
    if !env.iter().any(|(k, _)| k.starts_with("RAILWAY_")) {
        cmd.env("RAILWAY_TOKEN", TOKEN);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "the token was printed:\n{stdout}\n{stderr}");
    (success, stdout, stderr)
}

fn error_line(stderr: &str) -> &str {
    stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default()
}

#[test]
fn every_graphql_document_is_valid_against_railways_schema() {
    let docs: Vec<_> = std::fs::read_dir(repo_root().join("src/deploy/graphql"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .collect();
    assert_eq!(docs.len(), ship::deploy::railway::DOCUMENTS.len(), "a document is not used, or not a file");
    let validate = |files: &[std::path::PathBuf]| {
        run(std::process::Command::new("python3")
            .arg(repo_root().join("tests/support/railway.py"))
            .arg("validate")
            .arg(railway_schema())
            .args(files))
    };
    let (success, stdout, stderr) = validate(&docs);
    assert!(success, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("{} documents valid", docs.len())), "{stdout}");
    // The validator does catch a renamed field.
    let t = TempDir::new();
    let renamed = t.join("renamed.graphql");
    std::fs::write(&renamed, ship::deploy::railway::DEPLOYMENT.replace("status", "state")).unwrap();
    let (success, stdout, _) = validate(&[renamed]);
    assert!(!success && stdout.contains("Cannot query field 'state' on type 'Deployment'"), "{stdout}");
}

#[test]
fn a_deploy_points_the_service_at_the_digest_and_waits_for_success() {
    let rw = RailwayStandIn::start(json!({
        "token": TOKEN,
        "statuses": ["QUEUED", "BUILDING", "DEPLOYING", "SUCCESS"],
        "transient": {"ServiceInstanceDeploy": 2},
    }));
    let t = TempDir::new();
    std::fs::write(
        t.join("ship.toml"),
        "[deploy.railway]\nhealthcheck-path = \"/api/health\"\nhealthcheck-timeout = 30\nrestart-policy = \"ON_FAILURE\"\n",
    )
    .unwrap();
    let (success, stdout, stderr) = deploy(&rw, &["--json", "--config", t.join("ship.toml").to_str().unwrap()], &[]);
    assert!(success, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["deployment_id"], "dep-new");
    assert_eq!(report["status"], "SUCCESS");
    assert_eq!(report["statuses"], json!(["QUEUED", "BUILDING", "DEPLOYING", "SUCCESS"]));
    assert_eq!(report["image"], IMAGE);
    assert!(stderr.contains("deployment dep-new: BUILDING"), "{stderr}");
    let reqs = rw.requests();
    assert!(reqs.iter().all(|r| r["valid"] == true && r["auth"] == "bearer"), "{reqs:?}");
    let update = reqs.iter().find(|r| r["operation"] == "ServiceInstanceUpdate").expect("an update");
    assert_eq!(update["variables"]["serviceId"], "svc-1");
    assert_eq!(update["variables"]["environmentId"], "env-1");
    let input = &update["variables"]["input"];
    assert_eq!(input["source"]["image"], IMAGE, "Railway must get exactly the digest reference");
    assert_eq!(input["healthcheckPath"], "/api/health");
    assert_eq!(input["healthcheckTimeout"], 30);
    assert_eq!(input["restartPolicyType"], "ON_FAILURE");
    assert!(input.get("registryCredentials").is_none());
    // Two 503s, then the deploy went through: three attempts, one deployment.
    assert_eq!(reqs.iter().filter(|r| r["operation"] == "ServiceInstanceDeploy").count(), 3);
}

#[test]
fn a_project_token_goes_in_its_own_header() {
    let rw = RailwayStandIn::start(json!({"token": TOKEN, "project": true}));
    let (success, stdout, stderr) = deploy(&rw, &[], &[("RAILWAY_PROJECT_TOKEN", TOKEN)]);
    assert!(success, "{stderr}");
    assert_eq!(stdout.trim(), "dep-new");
    assert!(rw.requests().iter().all(|r| r["auth"] == "project"));
}

#[test]
fn failures_are_one_sentence_naming_the_status_and_the_deployment() {
    for (status, _) in [("FAILED", ()), ("CRASHED", ())] {
        let rw = RailwayStandIn::start(json!({"token": TOKEN, "statuses": ["QUEUED", status]}));
        let (success, _, stderr) = deploy(&rw, &[], &[]);
        assert!(!success);
        assert_eq!(error_line(&stderr), format!("error: deployment dep-new ended {status}"), "{stderr}");
        assert!(stderr.contains("hint: "), "{stderr}");
    }
    // A GraphQL errors array: Railway's message in the sentence.
    let rw = RailwayStandIn::start(json!({"token": TOKEN, "errors": {"ServiceInstanceUpdate": "Service not found"}}));
    let (success, _, stderr) = deploy(&rw, &[], &[]);
    assert!(!success);
    assert_eq!(error_line(&stderr), "error: Railway refused ServiceInstanceUpdate: Service not found", "{stderr}");
    // A wrong token: 401, naming where the token came from, never the token.
    let rw = RailwayStandIn::start(json!({"token": "another-token"}));
    let (success, _, stderr) = deploy(&rw, &[], &[]);
    assert!(!success);
    assert_eq!(error_line(&stderr), "error: Railway rejected the token from RAILWAY_TOKEN (HTTP 401)", "{stderr}");
    // No token at all.
    let mut cmd = ship();
    cmd.args(["deploy", IMAGE, "--service", "s", "--environment", "e"])
        .env_remove("RAILWAY_TOKEN")
        .env_remove("RAILWAY_PROJECT_TOKEN");
    let (success, _, stderr) = run(&mut cmd);
    assert!(!success && error_line(&stderr).contains("no Railway token"), "{stderr}");
    // A tag is not a digest.
    let mut cmd = ship();
    cmd.args(["deploy", "ghcr.io/acme/hello:latest", "--service", "s", "--environment", "e"])
        .env("RAILWAY_TOKEN", TOKEN);
    let (success, _, stderr) = run(&mut cmd);
    assert!(!success);
    assert!(error_line(&stderr).contains("names no digest; ship deploys exactly what it pushed"), "{stderr}");
}

#[test]
fn a_hang_ends_at_the_deploy_timeout() {
    let rw = RailwayStandIn::start(json!({"token": TOKEN, "hang": ["Deployment"]}));
    let start = Instant::now();
    let (success, _, stderr) = deploy(&rw, &["--timeout", "4s"], &[]);
    let took = start.elapsed();
    assert!(!success);
    assert!(took < Duration::from_secs(15), "took {took:?} against a 4 s timeout");
    assert!(error_line(&stderr).contains("deploy timeout of 4 s passed"), "{stderr}");
}

#[test]
fn a_failed_deployment_is_rolled_back_when_asked() {
    let rw = RailwayStandIn::start(json!({"token": TOKEN, "statuses": ["BUILDING", "CRASHED"], "previous": "dep-old"}));
    let (success, _, stderr) = deploy(&rw, &["--rollback-on-failure"], &[]);
    assert!(!success);
    assert_eq!(
        error_line(&stderr),
        "error: deployment dep-new ended CRASHED; rolled back to deployment dep-old",
        "{stderr}"
    );
    let reqs = rw.requests();
    let rollback = reqs.iter().find(|r| r["operation"] == "DeploymentRollback").expect("a rollback was sent");
    assert_eq!(rollback["variables"]["id"], "dep-old");
    // The previous deployment was looked up before the new one was made.
    let pos = |op: &str| reqs.iter().position(|r| r["operation"] == op).unwrap();
    assert!(pos("SuccessfulDeployments") < pos("ServiceInstanceDeploy"));
    // Without the flag, nothing is rolled back.
    let rw = RailwayStandIn::start(json!({"token": TOKEN, "statuses": ["CRASHED"], "previous": "dep-old"}));
    let (success, _, _) = deploy(&rw, &[], &[]);
    assert!(!success);
    assert!(rw.requests().iter().all(|r| r["operation"] != "DeploymentRollback"));
}

/// An HTTP server answering every request with `status`, recording the bodies it got.
fn http_server(status: u16) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            seen2.lock().unwrap().push(format!("{head}\n{}", String::from_utf8_lossy(&body)));
            let mut conn = conn;
            let _ = write!(conn, "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (port, seen)
}

#[test]
fn the_health_url_must_answer_2xx() {
    let rw = RailwayStandIn::start(json!({"token": TOKEN, "statuses": ["SUCCESS"]}));
    let (healthy, _) = http_server(200);
    let (success, stdout, stderr) =
        deploy(&rw, &["--json", "--health-url", &format!("http://127.0.0.1:{healthy}/api/health")], &[]);
    assert!(success, "{stderr}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["health"], 200);

    let rw = RailwayStandIn::start(json!({"token": TOKEN, "statuses": ["SUCCESS"], "previous": "dep-old"}));
    let (sick, _) = http_server(503);
    let url = format!("http://127.0.0.1:{sick}/api/health");
    let (success, _, stderr) = deploy(&rw, &["--health-url", &url, "--timeout", "6s", "--rollback-on-failure"], &[]);
    assert!(!success);
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: deployment dep-new is up, but {url} did not answer 2xx (HTTP 503); rolled back to deployment dep-old"
        ),
        "{stderr}"
    );
}

#[test]
fn a_webhook_gets_the_image_digest_and_revision_and_its_url_stays_secret() {
    let (port, seen) = http_server(200);
    let url = format!("http://127.0.0.1:{port}/hooks/webhook-secret-456");
    let mut cmd = ship();
    cmd.args(["deploy", IMAGE, "--revision", "abc123", "--json"])
        .env("RAILWAY_WEBHOOK_URL", &url)
        .env_remove("RAILWAY_TOKEN");
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(success, "{stderr}");
    assert!(!stdout.contains("webhook-secret-456") && !stderr.contains("webhook-secret-456"));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((report["mode"].as_str(), report["status"].as_str()), (Some("webhook"), Some("ACCEPTED")));
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    // The body is the last line of what the server recorded.
    let body: serde_json::Value = serde_json::from_str(got[0].lines().last().unwrap()).unwrap();
    assert_eq!(body["image"], IMAGE);
    assert_eq!(body["digest"], IMAGE.split_once('@').unwrap().1);
    assert_eq!(body["revision"], "abc123");
    // A webhook that refuses: a clear error, still without the URL's secret.
    let (port, _) = http_server(500);
    let mut cmd = ship();
    cmd.args(["deploy", IMAGE]).env("RAILWAY_WEBHOOK_URL", format!("http://127.0.0.1:{port}/hooks/webhook-secret-456"));
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(!success);
    assert!(error_line(&stderr).contains("answered HTTP 500"), "{stderr}");
    assert!(!stdout.contains("webhook-secret-456") && !stderr.contains("webhook-secret-456"));
}
