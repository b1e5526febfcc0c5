//! `ship pull` and `ship image --base REF` against the real registry.

mod common;
use common::registry::*;
use common::*;
use std::process::Command;

fn image(t: &TempDir, dir: &str, extra: &[&str]) -> String {
    write_ca(&t.join("ca.pem"));
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--source-date-epoch", "1700000000", "--binary"])
        .arg(hello_service())
        .arg("--ca-bundle")
        .arg(t.join("ca.pem"))
        .args(extra)
        .args(["--output", &format!("oci:{}:v1", t.join(dir).display())])
        .env("XDG_CACHE_HOME", t.join("cache"));
    ok(&mut cmd).trim().to_string()
}

fn push(t: &TempDir, dir: &str, to: &str) -> serde_json::Value {
    let mut cmd = ship();
    cmd.args(["push", "--quiet", "--json", "--from", &format!("oci:{}:v1", t.join(dir).display()), to])
        .env("XDG_CACHE_HOME", t.join("cache"));
    serde_json::from_str(&ok(&mut cmd)).unwrap()
}

#[test]
fn pull_round_trips_byte_for_byte_and_picks_a_platform_from_an_index() {
    require("oci-image-tool");
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    let digest = image(&t, "src", &[]);
    push(&t, "src", &format!("{}/acme/hello:v1", reg.host()));

    let out = t.join("pulled");
    let mut cmd = ship();
    cmd.args([
        "pull",
        "--quiet",
        &format!("{}/acme/hello:v1", reg.host()),
        "--output",
        &format!("oci:{}:v1", out.display()),
    ]);
    assert_eq!(ok(&mut cmd).trim(), digest);
    let validated = ok(Command::new("oci-image-tool").args(["validate", "--type", "image"]).arg(&out));
    assert!(validated.contains("Validation succeeded"), "{validated}");
    let blobs = |d: &std::path::Path| tree_bytes(&d.join("blobs"));
    assert_eq!(blobs(&t.join("src")), blobs(&out), "the pulled blobs differ from the pushed ones");

    // By digest.
    let mut cmd = ship();
    cmd.args([
        "pull",
        "--quiet",
        &format!("{}/acme/hello@{digest}", reg.host()),
        "--output",
        &format!("oci:{}:bydigest", out.display()),
    ]);
    assert_eq!(ok(&mut cmd).trim(), digest);

    // An index with two platforms: the one asked for is chosen; a missing one is an error.
    let manifest_size =
        std::fs::metadata(t.join("src/blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap().len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": manifest_size, "platform": {"os": "linux", "architecture": "arm64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": manifest_size, "platform": {"os": "linux", "architecture": "amd64"}}
        ]
    });
    let (status, body) = raw(
        reg.port,
        "PUT",
        "/v2/acme/hello/manifests/multi",
        "application/vnd.oci.image.index.v1+json",
        index.to_string().as_bytes(),
    );
    assert_eq!(status, 201, "{body}");
    let mut cmd = ship();
    cmd.args([
        "pull",
        "--quiet",
        "--platform",
        "linux/amd64",
        &format!("{}/acme/hello:multi", reg.host()),
        "--output",
        &format!("oci:{}:multi", out.display()),
    ]);
    assert_eq!(ok(&mut cmd).trim(), digest);
    let mut cmd = ship();
    cmd.args([
        "pull",
        "--platform",
        "linux/s390x",
        &format!("{}/acme/hello:multi", reg.host()),
        "--output",
        &format!("oci:{}:none", t.join("none").display()),
    ]);
    let (success, _, stderr) = run(&mut cmd);
    assert!(!success && stderr.contains("no linux/s390x image"), "{stderr}");
    assert!(!t.join("none").exists(), "a failed pull wrote a layout");

    // An unknown repository, then an unknown tag: one clear error each.
    let mut cmd = ship();
    cmd.args([
        "pull",
        &format!("{}/nobody/here:v1", reg.host()),
        "--output",
        &format!("oci:{}", t.join("none").display()),
    ]);
    let (success, _, stderr) = run(&mut cmd);
    assert!(!success && stderr.contains("has no manifest v1 in nobody/here"), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
    let mut cmd = ship();
    cmd.args([
        "pull",
        &format!("{}/acme/hello:nope", reg.host()),
        "--output",
        &format!("oci:{}", t.join("none").display()),
    ]);
    let (success, _, stderr) = run(&mut cmd);
    assert!(!success && stderr.contains("MANIFEST_UNKNOWN"), "{stderr}");
}

#[test]
fn an_image_on_a_registry_base_reuses_its_layers_and_mounts_them_on_push() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    // The "base": ship's own image with an extra file, pushed to base/runtime.
    std::fs::write(t.join("extra.txt"), "from the base").unwrap();
    image(&t, "base", &["--file", &format!("{}:/etc/extra.txt", t.join("extra.txt").display()), "--label", "base=yes"]);
    let base_push = push(&t, "base", &format!("{}/base/runtime:v1", reg.host()));
    let base_layers: Vec<String> =
        base_push["blobs"].as_array().unwrap().iter().map(|b| b["digest"].as_str().unwrap().to_string()).collect();

    // A fresh cache, so the mount can only come from the base label.
    let t2 = TempDir::new();
    write_ca(&t2.join("ca.pem"));
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--json", "--name", "svc", "--binary"])
        .arg(hello_service())
        .args(["--base", &format!("{}/base/runtime:v1", reg.host())])
        .args(["--output", &format!("oci:{}:v1", t2.join("app").display())])
        .env("XDG_CACHE_HOME", t2.join("cache"));
    let built: serde_json::Value = serde_json::from_str(&ok(&mut cmd)).unwrap();
    let layers: Vec<&str> = built["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
    assert_eq!(layers.len(), 3);
    assert_eq!(
        layers[..2],
        [base_layers[0].as_str(), base_layers[1].as_str()],
        "the base's layers were not reused as they are"
    );

    let mut cmd = ship();
    cmd.args([
        "push",
        "--quiet",
        "--json",
        "--from",
        &format!("oci:{}:v1", t2.join("app").display()),
        &format!("{}/app/svc:v1", reg.host()),
    ])
    .env("XDG_CACHE_HOME", t2.join("cache"));
    let r: serde_json::Value = serde_json::from_str(&ok(&mut cmd)).unwrap();
    let blobs = r["blobs"].as_array().unwrap();
    for b in &blobs[..2] {
        assert_eq!(b["outcome"], "mounted", "{r}");
        assert_eq!(b["from"], "base/runtime");
    }
    assert_eq!(blobs[2]["outcome"], "uploaded");
    assert_eq!(r["blobs_uploaded"], 2, "the app layer and the config go up: {r}");
}

#[test]
fn a_re_pull_into_a_layout_that_has_the_blobs_downloads_no_layer() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    let digest = image(&t, "src", &[]);
    push(&t, "src", &format!("{}/acme/hello:v1", reg.host()));
    let proxy = Proxy::start(reg.port, vec![]);
    let out = t.join("pulled");
    let pull = |tag: &str| {
        let mut cmd = ship();
        cmd.args(["pull", "--quiet", &format!("{}/acme/hello:v1", proxy.host()), "--output"])
            .arg(format!("oci:{}:{tag}", out.display()));
        assert_eq!(ok(&mut cmd).trim(), digest);
    };
    let layer_gets = |p: &Proxy| {
        p.seen().iter().filter(|s| s.method == "GET" && s.path.contains("/blobs/") && s.status == 200).count()
    };
    pull("one");
    assert_eq!(layer_gets(&proxy), 3, "config and two layers on the first pull");
    pull("two");
    assert_eq!(layer_gets(&proxy), 4, "only the config again: the layers were in the layout");
    // A damaged layer in the layout is fetched again, not trusted.
    let manifest = read_json(&out.join("blobs/sha256").join(digest.trim_start_matches("sha256:")));
    let layer =
        out.join("blobs/sha256").join(manifest["layers"][1]["digest"].as_str().unwrap().trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&layer, &bytes).unwrap();
    pull("three");
    assert_eq!(layer_gets(&proxy), 6, "the damaged layer was not fetched again");
    let got = ship::image::digest::sha256(&std::fs::read(&layer).unwrap());
    assert_eq!(got.trim_start_matches("sha256:"), layer.file_name().unwrap().to_string_lossy());
}
