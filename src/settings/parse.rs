//! Parsers for the values flags, variables and ship.toml give: each checks one value and says
//! in one sentence what is wrong with it.

use super::Error;
use super::env;
use crate::image::{self, Base, Compression, FileMapping};
use crate::registry::reference::{self, Reference};
use std::path::{Path, PathBuf};

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

pub fn split_kv(flag: &'static str, value: &str, expected: &'static str) -> Result<(String, String), Error> {
    let bad = || Error::BadValue { flag, value: value.to_string(), expected };
    let (k, v) = value.split_once('=').ok_or_else(bad)?;
    if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok((k.to_string(), v.to_string()))
}

pub fn parse_env(value: &str) -> Result<(String, String), Error> {
    let expected = "KEY=VALUE with KEY made of letters, digits and '_', not starting with a digit";
    let (k, v) = split_kv("--env", value, expected)?;
    let ok = k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') && !k.as_bytes()[0].is_ascii_digit();
    if !ok {
        return Err(Error::BadValue { flag: "--env", value: value.to_string(), expected });
    }
    Ok((k, v))
}

pub fn parse_port(value: &str) -> Result<String, Error> {
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

pub fn parse_user(value: &str) -> Result<String, Error> {
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

pub fn parse_file(value: &str, base: &Path) -> Result<FileMapping, Error> {
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

pub fn parse_base(value: &str, ca_bundle: Option<PathBuf>) -> Result<Base, Error> {
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
pub fn default_ca_bundle() -> Result<PathBuf, Error> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(tc) = env::var("SHIP_TOOLCHAIN") {
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
pub fn short_name(name: &str) -> Result<String, Error> {
    let reference = Reference::parse(name)?;
    Ok(reference.short_name().to_string())
}

pub fn parse_epoch(flag: &'static str, value: &str) -> Result<i64, Error> {
    value.trim().parse::<i64>().ok().filter(|n| (0..=253_402_300_799).contains(n)).ok_or_else(|| Error::BadValue {
        flag,
        value: value.to_string(),
        expected: "a number of seconds since 1970 (0 to 253402300799)",
    })
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

pub fn parse_compression(value: &str) -> Result<Compression, Error> {
    Compression::parse(value).ok_or_else(|| Error::BadValue {
        flag: "--compression",
        value: value.into(),
        expected: "gzip, zstd or none",
    })
}

pub fn parse_workdir(w: String) -> Result<String, Error> {
    if w.starts_with('/') {
        Ok(w)
    } else {
        Err(Error::BadValue { flag: "--workdir", value: w, expected: "an absolute path" })
    }
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

/// A tag, possibly with `{git_sha}` or `{version}` in it, that makes a valid tag once filled.
pub fn check_tag_template(flag: &'static str, tag: &str) -> Result<(), Error> {
    let filled = tag.replace("{git_sha}", "0").replace("{version}", "0");
    if reference::is_valid_tag(&filled) {
        Ok(())
    } else {
        Err(Error::BadValue {
            flag,
            value: tag.to_string(),
            expected: "a tag (1-128 letters, digits, '_', '.' or '-'), with {git_sha} or {version} if wanted",
        })
    }
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
}
