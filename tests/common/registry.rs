//! The real registry (CNCF distribution), a test token issuer, and a fault-injecting proxy.
#![allow(dead_code)]

use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub enum Auth {
    None,
    Htpasswd {
        user: &'static str,
        password: &'static str,
    },
    /// Users: (name, password, allowed actions).
    Token {
        users: Vec<(&'static str, &'static str, Vec<&'static str>)>,
    },
}

pub struct Registry {
    pub dir: TempDir,
    pub port: u16,
    child: Child,
    issuer: Option<Child>,
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        require("docker-registry");
        let dir = TempDir::new();
        let port = free_port();
        let mut issuer = None;
        let auth_yaml = match auth {
            Auth::None => String::new(),
            Auth::Htpasswd { user, password } => {
                require("htpasswd");
                let out = ok(Command::new("htpasswd").args(["-Bbn", user, password]));
                std::fs::write(dir.join("htpasswd"), out).unwrap();
                format!("auth:\n  htpasswd:\n    realm: ship-test\n    path: {}\n", dir.join("htpasswd").display())
            }
            Auth::Token { users } => {
                let users: serde_json::Value = users
                    .iter()
                    .map(|(u, p, a)| (u.to_string(), serde_json::json!({"password": p, "actions": a})))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
                let script = repo_root().join("tests/support/token_issuer.py");
                let mut child = Command::new("python3")
                    .arg(script)
                    .arg(dir.path())
                    .args(["ship-test-registry", "ship-test-issuer", &users.to_string()])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("python3");
                let mut line = String::new();
                BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
                let issuer_port: u16 = line.trim().parse().unwrap_or_else(|_| {
                    panic!("the token issuer did not start (needs pyjwt and cryptography: {INSTALL_HINT})")
                });
                issuer = Some(child);
                format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{issuer_port}/token\n    service: ship-test-registry\n    issuer: ship-test-issuer\n    rootcertbundle: {}\n",
                    dir.join("cert.pem").display()
                )
            }
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: ship-test-secret\n{auth_yaml}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry");
        let reg = Registry { dir, port, child, issuer };
        let start = std::time::Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Status of an anonymous-or-basic HEAD on a manifest, straight to the registry.
    pub fn manifest_status(&self, repo: &str, reference: &str, basic: Option<(&str, &str)>) -> u16 {
        let mut req = format!(
            "HEAD /v2/{repo}/manifests/{reference} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\n"
        );
        if let Some((u, p)) = basic {
            use std::fmt::Write as _;
            let _ = write!(req, "Authorization: Basic {}\r\n", base64_encode(&format!("{u}:{p}")));
        }
        req.push_str("\r\n");
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(i) = &mut self.issuer {
            let _ = i.kill();
            let _ = i.wait();
        }
    }
}

pub fn base64_encode(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What the proxy does to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and Retry-After: 1 for 429) instead of forwarding.
    Status(u16),
    /// Read half the body, then drop the connection.
    ResetMidBody,
    /// Forward the request, let the registry act on it, then drop the connection without
    /// passing the answer on: the reply is lost, the effect is not.
    DropReply,
    /// Wait this long before forwarding (a stalled server).
    Stall(Duration),
    /// Forward, then claim another manifest digest in Docker-Content-Digest.
    WrongDigest,
    /// Answer 401 with this WWW-Authenticate header.
    Challenge(&'static str),
    /// Stop serving altogether: every later connection is refused.
    Die,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub method: &'static str,
    pub path_contains: &'static str,
    /// Apply to this many matching requests, then stop applying.
    pub times: usize,
    pub fault: Fault,
}

/// One request seen by the proxy.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub body_len: usize,
    pub status: u16,
    /// The request's Authorization header, if it had one.
    pub authorization: Option<String>,
}

/// How a proxy behaves besides its faults.
#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    /// The address to listen on (default 127.0.0.1).
    pub bind: Option<std::net::Ipv4Addr>,
    pub rules: Vec<Rule>,
    /// Point every absolute Location header of an answer at this base URL instead (same path
    /// and query).
    pub rewrite_location: Option<String>,
    /// Put this Authorization on every forwarded request (what a presigned URL carries in
    /// itself): the client's own, if any, is dropped.
    pub inject_authorization: Option<String>,
    /// Answer every blob GET with a 307 to this base URL + the same path.
    pub redirect_blob_gets: Option<String>,
}

/// An HTTP/1.1 proxy in front of the registry: one request per connection, logged, with faults.
pub struct Proxy {
    pub port: u16,
    pub addr: std::net::Ipv4Addr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: u16, rules: Vec<Rule>) -> Proxy {
        Proxy::with(upstream, ProxyOptions { rules, ..Default::default() })
    }

    pub fn with(upstream: u16, opts: ProxyOptions) -> Proxy {
        let addr = opts.bind.unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((addr, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let opts = Arc::new(Mutex::new(opts));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (seen, stop, opts) = (seen2.clone(), stop2.clone(), opts.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, upstream, &seen, &stop, &opts);
                });
            }
        });
        Proxy { port, addr, seen, stop }
    }

    pub fn host(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((self.addr, self.port));
    }
}

fn handle(
    mut client: TcpStream,
    upstream: u16,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
    opts: &Mutex<ProxyOptions>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    if stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let first = head.lines().next().unwrap_or_default().to_string();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let authorization = header("authorization");
    let (fault, rewrite, inject, redirect) = {
        let mut o = opts.lock().unwrap();
        let fault =
            o.rules.iter_mut().find(|r| r.times > 0 && r.method == method && path.contains(r.path_contains)).map(|r| {
                r.times -= 1;
                r.fault.clone()
            });
        (fault, o.rewrite_location.clone(), o.inject_authorization.clone(), o.redirect_blob_gets.clone())
    };
    let record = |status| {
        seen.lock().unwrap().push(Seen {
            method: method.clone(),
            path: path.clone(),
            body_len: len,
            status,
            authorization: authorization.clone(),
        })
    };
    match &fault {
        Some(Fault::ResetMidBody) => {
            let mut half = vec![0; len / 2];
            reader.read_exact(&mut half)?;
            record(0);
            let _ = client.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Die) => {
            stop.store(true, Ordering::SeqCst);
            record(0);
            let _ = client.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Status(code)) => {
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            record(*code);
            let extra = if *code == 429 { "Retry-After: 1\r\n" } else { "" };
            write!(client, "HTTP/1.1 {code} Injected\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
        Some(Fault::Challenge(h)) => {
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            record(401);
            write!(
                client,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: {h}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        Some(Fault::Stall(d)) => std::thread::sleep(*d),
        _ => {}
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    if let Some(base) = redirect.filter(|_| method == "GET" && path.contains("/blobs/sha256:")) {
        record(307);
        write!(
            client,
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {base}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        return Ok(());
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let head_out: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .filter(|l| inject.is_none() || !l.to_ascii_lowercase().starts_with("authorization:"))
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect::<String>()
        + &inject.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default()
        + "Connection: close\r\n\r\n";
    up.write_all(head_out.as_bytes())?;
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let status = String::from_utf8_lossy(&resp[..resp.len().min(16)])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    record(status);
    if matches!(fault, Some(Fault::DropReply)) {
        let _ = client.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").map_or(resp.len(), |i| i + 4);
    let (resp_head, resp_body) = resp.split_at(split);
    let mut resp_head = String::from_utf8_lossy(resp_head).into_owned();
    if let Some(to) = rewrite {
        resp_head = resp_head
            .lines()
            .map(|l| {
                let Some((name, value)) = l.split_once(':').filter(|(n, _)| n.eq_ignore_ascii_case("location")) else {
                    return l.to_string();
                };
                let value = value.trim();
                match value.find("://").and_then(|i| value[i + 3..].find('/').map(|j| i + 3 + j)) {
                    Some(path_start) => format!("{name}: {to}{}", &value[path_start..]),
                    None => l.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n");
    }
    if matches!(fault, Some(Fault::WrongDigest)) {
        let wrong = format!("sha256:{}", "0".repeat(64));
        resp_head = resp_head
            .lines()
            .map(|l| {
                if l.to_ascii_lowercase().starts_with("docker-content-digest:") {
                    format!("Docker-Content-Digest: {wrong}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n");
    }
    // `lines()` and `join` lose the blank line that ends the head.
    let resp_head = resp_head.trim_end().to_string() + "\r\n\r\n";
    client.write_all(resp_head.as_bytes())?;
    client.write_all(resp_body)?;
    let _ = client.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// A raw HTTP/1.0 request straight to the registry (no auth): (status, body).
pub fn raw(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// An OCI layout of hello-service (tag v1). `extra` bytes appended to the binary change only
/// the app layer.
pub fn layout(t: &TempDir, name: &str, extra: &[u8], args: &[&str]) -> (std::path::PathBuf, String) {
    let bin = t.join(&format!("{name}-bin"));
    let mut bytes = std::fs::read(hello_service()).unwrap();
    bytes.extend_from_slice(extra);
    std::fs::write(&bin, bytes).unwrap();
    write_ca(&t.join("ca.pem"));
    let dir = t.join(name);
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--name", "hello-service", "--source-date-epoch", "1700000000", "--binary"])
        .arg(&bin)
        .arg("--ca-bundle")
        .arg(t.join("ca.pem"))
        .args(args)
        .args(["--output", &format!("oci:{}:v1", dir.display())]);
    let digest = ok(&mut cmd).trim().to_string();
    (dir, digest)
}

/// The digest and size of the largest layer of the image `digest` in the layout `dir`.
pub fn largest_layer(dir: &std::path::Path, digest: &str) -> (String, u64) {
    let manifest = super::read_json(&dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:")));
    let big = manifest["layers"].as_array().unwrap().iter().max_by_key(|l| l["size"].as_u64().unwrap()).unwrap();
    (big["digest"].as_str().unwrap().to_string(), big["size"].as_u64().unwrap())
}

/// `ship push --json` with a private cache dir; returns (success, report or None, stdout+stderr).
pub fn push(
    t: &TempDir,
    from: &std::path::Path,
    to: &str,
    extra: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (bool, Option<serde_json::Value>, String) {
    let mut cmd = ship();
    cmd.args(["push", "--json", "--from", &format!("oci:{}:v1", from.display()), to])
        .args(extra)
        .env("XDG_CACHE_HOME", t.join("cache"))
        .env("DOCKER_CONFIG", t.join("no-docker-config"))
        .env("REGISTRY_AUTH_FILE", t.join("no-podman-auth.json"))
        .env_remove("SHIP_REGISTRY_USERNAME")
        .env_remove("SHIP_REGISTRY_PASSWORD")
        .env_remove("GITHUB_TOKEN")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), serde_json::from_str(&stdout).ok(), all)
}

/// Incompressible bytes (xorshift), the same for the same seed.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn skopeo_digest(reference: &str, creds: Option<&str>) -> String {
    require("skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.args(["--creds", c]);
    }
    let v: serde_json::Value = serde_json::from_str(&ok(cmd.arg(format!("docker://{reference}")))).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}
