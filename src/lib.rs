//! ship: build, package and deploy Rust web services reproducibly.
//!
//! The modules follow the pipeline (see DESIGN.md): `config` resolves settings, `image`
//! assembles, `registry` will push; `run` joins the steps for each command.

pub mod cli;
pub mod config;
pub mod image;
pub mod registry;
pub mod report;

use cli::{Cli, Command, ImageArgs};
use config::Output;
use report::{Reporter, human_bytes};
use serde_json::json;

/// Any failure, by the module it came from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::Error),
    #[error(transparent)]
    Image(#[from] image::Error),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.hint(),
            Error::Image(e) => e.hint(),
        }
    }
}

/// Run one command; the result goes to stdout, progress to stderr.
pub fn run(cli: Cli) -> Result<(), Error> {
    let report = Reporter::new(cli.quiet);
    let loaded = config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Image(args) => image_command(&args, &loaded, &report),
    }
}

fn image_command(
    args: &ImageArgs,
    loaded: &config::Loaded,
    report: &Reporter,
) -> Result<(), Error> {
    let settings = config::resolve_image(args, loaded)?;
    let req = &settings.request;
    report.step(format!(
        "assembling {} from {} ({} layers, {})",
        req.name,
        req.binary.display(),
        req.compression.name(),
        match &req.base {
            image::Base::Generated { ca_bundle } =>
                format!("generated base, CA bundle {}", ca_bundle.display()),
            image::Base::Scratch => "no base".into(),
            image::Base::Layout { dir, tag } => format!("base oci:{}:{tag}", dir.display()),
        }
    ));
    let image = image::build(req)?;
    for (i, l) in image.layers.iter().enumerate() {
        report.step(format!(
            "layer {}: {} {}",
            i + 1,
            l.digest,
            human_bytes(l.size)
        ));
    }
    match &settings.output {
        Output::Layout { dir, tag } => image::layout::write(&image, dir, tag)?,
        Output::Archive { file, repo_tag } => image::archive::write(&image, file, repo_tag)?,
    }
    report.step(format!(
        "wrote {} ({}/{})",
        settings.output, image.platform.os, image.platform.architecture
    ));
    if args.json {
        let layers: Vec<_> = image
            .layers
            .iter()
            .map(|l| json!({"digest": l.digest, "diff_id": l.diff_id, "size": l.size, "media_type": l.media_type}))
            .collect();
        let out = json!({
            "digest": image.manifest_digest,
            "manifest_size": image.manifest.len(),
            "config": {"digest": image.config_digest, "size": image.config.len()},
            "platform": format!("{}/{}", image.platform.os, image.platform.architecture),
            "layers": layers,
            "output": settings.output.to_string(),
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    } else {
        println!("{}", image.manifest_digest);
    }
    Ok(())
}
