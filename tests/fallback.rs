//! The Docker fallback and the CI files: Dockerfile.production under hadolint, the workflows
//! under actionlint, and the `docker buildx build` command ship runs (against a stand-in docker
//! CLI: no Docker daemon can run on our test machines).

mod common;
use common::*;
use std::process::Command;

#[test]
fn the_dockerfile_is_clean_under_hadolint() {
    require("hadolint");
    let (success, stdout, stderr) = run(Command::new("hadolint").arg(repo_root().join("Dockerfile.production")));
    assert!(success, "hadolint:\n{stdout}{stderr}");
    // The parts the fallback promises.
    let text = std::fs::read_to_string(repo_root().join("Dockerfile.production")).unwrap();
    for stage in ["AS chef", "AS planner", "AS builder", "AS runtime"] {
        assert!(text.contains(stage), "no {stage} stage");
    }
    for needle in [
        "--mount=type=cache,target=/usr/local/cargo/registry",
        "--mount=type=secret,id=aws_secret_access_key",
        "USER 65532:65532",
        "EXPOSE 3000",
        "cargo chef cook",
    ] {
        assert!(text.contains(needle), "{needle} missing");
    }
    for line in text.lines().filter(|l| l.starts_with("ARG ") && l.contains("_IMAGE=")) {
        assert!(line.contains("@sha256:"), "a base image is not pinned by digest: {line}");
    }
    assert!(
        !text.lines().any(|l| (l.starts_with("ARG") || l.starts_with("ENV")) && l.contains("AWS_SECRET")),
        "a credential as ARG or ENV"
    );
}

#[test]
fn the_workflows_are_clean_under_actionlint() {
    require("actionlint");
    let workflows: Vec<_> =
        std::fs::read_dir(repo_root().join(".github/workflows")).unwrap().map(|e| e.unwrap().path()).collect();
    for name in ["ship.yml", "docker-build.yml", "ci.yml"] {
        assert!(workflows.iter().any(|w| w.ends_with(name)), "{name} is missing");
    }
    let (success, stdout, stderr) = run(Command::new("actionlint").args(&workflows).current_dir(repo_root()));
    assert!(success, "actionlint:\n{stdout}{stderr}");
}

#[test]
fn ship_run_with_the_docker_builder_runs_buildx_with_secrets_by_name_and_reports_its_digest() {
    let manifest = shared_project("fallback-tests");
    let dir = manifest.parent().unwrap();
    std::fs::copy(repo_root().join("Dockerfile.production"), dir.join("Dockerfile.production")).unwrap();
    let t = TempDir::new();
    let bin = t.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(repo_root().join("tests/support/fake-docker"), bin.join("docker")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let digest = format!("sha256:{}", "b".repeat(64));
    let log = t.join("docker-args");
    let mut cmd = ship();
    cmd.args(["run", "--builder", "dockerfile", "--image", "ghcr.io/acme/hello-service", "--tag", "v1", "--json"])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--config")
        .arg(t.join("ship.toml"))
        .env("PATH", path)
        .env("FAKE_DOCKER_LOG", &log)
        .env("FAKE_DOCKER_DIGEST", &digest)
        .env("XDG_CACHE_HOME", t.join("cache"))
        .env("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
        .env("AWS_SECRET_ACCESS_KEY", "super-secret-aws-key")
        .env_remove("GITHUB_ACTIONS");
    std::fs::write(t.join("ship.toml"), "[cache]\nbucket = \"acme-sccache\"\nprefix = \"ci\"\n").unwrap();
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(success, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["reference"], format!("ghcr.io/acme/hello-service@{digest}"));
    assert_eq!(report["steps"][0]["name"], "docker build");
    let args: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_string).collect();
    let joined = args.join(" ");
    assert!(joined.starts_with("buildx build --file "), "{joined}");
    for want in [
        "--build-arg MANIFEST=Cargo.toml",
        "--build-arg PACKAGE=hello-service",
        "--build-arg BIN=hello-service",
        "--build-arg SOURCE_DATE_EPOCH=1700000000",
        "--build-arg SCCACHE_BUCKET=acme-sccache",
        "--secret id=aws_access_key_id,env=AWS_ACCESS_KEY_ID",
        "--secret id=aws_secret_access_key,env=AWS_SECRET_ACCESS_KEY",
        "--tag ghcr.io/acme/hello-service:v1",
        "--push --metadata-file",
    ] {
        assert!(joined.contains(want), "{want} missing: {joined}");
    }
    assert!(joined.contains(&format!("type=local,src={}", t.join("cache/ship/buildx").display())), "{joined}");
    for secret in ["super-secret-aws-key", "AKIAFAKEFAKEFAKE"] {
        assert!(!joined.contains(secret), "a credential is in docker's arguments");
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a credential was printed");
    }
    // Inside GitHub Actions, the gha cache.
    let mut cmd = ship();
    cmd.args(["run", "--builder", "dockerfile", "--image", "ghcr.io/acme/hello-service", "--quiet"])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
        .env("FAKE_DOCKER_LOG", &log)
        .env("FAKE_DOCKER_DIGEST", &digest)
        .env("GITHUB_ACTIONS", "true");
    assert_eq!(ok(&mut cmd).trim(), format!("ghcr.io/acme/hello-service@{digest}"));
    let joined = std::fs::read_to_string(&log).unwrap().replace('\n', " ");
    assert!(joined.contains("--cache-from type=gha --cache-to type=gha,mode=max"), "{joined}");

    // Without a registry the Docker builder has nowhere to push: one clear sentence.
    let mut cmd = ship();
    cmd.args(["run", "--builder", "dockerfile"])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()));
    let (success, _, stderr) = run(&mut cmd);
    assert!(!success);
    assert!(stderr.contains("error: no registry to push to: the Docker builder pushes as it builds"), "{stderr}");
}
