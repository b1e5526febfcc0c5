//! Helpers for the integration tests: the ship binary, real tools, hello-service, podman.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const INSTALL_HINT: &str = "run scripts/install-test-deps (it installs every tool the tests use), and put its Python venv (~/.cache/ship-test-venv/bin) first on PATH, as scripts/test does";

/// The ship binary under test, with no ship-related variables inherited from the caller.
pub fn ship() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ship"));
    for v in ["SOURCE_DATE_EPOCH", "SHIP_CONFIG", "SHIP_TOOLCHAIN"] {
        c.env_remove(v);
    }
    c
}

/// Run, returning (status ok, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out: Output = cmd.output().expect("spawn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run and insist on success; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let (success, stdout, stderr) = run(cmd);
    assert!(success, "{cmd:?} failed:\nstdout: {stdout}\nstderr: {stderr}");
    stdout
}

/// Fail (never skip) when a tool the test needs is missing.
pub fn require(tool: &str) {
    let found =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false);
    assert!(found, "{tool} is not installed: {INSTALL_HINT}");
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary directory whose whole path is lower case (podman derives image names from
/// `oci:` paths and rejects upper case). Removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let p = std::env::temp_dir()
            .join(format!("ship-test-{}-{nanos}-{n}", std::process::id()))
            .to_string_lossy()
            .to_lowercase();
        std::fs::create_dir_all(&p).unwrap();
        TempDir(PathBuf::from(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // podman's vfs storage can leave read-only dirs; make them writable before removing.
        let _ = Command::new("chmod").args(["-R", "u+rwX"]).arg(&self.0).output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().expect("rustc");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV prints host")
        .to_string()
}

/// A static release build of examples/hello-service (built once per test process; cargo's
/// lock makes concurrent test processes wait for each other).
pub fn hello_service() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let triple = host_triple();
        let target_dir = repo_root().join("target/hello-service");
        let status = Command::new("cargo")
            .args(["build", "--release", "--locked", "--quiet", "--target", &triple])
            .arg("--manifest-path")
            .arg(repo_root().join("examples/hello-service/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .status()
            .expect("cargo");
        assert!(status.success(), "building examples/hello-service failed");
        target_dir.join(&triple).join("release/hello-service")
    })
    .clone()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` over HTTP/1.0: (status, body), or None if nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Poll until `GET path` answers, up to `timeout`.
pub fn wait_http(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(r) = http_get(port, path) {
            return Some(r);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// podman with its own storage and the settings TESTBED.md says this machine needs.
pub struct Podman {
    dir: TempDir,
}

impl Podman {
    pub fn new() -> Self {
        require("podman");
        require("runc");
        let dir = TempDir::new();
        std::fs::write(
            dir.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\nruntime = \"runc\"\n",
        )
        .unwrap();
        Podman { dir }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--storage-driver", "vfs"]);
        c
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output();
    }
}

/// A JSON file read into a value.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Every file under `dir`, relative path → bytes.
pub fn tree_bytes(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A PEM-looking CA bundle with fixed content, so digests do not depend on the host's bundle.
pub fn write_ca(path: &Path) {
    std::fs::write(path, "-----BEGIN CERTIFICATE-----\nMIIBtestbundle\n-----END CERTIFICATE-----\n").unwrap();
}

/// Single-user Nix as root with no daemon, sandbox or binary cache (TESTBED.md).
pub const NIX_CONFIG: &str =
    "experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\nsubstituters =";

/// The rustup sysroot's real binaries (not the rustup proxies).
pub fn sysroot_bin(tool: &str) -> PathBuf {
    let out = Command::new("rustc").args(["--print", "sysroot"]).output().expect("rustc");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin").join(tool)
}

/// Where a tool lives on PATH, resolved past pyenv-style shims.
pub fn host_tool(tool: &str) -> Option<PathBuf> {
    if tool == "sccache" {
        let out = Command::new("python3")
            .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
            .output()
            .ok()?;
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("sccache");
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(tool)).find(|p| p.is_file()))
}

/// A toolchain directory (bin/ of symlinks to this machine's tools), like a Nix store path.
pub fn toolchain_dir(dir: &Path, with_sccache: bool) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let mut tools = vec![("rustc", sysroot_bin("rustc")), ("cargo", sysroot_bin("cargo"))];
    for t in ["mold", "clang", "clang++"] {
        require(t);
        tools.push((t, host_tool(t).unwrap()));
    }
    if with_sccache {
        require("sccache");
        tools.push(("sccache", host_tool("sccache").unwrap()));
    }
    for (name, target) in tools {
        std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
    }
    dir.to_path_buf()
}

/// Copy examples/hello-service (sources and lock only) into `dir`.
pub fn copy_hello_service(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let src = repo_root().join("examples/hello-service");
    for f in ["Cargo.toml", "Cargo.lock", "src/main.rs"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
}

/// Copy the files the flake reads (flake.nix, flake.lock, nix/, Cargo.toml, Cargo.lock, src/).
pub fn copy_flake_files(dest: &Path) {
    let status = Command::new("cp")
        .args(["-r", "flake.nix", "flake.lock", "nix", "Cargo.toml", "Cargo.lock", "src", "scripts"])
        .arg(dest)
        .current_dir(repo_root())
        .status()
        .unwrap();
    assert!(status.success());
}

pub mod registry;

/// Railway's published GraphQL schema (../shared/railway/schema.json beside the checkout, or
/// $SHIP_RAILWAY_SCHEMA): reference data the deploy tests validate every document against.
pub fn railway_schema() -> PathBuf {
    let candidates = [
        std::env::var_os("SHIP_RAILWAY_SCHEMA").map(PathBuf::from),
        Some(repo_root().join("../shared/railway/schema.json")),
        Some(PathBuf::from("/work/shared/railway/schema.json")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("Railway's schema.json is not found: set SHIP_RAILWAY_SCHEMA to it (it lives in the shared folder, ../shared/railway/schema.json)")
    })
}

/// A local stand-in for Railway's GraphQL API (tests/support/railway.py): it checks the token
/// and validates every document against Railway's schema, and logs each request.
pub struct RailwayStandIn {
    pub port: u16,
    log: TempDir,
    child: std::process::Child,
}

impl RailwayStandIn {
    pub fn start(scenario: serde_json::Value) -> RailwayStandIn {
        use std::io::BufRead;
        let log = TempDir::new();
        let mut child = Command::new("python3")
            .arg(repo_root().join("tests/support/railway.py"))
            .arg("serve")
            .arg(railway_schema())
            .arg(log.join("requests.jsonl"))
            .arg(scenario.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the Railway stand-in did not start (it needs graphql-core: {INSTALL_HINT})"));
        RailwayStandIn { port, log, child }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/graphql/v2", self.port)
    }

    /// Every request so far: operation, variables, auth kind, whether the document was valid.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log.join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for RailwayStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A git checkout of hello-service under target/<name>/svc (so a run has a revision and a
/// commit time), made once per test process and shared by its tests: its fixed path lets every
/// build after the first be a no-op. Returns its Cargo.toml.
pub fn shared_project(name: &str) -> PathBuf {
    static DIRS: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, d)) = dirs.iter().find(|(n, _)| n == name) {
        return d.join("Cargo.toml");
    }
    let dir = repo_root().join("target").join(name).join("svc");
    let _ = std::fs::remove_dir_all(&dir);
    copy_hello_service(&dir);
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&dir)
            .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
            .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    git(&["remote", "add", "origin", "https://github.com/Acme/Hello-Service.git"]);
    dirs.push((name.to_string(), dir.clone()));
    dir.join("Cargo.toml")
}
