//! `cargo build --release --locked` with an environment ship computes: mold, static linking,
//! path remapping, SOURCE_DATE_EPOCH, sccache. Finds the artifact from cargo's JSON messages.

pub mod cross;
pub mod docker;
pub mod env;
pub mod sccache;

use crate::toolchain::{Toolchain, Versions};
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cargo build failed ({status}); cargo's diagnostics are above")]
    CargoFailed { status: String },
    #[error("cargo finished without producing the binary {0}")]
    NoArtifact(String),
    #[error("the build is not hermetic: {0}")]
    NotHermetic(String),
    #[error("the sccache S3 cache cannot be used: {0}")]
    CacheUnavailable(String),
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    /// A piece a cross build needs is missing: the sentence names what to install.
    #[error("{0}")]
    MissingCross(String),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::CargoFailed { .. } => "fix the compile error; `ship build` runs cargo build --release --locked".into(),
            Error::CacheUnavailable(_) => "check [cache] (bucket, region, endpoint) and the AWS credentials, or drop --require-cache to build without it".into(),
            Error::NotHermetic(_) => "use the Nix toolchain (nix run .#ship, or --toolchain nix), or drop --require-hermetic".into(),
            _ => return None,
        })
    }
}

/// What to build: a package and binary the project resolved (see [`crate::project`]).
#[derive(Debug, Clone)]
pub struct Request {
    pub manifest_path: PathBuf,
    pub package: String,
    pub version: String,
    pub bin: String,
    pub workspace_root: PathBuf,
    pub target_dir: PathBuf,
    pub require_hermetic: bool,
    /// The S3 backend for sccache ([cache] in ship.toml, or SCCACHE_BUCKET and friends).
    pub cache: Option<sccache::S3>,
    /// Fail instead of building without the cache when S3 cannot be used.
    pub require_cache: bool,
    pub source_date_epoch: i64,
    pub quiet: bool,
    /// The platform to build for; `None` is the host's.
    pub platform: Option<cross::Platform>,
}

/// What the build was: printed with `--json`, recorded for `ship verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub binary: PathBuf,
    pub package: String,
    pub bin: String,
    pub version: String,
    pub target: String,
    /// The OCI platform of the binary (`linux/arm64`).
    pub platform: String,
    pub workspace_root: PathBuf,
    pub toolchain: ToolchainFacts,
    pub rustflags: Vec<String>,
    pub linker: String,
    pub static_linking: bool,
    /// Hits and misses of this build when sccache ran (null when it did not).
    pub sccache: Option<sccache::Stats>,
    pub source_date_epoch: i64,
    pub duration_ms: u128,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolchainFacts {
    pub source: crate::toolchain::Source,
    pub identity: String,
    pub root: Option<PathBuf>,
    pub versions: Versions,
}

/// The environment cargo (and `cargo metadata`) runs in: the allowlist of the caller's
/// variables, with the toolchain's bin/ first on PATH.
pub fn cargo_env(toolchain: &Toolchain) -> std::collections::BTreeMap<std::ffi::OsString, std::ffi::OsString> {
    let mut envs = env::inherited(std::env::vars_os());
    if let Some(root) = &toolchain.root {
        let path = std::env::join_paths(
            std::iter::once(root.join("bin"))
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )
        .unwrap_or_default();
        envs.insert("PATH".into(), path);
    }
    envs
}

/// `--remap-path-prefix FROM=TO` for `from` and, if different, its canonical form.
fn remap(flags: &mut Vec<String>, from: &Path, to: &str) {
    let mut push = |p: &Path| {
        let flag = format!("--remap-path-prefix={}={to}", p.display());
        if !flags.contains(&flag) {
            flags.push(flag);
        }
    };
    push(from);
    if let Ok(canon) = from.canonicalize() {
        push(&canon);
    }
}

/// Build the binary. `warn` receives the warnings, which are also recorded in the facts.
pub fn build(req: &Request, toolchain: &Toolchain, warn: &mut dyn FnMut(&str)) -> Result<Facts, Error> {
    let start = Instant::now();
    let mut warnings: Vec<String> = Vec::new();
    let mut note = |w: String, warnings: &mut Vec<String>| {
        warn(&w);
        warnings.push(w);
    };
    if req.require_hermetic && !toolchain.is_hermetic() {
        return Err(Error::NotHermetic("the toolchain comes from the host's PATH, not Nix".into()));
    }
    let cargo = toolchain.tool("cargo").expect("a resolved toolchain has cargo").to_path_buf();
    let rustc = toolchain.tool("rustc").expect("a resolved toolchain has rustc").to_path_buf();
    let versions = toolchain.versions();
    let host = versions.host_triple.clone().ok_or_else(|| Error::Spawn {
        program: rustc.display().to_string(),
        source: std::io::Error::other("rustc -vV printed no host triple"),
    })?;
    let mut envs = cargo_env(toolchain);
    let target_dir = std::path::absolute(&req.target_dir).unwrap_or(req.target_dir.clone());
    // Another platform than the host's: every piece is checked before cargo starts.
    let cross_to = req.platform.filter(|p| p.triple != host);
    let cross_tools = match &cross_to {
        Some(p) => Some(
            cross::check(&rustc, envs.get(std::ffi::OsStr::new("PATH")), p)
                .map_err(|m| Error::MissingCross(m.to_string()))?,
        ),
        None => None,
    };
    let target = cross_to.map_or(host.clone(), |p| p.triple.to_string());
    let platform = match cross::for_triple(&target) {
        Some(p) => p.oci.to_string(),
        None => target.clone(),
    };

    let mut rustflags: Vec<String> = Vec::new();
    let linux_gnu = target.ends_with("-linux-gnu");
    if linux_gnu {
        rustflags.push("-Ctarget-feature=+crt-static".into());
        // A Nix toolchain carries glibc's static libraries in its lib/ (nix/toolchain.nix), for
        // its own platform only.
        if let Some(lib) = toolchain.root.as_ref().map(|r| r.join("lib")).filter(|l| l.join("libc.a").exists())
            && cross_to.is_none()
        {
            rustflags.push(format!("-Clink-arg=-L{}", lib.display()));
        }
    }
    let mold = toolchain.tool("mold");
    let clang = toolchain.tool("clang");
    // mold through a gcc-style driver: `-fuse-ld=mold`, with mold's directory searched for it.
    let mold_via_driver = |flags: &mut Vec<String>, mold: &Path| {
        flags.push("-Clink-arg=-fuse-ld=mold".into());
        flags.push(format!("-Clink-arg=-B{}", mold.parent().unwrap_or(Path::new("/")).display()));
    };
    let linker = match (&cross_to, &cross_tools, mold, clang) {
        (Some(p), Some(tools), mold, _) => {
            // The cross gcc drives the link; mold only where it is proven for the target.
            rustflags.push(format!("-Clinker={}", tools.gcc.display()));
            let mold_version = versions.mold.clone().unwrap_or_default();
            match mold.filter(|_| cross::mold_proven(&mold_version, p)) {
                Some(mold) => {
                    mold_via_driver(&mut rustflags, mold);
                    "mold"
                }
                None => {
                    if mold.is_some() {
                        note(
                            format!(
                                "{} is not proven to link working static binaries for {} (mold before 2.0 links \
                                 aarch64 binaries that crash at start); linking with {}'s GNU ld",
                                mold_version.split(" (").next().unwrap_or("this mold"),
                                p.oci,
                                tools.gcc.display()
                            ),
                            &mut warnings,
                        );
                    }
                    "gnu-ld"
                }
            }
        }
        (_, _, Some(mold), Some(clang)) => {
            rustflags.push(format!("-Clinker={}", clang.display()));
            rustflags.push(format!("-Clink-arg=--ld-path={}", mold.display()));
            "mold"
        }
        (_, _, Some(mold), None) => {
            mold_via_driver(&mut rustflags, mold);
            "mold"
        }
        (_, _, None, _) => {
            note("mold is not in the toolchain; linking with rustc's default linker".into(), &mut warnings);
            "default"
        }
    };
    if req.require_hermetic && linker == "gnu-ld" {
        return Err(Error::NotHermetic(format!(
            "the toolchain's mold is not proven for {platform}, and the GNU ld fallback is the host's"
        )));
    }
    if req.require_hermetic && linker != "mold" {
        return Err(Error::NotHermetic("mold is missing from the toolchain".into()));
    }
    // No machine path in the binary: later prefixes win, so the most specific comes last.
    if let Some(root) = &toolchain.root {
        remap(&mut rustflags, root, "/toolchain");
    }
    if let Some(cargo_home) = envs
        .get(std::ffi::OsStr::new("CARGO_HOME"))
        .map(PathBuf::from)
        .or_else(|| envs.get(std::ffi::OsStr::new("HOME")).map(|h| PathBuf::from(h).join(".cargo")))
    {
        remap(&mut rustflags, &cargo_home, "/cargo");
    }
    if let Some(sysroot) =
        Command::new(&rustc).args(["--print", "sysroot"]).output().ok().filter(|o| o.status.success())
    {
        remap(&mut rustflags, Path::new(String::from_utf8_lossy(&sysroot.stdout).trim()), "/rustc-sysroot");
    }
    remap(&mut rustflags, &req.workspace_root, "/source");
    remap(&mut rustflags, &target_dir, "/target");

    envs.insert("CARGO_ENCODED_RUSTFLAGS".into(), env::encode_rustflags(&rustflags).into());
    envs.insert("CARGO_TARGET_DIR".into(), target_dir.clone().into());
    envs.insert("SOURCE_DATE_EPOCH".into(), req.source_date_epoch.to_string().into());
    envs.insert("CARGO_INCREMENTAL".into(), "0".into());
    envs.insert("RUSTC".into(), rustc.clone().into());
    if let Some(tools) = &cross_tools {
        // C code in -sys crates compiles with the cross compiler (the cc crate's variables).
        let var = target.replace('-', "_");
        envs.insert(format!("CC_{var}").into(), tools.gcc.clone().into());
        if let Some(ar) = &tools.ar {
            envs.insert(format!("AR_{var}").into(), ar.clone().into());
        }
    } else if let Some(clang) = clang.filter(|_| toolchain.root.is_some()) {
        // C code in -sys crates compiles with the toolchain's compiler, not the host's.
        envs.insert("CC".into(), clang.into());
        if let Some(cxx) = toolchain.root.as_ref().map(|r| r.join("bin/clang++")).filter(|p| p.exists()) {
            envs.insert("CXX".into(), cxx.into());
        }
    }
    let sccache = toolchain.tool("sccache");
    if req.require_hermetic && sccache.is_none() {
        return Err(Error::NotHermetic("sccache is missing from the toolchain".into()));
    }
    // Our own sccache server for this build (stopped when `server` drops), with the S3 backend.
    // Without a bucket there is no sccache: a local disk cache hardly ever hits (its keys hold the
    // checkout's paths) and wrapping rustc costs about half a second on every build.
    let mut server = None;
    match (&req.cache, sccache) {
        (None, _) => {}
        (Some(cache), Some(s)) => {
            let prefix = sccache::key_prefix(&cache.prefix, &target, &toolchain.identity(&versions));
            match sccache::Server::start(s, &envs, Some(cache), &prefix) {
                Ok(srv) => {
                    envs.extend(srv.client_env().clone());
                    envs.insert("RUSTC_WRAPPER".into(), s.into());
                    server = Some(srv);
                }
                Err(why) => {
                    if req.require_cache {
                        return Err(Error::CacheUnavailable(why));
                    }
                    note(format!("the sccache S3 cache cannot be used ({why}); building without it"), &mut warnings);
                }
            }
        }
        (Some(_), None) => note("sccache is not in the toolchain; building without the S3 cache".into(), &mut warnings),
    }
    if req.require_cache && server.is_none() {
        return Err(Error::CacheUnavailable("sccache is not running".into()));
    }

    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--locked", "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(&req.manifest_path)
        .args(["--package", &req.package, "--bin", &req.bin, "--target", &target])
        .env_clear()
        .envs(&envs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if req.quiet {
        cmd.arg("--quiet");
    }
    let mut child = cmd.spawn().map_err(|source| Error::Spawn { program: cargo.display().to_string(), source })?;
    let mut binary = None;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines().map_while(Result::ok) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        let is_our_bin = msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == req.bin.as_str()
            && msg["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"));
        if is_our_bin {
            binary = msg["executable"].as_str().map(PathBuf::from);
        }
    }
    let status = child.wait().map_err(|source| Error::Spawn { program: cargo.display().to_string(), source })?;
    if !status.success() {
        return Err(Error::CargoFailed { status: status.to_string() });
    }
    let binary = binary.ok_or_else(|| Error::NoArtifact(req.bin.clone()))?;
    let sccache_stats = server.as_ref().and_then(|s| s.stats());
    drop(server);
    Ok(Facts {
        binary,
        package: req.package.clone(),
        bin: req.bin.clone(),
        version: req.version.clone(),
        target,
        platform,
        workspace_root: req.workspace_root.clone(),
        toolchain: ToolchainFacts {
            source: toolchain.source,
            identity: toolchain.identity(&versions),
            root: toolchain.root.clone(),
            versions,
        },
        rustflags,
        linker: linker.into(),
        static_linking: linux_gnu,
        sccache: sccache_stats,
        source_date_epoch: req.source_date_epoch,
        duration_ms: start.elapsed().as_millis(),
        warnings,
    })
}
