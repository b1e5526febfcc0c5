//! The registry client under hostile or unlucky conditions: credentials only for the registry
//! itself, every wait bounded, lost replies, malformed challenges, bad references.

mod common;
use common::registry::*;
use common::*;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const USER: &str = "shipper";
const PASSWORD: &str = "s3cret-basic-pw";

fn creds_env() -> [(&'static str, &'static str); 2] {
    [("SHIP_REGISTRY_USERNAME", USER), ("SHIP_REGISTRY_PASSWORD", PASSWORD)]
}

/// A second host (127.0.0.2) in front of the same registry that logs the headers it receives
/// and authenticates on its own, as an S3 presigned URL or a CDN does.
fn other_host(reg: &Registry, rules: Vec<Rule>) -> Proxy {
    Proxy::with(
        reg.port,
        ProxyOptions {
            bind: Some(Ipv4Addr::new(127, 0, 0, 2)),
            inject_authorization: Some(format!("Basic {}", base64_encode(&format!("{USER}:{PASSWORD}")))),
            rules,
            ..Default::default()
        },
    )
}

fn no_secret(out: &str) {
    assert!(!out.contains(PASSWORD) && !out.contains(&base64_encode(&format!("{USER}:{PASSWORD}"))), "{out}");
}

#[test]
fn upload_locations_on_another_host_get_no_credentials() {
    let reg = Registry::start(Auth::Htpasswd { user: USER, password: PASSWORD });
    let t = TempDir::new();
    std::fs::write(t.join("blob.bin"), random_bytes(6 << 20, 11)).unwrap();
    let file = format!("{}:/data/blob.bin", t.join("blob.bin").display());
    // A blob over 4 MiB and small ones (a single PUT each). The other host refuses the big one
    // in one request (413), so it also goes up in PATCH chunks and a closing PUT.
    let (dir, digest) = layout(&t, "img", b"", &["--compression", "none", "--file", &file]);
    let (big, _) = largest_layer(&dir, &digest);
    let whole: &'static str = Box::leak(format!("digest={big}").into_boxed_str());
    let b = other_host(&reg, vec![Rule { method: "PUT", path_contains: whole, times: 1, fault: Fault::Status(413) }]);
    // In front of the registry: every upload Location points at the other host, as with a
    // registry whose uploads go to presigned storage URLs.
    let a = Proxy::with(
        reg.port,
        ProxyOptions { rewrite_location: Some(format!("http://{}", b.host())), ..Default::default() },
    );
    let (success, r, out) = push(&t, &dir, &format!("{}/acme/app:v1", a.host()), &[], None, &creds_env());
    assert!(success, "{out}");
    assert_eq!(r.unwrap()["digest"], digest.as_str());
    no_secret(&out);
    let at_b = b.seen();
    assert!(at_b.iter().any(|s| s.method == "PATCH") && at_b.iter().any(|s| s.method == "PUT"), "{at_b:?}");
    for s in &at_b {
        assert_eq!(s.authorization, None, "credentials went to the other host: {s:?}");
    }
    assert!(a.seen().iter().any(|s| s.authorization.is_some()), "the registry itself got no credentials");
    assert_eq!(skopeo_digest(&format!("{}/acme/app:v1", reg.host()), Some(&format!("{USER}:{PASSWORD}"))), digest);
}

#[test]
fn a_401_from_another_host_is_an_error_that_says_why_no_credentials_went_there() {
    let reg = Registry::start(Auth::Htpasswd { user: USER, password: PASSWORD });
    let t = TempDir::new();
    let (dir, _) = layout(&t, "img", b"", &[]);
    // The other host does not authenticate by itself: it wants credentials ship will not send.
    let b = Proxy::with(reg.port, ProxyOptions { bind: Some(Ipv4Addr::new(127, 0, 0, 2)), ..Default::default() });
    let a = Proxy::with(
        reg.port,
        ProxyOptions { rewrite_location: Some(format!("http://{}", b.host())), ..Default::default() },
    );
    let (success, _, out) = push(&t, &dir, &format!("{}/acme/app:v1", a.host()), &[], None, &creds_env());
    assert!(!success, "{out}");
    assert!(
        out.contains("answered 401, but it is not") && out.contains("sends credentials only to the registry"),
        "{out}"
    );
    assert!(b.seen().iter().all(|s| s.authorization.is_none()), "{:?}", b.seen());
    no_secret(&out);
}

#[test]
fn blob_downloads_redirected_to_another_host_go_without_credentials() {
    let reg = Registry::start(Auth::Htpasswd { user: USER, password: PASSWORD });
    let t = TempDir::new();
    let (dir, digest) = layout(&t, "img", b"", &[]);
    let (success, _, out) = push(&t, &dir, &format!("{}/acme/app:v1", reg.host()), &[], None, &creds_env());
    assert!(success, "{out}");
    let b = other_host(&reg, vec![]);
    // Like GHCR sending blob GETs to its CDN.
    let a = Proxy::with(
        reg.port,
        ProxyOptions { redirect_blob_gets: Some(format!("http://{}", b.host())), ..Default::default() },
    );
    let out_dir = t.join("pulled");
    let mut cmd = ship();
    cmd.args(["pull", &format!("{}/acme/app:v1", a.host()), "--output", &format!("oci:{}:v1", out_dir.display())])
        .env("DOCKER_CONFIG", t.join("none"))
        .env("REGISTRY_AUTH_FILE", t.join("none.json"))
        .envs(creds_env());
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(success, "{stderr}");
    assert_eq!(stdout.trim(), digest);
    no_secret(&format!("{stdout}{stderr}"));
    let redirected: Vec<_> = a.seen().into_iter().filter(|s| s.status == 307).collect();
    assert!(!redirected.is_empty(), "no blob GET was redirected");
    let at_b = b.seen();
    assert_eq!(at_b.len(), redirected.len(), "{at_b:?}");
    for s in &at_b {
        assert_eq!(s.authorization, None, "credentials followed the redirect: {s:?}");
    }
}

#[test]
fn a_stalled_registry_fails_within_the_deadline_and_says_it_timed_out() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let t = TempDir::new();
    let (dir, _) = layout(&t, "img", b"", &[]);
    let start = Instant::now();
    let (success, _, out) = push(
        &t,
        &dir,
        &format!("127.0.0.1:{port}/acme/app:v1"),
        &["--timeout", "5s", "--request-timeout", "2s"],
        None,
        &[],
    );
    let took = start.elapsed();
    assert!(!success, "{out}");
    assert!(out.contains("timed out") || out.contains("deadline of 5 s passed"), "{out}");
    assert!(took < Duration::from_secs(15), "took {took:?} against a 5 s deadline");
    assert!(out.lines().any(|l| l.starts_with("hint: ")), "{out}");

    // Nothing listening: "connection refused", not a generic send error.
    let closed = free_port();
    let (success, _, out) =
        push(&t, &dir, &format!("127.0.0.1:{closed}/acme/app:v1"), &["--timeout", "20s"], None, &[]);
    assert!(!success);
    assert!(out.contains("connection refused"), "{out}");
}

#[test]
fn a_lost_reply_to_a_blob_put_is_checked_with_a_head_not_resent_blindly() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    let (dir, digest) = layout(&t, "img", b"", &[]);
    // The registry stores the first blob PUT, and its answer never arrives.
    let proxy = Proxy::start(
        reg.port,
        vec![Rule { method: "PUT", path_contains: "/uploads/", times: 1, fault: Fault::DropReply }],
    );
    let (success, r, out) = push(&t, &dir, &format!("{}/lost/reply:v1", proxy.host()), &[], None, &[]);
    assert!(success, "{out}");
    assert_eq!(r.unwrap()["digest"], digest.as_str());
    let seen = proxy.seen();
    let lost = seen.iter().position(|s| s.method == "PUT" && s.path.contains("/uploads/")).unwrap();
    let lost_path = seen[lost].path.split('?').next().unwrap().to_string();
    assert!(
        seen[lost + 1..].iter().any(|s| s.method == "HEAD" && s.path.contains("/blobs/sha256:")),
        "no HEAD after the lost reply: {seen:?}"
    );
    assert!(
        !seen[lost + 1..].iter().any(|s| s.method == "PUT" && s.path.starts_with(&lost_path)),
        "the same upload session was used again: {seen:?}"
    );
    assert_eq!(skopeo_digest(&format!("{}/lost/reply:v1", reg.host()), None), digest);
}

#[test]
fn malformed_and_unusable_challenges_are_named() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    let (dir, _) = layout(&t, "img", b"", &[]);
    for (header, says) in [
        (r#"Bearer realm="unterminated"#, "is malformed"),
        ("Bearer service=\"x\"", "names no realm"),
        ("Negotiate", "asks for Negotiate authentication"),
    ] {
        let proxy = Proxy::start(
            reg.port,
            vec![Rule { method: "HEAD", path_contains: "/blobs/", times: 100, fault: Fault::Challenge(header) }],
        );
        let (success, _, out) = push(&t, &dir, &format!("{}/c/app:v1", proxy.host()), &[], None, &creds_env());
        assert!(!success, "{out}");
        let error = out.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
        assert!(error.contains("cannot be logged in to") && error.contains(says), "{header}: {out}");
        assert!(!error.contains("builder error"), "{out}");
        no_secret(&out);
    }
}

#[test]
fn bad_references_and_half_credentials_are_refused_before_any_request() {
    let t = TempDir::new();
    let (dir, _) = layout(&t, "img", b"", &[]);
    for (reference, says) in [
        ("host:notaport/x", "the registry port is not a number"),
        ("127.0.0.1:99999/x", "port is not between 1 and 65535"),
        (":5000/x", "the registry host is empty"),
    ] {
        let start = Instant::now();
        let (success, _, out) = push(&t, &dir, reference, &[], None, &[]);
        assert!(!success);
        assert!(out.contains(says), "{reference}: {out}");
        assert!(start.elapsed() < Duration::from_secs(3), "{reference} was retried: {:?}", start.elapsed());
    }
    let (success, _, out) =
        push(&t, &dir, "127.0.0.1:5999/x/y:v1", &[], None, &[("SHIP_REGISTRY_PASSWORD", "half-a-login")]);
    assert!(!success);
    assert!(out.contains("error: SHIP_REGISTRY_PASSWORD is set but SHIP_REGISTRY_USERNAME is not"), "{out}");
    assert!(!out.contains("rejected the credentials") && !out.contains("half-a-login"), "{out}");

    let mut cmd = ship();
    cmd.args(["push", "--from", "docker-archive:x.tar", "127.0.0.1:5999/x/y"]).current_dir(t.path());
    let (success, _, stderr) = run(&mut cmd);
    assert!(!success);
    assert!(
        stderr.contains("error: --from \"docker-archive:x.tar\" is not valid") && !stderr.contains("--output"),
        "{stderr}"
    );

    let mut cmd = ship();
    cmd.args(["doctor", "--image", "127.0.0.1:5999/x/y"])
        .current_dir(t.path())
        .env("SHIP_REGISTRY_PASSWORD", "half-a-login")
        .env_remove("SHIP_REGISTRY_USERNAME");
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(!success);
    assert!(
        stdout.contains(
            "FAIL credentials for 127.0.0.1:5999: SHIP_REGISTRY_PASSWORD is set but SHIP_REGISTRY_USERNAME is not"
        ),
        "{stdout}"
    );
    assert!(stderr.contains("error: ship doctor found 1 problem;"), "{stderr}");
    assert!(!stderr.contains("is not no problems") && !stderr.contains("ship image --help"), "{stderr}");
}
