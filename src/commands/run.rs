//! `ship run` (and bare `ship`): toolchain → build → image → push, as ship.toml and the flags
//! ask. Without a registry to push to, the image goes to a local OCI layout and a
//! docker-archive under `target/ship/`. Prints the pushed `REF@sha256:…` (or the layout and the
//! digest); `--json` prints the run report; `$GITHUB_STEP_SUMMARY` gets a Markdown summary.

use super::{Context, print_json, steps};
use crate::Error;
use crate::cli::RunArgs;
use crate::project::{self, Project};
use crate::registry::Reference;
use crate::report::human_bytes;
use crate::report::summary::{Failure, RunReport, Step};
use crate::settings::{self, ImageSettings, Output, Setting, Source};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the image goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// Push to this repository (its tag, if any, is among the tags).
    Registry(Setting<Reference>),
    /// A local OCI layout and a docker-archive under the target directory.
    Local,
}

/// Whether a reference names its registry (`ghcr.io/a/b`, `localhost:5000/b`) rather than
/// falling back to docker's default.
fn names_a_registry(value: &str) -> bool {
    value.split_once('/').is_some_and(|(first, _)| first.contains('.') || first.contains(':') || first == "localhost")
}

/// `--image` / `[image] name` with a registry host: push there. A bare name, or nothing, with
/// `--push`: to `ghcr.io/<owner>/<name>` from the git remote. Otherwise nothing is pushed.
pub fn target(settings: &ImageSettings, push: bool, project: &Project) -> Result<Target, Error> {
    if let Some(r) = settings.reference.as_ref().filter(|r| names_a_registry(&r.value)) {
        return Ok(Target::Registry(Setting::new(Reference::parse(&r.value)?, r.source.clone())));
    }
    if !push {
        return Ok(Target::Local);
    }
    let remote = project.git.as_ref().and_then(|g| g.remote.clone());
    let derived = remote.as_deref().and_then(project::ghcr_name).ok_or_else(|| settings::Error::NoRegistry {
        why: match &remote {
            Some(r) => format!("the git remote origin ({r}) is not on github.com, so no ghcr.io name follows from it"),
            None => "the project has no git remote origin to derive ghcr.io/<owner>/<repo> from".into(),
        },
    })?;
    let name = match &settings.reference {
        // A bare name: the owner from the remote, the name as given.
        Some(r) => {
            let owner = derived.rsplit_once('/').map(|(o, _)| o).unwrap_or(&derived).to_string();
            format!("{owner}/{}", r.value)
        }
        None => derived,
    };
    Ok(Target::Registry(Setting::new(Reference::parse(&name)?, Source::Derived("git remote origin".into()))))
}

/// The tags to push or write: the reference's own tag first, then the configured ones filled in.
pub fn tags(settings: &ImageSettings, target: &Target, project: &Project) -> Result<Vec<String>, Error> {
    let mut tags = Vec::new();
    if let Target::Registry(r) = target {
        tags.extend(r.value.tag.clone());
    }
    let explicit_tag = !tags.is_empty();
    for t in settings::fill_tags(&settings.tags.value, Some(project))? {
        // A tag in --image replaces the default `latest`, not configured tags.
        if explicit_tag && settings.tags.source == Source::Default {
            continue;
        }
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    Ok(tags)
}

/// Time one step, record it, and stop the run at the first failure.
fn timed<T>(
    report: &mut RunReport,
    name: &'static str,
    work: impl FnOnce() -> Result<T, Error>,
    describe: impl FnOnce(&T) -> (String, serde_json::Value),
) -> Result<T, Error> {
    let start = Instant::now();
    match work() {
        Ok(v) => {
            let (summary, facts) = describe(&v);
            report.steps.push(Step { name, duration_ms: start.elapsed().as_millis(), summary, facts });
            Ok(v)
        }
        Err(e) => {
            report.failed = Some(Failure { step: name, error: e.to_string() });
            Err(e)
        }
    }
}

pub fn run(ctx: &Context, args: &RunArgs) -> Result<(), Error> {
    let start = Instant::now();
    let mut report = RunReport::new();
    let result = pipeline(ctx, args, &mut report);
    report.duration_ms = start.elapsed().as_millis();
    report.ok = result.is_ok();
    // The summary is written whether the run succeeded or not: a failed CI run shows what
    // happened, and what earlier steps produced.
    if let Some(path) = settings::env::var("GITHUB_STEP_SUMMARY") {
        append(&PathBuf::from(path), &report.markdown())?;
    }
    result?;
    if args.json {
        print_json(&report);
    } else if let Some(r) = &report.reference {
        println!("{r}");
    } else if let (Some(layout), Some(digest)) = (&report.layout, &report.digest) {
        println!("{layout} {digest}");
    }
    Ok(())
}

fn append(path: &std::path::Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Output { what: format!("the step summary {}", path.display()), source })?;
    f.write_all(text.as_bytes())
        .map_err(|source| Error::Output { what: format!("the step summary {}", path.display()), source })
}

/// The deploy step, with the digest reference just pushed.
fn deploy_step(
    ctx: &Context,
    report: &mut RunReport,
    deployer: &settings::Deployer,
    reference: &str,
    project: &Project,
) -> Result<(), Error> {
    let target =
        crate::deploy::Target::new(Reference::parse(reference)?, project.git.as_ref().map(|g| g.revision.clone()))?;
    let deployed = timed(
        report,
        "deploy",
        || super::deploy::step(ctx, deployer, &target),
        |d| {
            let summary = match &d.deployment_id {
                Some(id) => format!(
                    "deployment {id}: {}{}",
                    d.statuses.join(" → "),
                    d.health.map(|h| format!(", health {h}")).unwrap_or_default()
                ),
                None => format!("{} accepted by the webhook (no status to wait for)", d.image),
            };
            (summary, serde_json::to_value(d).expect("JSON"))
        },
    )?;
    report.deployment = Some(crate::report::summary::Deployment {
        id: deployed.deployment_id.clone(),
        status: deployed.status.clone(),
    });
    Ok(())
}

/// The Docker fallback: `docker buildx build -f Dockerfile.production` builds and pushes in one
/// step; its digest goes to deploy as the native path's does.
fn docker_pipeline(
    ctx: &Context,
    args: &RunArgs,
    report: &mut RunReport,
    settings: &settings::ImageSettings,
) -> Result<(), Error> {
    use crate::build::docker;
    // The project is read with the cargo on PATH (no toolchain is resolved: Docker brings its own).
    let req = settings::project_request(&args.build, &ctx.loaded);
    let project = project::resolve(&req, Path::new("cargo"), &crate::build::env::inherited(std::env::vars_os()))?;
    let Target::Registry(reference) = target(settings, args.push, &project)? else {
        return Err(settings::Error::NoRegistry { why: "the Docker builder pushes as it builds".into() }.into());
    };
    let deployer = settings::deploy(&Default::default(), &ctx.loaded, &reference.value.registry)?;
    let tags = tags(settings, &Target::Registry(reference.clone()), &project)?;
    report.tags = tags.clone();
    let repo = format!("{}/{}", reference.value.registry, reference.value.repository);
    let epoch = settings::epoch(args.image.source_date_epoch.as_deref(), Some(&project))?;
    let staging =
        tempfile::tempdir().map_err(|source| Error::Output { what: "a temporary directory".into(), source })?;
    let request = docker::Request {
        context: project.root().to_path_buf(),
        manifest: project.relative(&project.manifest_path),
        package: project.package.name.clone(),
        bin: project.package.bin.clone(),
        tags: tags.iter().map(|t| format!("{repo}:{t}")).collect(),
        revision: project.git.as_ref().map(|g| g.revision.clone()),
        source: project.source_url(),
        source_date_epoch: epoch.value,
        cache: settings::build_cache(&ctx.loaded).map(|c| c.value),
        github_actions: settings::env::var("GITHUB_ACTIONS").as_deref() == Some("true"),
        local_cache: settings::cache_dir().unwrap_or_else(|| staging.path().into()).join("buildx"),
        metadata_file: staging.path().join("metadata.json"),
    };
    ctx.report.step(format!("building and pushing {repo} with docker buildx (Dockerfile.production)"));
    let facts = timed(
        report,
        "docker build",
        || Ok(docker::build(&request, ctx.report.is_quiet())?),
        |f| (format!("{repo}@{}", f.digest), serde_json::to_value(f).expect("JSON")),
    )?;
    let pushed = format!("{repo}@{}", facts.digest);
    report.digest = Some(facts.digest.clone());
    report.reference = Some(pushed.clone());
    if let Some(deployer) = &deployer {
        deploy_step(ctx, report, deployer, &pushed, &project)?;
    }
    Ok(())
}

fn pipeline(ctx: &Context, args: &RunArgs, report: &mut RunReport) -> Result<(), Error> {
    // Everything that can be checked before the build is.
    let settings =
        settings::image(&args.image, args.reference.as_deref().map(|r| (r, "--image")), &args.tags, &ctx.loaded)?;
    use crate::build::docker;
    let nix = which::which("nix").is_ok();
    let probe_docker = !nix && args.builder == "auto";
    let builder = docker::choose(&args.builder, nix, probe_docker && docker::buildx_available()).ok_or_else(|| {
        settings::Error::BadValue {
            flag: "--builder",
            value: args.builder.clone(),
            expected: "native, dockerfile or auto",
        }
    })?;
    if builder == docker::Builder::Dockerfile {
        return docker_pipeline(ctx, args, report, &settings);
    }
    let built = timed(
        report,
        "build",
        || steps::build(ctx, &args.build, args.image.source_date_epoch.as_deref()),
        |b| {
            let f = &b.facts;
            let cache = match &f.sccache {
                Some(s) => format!("sccache {} hits, {} misses ({:.0}%)", s.hits, s.misses, s.hit_rate * 100.0),
                None => "sccache off".into(),
            };
            let summary = format!(
                "{} {} for {}, {} toolchain, linker {}, {cache}",
                f.bin,
                f.version,
                f.target,
                f.toolchain.source.describe(),
                f.linker
            );
            (summary, json!({"facts": f, "epoch": b.epoch, "project": b.project}))
        },
    )?;
    let target = target(&settings, args.push, &built.project)?;
    // [deploy] in ship.toml makes deploying the last step, with the digest just pushed.
    let deployer = match &target {
        Target::Registry(r) => settings::deploy(&Default::default(), &ctx.loaded, &r.value.registry)?,
        Target::Local => {
            if settings::deploy(&Default::default(), &ctx.loaded, "")?.is_some() {
                return Err(settings::Error::NoRegistry {
                    why: "ship.toml asks for a deploy, and a deploy needs a pushed image".into(),
                }
                .into());
            }
            None
        }
    };
    let tags = tags(&settings, &target, &built.project)?;
    report.tags = tags.clone();
    let name = settings::short_app_name(&settings, args.image.name.as_deref(), &built.facts.bin)?;
    // The local layout's blobs are reused when nothing changed (the layer cache).
    let ship_dir = settings::target_dir(&args.build, &built.project).join("ship");
    let local_dir = ship_dir.join(&name);
    let image = timed(
        report,
        "image",
        || {
            let inputs = steps::ImageInputs {
                reuse_from: matches!(target, Target::Local).then_some(local_dir.as_path()),
                binary: &built.facts.binary,
                name: name.clone(),
                project: Some(&built.project),
                built: Some(&built),
                epoch: built.epoch.value,
            };
            steps::image(ctx, &settings, inputs, &args.upload.registry)
        },
        |image: &steps::Assembled| {
            let sizes: Vec<String> = image.layers.iter().map(|l| human_bytes(l.size)).collect();
            let summary = format!("{} ({} layers: {})", image.manifest_digest, image.layers.len(), sizes.join(", "));
            let layers: Vec<_> = image
                .layers
                .iter()
                .map(|l| json!({"digest": l.digest, "diff_id": l.diff_id, "size": l.size, "media_type": l.media_type}))
                .collect();
            (summary, json!({"digest": image.manifest_digest, "config": image.config_digest, "layers": layers}))
        },
    )?;
    report.digest = Some(image.manifest_digest.clone());
    match target {
        Target::Registry(reference) => {
            let pushed = timed(
                report,
                "push",
                || {
                    steps::push(
                        ctx,
                        steps::Pushable::Image(&image),
                        &reference.value,
                        tags.clone(),
                        vec![],
                        &args.upload.registry,
                        args.upload.concurrency,
                    )
                },
                |r| {
                    let skipped: u64 = r
                        .blobs
                        .iter()
                        .filter(|b| b.outcome != crate::registry::push::Outcome::Uploaded)
                        .map(|b| b.size)
                        .sum();
                    let summary = format!(
                        "{} uploaded, {} already there or mounted ({} blobs uploaded, {} skipped, {} mounted)",
                        human_bytes(r.bytes_uploaded),
                        human_bytes(skipped),
                        r.blobs_uploaded,
                        r.blobs_skipped,
                        r.blobs_mounted
                    );
                    (summary, serde_json::to_value(r).expect("JSON"))
                },
            )?;
            report.reference = Some(pushed.reference.clone());
            if let Some(deployer) = &deployer {
                deploy_step(ctx, report, deployer, &pushed.reference, &built.project)?;
            }
        }
        Target::Local => {
            let dir = local_dir.clone();
            let tag = tags.first().cloned().unwrap_or_else(|| "latest".into());
            let layout = Output::Layout { dir: dir.clone(), tag: tag.clone() };
            let archive_file = ship_dir.join(format!("{name}.tar"));
            let archive = Output::Archive { file: archive_file.clone(), repo_tag: format!("{name}:{tag}") };
            timed(
                report,
                "write",
                || {
                    steps::write(ctx, &image, &layout)?;
                    steps::write(ctx, &image, &archive)
                },
                |_| {
                    (
                        format!("{layout} and {}", archive_file.display()),
                        json!({"layout": layout.to_string(), "archive": archive_file}),
                    )
                },
            )?;
            report.layout = Some(layout.to_string());
            report.archive = Some(archive_file.display().to_string());
            ctx.report.step(format!(
                "no registry to push to (--image, [image] name or --push); run it with:\n  podman load -i {archive} && podman run --rm --network=host -e PORT=3000 localhost/{name}:{tag}\n  docker load -i {archive} && docker run --rm -p 3000:3000 {name}:{tag}",
                archive = archive_file.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_named_explicitly() {
        assert!(names_a_registry("ghcr.io/acme/app"));
        assert!(names_a_registry("localhost:5000/app"));
        assert!(names_a_registry("127.0.0.1:5000/a/b:v1"));
        assert!(!names_a_registry("hello-service"));
        assert!(!names_a_registry("acme/app"));
    }
}
