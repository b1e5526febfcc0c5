//! A private sccache server for one build: its own port, the S3 backend under a key prefix
//! that names the target and the toolchain (so incompatible objects never mix), stats zeroed
//! before and read after, stopped when the build ends, whatever happens.

use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The S3 side of the cache: the same bucket settings `ship cache` uses.
pub use crate::cache::Settings as S3;

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses): of the cacheable compilations.
    pub hit_rate: f64,
    pub non_cacheable: u64,
    pub backend: String,
}

/// A running server; stopped on drop.
pub struct Server {
    sccache: PathBuf,
    env: BTreeMap<OsString, OsString>,
    pub backend: String,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The variables that point sccache (server and client) at the S3 backend and our port.
pub fn env(s3: Option<&S3>, key_prefix: &str, port: u16) -> BTreeMap<OsString, OsString> {
    let mut e = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        e.insert(OsString::from(k), OsString::from(v));
    };
    set("SCCACHE_SERVER_PORT", port.to_string());
    // Hold the server only as long as the build.
    set("SCCACHE_IDLE_TIMEOUT", "0".into());
    if let Some(s3) = s3 {
        set("SCCACHE_BUCKET", s3.bucket.clone());
        set("SCCACHE_REGION", s3.region.clone());
        set("SCCACHE_S3_KEY_PREFIX", key_prefix.to_string());
        if let Some(endpoint) = &s3.endpoint {
            set("SCCACHE_ENDPOINT", endpoint.clone());
            set("SCCACHE_S3_USE_SSL", (!endpoint.starts_with("http://")).to_string());
        }
    }
    e
}

/// `<prefix>/<target>/<first 16 hex of sha256(toolchain identity)>`.
pub fn key_prefix(prefix: &str, target: &str, toolchain_identity: &str) -> String {
    let id = crate::image::digest::sha256(toolchain_identity.as_bytes());
    let id = &id["sha256:".len().."sha256:".len() + 16];
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() { format!("{target}/{id}") } else { format!("{prefix}/{target}/{id}") }
}

impl Server {
    /// Start a server with `base` (the build's environment) plus the cache variables. Err is
    /// sccache's own explanation (it fails fast when S3 is unreachable or denies access).
    pub fn start(
        sccache: &Path,
        base: &BTreeMap<OsString, OsString>,
        s3: Option<&S3>,
        key_prefix: &str,
    ) -> Result<Server, String> {
        let port = free_port().map_err(|e| e.to_string())?;
        let mut env = base.clone();
        env.extend(self::env(s3, key_prefix, port));
        let out = Command::new(sccache)
            .arg("--start-server")
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", sccache.display()))?;
        if !out.status.success() {
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            return Err(text
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("sccache failed to start")
                .trim()
                .to_string());
        }
        let backend = match s3 {
            Some(s) => format!("s3://{}/{key_prefix}", s.bucket),
            None => "local disk".to_string(),
        };
        let server = Server { sccache: sccache.to_path_buf(), env, backend };
        let _ = server.run(&["--zero-stats"]);
        Ok(server)
    }

    fn run(&self, args: &[&str]) -> Option<std::process::Output> {
        Command::new(&self.sccache).args(args).env_clear().envs(&self.env).stdin(Stdio::null()).output().ok()
    }

    /// The variables cargo needs to use this server.
    pub fn client_env(&self) -> &BTreeMap<OsString, OsString> {
        &self.env
    }

    pub fn stats(&self) -> Option<Stats> {
        let out = self.run(&["--show-stats", "--stats-format=json"])?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let st = v.get("stats")?;
        let sum = |k: &str| -> u64 {
            st.pointer(&format!("/{k}/counts"))
                .and_then(|c| c.as_object())
                .map(|m| m.values().filter_map(|x| x.as_u64()).sum())
                .unwrap_or(0)
        };
        let hits = sum("cache_hits");
        let misses = sum("cache_misses");
        let non_cacheable = st.get("non_cacheable_compilations").and_then(|x| x.as_u64()).unwrap_or(0);
        let hit_rate = if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 };
        Some(Stats { hits, misses, hit_rate, non_cacheable, backend: self.backend.clone() })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.run(&["--stop-server"]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_prefixes_separate_targets_and_toolchains() {
        let a = super::key_prefix("ci/", "x86_64-unknown-linux-gnu", "/nix/store/a-tc");
        let b = super::key_prefix("ci", "x86_64-unknown-linux-gnu", "/nix/store/b-tc");
        assert!(a.starts_with("ci/x86_64-unknown-linux-gnu/") && a.len() == "ci/x86_64-unknown-linux-gnu/".len() + 16);
        assert_ne!(a, b);
        assert!(super::key_prefix("", "t", "i").starts_with("t/"));
    }
}
