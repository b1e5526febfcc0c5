//! `ship run` and `ship plan` end to end: the real registry with token auth, podman running
//! what was pushed or written, the plan's inputs against the digests they make.

mod common;
use common::registry::*;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The shared checkout of hello-service these tests build (see `common::shared_project`).
fn project(_: &Path) -> PathBuf {
    shared_project("pipeline-tests")
}

/// `ship <args>` on the project with the host toolchain and a target dir shared by these tests
/// (the first build compiles hello-service; later ones are no-ops).
fn ship_on(manifest: &Path, args: &[&str]) -> Command {
    let mut cmd = ship();
    cmd.args(args)
        .arg("--manifest-path")
        .arg(manifest)
        .args(["--toolchain", "host"])
        .arg("--target-dir")
        .arg(repo_root().join("target/pipeline-tests"))
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("REGISTRY_AUTH_FILE", "/nonexistent.json")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("SHIP_REGISTRY_USERNAME")
        .env_remove("SHIP_REGISTRY_PASSWORD");
    cmd
}

fn write_ca_bundle(t: &TempDir) -> String {
    write_ca(&t.join("ca.pem"));
    t.join("ca.pem").display().to_string()
}

#[test]
fn ship_run_pushes_to_a_token_registry_and_podman_runs_the_digest() {
    let reg = Registry::start(Auth::Token { users: vec![("pusher", "push-pw-789", vec!["pull", "push"])] });
    let t = TempDir::new();
    let manifest = project(&t.join("svc"));
    let ca = write_ca_bundle(&t);
    let summary = t.join("summary.md");
    let image = format!("{}/acme/hello", reg.host());
    let run = |json: bool| {
        let mut cmd = ship_on(&manifest, &["run", "--image", &image, "--ca-bundle", &ca, "--port", "3000"]);
        if json {
            cmd.arg("--json");
        }
        cmd.env("SHIP_REGISTRY_USERNAME", "pusher")
            .env("SHIP_REGISTRY_PASSWORD", "push-pw-789")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("XDG_CACHE_HOME", t.join("cache"));
        let (success, stdout, stderr) = run(&mut cmd);
        assert!(success, "{stderr}");
        assert!(!stdout.contains("push-pw-789") && !stderr.contains("push-pw-789"), "the password was printed");
        stdout
    };
    let stdout = run(false);
    let line = stdout.trim();
    let (reference, digest) = line.split_once('@').unwrap_or_else(|| panic!("not REF@sha256: {line}"));
    assert_eq!(reference, image, "{line}");
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{line}");

    // The same run again, as JSON: the same digest, every step with its facts and duration.
    let report: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    assert_eq!(report["schema"], 1);
    assert_eq!(report["ok"], true);
    assert_eq!(report["digest"], digest);
    assert_eq!(report["reference"], line);
    assert_eq!(report["tags"], serde_json::json!(["latest"]));
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["build", "image", "push"]);
    assert!(report["steps"].as_array().unwrap().iter().all(|s| s["duration_ms"].is_u64()));
    assert_eq!(report["steps"][2]["facts"]["bytes_uploaded"], 0, "the second push uploads nothing");
    assert_eq!(report["steps"][0]["facts"]["epoch"]["value"], 1_700_000_000, "the epoch is the commit time");

    // The step summary has both runs.
    let md = std::fs::read_to_string(&summary).unwrap();
    for needle in ["### ship run", "| build |", "| image |", "| push |", digest, "- tags: `latest`"] {
        assert!(md.contains(needle), "{needle} missing from the step summary:\n{md}");
    }
    assert_eq!(md.matches("### ship run").count(), 2);

    // podman pulls exactly that digest and the service answers.
    let podman = Podman::new();
    ok(podman.cmd().args(["pull", "--tls-verify=false", "-q", "--creds", "pusher:push-pw-789", line]));
    let port = free_port();
    ok(podman.cmd().args(["run", "-d", "--name", "ran", "--network=host", "-e", &format!("PORT={port}"), line]));
    let (status, body) = wait_http(port, "/api/health", Duration::from_secs(30)).expect("no answer");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn ship_run_without_a_registry_writes_a_layout_and_an_archive_that_podman_runs() {
    let t = TempDir::new();
    let manifest = project(&t.join("svc"));
    let ca = write_ca_bundle(&t);
    let (success, stdout, stderr) = run(&mut ship_on(&manifest, &["run", "--ca-bundle", &ca]));
    assert!(success, "{stderr}");
    let (layout, digest) = stdout.trim().split_once(' ').unwrap_or_else(|| panic!("{stdout}"));
    let dir = repo_root().join("target/pipeline-tests/ship/hello-service");
    assert_eq!(layout, format!("oci:{}:latest", dir.display()));
    assert!(stderr.contains("podman load -i") && stderr.contains("docker load -i"), "{stderr}");
    require("skopeo");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").args(["inspect"]).arg(layout))).unwrap();
    assert_eq!(inspect["Digest"], digest);
    let archive = dir.with_extension("tar");
    assert!(archive.is_file());
    let podman = Podman::new();
    ok(podman.cmd().arg("load").arg("-i").arg(&archive));
    let port = free_port();
    ok(podman.cmd().args([
        "run",
        "-d",
        "--network=host",
        "-e",
        &format!("PORT={port}"),
        "localhost/hello-service:latest",
    ]));
    let (status, _) = wait_http(port, "/api/health", Duration::from_secs(30)).expect("no answer");
    assert_eq!(status, 200);
}

#[test]
fn ship_run_push_derives_the_ghcr_name_from_the_git_remote_and_plan_says_so() {
    let t = TempDir::new();
    let manifest = project(&t.join("svc"));
    let (success, stdout, stderr) = run(&mut ship_on(&manifest, &["plan", "--push", "--json"]));
    assert!(success, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let push = plan["steps"].as_array().unwrap().iter().find(|s| s["step"] == "push").expect("a push step");
    assert_eq!(push["settings"]["repository"]["value"], "ghcr.io/acme/hello-service");
    assert_eq!(push["settings"]["repository"]["source"], "from git remote origin");
}

/// `ship plan --json` on the project with extra flags.
fn plan(manifest: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", "--json"];
    args.extend_from_slice(extra);
    let (success, stdout, stderr) = run(&mut ship_on(manifest, &args));
    assert!(success, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// `ship image` of the project (a no-op build after the first) with extra flags: its digest.
fn image_digest(t: &TempDir, manifest: &Path, extra: &[&str]) -> String {
    let out = format!("oci:{}", t.join(&format!("img-{}", extra.join("-").replace(['/', ':'], "_"))).display());
    let mut args = vec!["image", "--quiet", "--output", &out];
    args.extend_from_slice(extra);
    let (success, stdout, stderr) = run(&mut ship_on(manifest, &args));
    assert!(success, "{stderr}");
    stdout.trim().to_string()
}

#[test]
fn the_plan_names_every_input_and_changing_one_changes_the_digest() {
    let t = TempDir::new();
    let manifest = project(&t.join("svc"));
    let ca = write_ca_bundle(&t);
    let base = plan(&manifest, &["--ca-bundle", &ca]);
    assert_eq!(base["schema"], 1);
    for key in [
        "toolchain",
        "target",
        "revision",
        "dirty",
        "cargo_lock_sha256",
        "flake_lock_sha256",
        "source_date_epoch",
        "base",
        "ca_bundle_sha256",
        "compression",
        "ship_version",
    ] {
        assert!(base["inputs"].get(key).is_some(), "the plan lacks the input {key}: {base}");
    }
    assert_eq!(base["inputs"]["source_date_epoch"], 1_700_000_000);
    assert!(base["inputs"]["toolchain"].as_str().unwrap().starts_with("host:rustc-"));
    assert_eq!(base["inputs"]["ca_bundle_sha256"], ship::image::digest::sha256(&std::fs::read(&ca).unwrap()));
    let steps: Vec<&str> = base["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["toolchain", "build", "image", "write"]);
    let image_step = &base["steps"][2]["settings"];
    assert_eq!(image_step["ca-bundle"]["source"], "flag --ca-bundle");
    assert_eq!(image_step["compression"]["source"], "default");

    let digest = image_digest(&t, &manifest, &["--ca-bundle", &ca]);
    for (flags, input, want) in [
        (vec!["--source-date-epoch", "1234"], "source_date_epoch", serde_json::json!(1234)),
        (vec!["--compression", "zstd"], "compression", serde_json::json!("zstd")),
        (vec!["--base", "scratch"], "base", serde_json::json!("scratch")),
    ] {
        let mut all = vec!["--ca-bundle", ca.as_str()];
        all.extend(flags.iter().copied());
        let changed = plan(&manifest, &all);
        assert_eq!(changed["inputs"][input], want, "{flags:?}");
        assert_ne!(changed["inputs"], base["inputs"], "{flags:?} did not change the plan's inputs");
        assert_ne!(image_digest(&t, &manifest, &all), digest, "{flags:?} did not change the digest");
    }
    // And the same inputs give the same digest again.
    assert_eq!(image_digest(&t, &manifest, &["--ca-bundle", &ca]), digest);
}

#[test]
fn one_epoch_for_the_build_and_the_image() {
    let t = TempDir::new();
    let manifest = project(&t.join("svc"));
    let out = format!("oci:{}", t.join("img").display());
    let (success, stdout, stderr) =
        run(&mut ship_on(&manifest, &["image", "--json", "--source-date-epoch", "1234", "--output", &out]));
    assert!(success, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["build"]["source_date_epoch"], 1234, "the build got another epoch: {}", json["build"]);
    require("skopeo");
    // The layout also holds the SBOM and provenance artifacts, so skopeo needs the tag.
    let cfg: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", "--config"]).arg(format!("{out}:latest"))))
            .unwrap();
    assert_eq!(cfg["created"], "1970-01-01T00:20:34Z");
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["dev.ship.version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(labels["org.opencontainers.image.source"], "https://github.com/Acme/Hello-Service");
}

#[test]
fn a_binary_gives_one_digest_wherever_ship_runs() {
    let t = TempDir::new();
    let ca = write_ca_bundle(&t);
    let bin = hello_service();
    let other = t.join("other-project");
    std::fs::create_dir_all(other.join("src")).unwrap();
    std::fs::write(
        other.join("Cargo.toml"),
        "[package]\nname = \"other\"\nversion = \"9.9.9\"\nlicense = \"GPL-3.0\"\n",
    )
    .unwrap();
    std::fs::write(other.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::create_dir_all(t.join("empty")).unwrap();
    let mut digests = Vec::new();
    for (i, dir) in [repo_root(), t.join("empty"), other.clone()].iter().enumerate() {
        let out = format!("oci:{}", t.join(&format!("out{i}")).display());
        let mut cmd = ship();
        cmd.args(["image", "--quiet", "--binary"])
            .arg(&bin)
            .args(["--ca-bundle", &ca, "--output", &out])
            .current_dir(dir)
            .env_remove("SOURCE_DATE_EPOCH");
        digests.push(ok(&mut cmd).trim().to_string());
        require("skopeo");
        let cfg: serde_json::Value =
            serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", "--config"]).arg(&out))).unwrap();
        let labels = &cfg["config"]["Labels"];
        assert!(labels.get("org.opencontainers.image.version").is_none(), "labelled from {}: {labels}", dir.display());
        assert!(labels.get("org.opencontainers.image.revision").is_none(), "labelled from {}: {labels}", dir.display());
    }
    assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");
    // Naming the project labels the image from it.
    let out = format!("oci:{}", t.join("named").display());
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--binary"])
        .arg(&bin)
        .args(["--ca-bundle", &ca, "--output", &out, "--manifest-path"])
        .arg(other.join("Cargo.toml"));
    ok(&mut cmd);
    let cfg: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", "--config"]).arg(&out))).unwrap();
    assert_eq!(cfg["config"]["Labels"]["org.opencontainers.image.version"], "9.9.9");
}

#[test]
fn glob_workspace_members_are_found() {
    let t = TempDir::new();
    let ws = t.join("ws");
    std::fs::create_dir_all(ws.join("crates/svc/src")).unwrap();
    std::fs::create_dir_all(ws.join("crates/lib/src")).unwrap();
    std::fs::write(ws.join("Cargo.toml"), "[workspace]\nmembers = [\"crates/*\"]\nresolver = \"2\"\n").unwrap();
    std::fs::write(
        ws.join("crates/svc/Cargo.toml"),
        "[package]\nname = \"svc\"\nversion = \"3.1.4\"\nedition = \"2021\"\nlicense = \"MIT\"\n",
    )
    .unwrap();
    std::fs::write(ws.join("crates/svc/src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(
        ws.join("crates/lib/Cargo.toml"),
        "[package]\nname = \"lib\"\nversion = \"0.0.1\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(ws.join("crates/lib/src/lib.rs"), "").unwrap();
    ok(Command::new("cargo").args(["generate-lockfile", "--offline", "--manifest-path"]).arg(ws.join("Cargo.toml")));
    let manifest = ws.join("Cargo.toml");
    let p = plan(&manifest, &[]);
    let build = &p["steps"][1]["settings"];
    assert_eq!(build["package"]["value"], "svc", "{p}");
    assert_eq!(build["bin"]["value"], "svc");
    // An image of any binary, labelled from the named workspace: the member's version.
    let ca = write_ca_bundle(&t);
    let out = format!("oci:{}", t.join("img").display());
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--binary"])
        .arg(hello_service())
        .args(["--ca-bundle", &ca, "--output", &out, "--manifest-path"])
        .arg(&manifest);
    ok(&mut cmd);
    let cfg: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", "--config"]).arg(&out))).unwrap();
    assert_eq!(cfg["config"]["Labels"]["org.opencontainers.image.version"], "3.1.4");
    assert_eq!(cfg["config"]["Labels"]["org.opencontainers.image.licenses"], "MIT");
}

#[test]
fn a_failed_step_stops_the_run_and_earlier_results_stay() {
    let t = TempDir::new();
    let manifest = project(&t.join("svc"));
    let ca = write_ca_bundle(&t);
    let summary = t.join("summary.md");
    // Nothing listens on this port: the push fails after the image was assembled.
    let image = format!("127.0.0.1:{}/acme/hello", free_port());
    let mut cmd = ship_on(&manifest, &["run", "--image", &image, "--ca-bundle", &ca, "--timeout", "20s"]);
    cmd.env("GITHUB_STEP_SUMMARY", &summary);
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(!success);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("error: cannot reach") && stderr.contains("connection refused"), "{stderr}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("failed at push") && md.contains("| build |") && md.contains("| image |"), "{md}");
}

#[test]
fn ship_run_deploys_the_pushed_digest_on_railway() {
    let reg = Registry::start(Auth::Token { users: vec![("pusher", "push-pw-789", vec!["pull", "push"])] });
    let rw = RailwayStandIn::start(serde_json::json!({
        "token": "rw-token-xyz",
        "statuses": ["QUEUED", "BUILDING", "DEPLOYING", "SUCCESS"],
    }));
    let t = TempDir::new();
    let manifest = project(&t.join("svc"));
    let ca = write_ca_bundle(&t);
    std::fs::write(
        t.join("ship.toml"),
        format!(
            "[image]\nname = \"{}/acme/deployed\"\nports = [3000]\n[deploy.railway]\nservice = \"svc-9\"\nenvironment = \"env-9\"\nhealthcheck-path = \"/api/health\"\nregistry-credentials = true\n",
            reg.host()
        ),
    )
    .unwrap();
    let summary = t.join("summary.md");
    let mut cmd = ship_on(&manifest, &["run", "--json", "--ca-bundle", &ca]);
    cmd.arg("--config")
        .arg(t.join("ship.toml"))
        .env("SHIP_REGISTRY_USERNAME", "pusher")
        .env("SHIP_REGISTRY_PASSWORD", "push-pw-789")
        .env("RAILWAY_TOKEN", "rw-token-xyz")
        .env("SHIP_RAILWAY_API", rw.url())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("XDG_CACHE_HOME", t.join("cache"));
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(success, "{stderr}");
    for secret in ["rw-token-xyz", "push-pw-789"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} was printed");
    }
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let reference = report["reference"].as_str().unwrap().to_string();
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["build", "image", "push", "deploy"]);
    let deploy = &report["steps"][3]["facts"];
    assert_eq!(deploy["deployment_id"], "dep-new");
    assert_eq!(deploy["status"], "SUCCESS");

    // Railway was given exactly the pushed digest reference, and the push credentials.
    let update = rw.requests().into_iter().find(|r| r["operation"] == "ServiceInstanceUpdate").expect("an update");
    assert_eq!(update["variables"]["input"]["source"]["image"], reference.as_str());
    assert_eq!(update["variables"]["input"]["registryCredentials"]["username"], "pusher");
    assert_eq!(update["variables"]["input"]["healthcheckPath"], "/api/health");
    assert!(rw.requests().iter().all(|r| r["valid"] == true));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("| deploy |") && md.contains("deployment dep-new: QUEUED → BUILDING → DEPLOYING → SUCCESS"),
        "{md}"
    );

    // What Railway would pull runs.
    let podman = Podman::new();
    ok(podman.cmd().args(["pull", "--tls-verify=false", "-q", "--creds", "pusher:push-pw-789", &reference]));
    let port = free_port();
    ok(podman.cmd().args(["run", "-d", "--network=host", "-e", &format!("PORT={port}"), &reference]));
    let (status, _) = wait_http(port, "/api/health", Duration::from_secs(30)).expect("no answer");
    assert_eq!(status, 200);
}
