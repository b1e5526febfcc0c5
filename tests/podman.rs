//! hello-service, in images ship made, runs under podman and answers /api/health.

mod common;
use common::*;
use std::time::Duration;

fn image(t: &TempDir, output: &str) {
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--binary"])
        .arg(hello_service())
        .args(["--port", "3000", "--manifest-path"])
        .arg(repo_root().join("examples/hello-service/Cargo.toml"))
        .args(["--output", output])
        .current_dir(t.path());
    ok(&mut cmd);
}

/// Start `image_ref` on the host network, check /api/health, stop it with SIGTERM.
fn run_and_check(podman: &Podman, image_ref: &str) {
    let port = free_port();
    let name = format!("ship-test-{port}");
    let secret = "https://user:do-not-print@rpc.example/key";
    ok(podman
        .cmd()
        .args(["run", "-d", "--name", &name, "--network=host"])
        .args(["-e", &format!("PORT={port}"), "-e", &format!("RPC_URL={secret}")])
        .arg(image_ref));
    let answer = wait_http(port, "/api/health", Duration::from_secs(30));
    let logs = run(podman.cmd().args(["logs", &name])).2;
    let (status, body) = answer.unwrap_or_else(|| panic!("no answer from the container; logs:\n{logs}"));
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], "0.1.0");
    assert_eq!(health["rpc_url_set"], true);
    assert_eq!(health["subgraph_url_set"], false);
    assert!(!body.contains("do-not-print"), "the service printed a secret value");
    // It runs as the nonroot user.
    let user = ok(podman.cmd().args(["inspect", "--format", "{{.Config.User}}", &name]));
    assert_eq!(user.trim(), "65532:65532");
    ok(podman.cmd().args(["stop", "-t", "10", &name]));
    let code = ok(podman.cmd().args(["inspect", "--format", "{{.State.ExitCode}}", &name]));
    assert_eq!(code.trim(), "0", "hello-service did not exit cleanly on SIGTERM");
}

#[test]
fn oci_layout_runs_under_podman() {
    let podman = Podman::new();
    let t = TempDir::new();
    let layout = t.join("layout");
    image(&t, &format!("oci:{}:v1", layout.display()));
    run_and_check(&podman, &format!("oci:{}:v1", layout.display()));
}

#[test]
fn docker_archive_loads_with_podman_load_and_runs() {
    let podman = Podman::new();
    let t = TempDir::new();
    let archive = t.join("hello.tar");
    image(&t, &format!("docker-archive:{}:localhost/hello-archive:v1", archive.display()));
    let out = ok(podman.cmd().arg("load").arg("-i").arg(&archive));
    assert!(out.contains("localhost/hello-archive:v1"), "{out}");
    run_and_check(&podman, "localhost/hello-archive:v1");
}

#[test]
fn zstd_layout_runs_under_podman() {
    let podman = Podman::new();
    let t = TempDir::new();
    let layout = t.join("layout");
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--compression", "zstd", "--binary"])
        .arg(hello_service())
        .args(["--output", &format!("oci:{}:z", layout.display())]);
    ok(&mut cmd);
    run_and_check(&podman, &format!("oci:{}:z", layout.display()));
}
