//! The layouts ship writes, checked by the reference tools: oci-image-tool, skopeo, umoci.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

fn build(t: &TempDir, extra: &[&str], output: &str) -> String {
    write_ca(&t.join("ca.pem"));
    std::fs::write(t.join("app.toml"), "x = 1\n").unwrap();
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--binary"])
        .arg(hello_service())
        .arg("--ca-bundle")
        .arg(t.join("ca.pem"))
        .arg("--file")
        .arg(format!("{}:/etc/app/app.toml:0600", t.join("app.toml").display()))
        .args(["--port", "3000", "--source-date-epoch", "1700000000"])
        .args(extra)
        .args(["--output", output])
        .current_dir(t.path());
    ok(&mut cmd).trim().to_string()
}

#[test]
fn oci_image_tool_validates_and_skopeo_reads_the_config() {
    require("oci-image-tool");
    require("skopeo");
    let t = TempDir::new();
    let layout = t.join("layout");
    let digest =
        build(&t, &["--env", "RUST_LOG=debug", "--label", "team=core"], &format!("oci:{}:v1", layout.display()));
    let out = ok(Command::new("oci-image-tool").args(["validate", "--type", "image"]).arg(&layout));
    assert!(out.contains("Validation succeeded"), "{out}");

    let inspect: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").arg("inspect").arg(format!("oci:{}:v1", layout.display()))))
            .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Created"], "2023-11-14T22:13:20Z");
    assert_eq!(inspect["Labels"]["team"], "core");
    assert_eq!(inspect["Labels"]["org.opencontainers.image.title"], "hello-service");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    let env: Vec<String> = serde_json::from_value(inspect["Env"].clone()).unwrap();
    assert!(env.contains(&"RUST_LOG=debug".to_string()) && env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");

    let config: serde_json::Value = serde_json::from_str(&ok(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:v1", layout.display()))))
    .unwrap();
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/app/hello-service"]));
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["ExposedPorts"], serde_json::json!({"3000/tcp": {}}));
}

#[test]
fn umoci_unpacks_files_with_the_right_owners_and_modes() {
    require("umoci");
    let t = TempDir::new();
    let layout = t.join("layout");
    build(&t, &[], &format!("oci:{}:v1", layout.display()));
    ok(Command::new("umoci").args(["unpack", "--image"]).arg(format!("{}:v1", layout.display())).arg(t.join("bundle")));
    let rootfs = t.join("bundle/rootfs");
    let check = |path: &str, mode: u32, uid: u32| {
        let m = std::fs::symlink_metadata(rootfs.join(path)).unwrap_or_else(|e| panic!("/{path}: {e}"));
        assert_eq!(m.mode() & 0o7777, mode, "/{path} mode");
        assert_eq!((m.uid(), m.gid()), (uid, uid), "/{path} owner");
    };
    check("app/hello-service", 0o755, 0);
    check("app", 0o755, 0);
    check("etc/passwd", 0o644, 0);
    check("etc/group", 0o644, 0);
    check("etc/nsswitch.conf", 0o644, 0);
    check("etc/ssl/certs/ca-certificates.crt", 0o644, 0);
    check("etc/app/app.toml", 0o600, 0);
    check("tmp", 0o1777, 0);
    check("home/nonroot", 0o700, 65532);
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    assert_eq!(std::fs::read(rootfs.join("app/hello-service")).unwrap(), std::fs::read(hello_service()).unwrap());
    assert_eq!(std::fs::read_to_string(rootfs.join("etc/app/app.toml")).unwrap(), "x = 1\n");
    let mtime = std::fs::metadata(rootfs.join("etc/app/app.toml")).unwrap().mtime();
    assert_eq!(mtime, 1_700_000_000, "app layer mtimes come from SOURCE_DATE_EPOCH");
}

#[test]
fn a_second_tag_keeps_the_first_and_json_matches_the_blobs() {
    require("skopeo");
    let t = TempDir::new();
    let layout = t.join("layout");
    let d1 = build(&t, &[], &format!("oci:{}:one", layout.display()));
    let json: serde_json::Value =
        serde_json::from_str(&build(&t, &["--json", "--env", "A=b"], &format!("oci:{}:two", layout.display())))
            .unwrap();
    let d2 = json["digest"].as_str().unwrap().to_string();
    assert_ne!(d1, d2);
    for (tag, digest) in [("one", &d1), ("two", &d2)] {
        let inspect: serde_json::Value = serde_json::from_str(&ok(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{tag}", layout.display()))))
        .unwrap();
        assert_eq!(&inspect["Digest"], digest.as_str(), "tag {tag}");
    }
    let manifest_path = layout.join("blobs/sha256").join(d2.trim_start_matches("sha256:"));
    assert_eq!(json["manifest_size"].as_u64().unwrap(), std::fs::metadata(&manifest_path).unwrap().len());
    let manifest = read_json(&manifest_path);
    for (l, m) in json["layers"].as_array().unwrap().iter().zip(manifest["layers"].as_array().unwrap()) {
        assert_eq!(l["digest"], m["digest"]);
        assert_eq!(l["size"], m["size"]);
        let blob = layout.join("blobs/sha256").join(l["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        assert_eq!(std::fs::metadata(blob).unwrap().len(), l["size"].as_u64().unwrap());
        assert!(l["diff_id"].as_str().unwrap().starts_with("sha256:"));
    }
    // Rewriting a tag replaces it and does not duplicate it.
    build(&t, &[], &format!("oci:{}:one", layout.display()));
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    // No temporary files are left in the layout (the writers' lock file stays, empty).
    assert_eq!(std::fs::read(layout.join(".ship-lock")).unwrap(), b"");
    assert!(
        tree_bytes(&layout).keys().all(|k| k == ".ship-lock" || (!k.contains(".tmp") && !k.contains(".ship"))),
        "{:?}",
        tree_bytes(&layout).keys()
    );
}

#[test]
fn zstd_and_uncompressed_layers_are_valid_and_smaller_or_equal() {
    require("skopeo");
    require("oci-image-tool");
    let t = TempDir::new();
    let mut sizes = Vec::new();
    for c in ["gzip", "zstd", "none"] {
        let layout = t.join(c);
        let json: serde_json::Value =
            serde_json::from_str(&build(&t, &["--json", "--compression", c], &format!("oci:{}:v1", layout.display())))
                .unwrap();
        let media = json["layers"][1]["media_type"].as_str().unwrap().to_string();
        assert!(
            media.ends_with(match c {
                "gzip" => "tar+gzip",
                "zstd" => "tar+zstd",
                _ => "v1.tar",
            }),
            "{media}"
        );
        // The uncompressed content, hence the diff_ids, are the same whatever the compression.
        sizes.push((json["layers"][1]["diff_id"].clone(), json["layers"][1]["size"].as_u64().unwrap()));
        // skopeo reads every blob and checks its digest when copying.
        ok(Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("dir:{}", t.join(&format!("{c}-dir")).display())));
    }
    assert!(sizes.iter().all(|s| s.0 == sizes[0].0), "diff_ids differ: {sizes:?}");
    assert!(sizes[0].1 < sizes[2].1 && sizes[1].1 < sizes[2].1, "compression did not shrink: {sizes:?}");
}

#[test]
fn building_on_a_base_from_a_layout_reuses_its_layers() {
    require("skopeo");
    let t = TempDir::new();
    let base = t.join("base");
    build(&t, &["--env", "FROM_BASE=1", "--label", "base=yes"], &format!("oci:{}:base", base.display()));
    let base_manifest: serde_json::Value = serde_json::from_str(&ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:base", base.display()))))
    .unwrap();
    let out = t.join("app");
    build(
        &t,
        &["--base", &format!("oci:{}:base", base.display()), "--name", "second"],
        &format!("oci:{}:v1", out.display()),
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(Command::new("skopeo").arg("inspect").arg(format!("oci:{}:v1", out.display()))))
            .unwrap();
    let layers = inspect["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for (i, l) in base_manifest["layers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(layers[i], l["digest"], "base layer {i} was not reused as is");
    }
    assert_eq!(inspect["Labels"]["base"], "yes");
    assert!(inspect["Env"].as_array().unwrap().iter().any(|e| e == "FROM_BASE=1"));
    let config: serde_json::Value = serde_json::from_str(&ok(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:v1", out.display()))))
    .unwrap();
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/app/second"]));
    assert_eq!(config["history"].as_array().unwrap().len(), 3);
}
