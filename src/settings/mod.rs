//! Settings: ship.toml's schema ([`file`]), the value parsers ([`parse`]), every environment
//! variable ([`env`]), and one merge (flag > environment > ship.toml > default) in which each
//! value remembers where it came from, so that `ship plan` can say so.

pub mod env;
pub mod file;
pub mod parse;

pub use file::{Loaded, load};
pub use parse::Output;

use crate::build;
use crate::cli::{BuildArgs, DeployCommand, ImageOptions, RegistryArgs, S3Args};
use crate::image::{self, Base, Compression, FileMapping};
use crate::project::{self, Project};
use crate::registry::reference::Reference;
use crate::toolchain;
use parse::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    ReadConfig { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid ship.toml: {why}")]
    ParseConfig { path: PathBuf, why: String },
    #[error("{flag} {value:?} is not {expected}")]
    BadValue { flag: &'static str, value: String, expected: &'static str },
    #[error("--file {value:?}: {why}")]
    BadFile { value: String, why: String },
    #[error("{flag} {value:?} is not valid: {why}")]
    BadOutput { flag: &'static str, value: String, why: String },
    #[error("the label {key} is ship's own")]
    OwnedLabel { key: String, instead: &'static str },
    #[error("{path}: [image] {key}: {why}{}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    TomlValue { path: PathBuf, key: &'static str, why: String, line: Option<usize> },
    #[error("--base {value:?} is not supported: {why}")]
    BadBase { value: String, why: String },
    #[error("SHIP_REGISTRY_PASSWORD is set but SHIP_REGISTRY_USERNAME is not")]
    PasswordWithoutUser,
    #[error("no CA bundle found for the base layer (looked in {looked})")]
    NoCaBundle { looked: String },
    #[error("no registry to push to: {why}")]
    NoRegistry { why: String },
    #[error(transparent)]
    Reference(#[from] crate::registry::reference::Error),
    #[error(transparent)]
    Toolchain(#[from] toolchain::Error),
    #[error(transparent)]
    Cache(#[from] crate::cache::Error),
    #[error(transparent)]
    Deploy(#[from] crate::deploy::Error),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::ReadConfig { .. } => "check the --config path, or run without it to use ./ship.toml".into(),
            Error::ParseConfig { .. } => "fix that line; README.md lists every ship.toml key".into(),
            Error::BadValue { flag, .. } => {
                format!("see `ship --help` and the command's --help for the form {flag} takes")
            }
            Error::BadFile { .. } => {
                "write --file SRC:DEST[:MODE], e.g. --file config/app.toml:/etc/app.toml:0644".into()
            }
            Error::BadOutput { flag: "--output", .. } => {
                "write --output oci:DIR[:TAG] or docker-archive:FILE[:REF]".into()
            }
            Error::BadOutput { flag, .. } => format!("write {flag} oci:DIR[:TAG]"),
            Error::OwnedLabel { instead, .. } => instead.to_string(),
            Error::TomlValue { .. } => "fix that value in ship.toml; README.md lists every key".into(),
            Error::BadBase { .. } => "write --base ship, --base scratch or --base oci:DIR[:TAG]".into(),
            Error::PasswordWithoutUser => {
                "set SHIP_REGISTRY_USERNAME too (for GHCR: your GitHub user name), or unset SHIP_REGISTRY_PASSWORD"
                    .into()
            }
            Error::NoCaBundle { .. } => {
                "pass --ca-bundle PATH (a PEM file), or --base scratch for an image without one".into()
            }
            Error::NoRegistry { .. } => {
                "pass --image ghcr.io/OWNER/NAME, or set [image] name in ship.toml (with a registry host)".into()
            }
            Error::Reference(e) => return e.hint(),
            Error::Toolchain(e) => return e.hint(),
            Error::Cache(e) => return e.hint(),
            Error::Deploy(e) => return e.hint(),
        })
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum Source {
    /// A command-line flag.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// ship.toml, at this line if known.
    File { path: PathBuf, line: Option<usize> },
    /// ship's default.
    Default,
    /// Worked out from something else ("HEAD's commit time", "git remote origin").
    Derived(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(n) => write!(f, "flag {n}"),
            Source::Env(n) => write!(f, "env {n}"),
            Source::File { path, line: Some(l) } => write!(f, "{}:{l}", path.display()),
            Source::File { path, line: None } => write!(f, "{}", path.display()),
            Source::Default => f.write_str("default"),
            Source::Derived(from) => write!(f, "from {from}"),
        }
    }
}

/// A resolved value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Setting<T> {
    pub fn new(value: T, source: Source) -> Self {
        Setting { value, source }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Setting<U> {
        Setting { value: f(self.value), source: self.source }
    }
}

impl Loaded {
    /// The source of a value read from ship.toml at `section.key`.
    pub fn source(&self, path: &[&str]) -> Source {
        Source::File { path: self.path.clone().unwrap_or_else(|| "ship.toml".into()), line: self.line_of(path) }
    }
}

/// flag > ship.toml > default, remembering which.
fn pick<T>(flag: Option<(T, &'static str)>, file: Option<(T, Source)>, default: T) -> Setting<T> {
    match (flag, file) {
        (Some((v, name)), _) => Setting::new(v, Source::Flag(name)),
        (None, Some((v, source))) => Setting::new(v, source),
        (None, None) => Setting::new(default, Source::Default),
    }
}

/// The toolchain request from --toolchain, [toolchain] source and SHIP_TOOLCHAIN.
pub fn toolchain(flag: Option<&str>, loaded: &Loaded) -> Result<Setting<toolchain::Request>, Error> {
    let chosen = pick(
        flag.map(|f| (f.to_string(), "--toolchain")),
        loaded.file.toolchain.source.clone().map(|v| (v, loaded.source(&["toolchain", "source"]))),
        "auto".to_string(),
    );
    let ship_toolchain = env::var("SHIP_TOOLCHAIN").map(PathBuf::from);
    let source = match (&chosen.source, chosen.value.as_str(), &ship_toolchain) {
        (Source::Default, "auto", Some(_)) => Source::Env("SHIP_TOOLCHAIN"),
        (s, _, _) => s.clone(),
    };
    Ok(Setting::new(toolchain::Request::parse(&chosen.value, ship_toolchain)?, source))
}

/// The Cargo.toml a command works on: --manifest-path, [package] manifest-path (relative to
/// ship.toml), Cargo.toml beside ship.toml, ./Cargo.toml.
pub fn manifest_path(flag: Option<&Path>, loaded: &Loaded) -> Setting<PathBuf> {
    if let Some(p) = flag {
        return Setting::new(p.to_path_buf(), Source::Flag("--manifest-path"));
    }
    if let Some(p) = &loaded.file.package.manifest_path {
        return Setting::new(loaded.base_dir().join(p), loaded.source(&["package", "manifest-path"]));
    }
    if let Some(dir) = loaded.dir.as_ref().filter(|d| d.join("Cargo.toml").is_file()) {
        return Setting::new(dir.join("Cargo.toml"), Source::Derived("beside ship.toml".into()));
    }
    Setting::new(PathBuf::from("Cargo.toml"), Source::Default)
}

/// What to build: the manifest, package and binary.
pub fn project_request(args: &BuildArgs, loaded: &Loaded) -> project::Request {
    let p = &loaded.file.package;
    let opt = |flag: &Option<String>, name: &'static str, file: &Option<String>, key: &str| {
        flag.clone()
            .map(|v| Setting::new(v, Source::Flag(name)))
            .or_else(|| file.clone().map(|v| Setting::new(v, loaded.source(&["package", key]))))
    };
    project::Request {
        manifest_path: manifest_path(args.manifest_path.as_deref(), loaded),
        package: opt(&args.package, "--package", &p.package, "package"),
        bin: opt(&args.bin, "--bin", &p.bin, "bin"),
    }
}

/// The project an image with a given `--binary` is labelled from: only one named explicitly
/// (`--manifest-path` or `[package] manifest-path`). The folder ship runs in is not an input.
pub fn named_project(args: &BuildArgs, loaded: &Loaded) -> Option<project::Request> {
    let named = args.manifest_path.is_some() || loaded.file.package.manifest_path.is_some();
    named.then(|| project_request(args, loaded))
}

/// `--source-date-epoch` and `$SOURCE_DATE_EPOCH`, parsed (the commit time is the project's).
pub fn epoch_inputs(flag: Option<&str>) -> Result<(Option<i64>, Option<i64>), Error> {
    let flag = flag.map(|v| parse_epoch("--source-date-epoch", v)).transpose()?;
    let env = env::var("SOURCE_DATE_EPOCH").map(|v| parse_epoch("SOURCE_DATE_EPOCH", &v)).transpose()?;
    Ok((flag, env))
}

/// The epoch for a run: flag, variable, the project's commit time, 0.
pub fn epoch(flag: Option<&str>, project: Option<&Project>) -> Result<Setting<i64>, Error> {
    let (flag, env) = epoch_inputs(flag)?;
    Ok(project::epoch(flag, env, project.and_then(|p| p.git.as_ref())))
}

/// Registry credentials inputs: flags, --password-stdin, SHIP_REGISTRY_*, GITHUB_TOKEN.
pub fn registry_inputs(
    args: &RegistryArgs,
    stdin: &mut dyn std::io::Read,
) -> Result<crate::registry::auth::Inputs, Error> {
    use crate::registry::auth::Secret;
    let flag_password = if args.password_stdin {
        let mut s = String::new();
        stdin.read_to_string(&mut s).map_err(|e| Error::BadValue {
            flag: "--password-stdin",
            value: format!("({e})"),
            expected: "a password on standard input",
        })?;
        let s = s.trim_end_matches(['\n', '\r']).to_string();
        if s.is_empty() {
            return Err(Error::BadValue {
                flag: "--password-stdin",
                value: String::new(),
                expected: "a password on standard input",
            });
        }
        Some(Secret::new(s))
    } else {
        None
    };
    if flag_password.is_some() && args.username.is_none() {
        return Err(Error::BadValue {
            flag: "--username",
            value: String::new(),
            expected: "given with --password-stdin",
        });
    }
    let env_password = env::var("SHIP_REGISTRY_PASSWORD").map(Secret::new);
    let env_username = env::var("SHIP_REGISTRY_USERNAME");
    if env_password.is_some() && env_username.is_none() && flag_password.is_none() {
        return Err(Error::PasswordWithoutUser);
    }
    Ok(crate::registry::auth::Inputs {
        flag_username: args.username.clone(),
        flag_password,
        env_username,
        env_password,
        github_token: env::var("GITHUB_TOKEN").map(Secret::new),
        github_actor: env::var("GITHUB_ACTOR"),
    })
}

/// ship's cache directory: $XDG_CACHE_HOME/ship or ~/.cache/ship.
pub fn cache_dir() -> Option<PathBuf> {
    env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|d| d.join("ship"))
}

/// The cache bucket from flags, [cache] and AWS_REGION. The AWS SDK reads the credentials.
pub fn cache(args: &S3Args, loaded: &Loaded) -> Result<crate::cache::Settings, Error> {
    let c = &loaded.file.cache;
    let bucket = args
        .bucket
        .clone()
        .or_else(|| c.bucket.clone())
        .filter(|b| !b.is_empty())
        .ok_or(Error::Cache(crate::cache::Error::NoBucket))?;
    Ok(crate::cache::Settings {
        bucket,
        region: args
            .region
            .clone()
            .or_else(|| c.region.clone())
            .or_else(|| env::var("AWS_REGION"))
            .unwrap_or_else(|| "us-east-1".into()),
        endpoint: args.endpoint.clone().or_else(|| c.endpoint.clone()).filter(|e| !e.is_empty()),
        prefix: crate::cache::normalize_prefix(
            args.prefix.as_deref().or(c.prefix.as_deref()).unwrap_or(crate::cache::DEFAULT_PREFIX),
        ),
        timeouts: timeouts(args.timeout.as_deref(), args.request_timeout.as_deref())?,
    })
}

/// The sccache S3 backend for builds: [cache] in ship.toml, else the SCCACHE_* variables.
pub fn build_cache(loaded: &Loaded) -> Option<Setting<build::sccache::S3>> {
    if loaded.file.cache.bucket.is_some()
        && let Ok(settings) = cache(&S3Args::default(), loaded)
    {
        return Some(Setting::new(settings, loaded.source(&["cache", "bucket"])));
    }
    let s3 = build::sccache::S3 {
        bucket: env::var("SCCACHE_BUCKET")?,
        region: env::var("SCCACHE_REGION").or_else(|| env::var("AWS_REGION")).unwrap_or_else(|| "us-east-1".into()),
        endpoint: env::var("SCCACHE_ENDPOINT"),
        prefix: crate::cache::normalize_prefix(&env::var("SCCACHE_S3_KEY_PREFIX").unwrap_or_default()),
        timeouts: crate::net::Timeouts::default(),
    };
    Some(Setting::new(s3, Source::Env("SCCACHE_BUCKET")))
}

/// Cargo's target directory: `--target-dir`, else the one cargo metadata names.
pub fn target_dir(args: &BuildArgs, project: &Project) -> PathBuf {
    args.target_dir.clone().unwrap_or_else(|| project.target_directory.clone())
}

/// The platforms `--platform` names, in order and each once; `[None]` (the host's) without it.
pub fn platforms(flag: Option<&str>) -> Result<Vec<Option<build::cross::Platform>>, Error> {
    let Some(list) = flag else { return Ok(vec![None]) };
    let mut out = Vec::new();
    for name in list.split(',') {
        let p = build::cross::platform(name).ok_or_else(|| Error::BadValue {
            flag: "--platform",
            value: name.trim().to_string(),
            expected: "linux/amd64 or linux/arm64 (several, comma-separated, for `ship build`)",
        })?;
        if !out.contains(&Some(p)) {
            out.push(Some(p));
        }
    }
    Ok(out)
}

/// The one platform `--platform` names (`None`: the host's), for the commands that make one
/// image.
pub fn one_platform(flag: Option<&str>) -> Result<Option<build::cross::Platform>, Error> {
    match platforms(flag)?.as_slice() {
        [one] => Ok(*one),
        _ => Err(Error::BadValue {
            flag: "--platform",
            value: flag.unwrap_or_default().to_string(),
            expected: "one platform here (an image index over several is not made yet); `ship build` and `ship image` take several",
        }),
    }
}

/// The build request for a resolved project.
pub fn build(
    args: &BuildArgs,
    loaded: &Loaded,
    project: &Project,
    epoch: i64,
    quiet: bool,
    platform: Option<build::cross::Platform>,
) -> build::Request {
    build::Request {
        manifest_path: project.manifest_path.clone(),
        package: project.package.name.clone(),
        version: project.package.version.clone(),
        bin: project.package.bin.clone(),
        workspace_root: project.workspace_root.clone(),
        target_dir: target_dir(args, project),
        require_hermetic: args.require_hermetic,
        cache: build_cache(loaded).map(|s| s.value),
        require_cache: args.require_cache,
        source_date_epoch: epoch,
        quiet,
        platform,
    }
}

/// The image settings that do not depend on the binary, each with its source.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSettings {
    /// The full image name (`ghcr.io/acme/hello`), if one was given.
    pub reference: Option<Setting<String>>,
    pub base: Setting<String>,
    pub ca_bundle: Option<Setting<PathBuf>>,
    pub ports: Setting<Vec<String>>,
    pub env: Setting<Vec<(String, String)>>,
    pub labels: Setting<BTreeMap<String, String>>,
    #[serde(skip)]
    pub files: Vec<FileMapping>,
    pub files_shown: Setting<Vec<String>>,
    pub compression: Setting<&'static str>,
    pub user: Setting<String>,
    pub workdir: Option<Setting<String>>,
    /// Tags to push under (`{git_sha}`/`{version}` not yet filled in).
    pub tags: Setting<Vec<String>>,
}

impl ImageSettings {
    pub fn compression(&self) -> Compression {
        Compression::parse(self.compression.value).expect("checked when resolved")
    }
}

/// Lists from ship.toml and flags: the file's first, flags after; the source is the flags' if
/// any were given.
fn merged<T>(file: Vec<T>, file_source: Source, flags: Vec<T>, flag: &'static str) -> Setting<Vec<T>> {
    let source = if !flags.is_empty() {
        Source::Flag(flag)
    } else if !file.is_empty() {
        file_source
    } else {
        Source::Default
    };
    let mut all = file;
    all.extend(flags);
    Setting::new(all, source)
}

/// Resolve the image options from flags and ship.toml (flags win; ship.toml's values were
/// checked when it was read).
pub fn image(
    o: &ImageOptions,
    image_flag: Option<(&str, &'static str)>,
    tag_flags: &[String],
    loaded: &Loaded,
) -> Result<ImageSettings, Error> {
    let t = &loaded.file.image;
    let src = |key: &str| loaded.source(&["image", key]);
    let reference = image_flag
        .map(|(r, flag)| Setting::new(r.to_string(), Source::Flag(flag)))
        .or_else(|| t.name.clone().map(|n| Setting::new(n, src("name"))));
    if let Some(r) = &reference {
        Reference::parse(&r.value)?;
    }
    let ports = merged(
        t.ports.clone(),
        src("ports"),
        o.ports.iter().map(|p| parse_port(p)).collect::<Result<_, _>>()?,
        "--port",
    );
    let mut env: Vec<(String, String)> = t.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let env_source = if o.env.is_empty() {
        if env.is_empty() { Source::Default } else { src("env") }
    } else {
        Source::Flag("--env")
    };
    for e in &o.env {
        let (k, v) = parse_env(e)?;
        match env.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k, v)),
        }
    }
    let mut labels = t.labels.clone();
    let labels_source = if o.labels.is_empty() {
        if labels.is_empty() { Source::Default } else { src("labels") }
    } else {
        Source::Flag("--label")
    };
    for l in &o.labels {
        let (k, v) = split_kv("--label", l, "KEY=VALUE with a non-empty KEY")?;
        check_label_key(&k)?;
        labels.insert(k, v);
    }
    let mut files = Vec::new();
    for f in &t.files {
        files.push(parse_file(f, &loaded.base_dir()).map_err(|e| loaded.value_error("files", f, e))?);
    }
    for f in &o.files {
        files.push(parse_file(f, Path::new("."))?);
    }
    let files_shown = merged(t.files.clone(), src("files"), o.files.clone(), "--file");
    let compression = pick(
        o.compression.clone().map(|c| (c, "--compression")),
        t.compression.clone().map(|c| (c, src("compression"))),
        "gzip".to_string(),
    );
    let compression = Setting::new(parse_compression(&compression.value)?.name(), compression.source);
    let user =
        pick(o.user.clone().map(|u| (u, "--user")), t.user.clone().map(|u| (u, src("user"))), "65532:65532".into());
    parse_user(&user.value)?;
    let workdir = match (&o.workdir, &t.workdir) {
        (Some(w), _) => Some(Setting::new(parse_workdir(w.clone())?, Source::Flag("--workdir"))),
        (None, Some(w)) => Some(Setting::new(w.clone(), src("workdir"))),
        (None, None) => None,
    };
    let base = pick(o.base.clone().map(|b| (b, "--base")), t.base.clone().map(|b| (b, src("base"))), "ship".into());
    let ca_bundle = match (&o.ca_bundle, &t.ca_bundle) {
        (Some(p), _) => Some(Setting::new(p.clone(), Source::Flag("--ca-bundle"))),
        (None, Some(p)) => Some(Setting::new(loaded.base_dir().join(p), src("ca-bundle"))),
        (None, None) => None,
    };
    let tags = if !tag_flags.is_empty() {
        for tag in tag_flags {
            check_tag_template("--tag", tag)?;
        }
        Setting::new(tag_flags.to_vec(), Source::Flag("--tag"))
    } else if !t.tags.is_empty() {
        Setting::new(t.tags.clone(), src("tags"))
    } else {
        Setting::new(vec!["latest".to_string()], Source::Default)
    };
    Ok(ImageSettings {
        reference,
        base,
        ca_bundle,
        ports,
        env: Setting::new(env, env_source),
        labels: Setting::new(labels, labels_source),
        files,
        files_shown,
        compression,
        user,
        workdir,
        tags,
    })
}

/// The short app name: from the image reference, else the binary.
pub fn short_app_name(settings: &ImageSettings, name_flag: Option<&str>, binary_name: &str) -> Result<String, Error> {
    if let Some(n) = name_flag {
        return short_name(n);
    }
    if let Some(r) = &settings.reference {
        return short_name(&r.value);
    }
    short_name(&binary_name.to_lowercase()).map_err(|_| Error::BadValue {
        flag: "--binary",
        value: binary_name.to_string(),
        expected: "a file name usable as an image name (or pass --name)",
    })
}

/// The base as image assembly takes it. A registry reference is pulled by the caller first
/// and arrives as the `oci:` layout it was pulled into.
pub fn base(settings: &ImageSettings, pulled: Option<&str>) -> Result<Base, Error> {
    let value = pulled.unwrap_or(&settings.base.value);
    parse_base(value, settings.ca_bundle.as_ref().map(|c| c.value.clone()))
}

/// The base, when it names a registry image.
pub fn registry_base(settings: &ImageSettings) -> Option<Reference> {
    let value = settings.base.value.as_str();
    if matches!(value, "ship" | "scratch") || value.starts_with("oci:") {
        return None;
    }
    Reference::parse(value).ok()
}

/// Labels that tie an image to the build that made it.
pub fn build_labels(facts: &build::Facts, project: &Project) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("dev.ship.toolchain".to_string(), facts.toolchain.identity.clone());
    labels.insert("dev.ship.target".to_string(), facts.target.clone());
    if let Some(h) = &project.cargo_lock_sha256 {
        labels.insert("dev.ship.cargo-lock.sha256".to_string(), h.clone());
    }
    if let Some(h) = &project.flake_lock_sha256 {
        labels.insert("dev.ship.flake-lock.sha256".to_string(), h.clone());
    }
    labels
}

/// The image request: the settings, the binary, and the labels of the project and build that
/// made it (none for a `--binary` from elsewhere).
#[allow(clippy::too_many_arguments)] // each is one resolved input; a struct would only rename them
pub fn image_request(
    settings: &ImageSettings,
    name: String,
    binary: &Path,
    base: Base,
    project: Option<&Project>,
    built: Option<&build::Facts>,
    epoch: i64,
    staging: &Path,
) -> image::Request {
    let mut labels = BTreeMap::new();
    labels.insert("org.opencontainers.image.title".to_string(), name.clone());
    labels.insert(image::LABEL_SHIP_VERSION.to_string(), env!("CARGO_PKG_VERSION").to_string());
    if let Some(p) = project {
        labels.extend(p.labels());
        if let Some(f) = built {
            labels.extend(build_labels(f, p));
        }
    }
    labels.extend(settings.labels.value.clone());
    image::Request {
        binary: binary.to_path_buf(),
        name,
        base,
        ports: settings.ports.value.clone(),
        env: settings.env.value.clone(),
        labels,
        user: settings.user.value.clone(),
        workdir: settings.workdir.as_ref().map(|w| w.value.clone()),
        files: settings.files.clone(),
        compression: settings.compression(),
        source_date_epoch: epoch,
        threads: image::compress::default_threads(),
        layer_cache: None,
        staging: staging.to_path_buf(),
    }
}

/// Fill `{git_sha}` and `{version}` into the tags; a placeholder without its value is an error.
pub fn fill_tags(tags: &[String], project: Option<&Project>) -> Result<Vec<String>, Error> {
    let sha = project.and_then(|p| p.git.as_ref()).map(|g| g.revision[..g.revision.len().min(12)].to_string());
    let version = project.map(|p| p.package.version.clone());
    let mut out = Vec::new();
    for t in tags {
        let mut filled = t.clone();
        for (placeholder, value) in [("{git_sha}", &sha), ("{version}", &version)] {
            if filled.contains(placeholder) {
                let v = value.as_ref().ok_or_else(|| Error::BadValue {
                    flag: "[image] tags",
                    value: t.clone(),
                    expected: "fillable here: {git_sha} needs a git checkout, {version} a Cargo package",
                })?;
                filled = filled.replace(placeholder, &v.replace('+', "_"));
            }
        }
        check_tag_template("[image] tags", &filled)?;
        if !out.contains(&filled) {
            out.push(filled);
        }
    }
    Ok(out)
}

/// How `ship deploy` (and `ship run`'s last step) deploys.
#[derive(Debug, Clone)]
pub enum Deployer {
    Railway(Box<crate::deploy::Railway>),
    /// A deploy webhook URL (a credential: never printed).
    Webhook(String),
}

/// The deploy settings from the flags (`ship deploy`; `ship run` passes none), `[deploy]` in
/// ship.toml and the environment. None when nothing asks for a deploy. `registry` is the image's
/// registry, for `registry-credentials`.
pub fn deploy(flags: &DeployCommand, loaded: &Loaded, registry: &str) -> Result<Option<Deployer>, Error> {
    use crate::deploy::{Auth, Error as D, Railway};
    let toml = &loaded.file.deploy;
    let r = toml.railway.as_ref();
    let service = flags.service.clone().or_else(|| r.and_then(|r| r.service.clone()));
    if service.is_none() && r.is_none() {
        let webhook =
            flags.webhook_url.clone().or_else(|| env::var("RAILWAY_WEBHOOK_URL")).or_else(|| toml.webhook_url.clone());
        return Ok(webhook.map(Deployer::Webhook));
    }
    let service = service.ok_or(D::Missing { what: "service" })?;
    let environment = flags
        .environment
        .clone()
        .or_else(|| r.and_then(|r| r.environment.clone()))
        .ok_or(D::Missing { what: "environment" })?;
    let auth = match (env::var("RAILWAY_TOKEN"), env::var("RAILWAY_PROJECT_TOKEN")) {
        (Some(t), _) => Auth::Bearer(crate::registry::auth::Secret::new(t)),
        (None, Some(t)) => Auth::Project(crate::registry::auth::Secret::new(t)),
        (None, None) => return Err(D::NoToken.into()),
    };
    let timeout = match flags.timeout.as_deref().or(r.and_then(|r| r.timeout.as_deref())) {
        Some(v) => crate::net::parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(|| Error::BadValue {
            flag: "--timeout",
            value: v.to_string(),
            expected: "a duration like 90s, 10m or 1h",
        })?,
        None => std::time::Duration::from_secs(600),
    };
    let registry_credentials = if r.is_some_and(|r| r.registry_credentials) {
        let inputs = registry_inputs(&RegistryArgs::default(), &mut std::io::empty())?;
        let creds = crate::registry::auth::resolve(registry, &inputs);
        match (creds.username, creds.password) {
            (Some(u), Some(p)) => Some((u, p)),
            _ => {
                return Err(Error::BadValue {
                    flag: "[deploy.railway] registry-credentials",
                    value: registry.to_string(),
                    expected: "a registry ship has credentials for (SHIP_REGISTRY_*, GITHUB_TOKEN for ghcr.io, docker or podman login)",
                });
            }
        }
    } else {
        None
    };
    Ok(Some(Deployer::Railway(Box::new(Railway {
        api_url: flags
            .api_url
            .clone()
            .or_else(|| env::var("SHIP_RAILWAY_API"))
            .unwrap_or_else(|| crate::deploy::railway::DEFAULT_API.to_string()),
        auth,
        service,
        environment,
        healthcheck_path: r.and_then(|r| r.healthcheck_path.clone()),
        healthcheck_timeout: r.and_then(|r| r.healthcheck_timeout),
        restart_policy: r.and_then(|r| r.restart_policy.clone()),
        registry_credentials,
        timeout,
        health_url: flags.health_url.clone().or_else(|| r.and_then(|r| r.health_url.clone())),
        rollback_on_failure: flags.rollback_on_failure || r.is_some_and(|r| r.rollback_on_failure),
        timeouts: crate::net::Timeouts::with(Some(timeout), None),
    }))))
}

/// The image settings an image's recipe records, for building it again from a checkout at
/// `root`. `ca_bundle` is the bundle to build the generated base with (taken from the image).
pub fn image_from_recipe(
    recipe: &crate::verify::Recipe,
    root: &Path,
    ca_bundle: Option<PathBuf>,
) -> Result<ImageSettings, Error> {
    let from = || Source::Derived("the image's recipe".into());
    let files = recipe
        .files
        .iter()
        .map(|f| FileMapping { src: root.join(&f.src), dest: f.dest.clone(), mode: f.mode })
        .collect();
    Ok(ImageSettings {
        reference: None,
        base: Setting::new(recipe.base.clone(), from()),
        ca_bundle: ca_bundle.map(|c| Setting::new(c, from())),
        ports: Setting::new(recipe.ports.clone(), from()),
        env: Setting::new(recipe.env.clone(), from()),
        labels: Setting::new(recipe.labels.clone(), from()),
        files,
        files_shown: Setting::new(recipe.files.iter().map(|f| format!("{}:{}", f.src, f.dest)).collect(), from()),
        compression: Setting::new(parse_compression(&recipe.compression)?.name(), from()),
        user: Setting::new(recipe.user.clone(), from()),
        workdir: recipe.workdir.clone().map(|w| Setting::new(w, from())),
        tags: Setting::new(vec![], from()),
    })
}

/// The recipe an image built from `project` records (label `dev.ship.recipe`): what `ship
/// verify` needs besides the revision, the toolchain and the lock files to build it again.
pub fn recipe(
    settings: &ImageSettings,
    project: &Project,
    name: &str,
    base: String,
    epoch: i64,
    platform: Option<build::cross::Platform>,
) -> crate::verify::Recipe {
    crate::verify::Recipe {
        manifest_path: project.relative(&project.manifest_path),
        package: project.package.name.clone(),
        bin: project.package.bin.clone(),
        name: name.to_string(),
        base,
        ports: settings.ports.value.clone(),
        env: settings.env.value.clone(),
        labels: settings.labels.value.clone(),
        files: settings
            .files
            .iter()
            .map(|f| crate::verify::RecipeFile { src: project.relative(&f.src), dest: f.dest.clone(), mode: f.mode })
            .collect(),
        user: settings.user.value.clone(),
        workdir: settings.workdir.as_ref().map(|w| w.value.clone()),
        compression: settings.compression.value.to_string(),
        source_date_epoch: epoch,
        platform: platform.filter(|p| Some(*p) != build::cross::host()).map(|p| p.oci.to_string()),
    }
}
