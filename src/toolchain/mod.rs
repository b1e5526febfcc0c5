//! Find or realise the toolchain and describe it. Never runs cargo builds.
//!
//! Order for `auto`: `$SHIP_TOOLCHAIN` → the project flake's `packages.<system>.toolchain`,
//! realised with `nix build` → the host's PATH (with a warning: not hermetic).

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The tools ship looks for, in the order `ship toolchain` reports them.
pub const TOOLS: &[&str] = &["rustc", "cargo", "mold", "clang", "sccache", "cargo-chef", "git"];
/// How many lines of a failing nix command's log an error shows.
const LOG_TAIL: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--toolchain {0:?} is not auto, nix, host or a toolchain directory")]
    BadRequest(String),
    #[error("nix is not installed, but --toolchain nix needs it")]
    NixMissing,
    #[error("no flake.nix in {0} or any directory above it")]
    NoFlake(PathBuf),
    #[error("the flake {flake} has no packages.{system}.toolchain")]
    NoToolchainOutput { flake: String, system: String },
    #[error("`{command}` failed{}", if tail.is_empty() { " (its log is above)".to_string() } else { format!(":\n{tail}") })]
    NixFailed { command: String, tail: String },
    #[error("the toolchain {path} has no bin/{tool}")]
    BadToolchainDir { path: PathBuf, tool: &'static str },
    #[error("{0} is not on PATH")]
    HostToolMissing(&'static str),
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::BadRequest(_) => {
                "use --toolchain auto, nix, host, or a path like /nix/store/...-ship-toolchain".into()
            }
            Error::NixMissing => "install Nix, or use --toolchain host (not hermetic)".into(),
            Error::NoFlake(_) => "add the flake from ship's repository, or use --toolchain host".into(),
            Error::NoToolchainOutput { .. } => {
                "expose packages.<system>.toolchain in flake.nix (see ship's nix/toolchain.nix)".into()
            }
            Error::NixFailed { .. } => {
                "fix the error nix reports above (offline? the pinned nixpkgs must be fetched once; `nix flake lock` if the lock file is out of date), or build with the host's tools: --toolchain host (not hermetic: the digest will not be reproducible elsewhere)".into()
            }
            Error::BadToolchainDir { .. } => {
                "point --toolchain or SHIP_TOOLCHAIN at a toolchain store path (nix build .#toolchain)".into()
            }
            Error::HostToolMissing(_) => "install Rust with rustup, or use the Nix toolchain (--toolchain nix)".into(),
            Error::Spawn { .. } => return None,
        })
    }
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `SHIP_TOOLCHAIN` (given here if set), else the flake, else the host.
    Auto {
        ship_toolchain: Option<PathBuf>,
    },
    Nix,
    Host,
    Dir(PathBuf),
}

impl Request {
    /// How the user would write it: `auto`, `nix`, `host`, or the directory.
    pub fn describe(&self) -> String {
        match self {
            Request::Auto { .. } => "auto".into(),
            Request::Nix => "nix".into(),
            Request::Host => "host".into(),
            Request::Dir(d) => d.display().to_string(),
        }
    }

    pub fn parse(value: &str, ship_toolchain: Option<PathBuf>) -> Result<Request, Error> {
        Ok(match value {
            "auto" => Request::Auto { ship_toolchain },
            "nix" => Request::Nix,
            "host" => Request::Host,
            v if v.starts_with('/') || v.starts_with('.') => Request::Dir(PathBuf::from(v)),
            v => return Err(Error::BadRequest(v.to_string())),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// `$SHIP_TOOLCHAIN`.
    Env,
    /// Realised from the project's flake.
    Nix,
    /// A directory given with --toolchain.
    Dir,
    /// The host's PATH: not hermetic.
    Host,
}

impl Source {
    pub fn describe(self) -> &'static str {
        match self {
            Source::Env => "SHIP_TOOLCHAIN",
            Source::Nix => "nix (project flake)",
            Source::Dir => "--toolchain directory",
            Source::Host => "host PATH (not hermetic)",
        }
    }
}

/// A resolved toolchain: where each tool is.
#[derive(Debug, Clone, Serialize)]
pub struct Toolchain {
    pub source: Source,
    /// The toolchain's directory (a Nix store path), when it is one.
    pub root: Option<PathBuf>,
    /// The flake it was realised from.
    pub flake: Option<String>,
    pub tools: BTreeMap<String, Option<PathBuf>>,
}

/// Exact versions, for `ship toolchain` and the build facts.
#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    /// `rustc -vV`, whole.
    pub rustc: Option<String>,
    pub host_triple: Option<String>,
    pub cargo: Option<String>,
    pub mold: Option<String>,
    pub sccache: Option<String>,
    pub clang: Option<String>,
}

impl Toolchain {
    pub fn tool(&self, name: &str) -> Option<&Path> {
        self.tools.get(name).and_then(|p| p.as_deref())
    }

    /// A non-Nix toolchain cannot be reproduced elsewhere.
    pub fn is_hermetic(&self) -> bool {
        self.source != Source::Host
    }

    fn from_dir(source: Source, root: PathBuf, flake: Option<String>) -> Result<Toolchain, Error> {
        for required in ["rustc", "cargo"] {
            if !root.join("bin").join(required).exists() {
                return Err(Error::BadToolchainDir {
                    path: root,
                    tool: if required == "rustc" { "rustc" } else { "cargo" },
                });
            }
        }
        let tools = TOOLS
            .iter()
            .map(|t| {
                let p = root.join("bin").join(t);
                (t.to_string(), p.exists().then_some(p))
            })
            .collect();
        Ok(Toolchain { source, root: Some(root), flake, tools })
    }

    fn from_host() -> Result<Toolchain, Error> {
        let tools: BTreeMap<String, Option<PathBuf>> =
            TOOLS.iter().map(|t| (t.to_string(), which::which(t).ok())).collect();
        for required in ["rustc", "cargo"] {
            if tools[required].is_none() {
                return Err(Error::HostToolMissing(if required == "rustc" { "rustc" } else { "cargo" }));
            }
        }
        Ok(Toolchain { source: Source::Host, root: None, flake: None, tools })
    }

    /// Ask each tool its version.
    pub fn versions(&self) -> Versions {
        let run = |tool: &str, args: &[&str]| -> Option<String> {
            let out = Command::new(self.tool(tool)?).args(args).stdin(Stdio::null()).output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let first_line = |s: Option<String>| s.map(|s| s.lines().next().unwrap_or_default().to_string());
        // Five process start-ups are most of `ship build`'s overhead on a no-op build: run them
        // at once.
        let (rustc, cargo, mold, sccache, clang) = std::thread::scope(|s| {
            let cargo = s.spawn(|| first_line(run("cargo", &["--version"])));
            let mold = s.spawn(|| first_line(run("mold", &["--version"])));
            let sccache = s.spawn(|| first_line(run("sccache", &["--version"])));
            let clang = s.spawn(|| first_line(run("clang", &["--version"])));
            let rustc = run("rustc", &["-vV"]);
            let join = |h: std::thread::ScopedJoinHandle<'_, Option<String>>| h.join().ok().flatten();
            (rustc, join(cargo), join(mold), join(sccache), join(clang))
        });
        let host_triple =
            rustc.as_deref().and_then(|v| v.lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_string));
        Versions { host_triple, rustc, cargo, mold, sccache, clang }
    }

    /// A short identity for labels and facts: the store path, or the host rustc's release and
    /// commit, prefixed `host:` since it is not reproducible elsewhere.
    pub fn identity(&self, versions: &Versions) -> String {
        match (&self.root, self.source) {
            (Some(root), s) if s != Source::Host => root.display().to_string(),
            _ => {
                let rustc = versions.rustc.as_deref().unwrap_or_default();
                let release = rustc.lines().find_map(|l| l.strip_prefix("release: ")).unwrap_or("unknown");
                let commit = rustc.lines().find_map(|l| l.strip_prefix("commit-hash: ")).unwrap_or("unknown");
                format!("host:rustc-{release}-{commit}")
            }
        }
    }
}

/// The Nix system string for this machine: `x86_64-linux`, `aarch64-darwin`, ...
pub fn nix_system() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    format!("{}-{os}", std::env::consts::ARCH)
}

/// The nearest directory at or above `start` that holds a flake.nix, not looking past the top of
/// the git checkout `start` is in: a flake outside the project's repository is not its input.
pub fn find_flake(start: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start).ok()?;
    for d in start.ancestors() {
        if d.join("flake.nix").is_file() {
            return Some(d.to_path_buf());
        }
        if d.join(".git").exists() {
            return None;
        }
    }
    None
}

/// `nix` with the features flakes need, whatever the user's nix.conf says.
fn nix() -> Command {
    let mut c = Command::new("nix");
    c.args(["--extra-experimental-features", "nix-command flakes"]);
    c
}

/// Run nix, streaming its log to stderr (unless quiet) and keeping the tail for errors.
fn run_nix(args: &[&str], quiet: bool) -> Result<String, Error> {
    let command = format!("nix {}", args.join(" "));
    let mut child = nix()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn { program: "nix".into(), source })?;
    let stderr = child.stderr.take().expect("piped");
    let log = std::thread::spawn(move || {
        let mut tail: std::collections::VecDeque<String> = Default::default();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !quiet {
                eprintln!("  nix: {line}");
            }
            if tail.len() == LOG_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail.into_iter().collect::<Vec<_>>().join("\n")
    });
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().expect("piped"), &mut stdout)
        .map_err(|source| Error::Spawn { program: "nix".into(), source })?;
    let status = child.wait().map_err(|source| Error::Spawn { program: "nix".into(), source })?;
    let tail = log.join().unwrap_or_default();
    if !status.success() {
        // The log was streamed already unless quiet: then the error carries its tail.
        let shown = if quiet { tail } else { String::new() };
        return Err(Error::NixFailed { command, tail: shown });
    }
    Ok(stdout)
}

/// Does the flake at `dir` expose `packages.<system>.toolchain`?
fn flake_has_toolchain(flake: &str, system: &str) -> Result<bool, Error> {
    let apply = format!("p: p ? \"{system}\" && p.\"{system}\" ? toolchain");
    match run_nix(&["eval", "--json", "--no-update-lock-file", &format!("{flake}#packages"), "--apply", &apply], true) {
        Ok(out) => Ok(out.trim() == "true"),
        Err(Error::NixFailed { tail, .. }) if tail.contains("does not provide attribute") => Ok(false),
        Err(e) => Err(e),
    }
}

/// `nix build <flake>#toolchain --no-link --json`: the output store path.
fn realise(flake: &str, quiet: bool) -> Result<PathBuf, Error> {
    let out =
        run_nix(&["build", &format!("{flake}#toolchain"), "--no-link", "--json", "--no-update-lock-file"], quiet)?;
    let parsed: serde_json::Value = serde_json::from_str(&out).map_err(|e| Error::NixFailed {
        command: format!("nix build {flake}#toolchain"),
        tail: format!("unexpected output ({e}): {out}"),
    })?;
    parsed.pointer("/0/outputs/out").and_then(|v| v.as_str()).map(PathBuf::from).ok_or_else(|| Error::NixFailed {
        command: format!("nix build {flake}#toolchain"),
        tail: format!("no output path in: {out}"),
    })
}

/// Resolve the toolchain for the project at `project_dir`. Warnings go to `warn`.
pub fn resolve(
    request: &Request,
    project_dir: &Path,
    quiet: bool,
    warn: &mut dyn FnMut(String),
) -> Result<Toolchain, Error> {
    let system = nix_system();
    let nix_installed = which::which("nix").is_ok();
    match request {
        Request::Auto { ship_toolchain: Some(dir) } => Toolchain::from_dir(Source::Env, dir.clone(), None),
        Request::Dir(dir) => Toolchain::from_dir(Source::Dir, std::path::absolute(dir).unwrap_or(dir.clone()), None),
        Request::Host => Toolchain::from_host(),
        Request::Nix => {
            if !nix_installed {
                return Err(Error::NixMissing);
            }
            let dir = find_flake(project_dir).ok_or_else(|| Error::NoFlake(project_dir.to_path_buf()))?;
            let flake = dir.display().to_string();
            if !flake_has_toolchain(&flake, &system)? {
                return Err(Error::NoToolchainOutput { flake, system });
            }
            let root = realise(&flake, quiet)?;
            Toolchain::from_dir(Source::Nix, root, Some(flake))
        }
        Request::Auto { ship_toolchain: None } => {
            let flake = find_flake(project_dir);
            match (&flake, nix_installed) {
                (Some(dir), true) => {
                    let flake = dir.display().to_string();
                    if flake_has_toolchain(&flake, &system)? {
                        let root = realise(&flake, quiet)?;
                        return Toolchain::from_dir(Source::Nix, root, Some(flake));
                    }
                    warn(format!("the flake {flake} has no packages.{system}.toolchain; using the host's tools, so the build is not hermetic and its digest will not be reproducible elsewhere"));
                }
                (Some(_), false) => warn("nix is not installed; using the host's tools, so the build is not hermetic and its digest will not be reproducible elsewhere".into()),
                (None, _) => warn("no flake.nix with a toolchain; using the host's tools, so the build is not hermetic and its digest will not be reproducible elsewhere".into()),
            }
            Toolchain::from_host()
        }
    }
}

/// What `ship plan` can say about the toolchain without realising it (no nix build, no
/// network): where it will come from, and its identity where that is known already.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub source: String,
    /// The store path or host rustc identity; None for a Nix toolchain not yet realised.
    pub identity: Option<String>,
    pub flake: Option<String>,
    pub hermetic: bool,
    pub note: Option<String>,
}

/// The toolchain `resolve` would use, found without building anything. The second value is the
/// toolchain itself when it is already on disk (a directory or the host's PATH).
pub fn plan(request: &Request, project_dir: &Path) -> Result<(Planned, Option<Toolchain>), Error> {
    let known = |tc: Toolchain| {
        let versions = tc.versions();
        let planned = Planned {
            source: tc.source.describe().to_string(),
            identity: Some(tc.identity(&versions)),
            flake: None,
            hermetic: tc.is_hermetic(),
            note: (!tc.is_hermetic()).then(|| "the host's tools: the digest will not be reproducible elsewhere".into()),
        };
        (planned, Some(tc))
    };
    let nix_installed = which::which("nix").is_ok();
    let from_flake = |dir: PathBuf| Planned {
        source: Source::Nix.describe().to_string(),
        identity: None,
        flake: Some(dir.display().to_string()),
        hermetic: true,
        note: Some(format!("realised by `ship run` with nix build {}#toolchain; pinned by flake.lock", dir.display())),
    };
    Ok(match request {
        Request::Auto { ship_toolchain: Some(dir) } => known(Toolchain::from_dir(Source::Env, dir.clone(), None)?),
        Request::Dir(dir) => {
            known(Toolchain::from_dir(Source::Dir, std::path::absolute(dir).unwrap_or(dir.clone()), None)?)
        }
        Request::Host => known(Toolchain::from_host()?),
        Request::Nix => {
            if !nix_installed {
                return Err(Error::NixMissing);
            }
            let dir = find_flake(project_dir).ok_or_else(|| Error::NoFlake(project_dir.to_path_buf()))?;
            (from_flake(dir), None)
        }
        Request::Auto { ship_toolchain: None } => match find_flake(project_dir) {
            Some(dir) if nix_installed => (from_flake(dir), None),
            _ => known(Toolchain::from_host()?),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(Request::parse("auto", None).unwrap(), Request::Auto { ship_toolchain: None });
        assert_eq!(Request::parse("nix", None).unwrap(), Request::Nix);
        assert_eq!(Request::parse("/nix/store/x-tc", None).unwrap(), Request::Dir("/nix/store/x-tc".into()));
        assert!(Request::parse("rustup", None).is_err());
    }

    #[test]
    fn system_string() {
        let s = nix_system();
        assert!(s.ends_with("-linux") || s.ends_with("-darwin"), "{s}");
    }

    #[test]
    fn a_directory_without_rustc_is_rejected() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            Toolchain::from_dir(Source::Dir, d.path().into(), None),
            Err(Error::BadToolchainDir { tool: "rustc", .. })
        ));
    }

    #[test]
    fn host_identity_names_the_rustc_commit() {
        let tc = Toolchain::from_host().unwrap();
        let v = tc.versions();
        assert!(v.rustc.as_deref().unwrap().starts_with("rustc "));
        assert!(tc.identity(&v).starts_with("host:rustc-"));
        assert!(!tc.is_hermetic());
    }
}
