//! `ship plan`: every step `ship run` would take, each setting with where it came from, and the
//! inputs the image digest depends on. Runs no build and makes no network call: the toolchain
//! is described, not realised, and the project is read with `cargo metadata`.

use super::run::{Target, tags, target};
use super::{Context, print_json};
use crate::Error;
use crate::build;
use crate::cli::RunArgs;
use crate::image;
use crate::project;
use crate::settings::{self, Setting, Source};
use crate::toolchain;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The version of `ship plan --json`; bumped when a field changes meaning or goes away.
pub const SCHEMA: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Entry {
    pub value: Value,
    pub source: String,
}

#[derive(Debug, Serialize)]
pub struct PlannedStep {
    pub step: &'static str,
    pub settings: BTreeMap<String, Entry>,
}

#[derive(Debug, Serialize)]
pub struct Plan {
    pub schema: u32,
    pub steps: Vec<PlannedStep>,
    /// What the image digest is a function of: change one, and the digest changes.
    pub inputs: BTreeMap<&'static str, Value>,
}

fn entry<T: Serialize>(s: &Setting<T>) -> Entry {
    Entry { value: serde_json::to_value(&s.value).expect("JSON"), source: s.source.to_string() }
}

fn derived(value: impl Serialize, from: &str) -> Entry {
    Entry { value: serde_json::to_value(value).expect("JSON"), source: Source::Derived(from.into()).to_string() }
}

pub fn plan(ctx: &Context, args: &RunArgs) -> Result<Plan, Error> {
    let loaded = &ctx.loaded;
    let image_settings =
        settings::image(&args.image, args.reference.as_deref().map(|r| (r, "--image")), &args.tags, loaded)?;
    let req = settings::project_request(&args.build, loaded);
    let tc_request = settings::toolchain(args.build.toolchain.as_deref(), loaded)?;
    let project_dir = req.manifest_path.value.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(".".as_ref());
    let (planned, tc) = toolchain::plan(&tc_request.value, project_dir)?;
    // cargo metadata with the toolchain's cargo when it is on disk, else the one on PATH.
    let cargo = tc.as_ref().and_then(|t| t.tool("cargo").map(|p| p.to_path_buf())).unwrap_or_else(|| "cargo".into());
    let envs = match &tc {
        Some(t) => build::cargo_env(t),
        None => build::env::inherited(std::env::vars_os()),
    };
    let project = project::resolve(&req, &cargo, &envs)?;
    let epoch = settings::epoch(args.image.source_date_epoch.as_deref(), Some(&project))?;
    let target = target(&image_settings, args.push, &project)?;
    let tags = tags(&image_settings, &target, &project)?;
    let name = settings::short_app_name(&image_settings, args.image.name.as_deref(), &project.package.bin)?;

    let mut steps = Vec::new();
    let mut s = BTreeMap::new();
    s.insert("request".into(), entry(&tc_request.map(|r| r.describe())));
    s.insert("source".into(), derived(&planned.source, "the request"));
    s.insert(
        "identity".into(),
        derived(
            planned.identity.clone().unwrap_or_else(|| "known once realised".into()),
            planned.note.as_deref().unwrap_or("the toolchain"),
        ),
    );
    s.insert("hermetic".into(), derived(planned.hermetic, "the toolchain's source"));
    steps.push(PlannedStep { step: "toolchain", settings: s });

    let mut s = BTreeMap::new();
    s.insert("manifest-path".into(), entry(&req.manifest_path));
    s.insert(
        "package".into(),
        req.package.as_ref().map(entry).unwrap_or_else(|| derived(&project.package.name, "cargo metadata")),
    );
    s.insert(
        "bin".into(),
        req.bin.as_ref().map(entry).unwrap_or_else(|| derived(&project.package.bin, "cargo metadata")),
    );
    s.insert(
        "target-dir".into(),
        match &args.build.target_dir {
            Some(d) => entry(&Setting::new(d.clone(), Source::Flag("--target-dir"))),
            None => derived(&project.target_directory, "cargo metadata"),
        },
    );
    s.insert("source-date-epoch".into(), entry(&epoch));
    let cache = settings::build_cache(loaded);
    s.insert(
        "cache".into(),
        match &cache {
            Some(c) => entry(&c.clone().map(|c| format!("s3://{}/{}", c.bucket, c.prefix))),
            None => entry(&Setting::new("off (sccache's local disk when sccache is there)", Source::Default)),
        },
    );
    s.insert("require-hermetic".into(), entry(&flag_bool(args.build.require_hermetic, "--require-hermetic")));
    steps.push(PlannedStep { step: "build", settings: s });

    let is = &image_settings;
    let mut s = BTreeMap::new();
    s.insert("name".into(), derived(&name, "the image name, else the binary"));
    s.insert("base".into(), entry(&is.base));
    if let Some(c) = &is.ca_bundle {
        s.insert("ca-bundle".into(), entry(c));
    }
    s.insert("ports".into(), entry(&is.ports));
    s.insert(
        "env".into(),
        entry(&is.env.clone().map(|e| e.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>())),
    );
    s.insert("labels".into(), entry(&is.labels));
    s.insert("files".into(), entry(&is.files_shown));
    s.insert("compression".into(), entry(&is.compression));
    s.insert("user".into(), entry(&is.user));
    if let Some(w) = &is.workdir {
        s.insert("workdir".into(), entry(w));
    }
    s.insert("source-date-epoch".into(), entry(&epoch));
    steps.push(PlannedStep { step: "image", settings: s });

    match &target {
        Target::Registry(r) => {
            let mut s = BTreeMap::new();
            s.insert("repository".into(), entry(&r.clone().map(|r| format!("{}/{}", r.registry, r.repository))));
            s.insert("tags".into(), Entry { value: json!(tags), source: is.tags.source.to_string() });
            steps.push(PlannedStep { step: "push", settings: s });
        }
        Target::Local => {
            let ship_dir = settings::target_dir(&args.build, &project).join("ship");
            let dir = ship_dir.join(&name);
            let mut s = BTreeMap::new();
            let tag = tags.first().cloned().unwrap_or_else(|| "latest".into());
            s.insert("layout".into(), derived(format!("oci:{}:{tag}", dir.display()), "no registry to push to"));
            s.insert("archive".into(), derived(ship_dir.join(format!("{name}.tar")), "no registry to push to"));
            steps.push(PlannedStep { step: "write", settings: s });
        }
    }

    if let Target::Registry(r) = &target {
        let mut s = BTreeMap::new();
        let toml_source = || loaded.source(&["deploy"]).to_string();
        match settings::deploy(&Default::default(), loaded, &r.value.registry) {
            Ok(Some(settings::Deployer::Railway(rw))) => {
                s.insert("mode".into(), Entry { value: json!("railway"), source: toml_source() });
                s.insert("service".into(), Entry { value: json!(rw.service), source: toml_source() });
                s.insert("environment".into(), Entry { value: json!(rw.environment), source: toml_source() });
                s.insert("token".into(), Entry { value: json!("set"), source: format!("env {}", rw.auth.source()) });
                s.insert("api".into(), derived(&rw.api_url, "--api-url, SHIP_RAILWAY_API or Railway's"));
                s.insert(
                    "timeout".into(),
                    derived(crate::net::human_duration(rw.timeout), "[deploy.railway] timeout or 10m"),
                );
                s.insert("rollback-on-failure".into(), derived(rw.rollback_on_failure, "[deploy.railway]"));
                steps.push(PlannedStep { step: "deploy", settings: s });
            }
            Ok(Some(settings::Deployer::Webhook(_))) => {
                s.insert(
                    "mode".into(),
                    derived(
                        "webhook (URL not shown: it is a credential)",
                        "RAILWAY_WEBHOOK_URL or [deploy] webhook-url",
                    ),
                );
                steps.push(PlannedStep { step: "deploy", settings: s });
            }
            Ok(None) => {}
            // The plan shows what is missing instead of stopping at it.
            Err(e) => {
                s.insert("problem".into(), Entry { value: json!(e.to_string()), source: toml_source() });
                steps.push(PlannedStep { step: "deploy", settings: s });
            }
        }
    }

    let mut inputs = BTreeMap::new();
    inputs.insert(
        "toolchain",
        json!(
            planned
                .identity
                .clone()
                .unwrap_or_else(|| format!("nix toolchain of {}", planned.flake.clone().unwrap_or_default()))
        ),
    );
    let platform = settings::one_platform(args.build.platform.as_deref())?;
    let target = match platform {
        Some(p) => Some(p.triple.to_string()),
        None => tc.as_ref().and_then(|t| t.versions().host_triple),
    };
    inputs.insert("target", json!(target));
    inputs.insert("revision", json!(project.git.as_ref().map(|g| &g.revision)));
    inputs.insert("dirty", json!(project.git.as_ref().map(|g| g.dirty)));
    inputs.insert("cargo_lock_sha256", json!(project.cargo_lock_sha256));
    inputs.insert("flake_lock_sha256", json!(project.flake_lock_sha256));
    inputs.insert("source_date_epoch", json!(epoch.value));
    inputs.insert("compression", json!(is.compression.value));
    inputs.insert("ship_version", json!(env!("CARGO_PKG_VERSION")));
    // The recipe `ship verify` rebuilds from (the registry base's digest is filled in by the run).
    let recipe = settings::recipe(is, &project, &name, is.base.value.clone(), epoch.value, platform);
    inputs.insert("recipe", serde_json::to_value(&recipe).expect("JSON"));
    let (base, ca) = base_inputs(is)?;
    inputs.insert("base", base);
    inputs.insert("ca_bundle_sha256", ca);
    Ok(Plan { schema: SCHEMA, steps, inputs })
}

fn flag_bool(on: bool, name: &'static str) -> Setting<bool> {
    if on { Setting::new(true, Source::Flag(name)) } else { Setting::new(false, Source::Default) }
}

/// The base as an input: `ship` (generated from the CA bundle), `scratch`, a local layout's
/// digest, or a registry reference (its digest is learnt when `ship run` pulls it).
fn base_inputs(is: &settings::ImageSettings) -> Result<(Value, Value), Error> {
    let value = is.base.value.as_str();
    let ca = |path: &std::path::Path| -> Result<Value, Error> {
        let bytes = std::fs::read(path).map_err(|source| image::Error::ReadInput {
            what: "CA bundle",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(json!(image::digest::sha256(&bytes)))
    };
    Ok(match settings::base(is, None) {
        Ok(image::Base::Generated { ca_bundle }) => (json!("ship (generated)"), ca(&ca_bundle)?),
        Ok(image::Base::Scratch) => (json!("scratch"), Value::Null),
        Ok(image::Base::Layout { dir, tag }) => {
            (json!(format!("{value}@{}", image::layout::tagged_digest(&dir, &tag)?)), Value::Null)
        }
        Err(_) if settings::registry_base(is).is_some() => {
            (json!(format!("{value} (its digest is resolved when `ship run` pulls it)")), Value::Null)
        }
        Err(e) => return Err(e.into()),
    })
}

pub fn run(ctx: &Context, args: &RunArgs) -> Result<(), Error> {
    let plan = plan(ctx, args)?;
    if args.json {
        print_json(&plan);
        return Ok(());
    }
    for (i, step) in plan.steps.iter().enumerate() {
        println!("{}. {}", i + 1, step.step);
        for (k, e) in &step.settings {
            let value = match &e.value {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            println!("   {k:<18} {value}  ({})", e.source);
        }
    }
    println!("inputs the image digest depends on:");
    for (k, v) in &plan.inputs {
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            v => v.to_string(),
        };
        println!("   {k:<18} {value}");
    }
    Ok(())
}
