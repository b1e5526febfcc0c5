//! The pipeline's steps, shared by the commands and by `ship run`, so that each command and the
//! pipeline cannot drift apart. Each returns a value; none prints a result (progress goes to
//! stderr through the reporter).

use super::Context;
use crate::Error;
use crate::build;
use crate::cleanup;
use crate::cli::{BuildArgs, RegistryArgs};
use crate::image::{self, Image};
use crate::project::{self, Project};
use crate::registry::{self, Reference};
use crate::report::{PushProgress, human_bytes};
use crate::settings::{self, ImageSettings, Output, Setting};
use crate::toolchain::{self, Toolchain};
use std::path::{Path, PathBuf};

/// The directory the project (and its flake) is looked up from.
fn project_dir(manifest: &Path) -> PathBuf {
    match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Find or realise the toolchain.
pub fn toolchain(ctx: &Context, request: &Setting<toolchain::Request>, manifest: &Path) -> Result<Toolchain, Error> {
    let mut warn = |w: String| ctx.report.warn(w);
    Ok(toolchain::resolve(&request.value, &project_dir(manifest), ctx.report.is_quiet(), &mut warn)?)
}

/// The project's facts, with the toolchain's cargo.
pub fn project(req: &project::Request, tc: &Toolchain) -> Result<Project, Error> {
    let cargo = tc.tool("cargo").expect("a resolved toolchain has cargo");
    Ok(project::resolve(req, cargo, &build::cargo_env(tc))?)
}

/// A build: the toolchain, the project, the one epoch, and what cargo made.
pub struct Built {
    pub project: Project,
    pub epoch: Setting<i64>,
    pub facts: build::Facts,
    /// Every crate's licence, for the SBOM.
    pub licenses: std::collections::BTreeMap<(String, String), String>,
    /// When the build started, in seconds since 1970, for the provenance.
    pub started: i64,
}

/// toolchain → project → build, with the epoch from `epoch_flag`, the environment or the
/// commit: the same epoch the image will take.
pub fn build(ctx: &Context, args: &BuildArgs, epoch_flag: Option<&str>) -> Result<Built, Error> {
    let platform = settings::one_platform(args.platform.as_deref())?;
    build_for(ctx, args, epoch_flag, platform)
}

/// Build for one platform (`None`: the host's).
pub fn build_for(
    ctx: &Context,
    args: &BuildArgs,
    epoch_flag: Option<&str>,
    platform: Option<crate::build::cross::Platform>,
) -> Result<Built, Error> {
    let request = settings::project_request(args, &ctx.loaded);
    let tc_request = settings::toolchain(args.toolchain.as_deref(), &ctx.loaded)?;
    let tc = toolchain(ctx, &tc_request, &request.manifest_path.value)?;
    let project = project(&request, &tc)?;
    let epoch = settings::epoch(epoch_flag, Some(&project))?;
    let req = settings::build(args, &ctx.loaded, &project, epoch.value, ctx.report.is_quiet(), platform);
    ctx.report.step(format!(
        "building {} ({} {}{}) with the {} toolchain{}",
        project.manifest_path.display(),
        project.package.bin,
        project.package.version,
        platform.map(|p| format!(", for {}", p.oci)).unwrap_or_default(),
        tc.source.describe(),
        tc.root.as_ref().map(|r| format!(" {}", r.display())).unwrap_or_default()
    ));
    let mut warn = |w: &str| ctx.report.warn(w);
    let started = super::now();
    // The licences (for the SBOM) come from a second `cargo metadata`, read while cargo builds.
    let (facts, licenses) = std::thread::scope(|s| {
        let cargo = tc.tool("cargo").expect("a resolved toolchain has cargo");
        let licenses = s.spawn(|| project::licenses(&project, cargo, &build::cargo_env(&tc)));
        let facts = build::build(&req, &tc, &mut warn);
        (facts, licenses.join().unwrap_or_default())
    });
    let facts = facts?;
    ctx.report.step(format!(
        "built {} {} for {} in {:.1}s (linker {}, {}, sccache {})",
        facts.bin,
        facts.version,
        facts.target,
        facts.duration_ms as f64 / 1000.0,
        facts.linker,
        if facts.static_linking { "static" } else { "dynamic" },
        match &facts.sccache {
            Some(st) =>
                format!("{} hits, {} misses, {:.0}% hit rate, {}", st.hits, st.misses, st.hit_rate * 100.0, st.backend),
            None => "off".to_string(),
        },
    ));
    Ok(Built { project, epoch, facts, licenses, started })
}

/// A registry client for `reference`'s registry, with the credentials chain and time bounds.
pub fn registry_client(
    ctx: &Context,
    reference: &Reference,
    args: &RegistryArgs,
) -> Result<registry::client::Client, Error> {
    let inputs = settings::registry_inputs(args, &mut std::io::stdin())?;
    let creds = registry::auth::resolve(&reference.registry, &inputs);
    let timeouts = settings::parse::timeouts(args.timeout.as_deref(), args.request_timeout.as_deref())?;
    Ok(registry::client::Client::new(&reference.registry, &args.insecure, creds, ctx.verbose, timeouts)?)
}

/// The label that records a registry base, so a push can mount its layers.
pub const LABEL_BASE: &str = "dev.ship.base";

/// Everything that goes into an image besides the settings: what to run and who made it.
pub struct ImageInputs<'a> {
    /// The layout the image will be written to: its blobs may be reused (the layer cache).
    pub reuse_from: Option<&'a Path>,
    pub binary: &'a Path,
    pub name: String,
    pub project: Option<&'a Project>,
    pub built: Option<&'a Built>,
    pub epoch: i64,
}

/// An assembled image, the staging directory its new layers' blobs are in, and the one its base
/// layers are read from (a registry base's): kept until the image is written or pushed.
pub struct Assembled {
    pub image: Image,
    _blobs: (tempfile::TempDir, cleanup::Registered),
    _staging: Option<(tempfile::TempDir, cleanup::Registered)>,
}

impl std::ops::Deref for Assembled {
    type Target = Image;
    fn deref(&self) -> &Image {
        &self.image
    }
}

/// Assemble the image: a registry base is pulled into a staging layout first, so assembly
/// itself stays offline.
pub fn image(
    ctx: &Context,
    settings: &ImageSettings,
    inputs: ImageInputs<'_>,
    registry_args: &RegistryArgs,
) -> Result<Assembled, Error> {
    let mut staging = None;
    let mut base_label = None;
    if let Some(base) = settings::registry_base(settings) {
        let platform = image::binary_platform(inputs.binary)?;
        let client = registry_client(ctx, &base, registry_args)?;
        ctx.report.step(format!("pulling the base {base} ({}/{})", platform.os, platform.architecture));
        let dir = tempfile::tempdir()
            .map_err(|e| registry::Error::Io { context: "making a staging directory".into(), source: e })?;
        let guard = cleanup::tree(dir.path());
        let pulled = registry::pull::pull(&client, &base, &platform, dir.path())?;
        let layout_dir = dir.path().join("layout");
        image::layout::write(&pulled, &layout_dir, "base", &|m| ctx.report.step(m))?;
        base_label = Some(format!("{}/{}@{}", base.registry, base.repository, pulled.manifest_digest));
        staging = Some((dir, guard, format!("oci:{}:base", layout_dir.display())));
    }
    let base = settings::base(settings, staging.as_ref().map(|s| s.2.as_str()))?;
    // The new layers are compressed into files here (memory stays flat as binaries grow).
    let blobs = tempfile::Builder::new()
        .prefix("ship-layers-")
        .tempdir()
        .map_err(|e| registry::Error::Io { context: "making a staging directory".into(), source: e })?;
    let blobs_guard = cleanup::tree(blobs.path());
    let mut req = settings::image_request(
        settings,
        inputs.name,
        inputs.binary,
        base,
        inputs.project,
        inputs.built.map(|b| &b.facts),
        inputs.epoch,
        blobs.path(),
    );
    if let Some(b) = &base_label {
        req.labels.insert(LABEL_BASE.to_string(), b.clone());
    }
    if let (Some(dir), Some(cache)) = (inputs.reuse_from, settings::cache_dir()) {
        req.layer_cache =
            Some(image::cache::LayerCache { dir: cache.join("layers"), blob_dirs: vec![dir.join("blobs/sha256")] });
    }
    // An image ship built from a project records how, so that `ship verify` can build it again.
    let mut recipe_label = None;
    if let (Some(project), Some(_)) = (inputs.project, inputs.built) {
        let base = base_label.unwrap_or_else(|| settings.base.value.clone());
        let platform = inputs.built.and_then(|b| crate::build::cross::platform(&b.facts.platform));
        let recipe = settings::recipe(settings, project, &req.name, base, req.source_date_epoch, platform);
        req.labels.insert(crate::verify::LABEL_RECIPE.to_string(), recipe.to_label());
        recipe_label = Some(recipe.to_label());
    }
    image::check_binary(&req.binary, &req.base)?;
    ctx.report.step(format!(
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
    let mut image = image::build(&req)?;
    // The SBOM and the provenance travel with an image ship built from a project.
    if let (Some(project), Some(built), Some(recipe)) = (inputs.project, inputs.built, recipe_label) {
        use crate::image::artifact::{Artifact, PROVENANCE_TYPE, SBOM_TYPE};
        use crate::report::attest;
        let size = image.manifest.len() as u64;
        if let Some(packages) = attest::locked_packages(&project.workspace_root.join("Cargo.lock")) {
            let sbom = attest::sbom(project, &packages, &built.licenses);
            image.artifacts.push(Artifact::new(SBOM_TYPE, image::spec::canonical(&sbom), &image.manifest_digest, size));
        }
        let toml = Some(ctx.loaded.text()).filter(|t| !t.is_empty());
        let statement = attest::provenance(
            &req.name,
            &image.manifest_digest,
            project,
            &built.facts,
            &recipe,
            toml,
            built.started,
            super::now(),
        );
        image.artifacts.push(Artifact::new(
            PROVENANCE_TYPE,
            image::spec::canonical(&statement),
            &image.manifest_digest,
            size,
        ));
    }
    for (i, l) in image.layers.iter().enumerate() {
        ctx.report.step(format!("layer {}: {} {}", i + 1, l.digest, human_bytes(l.size)));
    }
    Ok(Assembled { image, _blobs: (blobs, blobs_guard), _staging: staging.map(|(dir, guard, _)| (dir, guard)) })
}

/// Write the image to a layout or an archive.
pub fn write(ctx: &Context, image: &Image, output: &Output) -> Result<(), Error> {
    match output {
        Output::Layout { dir, tag } => image::layout::write(image, dir, tag, &|m| ctx.report.step(m))?,
        Output::Archive { file, repo_tag } => image::archive::write(image, file, repo_tag)?,
    }
    ctx.report.step(format!("wrote {output} ({}/{})", image.platform.os, image.platform.architecture));
    Ok(())
}

/// What `push` sends: one image, or an index over one image per platform.
#[derive(Clone, Copy)]
pub enum Pushable<'a> {
    Image(&'a Image),
    Index(&'a image::MultiImage),
}

impl Pushable<'_> {
    fn digest(&self) -> &str {
        match self {
            Pushable::Image(i) => &i.manifest_digest,
            Pushable::Index(m) => &m.index_digest,
        }
    }

    /// The (first) image, whose config names a registry base.
    fn first(&self) -> Option<&Image> {
        match self {
            Pushable::Image(i) => Some(i),
            Pushable::Index(m) => m.images.first(),
        }
    }

    fn blob_count(&self) -> usize {
        match self {
            Pushable::Image(i) => i.layers.len() + 1,
            Pushable::Index(m) => m.images.iter().map(|i| i.layers.len() + 1).sum::<usize>() + 1,
        }
    }
}

/// Push an image or an index: the blobs the registry lacks, then the manifests, the one a tag
/// names last, under every tag.
pub fn push(
    ctx: &Context,
    what: Pushable<'_>,
    reference: &Reference,
    tags: Vec<String>,
    mut mount_from: Vec<String>,
    registry_args: &RegistryArgs,
    concurrency: usize,
) -> Result<registry::push::Report, Error> {
    let client = registry_client(ctx, reference, registry_args)?;
    let cache = settings::cache_dir();
    // An image built on a registry base can mount the base's layers from its repository.
    let base_repo = what
        .first()
        .and_then(|image| serde_json::from_slice::<oci_spec::image::ImageConfiguration>(&image.config).ok())
        .and_then(|c| c.config().as_ref()?.labels().as_ref()?.get(LABEL_BASE).cloned())
        .and_then(|b| Reference::parse(&b).ok())
        .filter(|b| b.registry == reference.registry);
    mount_from.extend(base_repo.map(|b| b.repository));
    mount_from.extend(registry::known::candidates(cache.as_deref(), &reference.registry, &reference.repository));
    ctx.report.step(format!(
        "pushing {} ({} blobs) to {}/{} as {}, credentials: {}",
        what.digest(),
        what.blob_count(),
        reference.registry,
        reference.repository,
        if tags.is_empty() { what.digest().to_string() } else { tags.join(", ") },
        client.credentials.source.describe()
    ));
    let opts = registry::push::Options {
        tags,
        mount_from,
        concurrency,
        chunk_size: registry::push::MAX_CHUNK,
        monolithic: std::sync::atomic::AtomicBool::new(registry::push::takes_monolithic(&reference.registry)),
    };
    let progress = PushProgress::new(ctx.report.is_quiet());
    let result = match what {
        Pushable::Image(image) => registry::push::push(&client, &reference.repository, image, &opts, &progress)?,
        Pushable::Index(multi) => registry::push::push_multi(&client, &reference.repository, multi, &opts, &progress)?,
    };
    registry::known::record(cache.as_deref(), &reference.registry, &reference.repository);
    ctx.report.step(format!(
        "pushed {}: {} uploaded, {} skipped, {} mounted, {} sent in {} requests",
        result.digest,
        result.blobs_uploaded,
        result.blobs_skipped,
        result.blobs_mounted,
        human_bytes(result.bytes_uploaded),
        result.requests
    ));
    Ok(result)
}
