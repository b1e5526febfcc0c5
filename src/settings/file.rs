//! ship.toml: its schema, read with every value checked, and where each key stands in it.

use super::Error;
use super::parse::*;
use crate::registry::reference::Reference;
use crate::toolchain;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    #[serde(default)]
    pub deploy: DeploySection,
}

/// `[deploy]`: Railway, or a webhook.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeploySection {
    pub railway: Option<RailwaySection>,
    /// The weaker option: a URL that takes a POST per deploy (no status to wait for).
    pub webhook_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RailwaySection {
    pub service: Option<String>,
    pub environment: Option<String>,
    pub healthcheck_path: Option<String>,
    /// Seconds Railway waits for the health check.
    pub healthcheck_timeout: Option<i64>,
    #[serde(default, deserialize_with = "de::restart_policy")]
    pub restart_policy: Option<String>,
    /// Give Railway the registry credentials of the push chain, for private images.
    #[serde(default)]
    pub registry_credentials: bool,
    /// How long to wait for the deployment (default 10m).
    #[serde(default, deserialize_with = "de::duration")]
    pub timeout: Option<String>,
    /// A URL that must answer 2xx once the deployment succeeded.
    pub health_url: Option<String>,
    #[serde(default)]
    pub rollback_on_failure: bool,
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
                check_tag_template("tags", t)?;
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

    pub fn restart_policy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        check(d, "[deploy.railway] restart-policy", |v: String| {
            if matches!(v.as_str(), "ALWAYS" | "NEVER" | "ON_FAILURE") {
                Ok(Some(v))
            } else {
                Err(Error::BadValue { flag: "restart-policy", value: v, expected: "ALWAYS, NEVER or ON_FAILURE" })
            }
        })
    }

    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        check(d, "[deploy.railway] timeout", |v: String| {
            crate::net::parse_duration(&v).map(|_| Some(v.clone())).ok_or(Error::BadValue {
                flag: "timeout",
                value: v,
                expected: "a duration like 90s, 10m or 1h",
            })
        })
    }

    pub fn toolchain<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        check(d, "[toolchain] source", |v: String| {
            toolchain::Request::parse(&v, None).map(|_| Some(v)).map_err(Error::from)
        })
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
    /// The file's text, as read (empty without a ship.toml).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The directory relative paths in ship.toml are relative to (`.` without a file).
    pub fn base_dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    /// The line of `section.key` (or `section` alone), for saying where a value came from.
    pub fn line_of(&self, path: &[&str]) -> Option<usize> {
        let doc = toml::de::DeTable::parse(&self.text).ok()?;
        let mut table = doc.get_ref();
        let mut span = None;
        for (i, key) in path.iter().enumerate() {
            let (_, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *key)?;
            span = Some(value.span());
            if i + 1 < path.len() {
                match value.get_ref() {
                    toml::de::DeValue::Table(t) => table = t,
                    _ => return None,
                }
            }
        }
        Some(line_at(&self.text, span?.start))
    }

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

fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| format!(" (line {})", line_at(text, s.start))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn keys_know_their_lines() {
        let text = "[image]\nname = \"x\"\n\nports = [3000]\n[cache]\nbucket = \"b\"\n";
        let loaded = Loaded { file: toml::from_str(text).unwrap(), text: text.into(), ..Default::default() };
        assert_eq!(loaded.line_of(&["image", "ports"]), Some(4));
        assert_eq!(loaded.line_of(&["cache", "bucket"]), Some(6));
        assert_eq!(loaded.line_of(&["image", "tags"]), None);
    }
}
