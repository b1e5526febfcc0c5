//! The command line as users see it: the help texts and the main error messages, pinned as
//! snapshots (tests/snapshots/) so that a change of wording shows up in review. Refresh them
//! with `INSTA_UPDATE=always cargo test --test cli` and read the diff.

mod common;
use clap::CommandFactory;
use common::*;

#[test]
fn the_cli_definition_is_consistent() {
    ship::cli::Cli::command().debug_assert();
}

fn help(args: &[&str]) -> String {
    let (_, stdout, _) = run(ship().args(args));
    stdout
}

#[test]
fn help_texts() {
    insta::assert_snapshot!("help", help(&["--help"]));
    for cmd in ["run", "plan", "build", "image", "push", "pull", "deploy", "verify", "cache", "toolchain", "doctor"] {
        insta::assert_snapshot!(format!("help_{cmd}"), help(&[cmd, "--help"]));
    }
}

/// stderr of a failing command run in `dir`, with that directory's path replaced by `<dir>`.
fn error_of(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = ship();
    cmd.args(args).current_dir(dir).env("DOCKER_CONFIG", "/nonexistent").env("REGISTRY_AUTH_FILE", "/nonexistent.json");
    for v in [
        "SHIP_REGISTRY_USERNAME",
        "SHIP_REGISTRY_PASSWORD",
        "GITHUB_TOKEN",
        "RAILWAY_TOKEN",
        "RAILWAY_PROJECT_TOKEN",
        "RAILWAY_WEBHOOK_URL",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(!success, "{args:?} succeeded: {stdout}");
    assert!(stdout.is_empty(), "{args:?} printed a result: {stdout}");
    let mut text = stderr.replace(&dir.display().to_string(), "<dir>");
    // The dynamic loader's path depends on the machine's architecture.
    if let Some(start) = text.find("(it needs ") {
        let end = text[start..].find(')').map_or(text.len(), |e| start + e + 1);
        text.replace_range(start..end, "(it needs <interpreter>)");
    }
    text
}

const DIGEST_REF: &str = "ghcr.io/acme/app@sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn main_error_messages() {
    let t = TempDir::new();
    let dir = t.path();
    std::fs::write(dir.join("script.sh"), "#!/bin/sh\n").unwrap();
    std::fs::write(dir.join("true"), std::fs::read("/bin/true").unwrap()).unwrap();
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ("no_manifest", vec!["build", "--toolchain", "host"], vec![]),
        ("missing_binary", vec!["image", "--binary", "missing", "--output", "oci:out"], vec![]),
        ("not_elf", vec!["image", "--binary", "script.sh", "--output", "oci:out"], vec![]),
        ("dynamic_binary", vec!["image", "--binary", "true", "--output", "oci:out"], vec![]),
        ("bad_port", vec!["image", "--binary", "true", "--port", "http", "--output", "oci:out"], vec![]),
        ("bad_output", vec!["image", "--binary", "true", "--output", "tarball:x"], vec![]),
        (
            "owned_label",
            vec!["image", "--binary", "true", "--label", "dev.ship.target=x", "--output", "oci:out"],
            vec![],
        ),
        ("bad_reference", vec!["push", "--from", "oci:out", "127.0.0.1:99999/x"], vec![]),
        ("upper_case_reference", vec!["push", "--from", "oci:out", "ghcr.io/Acme/App"], vec![]),
        ("push_from_archive", vec!["push", "--from", "docker-archive:x.tar", "ghcr.io/acme/app"], vec![]),
        (
            "password_without_user",
            vec!["pull", "127.0.0.1:1/x/y", "--output", "oci:out"],
            vec![("SHIP_REGISTRY_PASSWORD", "x")],
        ),
        ("no_bucket", vec!["cache", "stats"], vec![]),
        ("bad_duration", vec!["cache", "prune", "--bucket", "b", "--older-than", "soon"], vec![]),
        ("bad_timeout", vec!["push", "--from", "oci:out", "ghcr.io/acme/app", "--timeout", "forever"], vec![]),
        ("bad_toolchain", vec!["toolchain", "--toolchain", "rustup"], vec![]),
        (
            "deploy_without_digest",
            vec!["deploy", "ghcr.io/acme/app:latest", "--service", "s", "--environment", "e"],
            vec![("RAILWAY_TOKEN", "x")],
        ),
        ("deploy_without_token", vec!["deploy", &DIGEST_REF, "--service", "s", "--environment", "e"], vec![]),
    ];
    for (name, args, env) in cases {
        insta::assert_snapshot!(format!("error_{name}"), error_of(dir, &args, &env));
    }
    std::fs::write(dir.join("ship.toml"), "[image]\nname = \"x\"\n\nports = [3000, 99999]\n").unwrap();
    insta::assert_snapshot!(
        "error_ship_toml_value",
        error_of(dir, &["image", "--binary", "true", "--output", "oci:out"], &[])
    );
}
