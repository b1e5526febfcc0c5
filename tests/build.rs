//! `ship build`: mold, static linking, bit-identical binaries from different checkouts.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn git_commit(dir: &Path) {
    for args in [&["init", "-q"][..], &["add", "."], &["commit", "-q", "-m", "release"]] {
        let ok = Command::new("git")
            .args(["-c", "user.name=ship", "-c", "user.email=ship@example.com"])
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
            .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    }
}

#[test]
fn two_checkouts_give_bit_identical_binaries_and_images_that_run() {
    require("readelf");
    let t = TempDir::new();
    // No sccache here: every object is compiled in each checkout, so nothing cached can hide a
    // difference between them.
    let tc = toolchain_dir(&t.join("toolchain"), false);
    write_ca(&t.join("ca.pem"));
    let checkouts = [t.join("a/hello-service"), t.join("b/a/much/longer/path/hello-service")];
    let mut results = Vec::new();
    for (i, co) in checkouts.iter().enumerate() {
        copy_hello_service(co);
        git_commit(co);
        let out = t.join(&format!("image-{i}"));
        let mut cmd = ship();
        cmd.args(["image", "--json", "--toolchain"])
            .arg(&tc)
            .arg("--target-dir")
            .arg(t.join(&format!("target-{i}")))
            .arg("--ca-bundle")
            .arg(t.join("ca.pem"))
            .args(["--port", "3000", "--output", &format!("oci:{}:v1", out.display())])
            .current_dir(co);
        let json: serde_json::Value = serde_json::from_str(&ok(&mut cmd)).unwrap();
        results.push((json, out));
    }
    let (a, b) = (&results[0].0, &results[1].0);
    let bin_a = std::fs::read(a["build"]["binary"].as_str().unwrap()).unwrap();
    let bin_b = std::fs::read(b["build"]["binary"].as_str().unwrap()).unwrap();
    assert_ne!(a["build"]["binary"], b["build"]["binary"], "the target dirs were meant to differ");
    assert!(bin_a == bin_b, "the binaries differ between checkouts");
    assert_eq!(a["digest"], b["digest"], "the image digests differ between checkouts");

    // mold linked it, statically, and no checkout or target path is in it.
    let binary = a["build"]["binary"].as_str().unwrap();
    let comment = ok(Command::new("readelf").args(["-p", ".comment", binary]));
    assert!(comment.contains("mold"), "not linked by mold:\n{comment}");
    let headers = ok(Command::new("readelf").args(["-l", binary]));
    assert!(!headers.contains("INTERP"), "the binary is dynamically linked:\n{headers}");
    let text = String::from_utf8_lossy(&bin_a);
    assert!(!text.contains(&*t.path().to_string_lossy()), "a build path is in the binary");
    assert_eq!(a["build"]["linker"], "mold");
    assert_eq!(a["build"]["static_linking"], true);
    assert!(a["build"]["sccache"].is_null());
    // No bucket configured: no sccache, and nothing to warn about.
    assert!(!a["build"]["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("sccache")));

    // Labels record the build; the revision and time come from the (identical) commits.
    let config: serde_json::Value = serde_json::from_str(&ok(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:v1", results[0].1.display()))))
    .unwrap();
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["dev.ship.toolchain"], tc.display().to_string());
    assert!(labels["dev.ship.cargo-lock.sha256"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(labels["org.opencontainers.image.version"], "0.1.0");
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");

    // And it runs.
    let podman = Podman::new();
    let port = free_port();
    ok(podman
        .cmd()
        .args(["run", "-d", "--name", "built", "--network=host", "-e", &format!("PORT={port}")])
        .arg(format!("oci:{}:v1", results[0].1.display())));
    let (status, body) =
        wait_http(port, "/api/health", Duration::from_secs(30)).expect("no answer from the built image");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
}

fn fails_with(cmd: &mut Command, says: &str) -> String {
    let (success, stdout, stderr) = run(cmd);
    assert!(!success, "{cmd:?} succeeded");
    assert!(stdout.is_empty(), "stdout: {stdout}");
    let error =
        stderr.lines().rev().find(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(stderr.contains(says), "expected {says:?} in:\n{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("hint: ")), "no hint:\n{stderr}");
    error.to_string()
}

#[test]
fn build_errors_are_clear() {
    let t = TempDir::new();
    fails_with(ship().args(["build", "--toolchain", "host"]).current_dir(t.path()), "no Cargo.toml");
    fails_with(ship().args(["build", "--toolchain", "rustup"]).current_dir(t.path()), "--toolchain \"rustup\"");

    let hs = t.join("hs");
    copy_hello_service(&hs);
    fails_with(
        ship().args(["build", "--toolchain", "host", "--package", "nope"]).current_dir(&hs),
        "packages in this workspace: hello-service",
    );
    fails_with(
        ship().args(["build", "--toolchain", "host", "--bin", "nope"]).current_dir(&hs),
        "binaries: hello-service",
    );
    fails_with(ship().args(["build", "--toolchain", "host", "--require-hermetic"]).current_dir(&hs), "not hermetic");
    fails_with(ship().args(["build", "--toolchain", "/nonexistent/toolchain"]).current_dir(&hs), "has no bin/rustc");

    // Two binaries: ship asks which.
    let two = t.join("two");
    std::fs::create_dir_all(two.join("src/bin")).unwrap();
    std::fs::write(
        two.join("Cargo.toml"),
        "[package]\nname = \"two\"\nversion = \"0.1.0\"\nedition = \"2021\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(two.join("src/bin/one.rs"), "fn main() {}\n").unwrap();
    std::fs::write(two.join("src/bin/other.rs"), "fn main() {}\n").unwrap();
    ok(Command::new("cargo").args(["generate-lockfile", "--offline"]).current_dir(&two));
    fails_with(ship().args(["build", "--toolchain", "host"]).current_dir(&two), "several binaries (one, other)");

    // cargo's own diagnostics are shown, then one error line.
    std::fs::write(two.join("src/bin/one.rs"), "fn main() { let x: u32 = \"text\"; }\n").unwrap();
    let mut cmd = ship();
    cmd.args(["build", "--toolchain", "host", "--bin", "one", "--target-dir"]).arg(t.join("target")).current_dir(&two);
    let error = fails_with(&mut cmd, "mismatched types");
    assert!(error.contains("cargo build failed"), "{error}");
}

#[test]
fn build_prints_the_binary_path_and_facts() {
    let t = TempDir::new();
    let hs = t.join("hs");
    copy_hello_service(&hs);
    let tc = toolchain_dir(&t.join("tc"), false);
    let mut cmd = ship();
    cmd.args(["build", "--quiet", "--toolchain"])
        .arg(&tc)
        .arg("--target-dir")
        .arg(repo_root().join("target/ship-build-test"))
        .current_dir(&hs);
    let path = ok(&mut cmd);
    let path = Path::new(path.trim());
    assert!(
        path.is_file() && path.ends_with("x86_64-unknown-linux-gnu/release/hello-service")
            || path.ends_with("release/hello-service"),
        "{}",
        path.display()
    );
    let mut cmd = ship();
    cmd.args(["build", "--quiet", "--json", "--toolchain"])
        .arg(&tc)
        .arg("--target-dir")
        .arg(repo_root().join("target/ship-build-test"))
        .current_dir(&hs);
    let facts: serde_json::Value = serde_json::from_str(&ok(&mut cmd)).unwrap();
    assert_eq!(facts["binary"], path.display().to_string());
    assert_eq!(facts["toolchain"]["source"], "dir");
    assert!(facts["toolchain"]["versions"]["rustc"].as_str().unwrap().contains("commit-hash:"));
    let flags: Vec<String> = serde_json::from_value(facts["rustflags"].clone()).unwrap();
    assert!(flags.iter().any(|f| f == "-Ctarget-feature=+crt-static"), "{flags:?}");
    assert!(flags.iter().any(|f| f.starts_with("-Clink-arg=--ld-path=") && f.ends_with("mold")), "{flags:?}");
    assert!(flags.iter().any(|f| f.starts_with("--remap-path-prefix=") && f.ends_with("=/source")), "{flags:?}");
    assert!(facts["duration_ms"].as_u64().is_some());
}
