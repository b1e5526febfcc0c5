//! ship: build, package and deploy Rust web services reproducibly.
//!
//! The modules follow the pipeline (see DESIGN.md): `config` resolves settings, `toolchain`
//! finds the compilers, `build` runs cargo, `image` assembles, `registry` will push; `run`
//! joins the steps for each command.

pub mod build;
pub mod cli;
pub mod config;
pub mod image;
pub mod registry;
pub mod report;
pub mod toolchain;

use cli::{BuildArgs, Cli, Command, ImageArgs, ToolchainCommand};
use config::Output;
use report::{Reporter, human_bytes};
use serde_json::json;

/// Any failure, by the module it came from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] config::Error),
    #[error(transparent)]
    Toolchain(#[from] toolchain::Error),
    #[error(transparent)]
    Build(#[from] build::Error),
    #[error(transparent)]
    Image(#[from] image::Error),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.hint(),
            Error::Toolchain(e) => e.hint(),
            Error::Build(e) => e.hint(),
            Error::Image(e) => e.hint(),
        }
    }
}

/// Run one command; the result goes to stdout, progress to stderr.
pub fn run(cli: Cli) -> Result<(), Error> {
    let report = Reporter::new(cli.quiet);
    let loaded = config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Build(cmd) => {
            let facts = build_step(&cmd.build, &loaded, &report)?;
            if cmd.json {
                println!("{}", serde_json::to_string_pretty(&facts).expect("JSON"));
            } else {
                println!("{}", facts.binary.display());
            }
            Ok(())
        }
        Command::Image(args) => image_command(&args, &loaded, &report),
        Command::Toolchain(cmd) => toolchain_command(&cmd, &loaded, &report),
    }
}

fn resolve_toolchain(
    request: &toolchain::Request,
    project_dir: &std::path::Path,
    report: &Reporter,
) -> Result<toolchain::Toolchain, Error> {
    let mut warn = |w: String| report.warn(w);
    Ok(toolchain::resolve(request, project_dir, report.is_quiet(), &mut warn)?)
}

/// Resolve the toolchain and build; the summary goes to stderr.
fn build_step(args: &BuildArgs, loaded: &config::Loaded, report: &Reporter) -> Result<build::Facts, Error> {
    let settings = config::resolve_build(args, loaded, report.is_quiet())?;
    let tc = resolve_toolchain(&settings.toolchain, &settings.project_dir, report)?;
    report.step(format!(
        "building {} with the {} toolchain{}",
        settings.request.manifest_path.display(),
        tc.source.describe(),
        tc.root.as_ref().map(|r| format!(" {}", r.display())).unwrap_or_default()
    ));
    let mut warn = |w: &str| report.warn(w);
    let facts = build::build(&settings.request, &tc, &mut warn)?;
    report.step(format!(
        "built {} {} for {} in {:.1}s (linker {}, {}, sccache {})",
        facts.bin,
        facts.version,
        facts.target,
        facts.duration_ms as f64 / 1000.0,
        facts.linker,
        if facts.static_linking { "static" } else { "dynamic" },
        if facts.sccache { "on" } else { "off" },
    ));
    Ok(facts)
}

fn toolchain_command(cmd: &ToolchainCommand, loaded: &config::Loaded, report: &Reporter) -> Result<(), Error> {
    let request = config::toolchain_request(cmd.toolchain.as_deref(), loaded)?;
    let manifest = config::project_manifest(cmd.manifest_path.as_deref(), loaded);
    let project_dir = manifest
        .as_deref()
        .and_then(|m| m.parent())
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    let tc = resolve_toolchain(&request, &project_dir, report)?;
    let versions = tc.versions();
    if cmd.json {
        let out = json!({
            "source": tc.source,
            "identity": tc.identity(&versions),
            "root": tc.root,
            "flake": tc.flake,
            "hermetic": tc.is_hermetic(),
            "tools": tc.tools,
            "versions": versions,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        return Ok(());
    }
    println!("source:    {}", tc.source.describe());
    println!("path:      {}", tc.root.as_ref().map_or("-".to_string(), |r| r.display().to_string()));
    if let Some(f) = &tc.flake {
        println!("flake:     {f}");
    }
    println!("identity:  {}", tc.identity(&versions));
    let show = |label: &str, v: &Option<String>| println!("{label:<10} {}", v.as_deref().unwrap_or("not found"));
    show("cargo:", &versions.cargo);
    show("mold:", &versions.mold);
    show("sccache:", &versions.sccache);
    show("clang:", &versions.clang);
    println!("rustc -vV:");
    for line in versions.rustc.as_deref().unwrap_or("not found").lines() {
        println!("  {line}");
    }
    Ok(())
}

fn image_command(args: &ImageArgs, loaded: &config::Loaded, report: &Reporter) -> Result<(), Error> {
    let built = match &args.binary {
        Some(_) => None,
        None => Some(build_step(&args.build, loaded, report)?),
    };
    let binary = match (&args.binary, &built) {
        (Some(b), _) => b.clone(),
        (None, Some(f)) => f.binary.clone(),
        (None, None) => unreachable!("built when no --binary"),
    };
    let settings = config::resolve_image(args, loaded, &binary, built.as_ref())?;
    let req = &settings.request;
    report.step(format!(
        "assembling {} from {} ({} layers, {})",
        req.name,
        req.binary.display(),
        req.compression.name(),
        match &req.base {
            image::Base::Generated { ca_bundle } => format!("generated base, CA bundle {}", ca_bundle.display()),
            image::Base::Scratch => "no base".into(),
            image::Base::Layout { dir, tag } => format!("base oci:{}:{tag}", dir.display()),
        }
    ));
    let image = image::build(req)?;
    for (i, l) in image.layers.iter().enumerate() {
        report.step(format!("layer {}: {} {}", i + 1, l.digest, human_bytes(l.size)));
    }
    match &settings.output {
        Output::Layout { dir, tag } => image::layout::write(&image, dir, tag)?,
        Output::Archive { file, repo_tag } => image::archive::write(&image, file, repo_tag)?,
    }
    report.step(format!("wrote {} ({}/{})", settings.output, image.platform.os, image.platform.architecture));
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
            "build": built,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    } else {
        println!("{}", image.manifest_digest);
    }
    Ok(())
}
