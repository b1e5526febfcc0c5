//! The project's facts, resolved once per run: which package and binary (from `cargo
//! metadata`), its version, licence and repository, the git revision, remote, dirty state and
//! commit time, the lock files' hashes, and the one SOURCE_DATE_EPOCH that the build and the
//! image both take.

use crate::settings::{Setting, Source};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no Cargo.toml at {0}")]
    NoManifest(PathBuf),
    #[error("`cargo metadata` failed for {manifest}: {tail}")]
    Metadata { manifest: PathBuf, tail: String },
    #[error("the workspace has no package named {name:?}")]
    UnknownPackage { name: String, available: Vec<String> },
    #[error("no binary named {name:?} in {scope}")]
    UnknownBin { name: String, scope: String, available: Vec<String> },
    #[error("{scope} has no binary target")]
    NoBin { scope: String },
    #[error("{scope} has several binaries ({})", available.join(", "))]
    AmbiguousBin { scope: String, available: Vec<String> },
    #[error("cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NoManifest(_) => "run ship inside a Cargo project, or pass --manifest-path path/to/Cargo.toml".into(),
            Error::Metadata { .. } => "fix the manifest error cargo reports; with --locked, Cargo.lock must be up to date (cargo generate-lockfile)".into(),
            Error::UnknownPackage { available, .. } => format!("packages in this workspace: {}", available.join(", ")),
            Error::UnknownBin { available, .. } if available.is_empty() => "this package has no binaries".into(),
            Error::UnknownBin { available, .. } => format!("binaries: {}", available.join(", ")),
            Error::NoBin { .. } => "add a [[bin]] target or src/main.rs, or pass --package for a package that has one".into(),
            Error::AmbiguousBin { .. } => "pick one with --bin NAME, or set bin in the [package] section of ship.toml".into(),
            Error::Spawn { .. } => return None,
        })
    }
}

/// What was asked for: which manifest, package and binary.
#[derive(Debug, Clone)]
pub struct Request {
    pub manifest_path: Setting<PathBuf>,
    pub package: Option<Setting<String>>,
    pub bin: Option<Setting<String>>,
}

/// The package and binary to ship, as cargo metadata describes them.
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub license: Option<String>,
    /// Cargo's `repository`, reduced by [`public_source_url`].
    pub repository: Option<String>,
    pub manifest_path: PathBuf,
    pub bin: String,
}

/// What git says about the checkout.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Git {
    /// The checkout's top directory: paths a recipe records are relative to it.
    pub root: PathBuf,
    pub revision: String,
    pub commit_time: Option<i64>,
    /// The origin remote, reduced by [`public_source_url`].
    pub remote: Option<String>,
    /// Tracked files differ from HEAD.
    pub dirty: bool,
}

/// The project's facts, resolved once.
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub manifest_path: PathBuf,
    pub workspace_root: PathBuf,
    pub target_directory: PathBuf,
    pub package: Package,
    pub git: Option<Git>,
    pub cargo_lock_sha256: Option<String>,
    /// The lock of the flake at or above the project, which pins the Nix toolchain.
    pub flake_lock_sha256: Option<String>,
}

impl Project {
    /// The directory paths in a recipe are relative to: the git checkout's top, else the
    /// workspace's root.
    pub fn root(&self) -> &Path {
        self.git.as_ref().map_or(&self.workspace_root, |g| &g.root)
    }

    /// `path` relative to [`Project::root`] when it is inside it (canonical paths compared), else
    /// as it is.
    pub fn relative(&self, path: &Path) -> String {
        let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| std::path::absolute(p).unwrap_or(p.to_path_buf()));
        let (root, path) = (canon(self.root()), canon(path));
        path.strip_prefix(&root).map(|p| p.display().to_string()).unwrap_or_else(|_| path.display().to_string())
    }

    /// `org.opencontainers.image.source`: Cargo's repository, else the git remote.
    pub fn source_url(&self) -> Option<String> {
        self.package.repository.clone().or_else(|| self.git.as_ref()?.remote.clone())
    }

    /// The OCI labels this project gives an image (none is a secret: URLs are reduced).
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                labels.insert(format!("org.opencontainers.image.{k}"), v);
            }
        };
        put("version", Some(self.package.version.clone()));
        put("licenses", self.package.license.clone());
        put("source", self.source_url());
        put("revision", self.git.as_ref().map(|g| g.revision.clone()));
        labels
    }
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Resolve the project with `cargo metadata` (run by `cargo` in `envs`, nothing else inherited).
pub fn resolve(req: &Request, cargo: &Path, envs: &BTreeMap<OsString, OsString>) -> Result<Project, Error> {
    let manifest = &req.manifest_path.value;
    if !manifest.is_file() {
        return Err(Error::NoManifest(std::path::absolute(manifest).unwrap_or(manifest.clone())));
    }
    let mut cmd = cargo_metadata::MetadataCommand::new();
    cmd.cargo_path(cargo).manifest_path(manifest).no_deps().other_options(vec!["--locked".to_string()]);
    let mut command = cmd.cargo_command();
    let out = command
        .env_clear()
        .envs(envs)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn { program: cargo.display().to_string(), source })?;
    if !out.status.success() {
        return Err(Error::Metadata { manifest: manifest.clone(), tail: tail(&out.stderr, 10) });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text.lines().find(|l| l.starts_with('{')).unwrap_or_default();
    let meta = cargo_metadata::MetadataCommand::parse(json)
        .map_err(|e| Error::Metadata { manifest: manifest.clone(), tail: e.to_string() })?;
    let (pkg, bin) = select(req, &meta)?;
    let workspace_root = PathBuf::from(meta.workspace_root.as_std_path());
    let git = git_facts(&workspace_root);
    let package = Package {
        name: pkg.name.to_string(),
        version: pkg.version.to_string(),
        license: pkg.license.clone(),
        repository: pkg.repository.as_deref().and_then(public_source_url),
        manifest_path: pkg.manifest_path.clone().into_std_path_buf(),
        bin,
    };
    let cargo_lock_sha256 =
        std::fs::read(workspace_root.join("Cargo.lock")).ok().map(|b| crate::image::digest::sha256(&b));
    let flake_lock_sha256 = crate::toolchain::find_flake(&workspace_root)
        .and_then(|d| std::fs::read(d.join("flake.lock")).ok())
        .map(|b| crate::image::digest::sha256(&b));
    Ok(Project {
        manifest_path: std::path::absolute(manifest).unwrap_or(manifest.clone()),
        target_directory: meta.target_directory.clone().into_std_path_buf(),
        workspace_root,
        package,
        git,
        cargo_lock_sha256,
        flake_lock_sha256,
    })
}

/// The package and binary: `--package` (else the one whose manifest was given, else every
/// member), then `--bin` (else the only one).
fn select<'m>(
    req: &Request,
    meta: &'m cargo_metadata::Metadata,
) -> Result<(&'m cargo_metadata::Package, String), Error> {
    let members = meta.workspace_packages();
    let name = |p: &cargo_metadata::Package| p.name.to_string();
    let bins = |p: &cargo_metadata::Package| -> Vec<String> {
        p.targets.iter().filter(|t| t.is_bin()).map(|t| t.name.clone()).collect()
    };
    let manifest_abs = std::path::absolute(&req.manifest_path.value).unwrap_or(req.manifest_path.value.clone());
    let candidates: Vec<&cargo_metadata::Package> = match &req.package {
        Some(p) => {
            let found: Vec<_> = members.iter().copied().filter(|x| x.name.as_str() == p.value).collect();
            if found.is_empty() {
                return Err(Error::UnknownPackage {
                    name: p.value.clone(),
                    available: members.iter().map(|p| name(p)).collect(),
                });
            }
            found
        }
        None => {
            let own: Vec<_> =
                members.iter().copied().filter(|p| p.manifest_path.as_std_path() == manifest_abs.as_path()).collect();
            if own.is_empty() { members.clone() } else { own }
        }
    };
    let scope = match &req.package {
        Some(p) => format!("package {}", p.value),
        None if candidates.len() == 1 => format!("package {}", name(candidates[0])),
        None => "the workspace".to_string(),
    };
    let all: Vec<(String, &cargo_metadata::Package)> =
        candidates.iter().flat_map(|p| bins(p).into_iter().map(move |b| (b, *p))).collect();
    match &req.bin {
        Some(b) => all.iter().find(|(n, _)| *n == b.value).map(|(n, p)| (*p, n.clone())).ok_or_else(|| {
            Error::UnknownBin { name: b.value.clone(), scope, available: all.iter().map(|(n, _)| n.clone()).collect() }
        }),
        None => match all.as_slice() {
            [] => Err(Error::NoBin { scope }),
            [(n, p)] => Ok((*p, n.clone())),
            many => Err(Error::AmbiguousBin { scope, available: many.iter().map(|(n, _)| n.clone()).collect() }),
        },
    }
}

/// The licence of every package in the project's dependency graph, by (name, version), from
/// `cargo metadata` (offline: after a build every source is local). Empty if cargo cannot say.
pub fn licenses(
    project: &Project,
    cargo: &Path,
    envs: &BTreeMap<OsString, OsString>,
) -> BTreeMap<(String, String), String> {
    let mut cmd = cargo_metadata::MetadataCommand::new();
    cmd.cargo_path(cargo)
        .manifest_path(&project.manifest_path)
        .other_options(vec!["--locked".to_string(), "--offline".to_string()]);
    let out = cmd.cargo_command().env_clear().envs(envs).stdin(Stdio::null()).stderr(Stdio::null()).output();
    let Some(out) = out.ok().filter(|o| o.status.success()) else { return BTreeMap::new() };
    let text = String::from_utf8_lossy(&out.stdout);
    let json = text.lines().find(|l| l.starts_with('{')).unwrap_or_default();
    let Ok(meta) = cargo_metadata::MetadataCommand::parse(json) else { return BTreeMap::new() };
    meta.packages.into_iter().filter_map(|p| Some(((p.name.to_string(), p.version.to_string()), p.license?))).collect()
}

/// `git -C dir ARGS`: its trimmed output, or a sentence saying what failed (with git's own).
pub fn run_git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`git {}` failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The same for facts that may be absent: `None` on failure or empty output.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    run_git(dir, args).ok().filter(|s| !s.is_empty())
}

/// Revision, commit time, origin and dirty state of the checkout at `dir`; None outside git.
pub fn git_facts(dir: &Path) -> Option<Git> {
    let revision = git(dir, &["rev-parse", "--verify", "HEAD"])?;
    Some(Git {
        root: PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?),
        commit_time: git(dir, &["log", "-1", "--format=%ct", "HEAD"]).and_then(|t| t.parse().ok()),
        remote: git(dir, &["remote", "get-url", "origin"]).and_then(|u| public_source_url(&u)),
        // Untracked files do not count: cargo builds what is tracked or ignored alike, but a
        // tracked change is the usual "built from an uncommitted tree".
        dirty: git(dir, &["status", "--porcelain", "--untracked-files=no"]).is_some(),
        revision,
    })
}

/// SOURCE_DATE_EPOCH: the flag, the variable, HEAD's commit time, 0, with where it came from.
pub fn epoch(flag: Option<i64>, env: Option<i64>, git: Option<&Git>) -> Setting<i64> {
    match (flag, env, git.and_then(|g| g.commit_time)) {
        (Some(v), _, _) => Setting::new(v, Source::Flag("--source-date-epoch")),
        (None, Some(v), _) => Setting::new(v, Source::Env("SOURCE_DATE_EPOCH")),
        (None, None, Some(t)) => Setting::new(t, Source::Derived("HEAD's commit time".into())),
        (None, None, None) => Setting::new(0, Source::Default),
    }
}

/// `ghcr.io/<owner>/<repo>` (lower case) from a GitHub remote: where `ship run --push` pushes
/// when no image name is given.
pub fn ghcr_name(remote: &str) -> Option<String> {
    let url = url::Url::parse(remote).ok()?;
    if url.host_str()? != "github.com" {
        return None;
    }
    let mut parts = url.path().trim_matches('/').split('/');
    let (owner, repo) = (parts.next()?, parts.next()?);
    (!owner.is_empty() && !repo.is_empty()).then(|| format!("ghcr.io/{owner}/{repo}").to_lowercase())
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ghcr_names_come_from_github_remotes() {
        assert_eq!(ghcr_name("https://github.com/Acme/Hello-Service").as_deref(), Some("ghcr.io/acme/hello-service"));
        assert_eq!(ghcr_name("https://gitlab.com/acme/x"), None);
    }

    #[test]
    fn the_epoch_says_where_it_came_from() {
        let g = Git { revision: "r".into(), commit_time: Some(5), ..Default::default() };
        let _ = &g.root;
        assert_eq!(epoch(Some(1), Some(2), Some(&g)).value, 1);
        assert_eq!(epoch(None, Some(2), Some(&g)).source, Source::Env("SOURCE_DATE_EPOCH"));
        assert_eq!(epoch(None, None, Some(&g)).value, 5);
        assert_eq!(epoch(None, None, None).source, Source::Default);
    }
}
