//! The fallback builder: `docker buildx build -f Dockerfile.production`, for machines with Docker
//! (BuildKit) but no Nix. It builds and pushes in one go and learns the digest from buildx's
//! `--metadata-file`; the digest then goes to deploy like the native path's.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no {0} in the build context; the Docker builder needs ship's Dockerfile.production there")]
    NoDockerfile(PathBuf),
    #[error("`docker buildx build` failed ({0}); its output is above")]
    Failed(String),
    #[error("`docker buildx build` reported no digest in {0}")]
    NoDigest(PathBuf),
    #[error("cannot run docker: {0}")]
    Spawn(std::io::Error),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NoDockerfile(_) => "copy Dockerfile.production from ship's repository to your project's root".into(),
            Error::Failed(_) => "fix what docker reports; `--builder native` builds without Docker".into(),
            Error::NoDigest(_) => "use a docker with buildx 0.10 or newer (it writes containerimage.digest)".into(),
            Error::Spawn(_) => "install Docker with buildx, or use `--builder native`".into(),
        })
    }
}

/// Which builder `ship run` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Builder {
    /// cargo with the resolved toolchain, and ship's own image assembly.
    Native,
    /// `docker buildx build -f Dockerfile.production`.
    Dockerfile,
}

/// `auto`: the native builder, unless Nix is absent and a Docker daemon with buildx answers.
pub fn choose(requested: &str, nix: bool, docker_buildx: bool) -> Option<Builder> {
    match requested {
        "native" => Some(Builder::Native),
        "dockerfile" => Some(Builder::Dockerfile),
        "auto" if !nix && docker_buildx => Some(Builder::Dockerfile),
        "auto" => Some(Builder::Native),
        _ => None,
    }
}

/// Whether `docker buildx` can build here: the CLI, the plugin and a daemon that answers.
pub fn buildx_available() -> bool {
    let ok = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok(&["buildx", "version"]) && ok(&["info"])
}

/// Everything the build needs to know.
#[derive(Debug, Clone)]
pub struct Request {
    /// The build context: the repository's root.
    pub context: PathBuf,
    /// The Cargo.toml, relative to the context.
    pub manifest: String,
    pub package: String,
    pub bin: String,
    /// Every `REGISTRY/REPO:TAG` to push.
    pub tags: Vec<String>,
    pub revision: Option<String>,
    pub source: Option<String>,
    pub source_date_epoch: i64,
    /// The sccache S3 backend, if any: bucket, region, endpoint, prefix.
    pub cache: Option<crate::cache::Settings>,
    /// Inside GitHub Actions: the `type=gha` build cache; else a local directory.
    pub github_actions: bool,
    pub local_cache: PathBuf,
    pub metadata_file: PathBuf,
}

/// The `docker` arguments for `req`. Credentials never appear here: the AWS keys go in as
/// BuildKit secrets read from the environment (`env=`), so only variable names are passed.
pub fn command_args(req: &Request) -> Vec<String> {
    let mut a: Vec<String> = vec!["buildx".into(), "build".into(), "--file".into()];
    a.push(req.context.join("Dockerfile.production").display().to_string());
    let mut args = BTreeMap::new();
    args.insert("MANIFEST", req.manifest.clone());
    args.insert("PACKAGE", req.package.clone());
    args.insert("BIN", req.bin.clone());
    args.insert("SOURCE_DATE_EPOCH", req.source_date_epoch.to_string());
    if let Some(r) = &req.revision {
        args.insert("REVISION", r.clone());
    }
    if let Some(s) = &req.source {
        args.insert("SOURCE", s.clone());
    }
    if let Some(c) = &req.cache {
        args.insert("SCCACHE_BUCKET", c.bucket.clone());
        args.insert("SCCACHE_REGION", c.region.clone());
        args.insert("SCCACHE_S3_KEY_PREFIX", format!("{}docker/", c.prefix));
        if let Some(e) = &c.endpoint {
            args.insert("SCCACHE_ENDPOINT", e.clone());
        }
    }
    for (k, v) in args {
        a.push("--build-arg".into());
        a.push(format!("{k}={v}"));
    }
    if req.cache.is_some() {
        for (id, var) in
            [("aws_access_key_id", "AWS_ACCESS_KEY_ID"), ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY")]
        {
            a.push("--secret".into());
            a.push(format!("id={id},env={var}"));
        }
    }
    if req.github_actions {
        a.extend(["--cache-from".into(), "type=gha".into(), "--cache-to".into(), "type=gha,mode=max".into()]);
    } else {
        let dir = req.local_cache.display();
        a.push("--cache-from".into());
        a.push(format!("type=local,src={dir}"));
        a.push("--cache-to".into());
        a.push(format!("type=local,dest={dir},mode=max"));
    }
    for t in &req.tags {
        a.push("--tag".into());
        a.push(t.clone());
    }
    a.push("--push".into());
    a.push("--metadata-file".into());
    a.push(req.metadata_file.display().to_string());
    a.push(req.context.display().to_string());
    a
}

/// What the build produced.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub digest: String,
    pub command: Vec<String>,
    pub duration_ms: u128,
}

/// Run the build (docker's output streams to stderr) and read the pushed digest.
pub fn build(req: &Request, quiet: bool) -> Result<Facts, Error> {
    let dockerfile = req.context.join("Dockerfile.production");
    if !dockerfile.is_file() {
        return Err(Error::NoDockerfile(dockerfile));
    }
    let start = std::time::Instant::now();
    let args = command_args(req);
    let mut cmd = Command::new("docker");
    cmd.args(&args).stdin(Stdio::null()).stdout(if quiet { Stdio::null() } else { Stdio::inherit() });
    if quiet {
        cmd.arg("--quiet");
    }
    let status = cmd.status().map_err(Error::Spawn)?;
    if !status.success() {
        return Err(Error::Failed(status.to_string()));
    }
    Ok(Facts { digest: read_digest(&req.metadata_file)?, command: args, duration_ms: start.elapsed().as_millis() })
}

/// `containerimage.digest` of buildx's metadata file.
pub fn read_digest(metadata: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(metadata).map_err(|_| Error::NoDigest(metadata.to_path_buf()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| Error::NoDigest(metadata.to_path_buf()))?;
    v.get("containerimage.digest")
        .and_then(|d| d.as_str())
        .filter(|d| crate::image::digest::hex_part(d).is_some())
        .map(str::to_string)
        .ok_or_else(|| Error::NoDigest(metadata.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_docker_only_without_nix_and_with_a_daemon() {
        assert_eq!(choose("auto", true, true), Some(Builder::Native));
        assert_eq!(choose("auto", false, true), Some(Builder::Dockerfile));
        assert_eq!(choose("auto", false, false), Some(Builder::Native));
        assert_eq!(choose("dockerfile", true, false), Some(Builder::Dockerfile));
        assert_eq!(choose("kaniko", true, true), None);
    }

    fn request(github_actions: bool) -> Request {
        Request {
            context: "/src".into(),
            manifest: "examples/hello-service/Cargo.toml".into(),
            package: "hello-service".into(),
            bin: "hello-service".into(),
            tags: vec!["ghcr.io/acme/hello:latest".into()],
            revision: Some("abc".into()),
            source: None,
            source_date_epoch: 7,
            cache: Some(crate::cache::Settings {
                bucket: "b".into(),
                region: "r".into(),
                endpoint: None,
                prefix: "sccache/".into(),
                timeouts: Default::default(),
            }),
            github_actions,
            local_cache: "/cache".into(),
            metadata_file: "/tmp/m.json".into(),
        }
    }

    #[test]
    fn the_command_has_the_args_secrets_by_name_and_the_right_cache() {
        let a = command_args(&request(false)).join(" ");
        assert!(a.starts_with("buildx build --file /src/Dockerfile.production "), "{a}");
        for want in [
            "--build-arg BIN=hello-service",
            "--build-arg MANIFEST=examples/hello-service/Cargo.toml",
            "--build-arg SCCACHE_BUCKET=b",
            "--build-arg SCCACHE_S3_KEY_PREFIX=sccache/docker/",
            "--build-arg SOURCE_DATE_EPOCH=7",
            "--secret id=aws_access_key_id,env=AWS_ACCESS_KEY_ID",
            "--secret id=aws_secret_access_key,env=AWS_SECRET_ACCESS_KEY",
            "--cache-from type=local,src=/cache",
            "--cache-to type=local,dest=/cache,mode=max",
            "--tag ghcr.io/acme/hello:latest --push --metadata-file /tmp/m.json /src",
        ] {
            assert!(a.contains(want), "{want} missing from: {a}");
        }
        let gha = command_args(&request(true)).join(" ");
        assert!(gha.contains("--cache-from type=gha --cache-to type=gha,mode=max"), "{gha}");
    }

    #[test]
    fn the_digest_comes_from_the_metadata_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("m.json");
        let digest = format!("sha256:{}", "a".repeat(64));
        std::fs::write(&f, format!("{{\"containerimage.digest\": \"{digest}\"}}")).unwrap();
        assert_eq!(read_digest(&f).unwrap(), digest);
        std::fs::write(&f, "{}").unwrap();
        assert!(read_digest(&f).is_err());
    }
}
