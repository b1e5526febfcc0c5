//! Cross builds for linux/arm64 from this (x86_64) machine, against the real cross toolchain
//! (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, the rustup target) and run under
//! qemu-aarch64-static.

mod common;
use common::registry::{Auth, Registry, push};
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

/// The major version in `mold --version`'s output.
fn mold_major(version: Option<&str>) -> Option<u32> {
    version?.split_whitespace().nth(1)?.split('.').next()?.parse().ok()
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
    if mold_major(mold.as_deref()).is_some_and(|m| m >= 2) {
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

    // Several platforms make an index: not from one --binary, and not into a docker-archive.
    let (success, _, stderr) = run(ship()
        .args(["image", "--platform", "linux/amd64,linux/arm64", "--binary"])
        .arg(hello_service())
        .arg("--output")
        .arg(format!("oci:{}", t.join("img").display())));
    assert!(!success);
    assert!(stderr.contains("is not one platform with --binary (a binary is built for one"), "{stderr}");
    let (success, _, stderr) = run(ship()
        .args(["image", "--platform", "linux/amd64,linux/arm64", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--output")
        .arg(format!("docker-archive:{}", t.join("img.tar").display())));
    assert!(!success);
    assert!(stderr.contains("is not one platform for a docker-archive, which holds one image"), "{stderr}");
    assert!(!t.join("img").exists() && !t.join("img.tar").exists());
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        assert!(!target_dir.join(triple).exists(), "cargo built for {triple}");
    }
}

/// `ship image --platform linux/amd64,linux/arm64` of the shared project `name` into `out`:
/// the printed digest.
fn image_both(name: &str, out: &str) -> String {
    let manifest = shared_project(name);
    let target_dir = repo_root().join("target").join(name).join("target");
    ok(ship()
        .args(["image", "--quiet", "--platform", "linux/amd64,linux/arm64", "--toolchain", "host", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--output", out]))
    .trim()
    .to_string()
}

#[test]
fn two_platforms_make_one_reproducible_index_that_oci_tools_read() {
    for tool in ["aarch64-linux-gnu-gcc", "skopeo", "oci-image-tool", "podman"] {
        require(tool);
    }
    let t = TempDir::new();
    let out = format!("oci:{}:v1", t.join("multi").display());
    let digest = image_both("cross-a", &out);
    assert!(digest.starts_with("sha256:"), "{digest}");
    // From a checkout at another path: the same index, byte for byte.
    let again = image_both("cross-b", &format!("oci:{}:v1", t.join("again").display()));
    assert_eq!(digest, again, "the index digest depends on the checkout's path");

    let raw: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", "--raw"]).arg(&out))).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json", "{raw}");
    let platforms: Vec<(String, Option<String>)> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            (
                format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap()),
                p["variant"].as_str().map(String::from),
            )
        })
        .collect();
    assert_eq!(platforms, [("linux/amd64".to_string(), None), ("linux/arm64".to_string(), Some("v8".to_string()))]);
    // The generated base layer does not depend on the platform: one blob for both.
    let layers = |i: usize| {
        let d = raw["manifests"][i]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
        read_json(&t.join("multi/blobs/sha256").join(d))["layers"].clone()
    };
    assert_eq!(layers(0)[0]["digest"], layers(1)[0]["digest"]);
    assert_ne!(layers(0)[1]["digest"], layers(1)[1]["digest"]);

    let validated = ok(Command::new("oci-image-tool").args(["validate", "--type", "image"]).arg(t.join("multi")));
    assert!(validated.contains("Validation succeeded"), "{validated}");
    // skopeo picks the arm64 image out of the index.
    let arm = format!("oci:{}:arm", t.join("arm").display());
    ok(Command::new("skopeo").args(["copy", "--quiet", "--override-arch", "arm64"]).arg(&out).arg(&arm));
    let cfg: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").args(["inspect", "--config"]).arg(&arm))).unwrap();
    assert_eq!((cfg["architecture"].as_str(), cfg["variant"].as_str()), (Some("arm64"), Some("v8")), "{cfg}");

    // Pushed to distribution: the registry's index is ours, byte for byte, and podman pulls
    // the amd64 image through the index digest and runs it.
    let reg = Registry::start(Auth::None);
    let (success, report, out) = push(&t, &t.join("multi"), &format!("{}/acme/multi:v1", reg.host()), &[], None, &[]);
    assert!(success, "{out}");
    assert_eq!(report.unwrap()["digest"], digest.as_str());
    let remote = ok(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/acme/multi:v1", reg.host())));
    assert_eq!(ship::image::digest::sha256(remote.as_bytes()), digest, "the registry holds another index");
    let podman = Podman::new();
    let pinned = format!("{}/acme/multi@{digest}", reg.host());
    ok(podman.cmd().args(["pull", "--tls-verify=false", "-q", &pinned]));
    let port = free_port();
    ok(podman.cmd().args(["run", "-d", "--name", "multi", "--network=host", "-e", &format!("PORT={port}"), &pinned]));
    let (status, body) =
        wait_http(port, "/api/health", Duration::from_secs(30)).expect("no answer from the pulled image");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn doctor_says_what_a_platform_lacks_and_how_to_add_it() {
    require("aarch64-linux-gnu-gcc");
    let t = TempDir::new();
    // Everything here: ok, and the linker it would use.
    let (_, stdout, _) = run(ship().args(["doctor", "--platform", "linux/arm64"]).current_dir(t.path()));
    let ready = stdout.lines().find(|l| l.contains("platform linux/arm64")).unwrap_or_default().to_string();
    assert!(
        ready.starts_with("ok   platform linux/arm64: Rust std, ") && ready.contains("static glibc; links with"),
        "{stdout}"
    );
    // Without the cross compiler on PATH: a problem, with the packages to install.
    let bin = t.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["cargo", "rustc"] {
        std::os::unix::fs::symlink(sysroot_bin(tool), bin.join(tool)).unwrap();
    }
    let (success, out, _) =
        run(ship().args(["doctor", "--platform", "linux/arm64"]).current_dir(t.path()).env("PATH", &bin));
    assert!(!success, "a missing piece of an asked-for platform is a problem: {out}");
    assert!(
        out.contains(
            "FAIL platform linux/arm64: no C cross compiler for linux/arm64 (aarch64-linux-gnu-gcc is not on PATH)\n     fix: install gcc-aarch64-linux-gnu (Debian, Ubuntu: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)"
        ),
        "{out}"
    );
    // Not asked for: said, not counted.
    let (_, out, _) = run(ship().arg("doctor").current_dir(t.path()).env("PATH", &bin));
    assert!(out.contains("warn platform linux/arm64: no C cross compiler"), "{out}");
}

#[test]
fn toolchain_says_whether_it_can_build_for_a_platform() {
    require("aarch64-linux-gnu-gcc");
    let t = TempDir::new();
    let ready: serde_json::Value = serde_json::from_str(&ok(ship()
        .args(["toolchain", "--json", "--toolchain", "host", "--platform", "linux/arm64"])
        .current_dir(t.path())))
    .unwrap();
    let arm = &ready["platforms"][0];
    assert_eq!((arm["platform"].as_str(), arm["ready"].as_bool()), (Some("linux/arm64"), Some(true)), "{ready}");
    let mold = host_tool("mold").map(|m| ok(Command::new(m).arg("--version")));
    if mold_major(mold.as_deref()).is_some_and(|m| m >= 2) {
        assert_eq!(arm["linker"], "mold", "{arm}");
    } else {
        assert_eq!(arm["linker"], "GNU ld through /usr/bin/aarch64-linux-gnu-gcc", "{arm}");
    }
    // A toolchain without the cross compiler: the command fails and says what to install.
    let bin = t.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["cargo", "rustc"] {
        std::os::unix::fs::symlink(sysroot_bin(tool), bin.join(tool)).unwrap();
    }
    let (success, stdout, stderr) = run(ship()
        .args(["toolchain", "--toolchain", "host", "--platform", "linux/arm64"])
        .current_dir(t.path())
        .env("PATH", &bin));
    assert!(!success, "{stdout}");
    assert!(
        stdout.contains("linux/arm64: no C cross compiler for linux/arm64 (aarch64-linux-gnu-gcc is not on PATH)\n  fix: install gcc-aarch64-linux-gnu"),
        "{stdout}"
    );
    assert!(stderr.contains("error: this toolchain cannot build for 1 of the platforms asked for"), "{stderr}");
}
