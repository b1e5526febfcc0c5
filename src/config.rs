//! ship.toml + environment + flags → one resolved settings value.
//!
//! Every environment variable ship reads is listed in [`ENV_VARS`] and read nowhere else.

use crate::build;
use crate::cli::{BuildArgs, ImageArgs};
use crate::image::{self, Base, Compression, FileMapping};
use crate::registry::reference::{self, Reference};
use crate::toolchain;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every environment variable ship reads, with what it does.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("SHIP_CONFIG", "ship.toml to read, like --config"),
    ("SOURCE_DATE_EPOCH", "timestamp for `created` and every mtime in the app layer (reproducible-builds.org)"),
    ("SHIP_TOOLCHAIN", "toolchain store path; its etc/ssl/certs/ca-bundle.crt is the default CA bundle"),
    ("SHIP_REGISTRY_USERNAME", "registry user name (with SHIP_REGISTRY_PASSWORD)"),
    ("SHIP_REGISTRY_PASSWORD", "registry password or token"),
    ("GITHUB_TOKEN", "token for ghcr.io when no other credentials are given"),
    ("GITHUB_ACTOR", "user name for GITHUB_TOKEN"),
    ("XDG_CACHE_HOME", "where ship remembers pushed repositories (for blob mounts); default ~/.cache"),
    ("HOME", "home directory, for ~/.cache"),
    ("AWS_REGION", "region of the cache bucket when neither --region nor [cache] region is set"),
    (
        "SCCACHE_BUCKET",
        "sccache's S3 bucket when ship.toml has no [cache] (with SCCACHE_REGION, SCCACHE_ENDPOINT, SCCACHE_S3_KEY_PREFIX)",
    ),
    ("SCCACHE_REGION", "region for SCCACHE_BUCKET"),
    ("SCCACHE_ENDPOINT", "endpoint for SCCACHE_BUCKET"),
    ("SCCACHE_S3_KEY_PREFIX", "key prefix for SCCACHE_BUCKET"),
];

fn env_var(name: &str) -> Option<String> {
    debug_assert!(ENV_VARS.iter().any(|(n, _)| *n == name), "{name} must be listed in ENV_VARS");
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    ReadConfig { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid ship.toml: {why}")]
    ParseConfig { path: PathBuf, why: String },
    #[error("cannot read {path}: {why}")]
    CargoManifest { path: PathBuf, why: String },
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
    #[error(transparent)]
    Reference(#[from] reference::Error),
    #[error(transparent)]
    Toolchain(#[from] toolchain::Error),
    #[error(transparent)]
    Cache(#[from] crate::cache::Error),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::ReadConfig { .. } => "check the --config path, or run without it to use ./ship.toml".into(),
            Error::ParseConfig { .. } => "fix that line; README.md lists every ship.toml key".into(),
            Error::CargoManifest { .. } => "point --manifest-path at your package's Cargo.toml".into(),
            Error::BadValue { flag, .. } => {
                format!("see `ship image --help` for the form {flag} takes")
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
            Error::Reference(e) => return e.hint(),
            Error::Toolchain(e) => return e.hint(),
            Error::Cache(e) => return e.hint(),
        })
    }
}

/// ship.toml. Sections other issues implement are accepted and left for them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ShipToml {
    #[serde(default)]
    pub package: PackageSection,
    #[serde(default)]
    pub image: ImageSection,
    #[serde(default)]
    pub toolchain: ToolchainSection,
    #[serde(default)]
    pub cache: CacheSection,
    pub deploy: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageSection {
    pub manifest_path: Option<PathBuf>,
    pub package: Option<String>,
    pub bin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheSection {
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ToolchainSection {
    /// auto | nix | host | a toolchain directory.
    #[serde(default, deserialize_with = "de::toolchain")]
    pub source: Option<String>,
}

/// `[image]`. Values are checked as the file is read, so that a bad one is reported with the
/// file, the key and the line, by every command (and `ship doctor`), before any work starts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ImageSection {
    #[serde(default, deserialize_with = "de::name")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de::tags")]
    pub tags: Vec<String>,
    #[serde(default, deserialize_with = "de::base")]
    pub base: Option<String>,
    /// Normalised: `3000/tcp`.
    #[serde(default, deserialize_with = "de::ports")]
    pub ports: Vec<String>,
    #[serde(default, deserialize_with = "de::env")]
    pub env: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "de::labels")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default, deserialize_with = "de::compression")]
    pub compression: Option<String>,
    #[serde(default, deserialize_with = "de::user")]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "de::workdir")]
    pub workdir: Option<String>,
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PortValue {
    Number(i64),
    Text(String),
}

/// The checks of ship.toml values, run while it is parsed: the parser then reports the line.
mod de {
    use super::*;
    use serde::Deserializer;

    /// The sentence for a bad value, without the flag name a command-line error would carry.
    fn explain(e: &Error) -> String {
        match e {
            Error::BadValue { value, expected, .. } => format!("{value:?} is not {expected}"),
            e => e.to_string(),
        }
    }

    fn check<'de, D: Deserializer<'de>, T: Deserialize<'de>, U>(
        d: D,
        key: &str,
        f: impl Fn(T) -> Result<U, Error>,
    ) -> Result<U, D::Error> {
        f(T::deserialize(d)?).map_err(|e| serde::de::Error::custom(format!("{key}: {}", explain(&e))))
    }

    pub fn ports<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        check(d, "[image] ports", |v: Vec<PortValue>| {
            v.iter()
                .map(|p| match p {
                    PortValue::Number(n) => parse_port(&n.to_string()),
                    PortValue::Text(t) => parse_port(t),
                })
                .collect()
        })
    }

    pub fn env<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        check(d, "[image] env", |m: BTreeMap<String, String>| {
            m.iter().map(|(k, v)| parse_env(&format!("{k}={v}"))).collect()
        })
    }

    pub fn labels<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
        check(d, "[image] labels", |m: BTreeMap<String, String>| {
            for k in m.keys() {
                check_label_key(k)?;
            }
            Ok(m)
        })
    }

    pub fn compression<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        check(d, "[image] compression", |c: String| parse_compression(&c).map(|_| Some(c)))
    }

    pub fn user<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        check(d, "[image] user", |u: String| parse_user(&u).map(Some))
    }

    pub fn workdir<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        check(d, "[image] workdir", |w: String| parse_workdir(w).map(Some))
    }

    pub fn name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        check(d, "[image] name", |n: String| Reference::parse(&n).map(|_| Some(n)).map_err(Error::from))
    }

    pub fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        check(d, "[image] tags", |tags: Vec<String>| {
            for t in &tags {
                // Placeholders are filled in later; what is around them must make a tag.
                let filled = t.replace("{git_sha}", "0").replace("{version}", "0");
                if !reference::is_valid_tag(&filled) {
                    return Err(Error::BadValue {
                        flag: "tags",
                        value: t.clone(),
                        expected: "a tag (1-128 letters, digits, '_', '.' or '-'), with {git_sha} or {version} if wanted",
                    });
                }
            }
            Ok(tags)
        })
    }

    pub fn base<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        check(d, "[image] base", |b: String| {
            let ok = matches!(b.as_str(), "ship" | "scratch")
                || (b.starts_with("oci:") && parse_layout_ref("[image] base", &b).is_ok())
                || (!b.starts_with("oci:") && Reference::parse(&b).is_ok());
            if ok {
                Ok(Some(b))
            } else {
                Err(Error::BadValue {
                    flag: "base",
                    value: b,
                    expected: "ship, scratch, oci:DIR[:TAG] or a registry reference",
                })
            }
        })
    }

    pub fn toolchain<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        check(d, "[toolchain] source", |v: String| {
            toolchain::Request::parse(&v, None).map(|_| Some(v)).map_err(Error::from)
        })
    }
}

/// Labels ship writes itself: a user value would be silently replaced, so it is refused.
pub fn check_label_key(key: &str) -> Result<(), Error> {
    if key == "org.opencontainers.image.created" {
        return Err(Error::OwnedLabel {
            key: key.into(),
            instead: "ship sets it from SOURCE_DATE_EPOCH: use --source-date-epoch (or $SOURCE_DATE_EPOCH)",
        });
    }
    if key.starts_with("dev.ship.") {
        return Err(Error::OwnedLabel {
            key: key.into(),
            instead: "labels under dev.ship. record how ship built the image and are ship's alone",
        });
    }
    Ok(())
}

fn parse_compression(value: &str) -> Result<Compression, Error> {
    Compression::parse(value).ok_or_else(|| Error::BadValue {
        flag: "--compression",
        value: value.into(),
        expected: "gzip, zstd or none",
    })
}

fn parse_workdir(w: String) -> Result<String, Error> {
    if w.starts_with('/') {
        Ok(w)
    } else {
        Err(Error::BadValue { flag: "--workdir", value: w, expected: "an absolute path" })
    }
}

/// A loaded ship.toml and the directory its relative paths are relative to.
#[derive(Debug, Default)]
pub struct Loaded {
    pub file: ShipToml,
    pub dir: Option<PathBuf>,
    pub path: Option<PathBuf>,
    text: String,
}

impl Loaded {
    /// An error about `[image] key = value` that could only be checked later (a file to read):
    /// it names the file, the key and the line the value is on.
    pub fn value_error(&self, key: &'static str, value: &str, e: Error) -> Error {
        let quoted = format!("{value:?}");
        let line = self.text.lines().position(|l| l.contains(&quoted)).map(|i| i + 1);
        let why = match e {
            Error::BadFile { why, .. } => format!("{quoted}: {why}"),
            e => e.to_string(),
        };
        Error::TomlValue { path: self.path.clone().unwrap_or_else(|| "ship.toml".into()), key, why, line }
    }
}

/// Load `--config PATH`, or ./ship.toml if present, or nothing.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, Error> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None if Path::new("ship.toml").is_file() => PathBuf::from("ship.toml"),
        None => return Ok(Loaded::default()),
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::ReadConfig { path: path.clone(), source })?;
    let file: ShipToml = toml::from_str(&text).map_err(|e| Error::ParseConfig {
        path: path.clone(),
        why: e.message().to_string() + &location(&text, e.span()),
    })?;
    let dir = path.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() });
    Ok(Loaded { file, dir, path: Some(path), text })
}

fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| format!(" (line {})", text[..s.start.min(text.len())].matches('\n').count() + 1)).unwrap_or_default()
}

/// Where `ship image` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Layout { dir: PathBuf, tag: String },
    Archive { file: PathBuf, repo_tag: String },
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Layout { dir, tag } => write!(f, "oci:{}:{tag}", dir.display()),
            Output::Archive { file, repo_tag } => {
                write!(f, "docker-archive:{}:{repo_tag}", file.display())
            }
        }
    }
}

/// Facts about the project the labels come from.
#[derive(Debug, Default, Clone)]
pub struct ProjectInfo {
    pub version: Option<String>,
    pub licenses: Option<String>,
    pub source: Option<String>,
    pub revision: Option<String>,
    pub commit_time: Option<i64>,
}

/// The resolved `ship image` settings.
#[derive(Debug)]
pub struct ImageSettings {
    pub request: image::Request,
    pub output: Output,
}

fn split_kv(flag: &'static str, value: &str, expected: &'static str) -> Result<(String, String), Error> {
    let bad = || Error::BadValue { flag, value: value.to_string(), expected };
    let (k, v) = value.split_once('=').ok_or_else(bad)?;
    if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok((k.to_string(), v.to_string()))
}

fn parse_env(value: &str) -> Result<(String, String), Error> {
    let expected = "KEY=VALUE with KEY made of letters, digits and '_', not starting with a digit";
    let (k, v) = split_kv("--env", value, expected)?;
    let ok = k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') && !k.as_bytes()[0].is_ascii_digit();
    if !ok {
        return Err(Error::BadValue { flag: "--env", value: value.to_string(), expected });
    }
    Ok((k, v))
}

fn parse_port(value: &str) -> Result<String, Error> {
    let bad = || Error::BadValue {
        flag: "--port",
        value: value.to_string(),
        expected: "a port 1-65535, optionally /tcp or /udp",
    };
    let (num, proto) = value.split_once('/').unwrap_or((value, "tcp"));
    let n: u16 = num.parse().map_err(|_| bad())?;
    if n == 0 || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    Ok(format!("{n}/{proto}"))
}

fn parse_user(value: &str) -> Result<String, Error> {
    let ok_part = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    let ok = match value.split_once(':') {
        Some((u, g)) => ok_part(u) && ok_part(g),
        None => ok_part(value),
    };
    if !ok {
        return Err(Error::BadValue {
            flag: "--user",
            value: value.into(),
            expected: "UID, UID:GID or a user name like nonroot",
        });
    }
    Ok(value.to_string())
}

fn parse_file(value: &str, base: &Path) -> Result<FileMapping, Error> {
    let bad = |why: &str| Error::BadFile { value: value.to_string(), why: why.to_string() };
    let (src, rest) = value.split_once(':').ok_or_else(|| bad("it is not SRC:DEST"))?;
    let (dest, mode) = match rest.rsplit_once(':') {
        // A last part made of digits is a mode; it must then be octal.
        Some((d, m)) if !m.is_empty() && m.bytes().all(|c| c.is_ascii_digit()) => {
            (d, u32::from_str_radix(m, 8).map_err(|_| bad("the mode is not octal (like 0644)"))?)
        }
        _ => (rest, 0o644),
    };
    if mode > 0o7777 {
        return Err(bad("the mode is larger than 7777"));
    }
    if src.is_empty() {
        return Err(bad("the source path is empty"));
    }
    image::layer::normalize_path(dest).map_err(|e| bad(&e.to_string()))?;
    let src = base.join(src);
    match std::fs::metadata(&src) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(bad("the source is not a regular file")),
        Err(e) => return Err(bad(&format!("cannot read {}: {e}", src.display()))),
    }
    std::fs::File::open(&src).map_err(|e| bad(&format!("cannot read {}: {e}", src.display())))?;
    Ok(FileMapping { src, dest: dest.to_string(), mode })
}

/// `oci:DIR[:TAG]` or `docker-archive:FILE[:REF]` given to `flag`; the default REF is
/// `<default_ref>:latest`.
pub fn parse_output(flag: &'static str, value: &str, default_ref: &str) -> Result<Output, Error> {
    let bad = |why: &str| Error::BadOutput { flag, value: value.to_string(), why: why.to_string() };
    if let Some(rest) = value.strip_prefix("oci:") {
        let (dir, tag) = rest.split_once(':').unwrap_or((rest, "latest"));
        if dir.is_empty() {
            return Err(bad("the directory is empty"));
        }
        if !reference::is_valid_tag(tag) {
            return Err(bad("the tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"));
        }
        return Ok(Output::Layout { dir: PathBuf::from(dir), tag: tag.to_string() });
    }
    if let Some(rest) = value.strip_prefix("docker-archive:") {
        let (file, r) = rest.split_once(':').unwrap_or((rest, default_ref));
        if file.is_empty() {
            return Err(bad("the file name is empty"));
        }
        let parsed = Reference::parse(r)?;
        if parsed.digest.is_some() {
            return Err(bad("an archive reference names a tag, not a digest"));
        }
        let repo_tag = format!("{}:{}", parsed.familiar_name(), parsed.tag_or_latest());
        return Ok(Output::Archive { file: PathBuf::from(file), repo_tag });
    }
    Err(bad("it must start with oci: or docker-archive:"))
}

/// The base, from --base or [image] base, when it names a registry image.
pub fn registry_base(args: &ImageArgs, loaded: &Loaded) -> Option<Reference> {
    let value = args.base.as_deref().or(loaded.file.image.base.as_deref())?;
    if matches!(value, "ship" | "scratch") || value.starts_with("oci:") {
        return None;
    }
    Reference::parse(value).ok()
}

/// `os/arch[/variant]`, default linux and this machine's architecture.
pub fn parse_platform(value: Option<&str>) -> Result<image::Platform, Error> {
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let value = value.map(str::to_string).unwrap_or_else(|| format!("linux/{host_arch}"));
    let parts: Vec<&str> = value.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(image::Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        }),
        _ => Err(Error::BadValue { flag: "--platform", value, expected: "os/arch, like linux/amd64" }),
    }
}

/// `oci:DIR[:TAG]` (default tag `latest`) given to `flag`, as (DIR, TAG).
pub fn parse_layout_ref(flag: &'static str, value: &str) -> Result<(PathBuf, String), Error> {
    let not_layout = || Error::BadOutput {
        flag,
        value: value.to_string(),
        why: "it must be an OCI layout, oci:DIR[:TAG] (a docker-archive cannot be read here)".into(),
    };
    if !value.starts_with("oci:") {
        return Err(not_layout());
    }
    match parse_output(flag, value, "unused")? {
        Output::Layout { dir, tag } => Ok((dir, tag)),
        Output::Archive { .. } => Err(not_layout()),
    }
}

fn parse_base(value: &str, ca_bundle: Option<PathBuf>) -> Result<Base, Error> {
    let bad = |why: &str| Error::BadBase { value: value.to_string(), why: why.to_string() };
    match value {
        "ship" => Ok(Base::Generated { ca_bundle: ca_bundle.map_or_else(default_ca_bundle, Ok)? }),
        "scratch" => Ok(Base::Scratch),
        v if v.starts_with("oci:") => match parse_layout_ref("--base", v) {
            Ok((dir, tag)) => Ok(Base::Layout { dir, tag }),
            Err(_) => Err(bad("it must be oci:DIR[:TAG] with a valid tag")),
        },
        // Registry references are pulled by the caller and arrive here as oci: layouts.
        _ => Err(bad("it is not ship, scratch, oci:DIR[:TAG] or a registry reference")),
    }
}

/// The toolchain's bundle, then the usual host locations.
fn default_ca_bundle() -> Result<PathBuf, Error> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(tc) = env_var("SHIP_TOOLCHAIN") {
        candidates.push(Path::new(&tc).join("etc/ssl/certs/ca-bundle.crt"));
    }
    candidates.extend(
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]
            .map(PathBuf::from),
    );
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| Error::NoCaBundle {
        looked: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
    })
}

/// The short app name from an image name: `ghcr.io/acme/hello:1` → `hello`.
fn short_name(name: &str) -> Result<String, Error> {
    let reference = Reference::parse(name)?;
    Ok(reference.short_name().to_string())
}

fn parse_epoch(flag: &'static str, value: &str) -> Result<i64, Error> {
    value.trim().parse::<i64>().ok().filter(|n| (0..=253_402_300_799).contains(n)).ok_or_else(|| Error::BadValue {
        flag,
        value: value.to_string(),
        expected: "a number of seconds since 1970 (0 to 253402300799)",
    })
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).stderr(std::process::Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// A repository URL reduced to scheme, host and path, for labels and reports:
/// `https://user:token@github.com/a/b.git?access_token=x#frag` → `https://github.com/a/b`;
/// `git@github.com:a/b.git` and `ssh://git@github.com:22/a/b` → `https://github.com/a/b`.
/// User names, passwords, ports, queries and fragments never survive: any of them may hold a
/// token. None for what is not a remote URL (a local path).
pub fn public_source_url(remote: &str) -> Option<String> {
    let remote = remote.trim();
    let (scheme, host, path) = match url::Url::parse(remote) {
        Ok(u) if matches!(u.scheme(), "https" | "http") => {
            (u.scheme().to_string(), u.host_str()?.to_string(), u.path().to_string())
        }
        Ok(u) if matches!(u.scheme(), "ssh" | "git" | "git+ssh" | "ssh+git") => {
            ("https".to_string(), u.host_str()?.to_string(), u.path().to_string())
        }
        Ok(_) => return None,
        // scp-like `user@host:path` is not a URL.
        Err(_) => {
            let (user_host, path) = remote.split_once(':')?;
            let host = user_host.rsplit_once('@').map(|(_, h)| h)?;
            if host.is_empty() || host.contains('/') || path.starts_with("//") {
                return None;
            }
            let path = path.split(['?', '#']).next().unwrap_or_default();
            ("https".to_string(), host.to_string(), format!("/{}", path.trim_start_matches('/')))
        }
    };
    let path = path.trim_end_matches('/').trim_end_matches(".git").trim_end_matches('/');
    (!host.is_empty() && path.len() > 1).then(|| format!("{scheme}://{}{path}", host.to_ascii_lowercase()))
}

/// Read version and licenses from Cargo.toml and revision, commit time and remote from git.
pub fn project_info(manifest: Option<&Path>, git_dir: &Path) -> Result<ProjectInfo, Error> {
    let mut info = ProjectInfo::default();
    if let Some(path) = manifest {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::CargoManifest { path: path.into(), why: e.to_string() })?;
        let doc: toml::Table = toml::from_str(&text)
            .map_err(|e| Error::CargoManifest { path: path.into(), why: e.message().to_string() })?;
        let pkg = doc.get("package").and_then(|p| p.as_table());
        let field = |k: &str| pkg.and_then(|p| p.get(k)).and_then(|v| v.as_str()).map(str::to_string);
        info.version = field("version");
        info.licenses = field("license");
        info.source = field("repository").and_then(|r| public_source_url(&r));
    }
    if let Some(rev) = git(git_dir, &["rev-parse", "--verify", "HEAD"]) {
        info.commit_time = git(git_dir, &["log", "-1", "--format=%ct", "HEAD"]).and_then(|t| t.parse().ok());
        info.revision = Some(rev);
        if info.source.is_none() {
            info.source = git(git_dir, &["remote", "get-url", "origin"]).and_then(|u| public_source_url(&u));
        }
    }
    Ok(info)
}

/// The Cargo.toml of the project: --manifest-path, [package] manifest-path (relative to
/// ship.toml), Cargo.toml beside ship.toml, ./Cargo.toml. None if none of them exists, unless
/// one was named explicitly.
pub fn project_manifest(explicit: Option<&Path>, loaded: &Loaded) -> Option<PathBuf> {
    let toml_dir = loaded.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    explicit
        .map(Path::to_path_buf)
        .or_else(|| loaded.file.package.manifest_path.as_ref().map(|p| toml_dir.join(p)))
        .or_else(|| Some(toml_dir.join("Cargo.toml")).filter(|p| p.is_file()))
}

/// The directory a manifest is in (`.` for a bare `Cargo.toml`).
pub fn dir_of(manifest: &Path) -> PathBuf {
    match manifest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The toolchain request from --toolchain, [toolchain] source and SHIP_TOOLCHAIN.
pub fn toolchain_request(flag: Option<&str>, loaded: &Loaded) -> Result<toolchain::Request, Error> {
    let value = flag.or(loaded.file.toolchain.source.as_deref()).unwrap_or("auto");
    Ok(toolchain::Request::parse(value, env_var("SHIP_TOOLCHAIN").map(PathBuf::from))?)
}

/// SOURCE_DATE_EPOCH: the flag, the variable, HEAD's commit time, 0.
fn source_date_epoch(flag: Option<&str>, info: &ProjectInfo) -> Result<i64, Error> {
    Ok(match (flag, env_var("SOURCE_DATE_EPOCH")) {
        (Some(v), _) => parse_epoch("--source-date-epoch", v)?,
        (None, Some(v)) => parse_epoch("SOURCE_DATE_EPOCH", &v)?,
        (None, None) => info.commit_time.unwrap_or(0),
    })
}

/// The Cargo.toml of the package a build built (its version and license fill the labels).
fn package_manifest(facts: &build::Facts) -> Option<PathBuf> {
    let root = facts.workspace_root.join("Cargo.toml");
    let text = std::fs::read_to_string(&root).ok()?;
    let doc: toml::Table = toml::from_str(&text).ok()?;
    let is_it = doc.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str()) == Some(facts.package.as_str());
    if is_it {
        return Some(root);
    }
    // A workspace member: find it among the members' manifests.
    let members = doc.get("workspace")?.get("members")?.as_array()?;
    members.iter().filter_map(|m| m.as_str()).map(|m| facts.workspace_root.join(m).join("Cargo.toml")).find(|p| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
            .and_then(|d| d.get("package")?.get("name")?.as_str().map(|n| n == facts.package))
            .unwrap_or(false)
    })
}

/// Registry credentials inputs: flags, --password-stdin, SHIP_REGISTRY_*, GITHUB_TOKEN.
pub fn registry_inputs(
    args: &crate::cli::RegistryArgs,
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
    let env_password = env_var("SHIP_REGISTRY_PASSWORD").map(Secret::new);
    let env_username = env_var("SHIP_REGISTRY_USERNAME");
    if env_password.is_some() && env_username.is_none() && flag_password.is_none() {
        return Err(Error::PasswordWithoutUser);
    }
    Ok(crate::registry::auth::Inputs {
        flag_username: args.username.clone(),
        flag_password,
        env_username,
        env_password,
        github_token: env_var("GITHUB_TOKEN").map(Secret::new),
        github_actor: env_var("GITHUB_ACTOR"),
    })
}

/// ship's cache directory: $XDG_CACHE_HOME/ship or ~/.cache/ship.
pub fn cache_dir() -> Option<PathBuf> {
    env_var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env_var("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|d| d.join("ship"))
}

/// `--timeout` and `--request-timeout` over the defaults.
pub fn timeouts(overall: Option<&str>, request: Option<&str>) -> Result<crate::net::Timeouts, Error> {
    let parse = |flag: &'static str, v: Option<&str>| {
        v.map(|v| {
            crate::net::parse_duration(v).filter(|d| !d.is_zero()).ok_or_else(|| Error::BadValue {
                flag,
                value: v.to_string(),
                expected: "a duration like 90s, 10m or 1h",
            })
        })
        .transpose()
    };
    Ok(crate::net::Timeouts::with(parse("--timeout", overall)?, parse("--request-timeout", request)?))
}

/// The cache bucket from flags, [cache] and AWS_REGION. The AWS SDK reads the credentials.
pub fn resolve_cache(args: &crate::cli::S3Args, loaded: &Loaded) -> Result<crate::cache::Settings, Error> {
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
            .or_else(|| env_var("AWS_REGION"))
            .unwrap_or_else(|| "us-east-1".into()),
        endpoint: args.endpoint.clone().or_else(|| c.endpoint.clone()).filter(|e| !e.is_empty()),
        prefix: crate::cache::normalize_prefix(
            args.prefix.as_deref().or(c.prefix.as_deref()).unwrap_or(crate::cache::DEFAULT_PREFIX),
        ),
        timeouts: timeouts(args.timeout.as_deref(), args.request_timeout.as_deref())?,
    })
}

/// The sccache S3 backend: [cache] in ship.toml, else the SCCACHE_* variables.
fn build_cache(loaded: &Loaded) -> Option<build::sccache::S3> {
    if let Ok(settings) = resolve_cache(&crate::cli::S3Args::default(), loaded) {
        return Some(settings);
    }
    Some(build::sccache::S3 {
        bucket: env_var("SCCACHE_BUCKET")?,
        region: env_var("SCCACHE_REGION").or_else(|| env_var("AWS_REGION")).unwrap_or_else(|| "us-east-1".into()),
        endpoint: env_var("SCCACHE_ENDPOINT"),
        prefix: crate::cache::normalize_prefix(&env_var("SCCACHE_S3_KEY_PREFIX").unwrap_or_default()),
        timeouts: crate::net::Timeouts::default(),
    })
}

/// Resolved `ship build` settings.
#[derive(Debug)]
pub struct BuildSettings {
    pub request: build::Request,
    pub toolchain: toolchain::Request,
    /// Where the project lives: the flake and git are looked up from here.
    pub project_dir: PathBuf,
}

pub fn resolve_build(args: &BuildArgs, loaded: &Loaded, quiet: bool) -> Result<BuildSettings, Error> {
    let manifest_path =
        project_manifest(args.manifest_path.as_deref(), loaded).unwrap_or_else(|| PathBuf::from("Cargo.toml"));
    let project_dir = dir_of(&manifest_path);
    let info = project_info(None, &project_dir)?;
    Ok(BuildSettings {
        request: build::Request {
            manifest_path,
            package: args.package.clone().or_else(|| loaded.file.package.package.clone()),
            bin: args.bin.clone().or_else(|| loaded.file.package.bin.clone()),
            target_dir: args.target_dir.clone(),
            require_hermetic: args.require_hermetic,
            cache: build_cache(loaded),
            require_cache: args.require_cache,
            source_date_epoch: source_date_epoch(None, &info)?,
            quiet,
        },
        toolchain: toolchain_request(args.toolchain.as_deref(), loaded)?,
        project_dir,
    })
}

/// Labels that tie an image to the build that made it.
pub fn build_labels(facts: &build::Facts, project_dir: &Path) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert("dev.ship.toolchain".to_string(), facts.toolchain.identity.clone());
    labels.insert("dev.ship.target".to_string(), facts.target.clone());
    if let Ok(lock) = std::fs::read(facts.workspace_root.join("Cargo.lock")) {
        labels.insert("dev.ship.cargo-lock.sha256".to_string(), image::digest::sha256(&lock));
    }
    let flake_lock = toolchain::find_flake(project_dir).and_then(|d| std::fs::read(d.join("flake.lock")).ok());
    if let Some(lock) = flake_lock {
        labels.insert("dev.ship.flake-lock.sha256".to_string(), image::digest::sha256(&lock));
    }
    labels
}

/// Resolve `ship image` from flags, ship.toml and the environment (flags win). `built` is the
/// build that produced `binary`, when ship built it.
pub fn resolve_image(
    args: &ImageArgs,
    loaded: &Loaded,
    binary: &Path,
    built: Option<&build::Facts>,
) -> Result<ImageSettings, Error> {
    let toml = &loaded.file.image;
    let toml_dir = loaded.dir.clone().unwrap_or_else(|| PathBuf::from("."));

    let image_name = args.name.clone().or_else(|| toml.name.clone());
    let name = match &image_name {
        Some(n) => short_name(n)?,
        None => {
            let file = match built {
                Some(f) => f.bin.clone(),
                None => binary.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            short_name(&file.to_lowercase()).map_err(|_| Error::BadValue {
                flag: "--binary",
                value: file.clone(),
                expected: "a file name usable as an image name (or pass --name)",
            })?
        }
    };

    // ship.toml's values were checked when it was read.
    let mut ports = toml.ports.clone();
    for p in &args.ports {
        ports.push(parse_port(p)?);
    }

    let mut env: Vec<(String, String)> = Vec::new();
    let toml_env = toml.env.iter().map(|(k, v)| parse_env(&format!("{k}={v}")));
    let flag_env = args.env.iter().map(|e| parse_env(e));
    for kv in toml_env.chain(flag_env) {
        let (k, v) = kv?;
        match env.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k, v)),
        }
    }

    let mut files = Vec::new();
    for f in &toml.files {
        files.push(parse_file(f, &toml_dir).map_err(|e| loaded.value_error("files", f, e))?);
    }
    for f in &args.files {
        files.push(parse_file(f, Path::new("."))?);
    }

    let compression = match args.compression.as_deref().or(toml.compression.as_deref()) {
        None => Compression::default(),
        Some(c) => parse_compression(c)?,
    };
    let user = parse_user(args.user.as_deref().or(toml.user.as_deref()).unwrap_or("65532:65532"))?;
    let workdir = args.workdir.clone().or_else(|| toml.workdir.clone()).map(parse_workdir).transpose()?;
    let ca_bundle = args.ca_bundle.clone().or_else(|| toml.ca_bundle.as_ref().map(|p| toml_dir.join(p)));
    let base = parse_base(args.base.as_deref().or(toml.base.as_deref()).unwrap_or("ship"), ca_bundle)?;

    // The package the labels describe: the one ship built, else the project's manifest.
    let manifest = match built {
        Some(f) => package_manifest(f),
        None => project_manifest(args.build.manifest_path.as_deref(), loaded),
    };
    let git_dir = manifest.as_deref().map(dir_of).unwrap_or(toml_dir.clone());
    let info = project_info(manifest.as_deref(), &git_dir)?;
    let source_date_epoch = source_date_epoch(args.source_date_epoch.as_deref(), &info)?;

    let mut labels = BTreeMap::new();
    labels.insert("org.opencontainers.image.title".to_string(), name.clone());
    let known = [
        ("version", &info.version),
        ("licenses", &info.licenses),
        ("source", &info.source),
        ("revision", &info.revision),
    ];
    for (k, v) in known {
        if let Some(v) = v {
            labels.insert(format!("org.opencontainers.image.{k}"), v.clone());
        }
    }
    if let Some(f) = built {
        labels.extend(build_labels(f, &git_dir));
    }
    for (k, v) in &toml.labels {
        labels.insert(k.clone(), v.clone());
    }
    for l in &args.labels {
        let (k, v) = split_kv("--label", l, "KEY=VALUE with a non-empty KEY")?;
        check_label_key(&k)?;
        labels.insert(k, v);
    }

    let default_ref = image_name.clone().unwrap_or_else(|| name.clone());
    let output = parse_output("--output", &args.output, &default_ref)?;

    Ok(ImageSettings {
        request: image::Request {
            binary: binary.to_path_buf(),
            name,
            base,
            ports,
            env,
            labels,
            user,
            workdir,
            files,
            compression,
            source_date_epoch,
            threads: image::compress::default_threads(),
        },
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        assert_eq!(
            parse_output("--output", "oci:out", "x").unwrap(),
            Output::Layout { dir: "out".into(), tag: "latest".into() }
        );
        assert_eq!(
            parse_output("--output", "oci:/a/b:v1", "x").unwrap(),
            Output::Layout { dir: "/a/b".into(), tag: "v1".into() }
        );
        assert_eq!(
            parse_output("--output", "docker-archive:x.tar", "ghcr.io/acme/app").unwrap(),
            Output::Archive { file: "x.tar".into(), repo_tag: "ghcr.io/acme/app:latest".into() }
        );
        assert_eq!(
            parse_output("--output", "docker-archive:x.tar:hello:2", "x").unwrap(),
            Output::Archive { file: "x.tar".into(), repo_tag: "hello:2".into() }
        );
        for bad in ["out", "oci:", "oci:d:bad tag", "oci:d:-x", "docker-archive:", "docker-archive:f:UP"] {
            assert!(parse_output("--output", bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_env_users() {
        assert_eq!(parse_port("3000").unwrap(), "3000/tcp");
        assert_eq!(parse_port("53/udp").unwrap(), "53/udp");
        for bad in ["0", "70000", "x", "80/icmp", ""] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_env("A_1=x=y").unwrap(), ("A_1".into(), "x=y".into()));
        for bad in ["A", "=x", "1A=x", "A-B=x"] {
            assert!(parse_env(bad).is_err(), "{bad}");
        }
        assert!(parse_user("65532:65532").is_ok());
        assert!(parse_user("nonroot").is_ok());
        assert!(parse_user("1:").is_err());
        assert!(parse_user("a b").is_err());
    }

    #[test]
    fn file_mappings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.toml"), "x").unwrap();
        let m = parse_file("c.toml:/etc/c.toml:0600", dir.path()).unwrap();
        assert_eq!((m.dest.as_str(), m.mode), ("/etc/c.toml", 0o600));
        assert_eq!(parse_file("c.toml:/etc/c.toml", dir.path()).unwrap().mode, 0o644);
        for bad in ["c.toml", "c.toml:etc/x", "missing:/x", ":/x", "c.toml:/x:0999"] {
            assert!(parse_file(bad, dir.path()).is_err(), "{bad}");
        }
        assert!(parse_file(".:/x", dir.path()).is_err(), "directories are rejected");
    }

    #[test]
    fn source_urls_keep_only_scheme_host_and_path() {
        let clean = "https://github.com/a/b";
        for remote in [
            "https://x:ghp_secret@github.com/a/b.git",
            "https://ghp_secret@github.com/a/b",
            "https://github.com/a/b?access_token=ghp_secret",
            "https://github.com/a/b.git#ghp_secret",
            "https://oauth2:ghp_secret@GitHub.com:443/a/b/?x=1#y",
            "git@github.com:a/b.git",
            "ghp_secret@github.com:a/b.git?token=ghp_secret",
            "ssh://git@github.com:22/a/b",
            "ssh://git:ghp_secret@github.com/a/b.git",
            "git+ssh://git@github.com/a/b",
        ] {
            let got = public_source_url(remote).unwrap_or_else(|| panic!("{remote}"));
            assert_eq!(got, clean, "{remote}");
        }
        assert_eq!(public_source_url("http://git.internal:8080/a/b").unwrap(), "http://git.internal/a/b");
        for local in ["/local/path", "file:///srv/repo.git", "../relative", ""] {
            assert_eq!(public_source_url(local), None, "{local}");
        }
    }

    #[test]
    fn design_example_ship_toml_parses() {
        let text = r#"
[package]
manifest-path = "Cargo.toml"
bin = "hello-service"
[toolchain]
source = "auto"
[image]
name = "ghcr.io/acme/hello-service"
tags = ["latest", "{git_sha}", "{version}"]
base = "scratch"
ports = [3000]
env = { RUST_LOG = "info" }
labels = {}
files = []
compression = "gzip"
[cache]
bucket = "acme-sccache"
[deploy.railway]
service = "..."
"#;
        let t: ShipToml = toml::from_str(text).unwrap();
        assert_eq!(t.image.name.as_deref(), Some("ghcr.io/acme/hello-service"));
        assert!(toml::from_str::<ShipToml>("[image]\nport = 3").is_err(), "typos are rejected");
    }
}
