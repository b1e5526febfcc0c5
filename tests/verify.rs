//! `ship verify` and the SBOM and provenance every built image carries: rebuilt from its
//! recorded revision against the real registry, and images altered on purpose.

mod common;
use common::registry::*;
use common::*;
use ship::image::compress::Compression;
use ship::image::layer::Layer;
use ship::image::{Image, layout, spec};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `ship <args>` with the host toolchain and this file's own target directory.
fn ship_here(args: &[&str]) -> Command {
    let mut cmd = ship();
    cmd.args(args)
        .args(["--target-dir"])
        .arg(repo_root().join("target/verify-tests"))
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("REGISTRY_AUTH_FILE", "/nonexistent.json");
    cmd
}

/// hello-service's image, built by ship from the shared checkout, in a layout.
fn built_layout(t: &TempDir) -> (PathBuf, String) {
    let manifest = shared_project("verify-tests");
    let dir = t.join("built");
    let mut cmd = ship_here(&["image", "--quiet", "--toolchain", "host", "--port", "3000"]);
    cmd.arg("--output").arg(format!("oci:{}:v1", dir.display())).arg("--manifest-path").arg(&manifest);
    (dir, ok(&mut cmd).trim().to_string())
}

fn verify(args: &[&str]) -> (bool, String, String) {
    let source = shared_project("verify-tests");
    let mut cmd = ship_here(&["verify"]);
    cmd.args(args).arg("--source").arg(source.parent().unwrap());
    run(&mut cmd)
}

/// The image at `src:v1`, with its app layer's tar changed by `change` and its config by
/// `relabel`, written to `dst:v1`.
fn altered(src: &Path, dst: &Path, change: impl Fn(&str, &mut tar::Header, &mut Vec<u8>), relabel: &[(&str, &str)]) {
    let image = layout::load(src, "v1").unwrap();
    let app = image.layers.last().unwrap();
    let old = app.tar().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut archive = tar::Archive::new(&old[..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        change(&path, &mut header, &mut data);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, &data[..]).unwrap();
    }
    let layer = Layer::from_tar(builder.into_inner().unwrap(), Compression::Gzip, 2);
    let mut cfg: oci_spec::image::ImageConfiguration = serde_json::from_slice(&image.config).unwrap();
    let mut diff_ids = cfg.rootfs().diff_ids().clone();
    *diff_ids.last_mut().unwrap() = layer.diff_id.clone();
    cfg.rootfs_mut().set_diff_ids(diff_ids);
    let mut c = cfg.config().clone().unwrap();
    let mut labels = c.labels().clone().unwrap();
    for (k, v) in relabel {
        labels.insert(k.to_string(), v.to_string());
    }
    c.set_labels(Some(labels));
    cfg.set_config(Some(c));
    let mut layers = image.layers.clone();
    *layers.last_mut().unwrap() = layer;
    let (config, manifest) = spec::finish(&cfg, &layers);
    let image = Image {
        platform: image.platform.clone(),
        layers,
        config_digest: ship::image::digest::sha256(&config),
        manifest_digest: ship::image::digest::sha256(&manifest),
        config,
        manifest,
        artifacts: vec![],
    };
    layout::write(&image, dst, "v1", &|_| {}).unwrap();
}

/// Where the `.text` section of an ELF file starts.
fn text_offset(elf: &[u8]) -> usize {
    let parsed = goblin::elf::Elf::parse(elf).unwrap();
    let text = parsed.section_headers.iter().find(|s| parsed.shdr_strtab.get_at(s.sh_name) == Some(".text")).unwrap();
    text.sh_offset as usize
}

#[test]
fn a_pushed_image_is_reproduced_with_its_sbom_and_provenance() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    let (dir, digest) = built_layout(&t);
    let reference = format!("{}/acme/hello:v1", reg.host());
    let (success, r, out) = push(&t, &dir, &reference, &[], None, &[]);
    assert!(success, "{out}");
    let referrers = r.unwrap()["referrers"].clone();
    let vias: Vec<&str> = referrers.as_array().unwrap().iter().map(|r| r["via"].as_str().unwrap()).collect();
    let tag = format!("tag {}", digest.replace(':', "-"));
    assert_eq!(vias, [tag.as_str(), tag.as_str()], "distribution 2.8 has no referrers API: the tag fallback");

    let (success, stdout, stderr) = verify(&[&reference]);
    assert!(success, "{stdout}\n{stderr}");
    assert!(stdout.starts_with(&format!("REPRODUCED {}/acme/hello@{digest}", reg.host())), "{stdout}");
    assert!(stdout.contains("sbom: CycloneDX 1.5") && stdout.contains("provenance: SLSA v1, revision"), "{stdout}");

    // The SBOM lists exactly the crates of Cargo.lock, found again through the tag fallback.
    let lock: toml::Table =
        toml::from_str(&std::fs::read_to_string(shared_project("verify-tests").with_file_name("Cargo.lock")).unwrap())
            .unwrap();
    let mut locked: Vec<String> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}@{}", p["name"].as_str().unwrap(), p["version"].as_str().unwrap()))
        .collect();
    locked.sort();
    let index = ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!(
        "docker://{}/acme/hello:{}",
        reg.host(),
        digest.replace(':', "-")
    )));
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    let document = |artifact_type: &str| -> serde_json::Value {
        let d = index["manifests"].as_array().unwrap().iter().find(|m| m["artifactType"] == artifact_type).unwrap();
        let manifest = ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!(
            "docker://{}/acme/hello@{}",
            reg.host(),
            d["digest"].as_str().unwrap()
        )));
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(manifest["subject"]["digest"], digest.as_str());
        let blob = manifest["layers"][0]["digest"].as_str().unwrap();
        let (status, body) = raw(reg.port, "GET", &format!("/v2/acme/hello/blobs/{blob}"), "", b"");
        assert_eq!(status, 200);
        serde_json::from_str(&body).unwrap()
    };
    let sbom = document("application/vnd.cyclonedx+json");
    let mut listed: Vec<String> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}@{}", c["name"].as_str().unwrap(), c["version"].as_str().unwrap()))
        .collect();
    listed.sort();
    assert_eq!(listed, locked);
    let serde = sbom["components"].as_array().unwrap().iter().find(|c| c["name"] == "serde").unwrap();
    assert_eq!(serde["purl"], format!("pkg:cargo/serde@{}", serde["version"].as_str().unwrap()));
    assert_eq!(serde["hashes"][0]["alg"], "SHA-256");
    assert!(serde["licenses"][0]["expression"].as_str().unwrap().contains("MIT"), "{serde}");
    let provenance = document("application/vnd.in-toto+json");
    assert_eq!(provenance["predicateType"], "https://slsa.dev/provenance/v1");
    let revision = ok(Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(shared_project("verify-tests").parent().unwrap()));
    assert_eq!(provenance["predicate"]["buildDefinition"]["externalParameters"]["revision"], revision.trim());
    let deps = provenance["predicate"]["buildDefinition"]["resolvedDependencies"].as_array().unwrap();
    let lock_sha = ship::image::digest::sha256(
        &std::fs::read(shared_project("verify-tests").with_file_name("Cargo.lock")).unwrap(),
    );
    assert!(
        deps.iter()
            .any(|d| d["name"] == "Cargo.lock" && d["digest"]["sha256"] == lock_sha.trim_start_matches("sha256:")),
        "{deps:?}"
    );
    assert!(deps.iter().any(|d| d["digest"]["gitCommit"] == revision.trim()), "{deps:?}");
}

#[test]
fn an_altered_image_is_a_mismatch_that_names_the_file_and_the_section() {
    let t = TempDir::new();
    let (dir, _) = built_layout(&t);
    // One byte of the binary's code.
    let byte = t.join("byte");
    altered(
        &dir,
        &byte,
        |path, _, data| {
            if path == "app/hello-service" {
                let at = text_offset(data) + 64;
                data[at] ^= 0x01;
            }
        },
        &[],
    );
    let (success, stdout, stderr) = verify(&[&format!("oci:{}:v1", byte.display())]);
    assert!(!success, "{stdout}");
    assert!(stdout.starts_with("MISMATCH"), "{stdout}");
    assert!(stdout.contains("layer 2: /app/hello-service: sha256 differs"), "{stdout}");
    assert!(stdout.contains("layer 2: /app/hello-service section .text: sha256 differs"), "{stdout}");
    assert!(!stdout.contains("section .rodata"), "only .text changed: {stdout}");
    assert!(stderr.contains("error: the rebuilt image differs from"), "{stderr}");

    // One file's mode.
    let mode = t.join("mode");
    altered(
        &dir,
        &mode,
        |path, header, _| {
            if path == "app/hello-service" {
                header.set_mode(0o700);
            }
        },
        &[],
    );
    let (success, stdout, _) = verify(&[&format!("oci:{}:v1", mode.display()), "--json"]);
    assert!(!success);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["verdict"], "MISMATCH");
    let diffs = report["differences"].as_array().unwrap();
    let mode_diff = diffs.iter().find(|d| d["what"] == "mode").unwrap_or_else(|| panic!("{diffs:?}"));
    assert_eq!(mode_diff["place"], "layer 2: /app/hello-service");
    assert_eq!((mode_diff["expected"].as_str(), mode_diff["got"].as_str()), (Some("700"), Some("755")));
}

#[test]
fn a_toolchain_this_machine_lacks_is_named_before_any_build() {
    let t = TempDir::new();
    let (dir, _) = built_layout(&t);
    let other = t.join("other");
    altered(
        &dir,
        &other,
        |_, _, _| {},
        &[("dev.ship.toolchain", "/nix/store/00000000000000000000000000000000-ship-toolchain")],
    );
    let (success, _, stderr) = verify(&[&format!("oci:{}:v1", other.display())]);
    assert!(!success);
    assert!(
        stderr.contains("error: the image was built with the toolchain /nix/store/00000000000000000000000000000000-ship-toolchain, which is not on this machine"),
        "{stderr}"
    );
    assert!(!stderr.contains("building "), "it built anyway: {stderr}");
}

#[test]
fn twice_is_a_reproducibility_self_check() {
    let manifest = shared_project("verify-tests");
    let mut cmd = ship();
    cmd.args(["verify", "--twice", "--toolchain", "host", "--target-dir"])
        .arg(repo_root().join("target/verify-tests/twice"))
        .arg("--manifest-path")
        .arg(&manifest);
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(success, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("REPRODUCED twice@sha256:"), "{stdout}");
    assert_eq!(stderr.matches("building ").count(), 2, "two builds: {stderr}");
}
