//! `ship image`: assemble an image from a binary (built first unless --binary); print its digest.

use super::{Context, print_json, steps};
use crate::Error;
use crate::cli::ImageArgs;
use crate::project::{self, Project};
use crate::settings;
use serde_json::json;

pub fn run(ctx: &Context, args: &ImageArgs) -> Result<(), Error> {
    let settings = settings::image(&args.image, args.image.name.as_deref().map(|n| (n, "--name")), &[], &ctx.loaded)?;
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
