//! Cross builds for linux/arm64 from this (x86_64) machine, against the real cross toolchain
//! (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, the rustup target) and run under
//! qemu-aarch64-static.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `ship build --json --platform linux/arm64` of the shared project `name`: the facts.
fn build_arm64(name: &str) -> serde_json::Value {
    let manifest = shared_project(name);
    let target_dir = repo_root().join("target").join(name).join("target");
    let out = ok(ship()
        .args(["build", "--json", "--platform", "linux/arm64", "--toolchain", "host", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir));
    serde_json::from_str(&out).unwrap()
}

fn readelf(args: &[&str], bin: &std::path::Path) -> String {
    ok(Command::new("readelf").args(args).arg(bin))
}

#[test]
fn an_arm64_build_is_static_aarch64_reproducible_and_serves_under_qemu() {
    for tool in ["aarch64-linux-gnu-gcc", "qemu-aarch64-static", "readelf", "skopeo"] {
        require(tool);
    }
    let facts = build_arm64("cross-a");
    assert_eq!(facts["platform"], "linux/arm64", "{facts}");
    assert_eq!(facts["target"], "aarch64-unknown-linux-gnu");
    assert_eq!(facts["static_linking"], true);
    // The linker the facts name is the one ship may trust for aarch64: mold from 2.0 on, else
    // the cross gcc's GNU ld, with a warning that says why.
    let mold = host_tool("mold").map(|m| ok(Command::new(m).arg("--version")));
    let mold_major = mold.as_deref().and_then(|v| v.split_whitespace().nth(1)?.split('.').next()?.parse::<u32>().ok());
    if mold_major.is_some_and(|m| m >= 2) {
        assert_eq!(facts["linker"], "mold", "{facts}");
    } else {
        assert_eq!(facts["linker"], "gnu-ld", "{facts}");
        if mold.is_some() {
            let warnings = facts["warnings"].to_string();
            assert!(warnings.contains("is not proven to link working static binaries for linux/arm64"), "{warnings}");
        }
    }
    let flags = facts["rustflags"].to_string();
    assert!(flags.contains("-Clinker=") && flags.contains("aarch64-linux-gnu-gcc"), "{flags}");

    let bin = std::path::PathBuf::from(facts["binary"].as_str().unwrap());
    let header = readelf(&["-h"], &bin);
    assert!(header.contains("AArch64"), "{header}");
    let segments = readelf(&["-l", "-W"], &bin);
    assert!(!segments.contains("INTERP"), "a dynamic loader is requested:\n{segments}");

    // It serves, under user-mode emulation.
    let port = free_port();
    let mut child = Command::new("qemu-aarch64-static")
        .arg(&bin)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answer = wait_http(port, "/api/health", Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer.map(|(status, _)| status), Some(200), "no 200 from /api/health under qemu");

    // A second checkout at another path gives the same bytes.
    let again = build_arm64("cross-b");
    let other = std::path::PathBuf::from(again["binary"].as_str().unwrap());
    assert_ne!(bin, other);
    assert!(std::fs::read(&bin).unwrap() == std::fs::read(&other).unwrap(), "the arm64 binaries differ");

    // The image of it is an arm64 (v8) image.
    let t = TempDir::new();
    write_ca(&t.join("ca.pem"));
    let out = format!("oci:{}:v1", t.join("img").display());
    ok(ship()
        .args(["image", "--quiet", "--binary"])
        .arg(&bin)
        .arg("--ca-bundle")
        .arg(t.join("ca.pem"))
        .args(["--output", &out]));
    let cfg: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", "--config"]).arg(&out))).unwrap();
    assert_eq!((cfg["architecture"].as_str(), cfg["variant"].as_str()), (Some("arm64"), Some("v8")), "{cfg}");
}

#[test]
fn a_missing_cross_piece_or_an_unknown_platform_fails_before_compiling() {
    let t = TempDir::new();
    let manifest = shared_project("cross-missing");
    // A PATH with cargo and rustc but no aarch64 C compiler.
    let bin = t.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["cargo", "rustc"] {
        std::os::unix::fs::symlink(sysroot_bin(tool), bin.join(tool)).unwrap();
    }
    let target_dir = t.join("target");
    let build = |platform: &str| {
        run(ship()
            .args(["build", "--platform", platform, "--toolchain", "host", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir)
            .env("PATH", &bin))
    };
    let (success, _, stderr) = build("linux/arm64");
    assert!(!success);
    assert!(
        stderr.contains(
            "error: no C cross compiler for linux/arm64 (aarch64-linux-gnu-gcc is not on PATH): install gcc-aarch64-linux-gnu"
        ),
        "{stderr}"
    );
    assert!(!target_dir.join("aarch64-unknown-linux-gnu").exists(), "cargo ran");

    let (success, _, stderr) = build("linux/s390x");
    assert!(!success);
    assert!(stderr.contains("error: --platform \"linux/s390x\" is not linux/amd64 or linux/arm64"), "{stderr}");

    // An image holds one platform until image indexes land: two are refused, with the reason.
    let (success, _, stderr) = run(ship()
        .args(["image", "--platform", "linux/amd64,linux/arm64", "--manifest-path"])
        .arg(&manifest)
        .arg("--output")
        .arg(format!("oci:{}", t.join("img").display())));
    assert!(!success);
    assert!(stderr.contains("is not one platform here (an image index over several is not made yet)"), "{stderr}");
    assert!(!t.join("img").exists());
}
