//! Same inputs, same digest: whatever the paths, mtimes, modes, umask, HOME, USER or cwd.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Copy the inputs into `dir` with the given modes and mtime.
fn stage_inputs(dir: &Path, bin_mode: u32, file_mode: u32, mtime: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(hello_service(), dir.join("hello-service")).unwrap();
    std::fs::write(dir.join("app.toml"), "greeting = \"hi\"\n").unwrap();
    write_ca(&dir.join("ca.pem"));
    std::fs::set_permissions(dir.join("hello-service"), std::fs::Permissions::from_mode(bin_mode)).unwrap();
    std::fs::set_permissions(dir.join("app.toml"), std::fs::Permissions::from_mode(file_mode)).unwrap();
    for f in ["hello-service", "app.toml", "ca.pem"] {
        let ok = Command::new("touch").args(["-d", mtime]).arg(dir.join(f)).status().unwrap().success();
        assert!(ok);
    }
}

/// Run ship under `sh` so that the umask applies, in `cwd`, with the given HOME and USER.
fn ship_image(inputs: &Path, cwd: &Path, umask: &str, home: &str, user: &str, output: &str) -> String {
    std::fs::create_dir_all(cwd).unwrap();
    let script = format!("umask {umask}; exec \"$@\"");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script, "sh", env!("CARGO_BIN_EXE_ship"), "image", "--quiet"])
        .arg("--binary")
        .arg(inputs.join("hello-service"))
        .arg("--file")
        .arg(format!("{}:/etc/app.toml", inputs.join("app.toml").display()))
        .arg("--ca-bundle")
        .arg(inputs.join("ca.pem"))
        .args(["--port", "3000", "--env", "RUST_LOG=info", "--label", "team=core", "--source-date-epoch", "1700000000"])
        .args(["--output", output])
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home)
        .env("USER", user)
        .env("LOGNAME", user);
    ok(&mut cmd).trim().to_string()
}

#[test]
fn same_inputs_give_the_same_digest_and_bytes_everywhere() {
    let t = TempDir::new();
    stage_inputs(&t.join("in-alpha"), 0o755, 0o644, "2001-02-03 04:05:06");
    stage_inputs(&t.join("deeper/in-beta"), 0o700, 0o600, "2020-12-31 23:59:59");
    let out1 = t.join("out1/layout");
    let out2 = t.join("elsewhere/out2");
    let d1 = ship_image(
        &t.join("in-alpha"),
        &t.join("cwd1"),
        "022",
        "/tmp/home-shipauditor",
        "shipauditor",
        &format!("oci:{}:v1", out1.display()),
    );
    let d2 = ship_image(
        &t.join("deeper/in-beta"),
        &t.join("cwd2/x"),
        "077",
        "/root",
        "someoneelse",
        &format!("oci:{}:v1", out2.display()),
    );
    assert!(d1.starts_with("sha256:") && d1.len() == 71, "stdout is one digest: {d1:?}");
    assert_eq!(d1, d2, "the manifest digest changed with paths, modes, mtimes, umask or environment");
    assert_eq!(tree_bytes(&out1), tree_bytes(&out2), "the layouts differ byte for byte");

    // docker-archive is deterministic too.
    let a1 = t.join("a1.tar");
    let a2 = t.join("a2.tar");
    let e1 = ship_image(
        &t.join("in-alpha"),
        &t.join("cwd1"),
        "022",
        "/h1",
        "u1",
        &format!("docker-archive:{}:hello:1", a1.display()),
    );
    let e2 = ship_image(
        &t.join("deeper/in-beta"),
        &t.join("cwd2"),
        "077",
        "/h2",
        "u2",
        &format!("docker-archive:{}:hello:1", a2.display()),
    );
    assert_eq!(e1, d1, "the archive reports the same manifest digest");
    assert_eq!(e1, e2);
    assert_eq!(std::fs::read(&a1).unwrap(), std::fs::read(&a2).unwrap(), "the archives differ");
}

#[test]
fn no_build_machine_path_or_user_in_any_byte() {
    let t = TempDir::new();
    let inputs = t.join("inputs-markerdir");
    stage_inputs(&inputs, 0o755, 0o644, "2001-02-03 04:05:06");
    let out = t.join("out");
    ship_image(
        &inputs,
        &t.join("cwd-markercwd"),
        "022",
        "/tmp/home-markerhome",
        "markeruser",
        &format!("oci:{}:v1", out.display()),
    );
    // Decompress every layer and read the config and manifest; search them all.
    let mut haystack: Vec<u8> = Vec::new();
    for (name, bytes) in tree_bytes(&out) {
        if name.starts_with("blobs/") && bytes.starts_with(&[0x1f, 0x8b]) {
            let mut d = flate2::read::MultiGzDecoder::new(&bytes[..]);
            std::io::Read::read_to_end(&mut d, &mut haystack).unwrap();
        } else {
            haystack.extend_from_slice(&bytes);
        }
    }
    let text = String::from_utf8_lossy(&haystack);
    for marker in ["markerdir", "markercwd", "markerhome", "markeruser", &t.path().to_string_lossy()] {
        assert!(!text.contains(marker), "{marker:?} leaked into the image");
    }
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    if host.len() >= 6 {
        assert!(!text.contains(host), "the host name leaked into the image");
    }
}
