//! The flake, checked offline with real nix against the nixpkgs stand-in, and the toolchain
//! realised from a project flake by the same code production runs.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn nix_cmd(program: impl AsRef<std::ffi::OsStr>) -> Command {
    require("nix");
    let mut c = Command::new(program);
    c.env("NIX_CONFIG", NIX_CONFIG);
    c
}

#[test]
fn check_flake_passes_and_a_misspelled_package_fails_it() {
    let t = TempDir::new();
    let good = t.join("good");
    std::fs::create_dir_all(&good).unwrap();
    copy_flake_files(&good);
    let out = ok(nix_cmd(good.join("scripts/check-flake")).arg(&good));
    assert!(out.contains("check-flake: OK (36 outputs evaluated on 4 systems)"), "{out}");

    // A package name misspelled consistently (what a typo in a rename looks like), and an
    // attribute of nixpkgs that does not exist.
    for (file, from, to) in
        [("nix/toolchain.nix", "mold", "mlod"), ("flake.nix", "pkgs.nixfmt-tree", "pkgs.nixfmt-treee")]
    {
        let bad = t.join(&format!("bad-{}", file.replace('/', "-")));
        std::fs::create_dir_all(&bad).unwrap();
        copy_flake_files(&bad);
        let text = std::fs::read_to_string(bad.join(file)).unwrap();
        assert!(text.contains(from), "{file} no longer contains {from:?}");
        std::fs::write(bad.join(file), text.replace(from, to)).unwrap();
        let (success, _, stderr) = run(nix_cmd(bad.join("scripts/check-flake")).arg(&bad));
        assert!(!success, "check-flake passed with {to:?} in {file}");
        let misspelled = to.trim_start_matches("pkgs.");
        assert!(stderr.contains(misspelled), "the failure should name {misspelled:?}:\n{stderr}");
    }
}

#[test]
fn the_lock_pins_nixpkgs_as_the_pin_file_says() {
    let lock = read_json(&repo_root().join("flake.lock"));
    assert_eq!(lock["version"], 7);
    let n = &lock["nodes"]["nixpkgs"];
    assert_eq!(n["locked"]["rev"], "8fd9daa3db09ced9700431c5b7ad0e8ba199b575");
    assert_eq!(n["locked"]["narHash"], "sha256-Ti+ZBvW6yrWWAg2szExVTwCd4qOJ3KlVr1tFHfyfi8Q=");
    assert_eq!(n["original"]["ref"], "nixos-25.11");
    let flake = std::fs::read_to_string(repo_root().join("flake.nix")).unwrap();
    assert!(flake.contains("inputs.nixpkgs.url = \"github:NixOS/nixpkgs/nixos-25.11\";"));
}

/// A copy of the nixpkgs stand-in whose tools link to this machine's.
fn stand_in_with_host_tools(dir: &Path) -> PathBuf {
    let standin = dir.join("standin");
    ok(Command::new("cp").arg("-r").arg(repo_root().join("nix/stand-in")).arg(&standin));
    let mut tools = serde_json::Map::new();
    for t in ["rustc", "rustdoc", "cargo", "cargo-clippy", "clippy-driver", "rustfmt", "cargo-fmt"] {
        let p = sysroot_bin(t);
        if p.exists() {
            tools.insert(t.into(), p.display().to_string().into());
        }
    }
    for t in ["mold", "clang", "clang++", "sccache", "git"] {
        require(t);
        tools.insert(t.into(), host_tool(t).unwrap().display().to_string().into());
    }
    tools.insert("ca-bundle".into(), "/etc/ssl/certs/ca-certificates.crt".into());
    std::fs::write(standin.join("host-tools.json"), serde_json::to_vec(&tools).unwrap()).unwrap();
    standin
}

/// A project: hello-service plus ship's flake.nix and nix/, its nixpkgs input pointed at `standin`.
fn project_with_flake(dir: &Path, standin: &Path) -> PathBuf {
    let project = dir.join("project");
    copy_hello_service(&project);
    ok(Command::new("cp").arg("-r").arg(repo_root().join("nix")).arg(&project));
    let flake = std::fs::read_to_string(repo_root().join("flake.nix")).unwrap();
    let flake = flake.replace("github:NixOS/nixpkgs/nixos-25.11", &format!("path:{}", standin.display()));
    std::fs::write(project.join("flake.nix"), flake).unwrap();
    ok(nix_cmd("nix").args(["flake", "lock"]).current_dir(&project));
    project
}

#[test]
fn the_toolchain_is_realised_from_the_project_flake_and_builds() {
    let t = TempDir::new();
    let standin = stand_in_with_host_tools(t.path());
    let project = project_with_flake(t.path(), &standin);

    let mut cmd = ship();
    cmd.args(["toolchain", "--json"]).env("NIX_CONFIG", NIX_CONFIG).current_dir(&project);
    let tc: serde_json::Value = serde_json::from_str(&ok(&mut cmd)).unwrap();
    assert_eq!(tc["source"], "nix");
    assert_eq!(tc["hermetic"], true);
    let root = tc["root"].as_str().unwrap().to_string();
    assert!(root.starts_with("/nix/store/") && root.ends_with("-ship-toolchain"), "{root}");
    assert_eq!(tc["identity"], root.as_str());
    for tool in ["cargo", "mold", "sccache", "clang"] {
        assert!(tc["versions"][tool].as_str().is_some_and(|v| !v.is_empty()), "no {tool} version: {tc}");
    }
    assert!(tc["versions"]["rustc"].as_str().unwrap().contains("host: "));

    // SHIP_TOOLCHAIN wins over the flake, with no nix call.
    let mut cmd = ship();
    cmd.args(["toolchain", "--json"]).env("SHIP_TOOLCHAIN", &root).env("PATH", "/usr/bin:/bin").current_dir(&project);
    let env_tc: serde_json::Value = serde_json::from_str(&ok(&mut cmd)).unwrap();
    assert_eq!(env_tc["source"], "env");
    assert_eq!(env_tc["root"], root.as_str());

    // The human form names the source and every version.
    let mut cmd = ship();
    cmd.args(["toolchain"]).env("NIX_CONFIG", NIX_CONFIG).current_dir(&project);
    let text = ok(&mut cmd);
    assert!(
        text.contains("source:    nix (project flake)") && text.contains(&root) && text.contains("mold 1."),
        "{text}"
    );

    // And ship build uses it: its facts say so, and mold linked the binary.
    let mut cmd = ship();
    cmd.args(["build", "--json", "--require-hermetic", "--target-dir"])
        .arg(repo_root().join("target/ship-nix-test"))
        .env("NIX_CONFIG", NIX_CONFIG)
        .current_dir(&project);
    let facts: serde_json::Value = serde_json::from_str(&ok(&mut cmd)).unwrap();
    assert_eq!(facts["toolchain"]["source"], "nix");
    assert_eq!(facts["toolchain"]["root"], root.as_str());
    assert_eq!(facts["linker"], "mold");
    // No bucket configured: the build runs without sccache (the toolchain has it: --require-hermetic).
    assert!(facts["sccache"].is_null(), "{facts}");
    let flags: Vec<String> = serde_json::from_value(facts["rustflags"].clone()).unwrap();
    assert!(flags.contains(&format!("-Clinker={root}/bin/clang")), "{flags:?}");
    let comment = ok(Command::new("readelf").args(["-p", ".comment", facts["binary"].as_str().unwrap()]));
    assert!(comment.contains("mold"), "{comment}");
}

#[test]
fn nix_failures_show_nix_log_and_a_flake_without_toolchain_falls_back() {
    let t = TempDir::new();
    let standin = stand_in_with_host_tools(t.path());
    let project = project_with_flake(t.path(), &standin);

    // A broken toolchain expression: the error carries the tail of nix's log.
    std::fs::write(
        project.join("nix/toolchain.nix"),
        "{ buildEnv }: buildEnv { name = \"x\"; paths = [ undefinedThing ]; }\n",
    )
    .unwrap();
    let mut cmd = ship();
    cmd.args(["--quiet", "toolchain", "--toolchain", "nix"]).env("NIX_CONFIG", NIX_CONFIG).current_dir(&project);
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(!success && stdout.is_empty());
    assert!(stderr.contains("error: `nix build") && stderr.contains("undefined variable 'undefinedThing'"), "{stderr}");
    // When nix cannot realise the toolchain (broken, or offline), the way out is named.
    let hint = stderr.lines().find(|l| l.starts_with("hint: ")).unwrap_or_default();
    assert!(hint.contains("--toolchain host") && hint.contains("not hermetic"), "{stderr}");

    // A flake with no toolchain output: auto warns and uses the host; nix says it is missing.
    let bare = t.join("bare");
    copy_hello_service(&bare);
    std::fs::write(bare.join("flake.nix"), "{ outputs = { self }: { }; }\n").unwrap();
    ok(nix_cmd("nix").args(["flake", "lock"]).current_dir(&bare));
    let mut cmd = ship();
    cmd.args(["toolchain", "--json"]).env("NIX_CONFIG", NIX_CONFIG).current_dir(&bare);
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(success, "{stderr}");
    assert!(stderr.contains("warning:") && stderr.contains("not hermetic"), "{stderr}");
    let tc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(tc["source"], "host");
    let mut cmd = ship();
    cmd.args(["toolchain", "--toolchain", "nix"]).env("NIX_CONFIG", NIX_CONFIG).current_dir(&bare);
    let (success, _, stderr) = run(&mut cmd);
    assert!(!success && stderr.contains("has no packages.x86_64-linux.toolchain"), "{stderr}");
}
