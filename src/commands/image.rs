//! `ship image`: assemble an image from a binary (built first unless --binary); print its digest.

use super::{Context, print_json, steps};
use crate::Error;
use crate::cli::ImageArgs;
use crate::project::{self, Project};
use crate::settings;
use serde_json::json;

pub fn run(ctx: &Context, args: &ImageArgs) -> Result<(), Error> {
    let settings = settings::image(&args.image, args.image.name.as_deref().map(|n| (n, "--name")), &[], &ctx.loaded)?;
    let platforms = settings::platforms(args.build.platform.as_deref())?;
    if platforms.len() > 1 {
        return multi(ctx, args, &settings, &platforms);
    }
    // The output is checked before anything is built.
    let (built, named): (Option<steps::Built>, Option<Project>) = match &args.binary {
        Some(b) => {
            crate::image::require_file("binary", b)?;
            // Labels come only from a project named explicitly, never from the folder ship
            // runs in: the same binary and flags give the same digest anywhere.
            let named = match settings::named_project(&args.build, &ctx.loaded) {
                Some(req) => {
                    let envs = crate::build::env::inherited(std::env::vars_os());
                    Some(project::resolve(&req, std::path::Path::new("cargo"), &envs)?)
                }
                None => None,
            };
            (None, named)
        }
        None => (Some(steps::build(ctx, &args.build, args.image.source_date_epoch.as_deref())?), None),
    };
    let project = built.as_ref().map(|b| &b.project).or(named.as_ref());
    let binary = match (&args.binary, &built) {
        (Some(b), _) => b.clone(),
        (None, Some(b)) => b.facts.binary.clone(),
        (None, None) => unreachable!("built when no --binary"),
    };
    let epoch = match &built {
        Some(b) => b.epoch.clone(),
        None => settings::epoch(args.image.source_date_epoch.as_deref(), project)?,
    };
    let bin_name = match &built {
        Some(b) => b.facts.bin.clone(),
        None => binary.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    let name = settings::short_app_name(&settings, args.image.name.as_deref(), &bin_name)?;
    let default_ref = settings.reference.as_ref().map(|r| r.value.clone()).unwrap_or_else(|| name.clone());
    let output = settings::parse::parse_output("--output", &args.output, &default_ref)?;
    let reuse_from = match &output {
        settings::Output::Layout { dir, .. } => Some(dir.as_path()),
        settings::Output::Archive { .. } => None,
    };
    let inputs =
        steps::ImageInputs { reuse_from, binary: &binary, name, project, built: built.as_ref(), epoch: epoch.value };
    let image = steps::image(ctx, &settings, inputs, &args.registry)?;
    steps::write(ctx, &image, &output)?;
    if args.json {
        let layers: Vec<_> = image
            .layers
            .iter()
            .map(|l| json!({"digest": l.digest, "diff_id": l.diff_id, "size": l.size, "media_type": l.media_type}))
            .collect();
        print_json(&json!({
            "digest": image.manifest_digest,
            "manifest_size": image.manifest.len(),
            "config": {"digest": image.config_digest, "size": image.config.len()},
            "platform": format!("{}/{}", image.platform.os, image.platform.architecture),
            "layers": layers,
            "output": output.to_string(),
            "build": built.as_ref().map(|b| &b.facts),
        }));
    } else {
        println!("{}", image.manifest_digest);
    }
    Ok(())
}

/// Several platforms: one build and one image per platform, and an OCI image index over them
/// under the layout's tag. Prints the index's digest.
fn multi(
    ctx: &Context,
    args: &ImageArgs,
    settings: &settings::ImageSettings,
    platforms: &[Option<crate::build::cross::Platform>],
) -> Result<(), Error> {
    let several = |expected: &'static str| -> Error {
        settings::Error::BadValue {
            flag: "--platform",
            value: args.build.platform.clone().unwrap_or_default(),
            expected,
        }
        .into()
    };
    if args.binary.is_some() {
        return Err(several("one platform with --binary (a binary is built for one; let ship build each)"));
    }
    // Checked before anything is built: an index needs an OCI layout.
    let (dir, tag) = match settings::parse::parse_output("--output", &args.output, "app")? {
        settings::Output::Layout { dir, tag } => (dir, tag),
        settings::Output::Archive { .. } => {
            return Err(several(
                "one platform for a docker-archive, which holds one image: write an OCI layout (--output oci:DIR) for several",
            ));
        }
    };
    let mut builds = Vec::new();
    for p in platforms {
        builds.push(steps::build_for(ctx, &args.build, args.image.source_date_epoch.as_deref(), *p)?);
    }
    let mut assembled = Vec::new();
    for built in &builds {
        let name = settings::short_app_name(settings, args.image.name.as_deref(), &built.facts.bin)?;
        let inputs = steps::ImageInputs {
            reuse_from: Some(&dir),
            binary: &built.facts.binary,
            name,
            project: Some(&built.project),
            built: Some(built),
            epoch: built.epoch.value,
        };
        assembled.push(steps::image(ctx, settings, inputs, &args.registry)?);
    }
    let multi = crate::image::MultiImage::new(assembled.iter().map(|a| a.image.clone()).collect());
    crate::image::layout::write_multi(&multi, &dir, &tag, &|m| ctx.report.step(m))?;
    ctx.report.step(format!(
        "wrote oci:{}:{tag}: an image index over {}",
        dir.display(),
        builds.iter().map(|b| b.facts.platform.as_str()).collect::<Vec<_>>().join(", ")
    ));
    if args.json {
        let manifests: Vec<_> = multi
            .images
            .iter()
            .zip(&builds)
            .map(|(i, b)| json!({"platform": b.facts.platform, "digest": i.manifest_digest, "build": b.facts}))
            .collect();
        print_json(&json!({
            "digest": multi.index_digest,
            "media_type": crate::image::spec::INDEX_MEDIA_TYPE,
            "manifests": manifests,
            "output": format!("oci:{}:{tag}", dir.display()),
        }));
    } else {
        println!("{}", multi.index_digest);
    }
    Ok(())
}
