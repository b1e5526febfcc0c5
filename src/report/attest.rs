//! What an image is made of and how it was made, as documents that travel with it: a CycloneDX
//! 1.5 SBOM of the crates in Cargo.lock, and an in-toto Statement v1 with an SLSA Provenance v1
//! predicate. Hand-assembled JSON: the maintained Rust crates for either format cover far more
//! than these few fields and pull in large dependency trees.

use crate::build::Facts;
use crate::project::Project;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A package of Cargo.lock.
#[derive(Debug, Clone, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub source: Option<String>,
    pub checksum: Option<String>,
}

#[derive(Deserialize)]
struct Lock {
    #[serde(default, rename = "package")]
    packages: Vec<LockedPackage>,
}

/// Every package in the Cargo.lock at `path`.
pub fn locked_packages(path: &std::path::Path) -> Option<Vec<LockedPackage>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(toml::from_str::<Lock>(&text).ok()?.packages)
}

fn purl(name: &str, version: &str) -> String {
    format!("pkg:cargo/{name}@{version}")
}

/// CycloneDX 1.5: one component per Cargo.lock package (the shipped package as the
/// application), with purl, SHA-256 checksum (crates.io's) and licence where known. No
/// timestamp or serial number: the same lock gives the same document.
pub fn sbom(project: &Project, packages: &[LockedPackage], licenses: &BTreeMap<(String, String), String>) -> Value {
    let component = |p: &LockedPackage| {
        let is_app = p.name == project.package.name && p.source.is_none();
        let mut c = json!({
            "type": if is_app { "application" } else { "library" },
            "bom-ref": purl(&p.name, &p.version),
            "name": p.name,
            "version": p.version,
            "purl": purl(&p.name, &p.version),
        });
        if let Some(sum) = &p.checksum {
            c["hashes"] = json!([{"alg": "SHA-256", "content": sum}]);
        }
        if let Some(l) = licenses.get(&(p.name.clone(), p.version.clone())) {
            c["licenses"] = json!([{"expression": l}]);
        }
        c
    };
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "component": {
                "type": "application",
                "bom-ref": purl(&project.package.name, &project.package.version),
                "name": project.package.name,
                "version": project.package.version,
                "purl": purl(&project.package.name, &project.package.version),
            },
            "tools": {"components": [{"type": "application", "name": "ship", "version": env!("CARGO_PKG_VERSION")}]},
        },
        "components": packages.iter().map(component).collect::<Vec<_>>(),
    })
}

/// The builder's id and the build type, as SLSA names them.
pub const BUILDER_ID: &str = concat!("https://github.com/ship-rs/ship@", env!("CARGO_PKG_VERSION"));
pub const BUILD_TYPE: &str = "https://github.com/ship-rs/ship/buildtypes/cargo-oci/v1";

/// nixpkgs as flake.lock pins it: (uri, digests).
fn nixpkgs(project: &Project) -> Option<(String, Value)> {
    let dir = crate::toolchain::find_flake(project.root())?;
    let lock: Value = serde_json::from_slice(&std::fs::read(dir.join("flake.lock")).ok()?).ok()?;
    let locked = lock.pointer("/nodes/nixpkgs/locked")?;
    let uri = format!(
        "github:{}/{}/{}",
        locked.get("owner")?.as_str()?,
        locked.get("repo")?.as_str()?,
        locked.get("rev")?.as_str()?
    );
    Some((uri, json!({"gitCommit": locked.get("rev")?, "narHash": locked.get("narHash")?})))
}

/// The in-toto statement about the manifest `subject` (`REPO` and `sha256:...`).
#[allow(clippy::too_many_arguments)]
pub fn provenance(
    name: &str,
    subject: &str,
    project: &Project,
    facts: &Facts,
    recipe: &str,
    ship_toml: Option<&str>,
    started: i64,
    finished: i64,
) -> Value {
    let time = |t: i64| crate::image::spec::rfc3339(t).unwrap_or_default();
    let mut deps = Vec::new();
    if let Some(git) = &project.git {
        let repo = project.source_url().unwrap_or_else(|| "unknown".into());
        deps.push(json!({"uri": format!("git+{repo}@{}", git.revision), "digest": {"gitCommit": git.revision}}));
    }
    if let Some((uri, digest)) = nixpkgs(project) {
        deps.push(json!({"uri": uri, "name": "nixpkgs", "digest": digest}));
    }
    if let Some(h) = &project.cargo_lock_sha256 {
        deps.push(json!({"name": "Cargo.lock", "digest": {"sha256": h.trim_start_matches("sha256:")}}));
    }
    if let Some(h) = &project.flake_lock_sha256 {
        deps.push(json!({"name": "flake.lock", "digest": {"sha256": h.trim_start_matches("sha256:")}}));
    }
    deps.push(json!({"name": "toolchain", "uri": facts.toolchain.identity, "annotations": {"source": facts.toolchain.source}}));
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": subject.trim_start_matches("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "repository": project.source_url(),
                    "revision": project.git.as_ref().map(|g| &g.revision),
                    "dirty": project.git.as_ref().map(|g| g.dirty),
                    "ship.toml": ship_toml,
                    "recipe": serde_json::from_str::<Value>(recipe).unwrap_or(Value::Null),
                },
                "internalParameters": {"target": facts.target, "linker": facts.linker, "static": facts.static_linking},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID},
                "metadata": {"startedOn": time(started), "finishedOn": time(finished)},
            },
        },
    })
}
