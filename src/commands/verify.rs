//! `ship verify`: rebuild an image from the revision it records, with the same recipe and
//! toolchain, and compare digests: REPRODUCED, or MISMATCH with what differs and where.

use super::{Context, print_json, steps};
use crate::Error;
use crate::cleanup;
use crate::cli::{BuildArgs, ImageOptions, VerifyCommand};
use crate::image::{self, Image};
use crate::registry::{self, Reference};
use crate::settings::{self, parse};
use crate::verify::{self, Difference};
use serde_json::json;
use std::path::{Path, PathBuf};

/// A temporary `git worktree` of `repo` at a revision, removed on drop (and on interrupt).
struct Checkout {
    repo: PathBuf,
    path: PathBuf,
    _dir: tempfile::TempDir,
    _interrupt: cleanup::Registered,
}

fn git(repo: &Path, args: &[&str]) -> Result<String, verify::Error> {
    crate::project::run_git(repo, args).map_err(verify::Error::Git)
}

impl Checkout {
    fn new(repo: &Path, revision: &str) -> Result<Checkout, Error> {
        let top = PathBuf::from(git(repo, &["rev-parse", "--show-toplevel"])?);
        if git(&top, &["cat-file", "-e", &format!("{revision}^{{commit}}")]).is_err() {
            return Err(
                verify::Error::UnknownRevision { revision: revision.into(), repo: top.display().to_string() }.into()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("ship-verify-")
            .tempdir()
            .map_err(|source| Error::Output { what: "a temporary checkout".into(), source })?;
        let path = dir.path().join("src");
        let interrupt = cleanup::tree(dir.path());
        git(&top, &["worktree", "add", "--detach", "--quiet", &path.display().to_string(), revision])?;
        Ok(Checkout { repo: top, path, _dir: dir, _interrupt: interrupt })
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let _ = git(&self.repo, &["worktree", "remove", "--force", &self.path.display().to_string()]);
    }
}

/// The image to verify, and how to name it: from a layout, or pulled from a registry.
fn original(
    ctx: &Context,
    value: &str,
    cmd: &VerifyCommand,
) -> Result<(Image, String, Option<tempfile::TempDir>), Error> {
    if value.starts_with("oci:") {
        let (dir, tag) = parse::parse_layout_ref("IMAGE", value)?;
        return Ok((image::layout::load(&dir, &tag)?, format!("oci:{}:{tag}", dir.display()), None));
    }
    let reference = Reference::parse(value)?;
    let client = steps::registry_client(ctx, &reference, &cmd.registry)?;
    let staging = tempfile::tempdir()
        .map_err(|e| registry::Error::Io { context: "making a staging directory".into(), source: e })?;
    let platform = parse::parse_platform(None)?;
    ctx.report.step(format!("pulling {reference}"));
    let mut image = registry::pull::pull(&client, &reference, &platform, staging.path())?;
    image.artifacts = registry::pull::referrers(&client, &reference.repository, &image.manifest_digest)?;
    Ok((image, format!("{}/{}", reference.registry, reference.repository), Some(staging)))
}

/// Check the SBOM and provenance an image carries against what its labels say. Returns what was
/// checked, in words, and what disagrees.
fn check_artifacts(image: &Image, rec: Option<&verify::Recorded>) -> (Vec<String>, Vec<Difference>) {
    use crate::image::artifact::{PROVENANCE_TYPE, SBOM_TYPE};
    let (mut checked, mut bad) = (Vec::new(), Vec::new());
    let mut wrong = |place: &str, what: &str, expected: String, got: String| {
        bad.push(Difference { place: place.into(), what: what.into(), expected, got })
    };
    for a in &image.artifacts {
        let doc: serde_json::Value = serde_json::from_slice(&a.document).unwrap_or_default();
        if a.artifact_type == SBOM_TYPE {
            if doc["bomFormat"] != "CycloneDX" || doc["specVersion"] != "1.5" {
                wrong("sbom", "format", "CycloneDX 1.5".into(), format!("{} {}", doc["bomFormat"], doc["specVersion"]));
            }
            let n = doc["components"].as_array().map_or(0, Vec::len);
            checked.push(format!("sbom: CycloneDX 1.5, {n} components"));
        } else if a.artifact_type == PROVENANCE_TYPE {
            let subject = format!(
                "sha256:{}",
                doc.pointer("/subject/0/digest/sha256").and_then(|v| v.as_str()).unwrap_or_default()
            );
            if subject != image.manifest_digest {
                wrong("provenance", "subject", image.manifest_digest.clone(), subject);
            }
            let revision =
                doc.pointer("/predicate/buildDefinition/externalParameters/revision").and_then(|v| v.as_str());
            if let Some(rec) = rec {
                if revision != Some(rec.revision.as_str()) {
                    wrong("provenance", "revision", rec.revision.clone(), format!("{revision:?}"));
                }
                let locks: Vec<&str> = doc
                    .pointer("/predicate/buildDefinition/resolvedDependencies")
                    .and_then(|d| d.as_array())
                    .into_iter()
                    .flatten()
                    .filter(|d| d["name"] == "Cargo.lock")
                    .filter_map(|d| d.pointer("/digest/sha256")?.as_str())
                    .collect();
                if let Some(label) = &rec.cargo_lock_sha256
                    && !locks.contains(&label.trim_start_matches("sha256:"))
                {
                    wrong("provenance", "Cargo.lock sha256", label.clone(), format!("{locks:?}"));
                }
            }
            checked.push(format!("provenance: SLSA v1, revision {}", revision.unwrap_or("unknown")));
        }
    }
    (checked, bad)
}

/// Print the verdict; a mismatch is an error (exit status 1) after its explanation.
fn verdict(
    cmd: &VerifyCommand,
    shown: &str,
    expected: &Image,
    rebuilt: &Image,
    mut notes: Vec<Difference>,
) -> Result<(), Error> {
    let (checked, bad) = check_artifacts(expected, verify::recorded(expected).ok().as_ref());
    let same = expected.manifest_digest == rebuilt.manifest_digest && bad.is_empty();
    notes.extend(bad);
    if expected.manifest_digest != rebuilt.manifest_digest {
        notes.extend(verify::explain(expected, rebuilt));
    }
    if cmd.json {
        print_json(&json!({
            "verdict": if same { "REPRODUCED" } else { "MISMATCH" },
            "image": shown,
            "expected": expected.manifest_digest,
            "rebuilt": rebuilt.manifest_digest,
            "differences": notes,
            "artifacts": checked,
        }));
    } else if same {
        println!("REPRODUCED {shown}@{}", expected.manifest_digest);
        for c in &checked {
            println!("  {c}");
        }
    } else {
        println!("MISMATCH {shown}: expected {}, rebuilt {}", expected.manifest_digest, rebuilt.manifest_digest);
        for d in &notes {
            println!("  {d}");
        }
    }
    if same { Ok(()) } else { Err(Error::Mismatch(format!("{shown}@{}", expected.manifest_digest))) }
}

pub fn run(ctx: &Context, cmd: &VerifyCommand) -> Result<(), Error> {
    if cmd.twice {
        return twice(ctx, cmd);
    }
    let value = cmd.image.as_deref().expect("clap requires it without --twice");
    let (expected, shown, _staging) = original(ctx, value, cmd)?;
    let rec = verify::recorded(&expected)?;
    if rec.recipe.base.starts_with("oci:") {
        return Err(
            verify::Error::BadRecipe("its base came from a local layout, which cannot be had here".into()).into()
        );
    }
    // The recorded toolchain must be here before anything is built: a Nix store path exactly.
    let toolchain = match rec.toolchain.as_deref() {
        Some(p) if p.starts_with('/') => {
            if !Path::new(p).join("bin/rustc").exists() {
                return Err(verify::Error::ToolchainUnavailable(p.to_string()).into());
            }
            p.to_string()
        }
        _ => "host".to_string(),
    };
    let mut notes = Vec::new();
    if rec.ship_version.as_deref() != Some(env!("CARGO_PKG_VERSION")) {
        notes.push(Difference {
            place: "ship".into(),
            what: "version (it decides the compressors)".into(),
            expected: rec.ship_version.clone().unwrap_or_else(|| "unknown".into()),
            got: env!("CARGO_PKG_VERSION").into(),
        });
    }
    let source = cmd.source.clone().unwrap_or_else(|| PathBuf::from("."));
    ctx.report.step(format!("checking out {} from {}", rec.revision, source.display()));
    let checkout = Checkout::new(&source, &rec.revision)?;
    // The generated base's CA bundle is an input: the one in the image, checked against its label.
    let ca = if rec.recipe.base == "ship" {
        let bytes = expected
            .layers
            .first()
            .map(|l| verify::file_in_layer(l, image::base::CA_PATH))
            .transpose()?
            .flatten()
            .ok_or_else(|| verify::Error::BadRecipe("its base layer has no CA bundle".into()))?;
        if Some(image::digest::sha256(&bytes)) != rec.ca_bundle_sha256 {
            return Err(verify::Error::BadRecipe("its CA bundle does not match its label".into()).into());
        }
        let path = checkout.path.join(".ship-verify-ca.pem");
        std::fs::write(&path, bytes).map_err(|source| Error::Output { what: path.display().to_string(), source })?;
        Some(path)
    } else {
        None
    };
    let args = BuildArgs {
        manifest_path: Some(checkout.path.join(&rec.recipe.manifest_path)),
        package: Some(rec.recipe.package.clone()),
        bin: Some(rec.recipe.bin.clone()),
        toolchain: Some(toolchain),
        target_dir: Some(cmd.target_dir.clone().unwrap_or_else(|| checkout.path.join("target"))),
        platform: rec.recipe.platform.clone(),
        ..Default::default()
    };
    let built = steps::build(ctx, &args, Some(&rec.recipe.source_date_epoch.to_string()))?;
    if Some(&built.facts.toolchain.identity) != rec.toolchain.as_ref() {
        notes.push(Difference {
            place: "toolchain".into(),
            what: "identity (the usual cause of a mismatch)".into(),
            expected: rec.toolchain.clone().unwrap_or_else(|| "unknown".into()),
            got: built.facts.toolchain.identity.clone(),
        });
    }
    let settings = settings::image_from_recipe(&rec.recipe, &checkout.path, ca)?;
    let inputs = steps::ImageInputs {
        reuse_from: None,
        binary: &built.facts.binary,
        name: rec.recipe.name.clone(),
        project: Some(&built.project),
        built: Some(&built),
        epoch: rec.recipe.source_date_epoch,
    };
    let rebuilt = steps::image(ctx, &settings, inputs, &cmd.registry)?;
    verdict(cmd, &shown, &expected, &rebuilt, notes)
}

/// Build the current project twice, each in a checkout of its own, and compare.
fn twice(ctx: &Context, cmd: &VerifyCommand) -> Result<(), Error> {
    let manifest = settings::manifest_path(cmd.manifest_path.as_deref(), &ctx.loaded).value;
    let manifest = std::path::absolute(&manifest).unwrap_or(manifest);
    let dir = manifest.parent().unwrap_or(Path::new(".")).to_path_buf();
    let top = PathBuf::from(git(&dir, &["rev-parse", "--show-toplevel"])?);
    let relative = manifest
        .canonicalize()
        .ok()
        .and_then(|m| m.strip_prefix(top.canonicalize().ok()?).ok().map(Path::to_path_buf))
        .ok_or_else(|| {
            verify::Error::Git(format!("{} is not inside the git checkout {}", manifest.display(), top.display()))
        })?;
    let revision = git(&top, &["rev-parse", "HEAD"])?;
    let settings = settings::image(&ImageOptions::default(), None, &[], &ctx.loaded)?;
    let mut images = Vec::new();
    for i in 1..=2 {
        ctx.report.step(format!("build {i} of 2, from a checkout of {revision}"));
        let checkout = Checkout::new(&top, &revision)?;
        let args = BuildArgs {
            manifest_path: Some(checkout.path.join(&relative)),
            toolchain: cmd.toolchain.clone(),
            target_dir: Some(match &cmd.target_dir {
                Some(d) => d.join(format!("twice-{i}")),
                None => checkout.path.join("target"),
            }),
            ..Default::default()
        };
        let built = steps::build(ctx, &args, None)?;
        let name = settings::short_app_name(&settings, None, &built.facts.bin)?;
        let inputs = steps::ImageInputs {
            reuse_from: None,
            binary: &built.facts.binary,
            name,
            project: Some(&built.project),
            built: Some(&built),
            epoch: built.epoch.value,
        };
        images.push(steps::image(ctx, &settings, inputs, &cmd.registry)?);
    }
    verdict(cmd, "twice", &images[0], &images[1], Vec::new())
}
