//! Settings from ship.toml, flags, the environment, Cargo.toml and git end up in the config.

mod common;
use common::*;
use std::process::Command;

fn config_of(layout: &std::path::Path, tag: &str) -> serde_json::Value {
    require("skopeo");
    serde_json::from_str(&ok(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:{tag}", layout.display()))))
    .unwrap()
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_COMMITTER_DATE", "@1650000000 +0000")
        .env("GIT_AUTHOR_DATE", "@1650000000 +0000")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn ship_toml_sets_the_image_and_flags_win() {
    let t = TempDir::new();
    write_ca(&t.join("ca.pem"));
    std::fs::write(t.join("app.conf"), "conf").unwrap();
    std::fs::write(
        t.join("ship.toml"),
        r#"
[image]
name = "ghcr.io/acme/from-toml"
ports = [3000, "53/udp"]
env = { RUST_LOG = "info", KEEP = "toml" }
labels = { team = "core", tier = "toml" }
files = ["app.conf:/etc/app.conf:0640"]
compression = "zstd"
user = "1000:1000"
workdir = "/srv"
ca-bundle = "ca.pem"
"#,
    )
    .unwrap();
    let layout = t.join("layout");
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--binary"])
        .arg(hello_service())
        .args(["--env", "RUST_LOG=debug", "--label", "tier=flag", "--source-date-epoch", "1"])
        .args(["--output", &format!("oci:{}:t", layout.display())])
        .current_dir(t.path());
    ok(&mut cmd);
    let cfg = config_of(&layout, "t");
    let c = &cfg["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/app/from-toml"]));
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"3000/tcp": {}, "53/udp": {}}));
    let env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
    assert!(env.contains(&"RUST_LOG=debug".into()) && env.contains(&"KEEP=toml".into()), "{env:?}");
    assert!(!env.contains(&"RUST_LOG=info".into()), "the flag must replace the file's value: {env:?}");
    assert_eq!(c["Labels"]["team"], "core");
    assert_eq!(c["Labels"]["tier"], "flag");
    let manifest: serde_json::Value = serde_json::from_str(&ok(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:t", layout.display()))))
    .unwrap();
    assert!(manifest["layers"][1]["mediaType"].as_str().unwrap().ends_with("+zstd"));
}

#[test]
fn labels_and_timestamps_come_from_cargo_toml_and_git() {
    let t = TempDir::new();
    let project = t.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(project.join("Cargo.toml"), "[package]\nname = \"svc\"\nversion = \"2.3.4\"\nlicense = \"MIT\"\n")
        .unwrap();
    git(&project, &["init", "-q"]);
    git(&project, &["add", "Cargo.toml", "src/main.rs"]);
    git(&project, &["commit", "-q", "-m", "init"]);
    git(&project, &["remote", "add", "origin", "https://bot:ghp_notarealtoken@github.com/acme/svc.git"]);
    let head = String::from_utf8(
        Command::new("git").args(["rev-parse", "HEAD"]).current_dir(&project).output().unwrap().stdout,
    )
    .unwrap();

    let layout = t.join("layout");
    let build = |extra_env: Option<&str>, tag: &str| {
        let mut cmd = ship();
        cmd.args(["image", "--quiet", "--binary"])
            .arg(hello_service())
            .arg("--manifest-path")
            .arg(project.join("Cargo.toml"))
            .args(["--output", &format!("oci:{}:{tag}", layout.display())])
            .current_dir(t.path());
        if let Some(v) = extra_env {
            cmd.env("SOURCE_DATE_EPOCH", v);
        }
        let (success, stdout, stderr) = run(&mut cmd);
        assert!(success, "{stderr}");
        assert!(!stdout.contains("ghp_") && !stderr.contains("ghp_"), "a credential from the remote URL was printed");
    };
    build(None, "git");
    let cfg = config_of(&layout, "git");
    let labels = &cfg["config"]["Labels"];
    assert_eq!(cfg["created"], "2022-04-15T05:20:00Z", "created is HEAD's commit time");
    assert_eq!(labels["org.opencontainers.image.created"], "2022-04-15T05:20:00Z");
    assert_eq!(labels["org.opencontainers.image.revision"], head.trim());
    assert_eq!(labels["org.opencontainers.image.version"], "2.3.4");
    assert_eq!(labels["org.opencontainers.image.licenses"], "MIT");
    assert_eq!(labels["org.opencontainers.image.source"], "https://github.com/acme/svc");
    assert_eq!(labels["org.opencontainers.image.title"], "hello-service");
    let raw =
        std::fs::read_dir(layout.join("blobs/sha256")).unwrap().map(|e| std::fs::read(e.unwrap().path()).unwrap());
    for blob in raw {
        assert!(!String::from_utf8_lossy(&blob).contains("ghp_notarealtoken"), "a credential reached a blob");
    }

    build(Some("1000000000"), "env");
    assert_eq!(
        config_of(&layout, "env")["created"],
        "2001-09-09T01:46:40Z",
        "SOURCE_DATE_EPOCH overrides the commit time"
    );
}

#[test]
fn source_labels_carry_only_scheme_host_and_path_whatever_the_remote_holds() {
    let t = TempDir::new();
    let project = t.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(project.join("Cargo.toml"), "[package]\nname = \"svc\"\nversion = \"1.0.0\"\n").unwrap();
    git(&project, &["init", "-q"]);
    git(&project, &["add", "Cargo.toml", "src/main.rs"]);
    git(&project, &["commit", "-q", "-m", "init"]);
    git(&project, &["remote", "add", "origin", "https://example.com/placeholder"]);
    let layout = t.join("layout");
    let image = |tag: &str| {
        let mut cmd = ship();
        cmd.args(["image", "--quiet", "--binary"])
            .arg(hello_service())
            .arg("--manifest-path")
            .arg(project.join("Cargo.toml"))
            .args(["--output", &format!("oci:{}:{tag}", layout.display())]);
        let (success, stdout, stderr) = run(&mut cmd);
        assert!(success, "{stderr}");
        assert!(!format!("{stdout}{stderr}").contains("tok3n"), "a token was printed");
        config_of(&layout, tag)["config"]["Labels"]["org.opencontainers.image.source"].clone()
    };
    let remotes = [
        "https://bot:tok3n@github.com/acme/svc.git",
        "https://github.com/acme/svc?access_token=tok3n",
        "https://github.com/acme/svc.git#tok3n",
        "https://tok3n@github.com/acme/svc/",
        "ssh://git:tok3n@github.com:2222/acme/svc.git",
        "git@github.com:acme/svc.git",
    ];
    for (i, remote) in remotes.iter().enumerate() {
        git(&project, &["remote", "set-url", "origin", remote]);
        assert_eq!(image(&format!("r{i}")), "https://github.com/acme/svc", "{remote}");
    }
    // Cargo's repository field goes through the same cleaner, and wins over the remote.
    std::fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"svc\"\nversion = \"1.0.0\"\nrepository = \"https://x:tok3n@gitlab.com/acme/svc?private_token=tok3n#frag\"\n",
    )
    .unwrap();
    assert_eq!(image("cargo"), "https://gitlab.com/acme/svc");
    for blob in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let bytes = std::fs::read(blob.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("tok3n"), "a token reached a blob");
    }
}
