//! `ship push` against the real registry (CNCF distribution): auth, skipping, mounting,
//! chunking, digests, faults, and no secret in any output.

mod common;
use common::registry::*;
use common::*;
use std::time::Duration;

#[test]
fn push_skips_what_is_there_uploads_only_what_changed_and_mounts_across_repositories() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    let (one, d1) = layout(&t, "one", b"", &[]);
    let (ok1, r, out) = push(&t, &one, &format!("{}/acme/hello:v1", reg.host()), &[], None, &[]);
    assert!(ok1, "{out}");
    let r = r.unwrap();
    assert_eq!(r["digest"], d1.as_str());
    assert_eq!(r["reference"], format!("{}/acme/hello@{d1}", reg.host()));
    assert_eq!((r["blobs_uploaded"].as_u64(), r["blobs_skipped"].as_u64()), (Some(3), Some(0)));
    assert_eq!(skopeo_digest(&format!("{}/acme/hello:v1", reg.host()), None), d1, "skopeo sees another digest");

    // Again: nothing to upload.
    let (_, r, out) = push(&t, &one, &format!("{}/acme/hello:v1", reg.host()), &[], None, &[]);
    let r = r.unwrap_or_else(|| panic!("{out}"));
    assert_eq!(r["bytes_uploaded"], 0, "{r}");
    assert_eq!(r["blobs_skipped"], 3);

    // Only the binary changed: the app layer and the config go up, the base layer does not.
    let (two, d2) = layout(&t, "two", b"changed", &[]);
    let (_, r, out) = push(&t, &two, &format!("{}/acme/hello:v2", reg.host()), &[], None, &[]);
    let r = r.unwrap_or_else(|| panic!("{out}"));
    assert_eq!(r["digest"], d2.as_str());
    assert_eq!((r["blobs_uploaded"].as_u64(), r["blobs_skipped"].as_u64()), (Some(2), Some(1)), "{r}");
    let base_digest = r["blobs"][0]["digest"].clone();
    assert_eq!(r["blobs"][0]["outcome"], "skipped");

    // A second repository: ship remembers the first and mounts from it (the registry says 201).
    let (_, r, out) = push(&t, &one, &format!("{}/acme/other", reg.host()), &["--tag", "extra"], None, &[]);
    let r = r.unwrap_or_else(|| panic!("{out}"));
    assert_eq!(r["blobs_mounted"], 3, "{r}");
    assert_eq!(r["bytes_uploaded"], 0);
    assert!(r["blobs"].as_array().unwrap().iter().all(|b| b["from"] == "acme/hello"));
    assert_eq!(r["blobs"][0]["digest"], base_digest);
    for tag in ["latest", "extra"] {
        assert_eq!(skopeo_digest(&format!("{}/acme/other:{tag}", reg.host()), None), d1);
    }
}

/// A layout of hello-service plus 21 MiB of incompressible bytes in an uncompressed layer:
/// (layout, manifest digest, the big layer's digest and size).
fn big_layout(t: &TempDir) -> (std::path::PathBuf, String, String, u64) {
    let data = random_bytes(21 << 20, 0x9e3779b97f4a7c15);
    std::fs::write(t.join("blob.bin"), &data).unwrap();
    let file = format!("{}:/data/blob.bin", t.join("blob.bin").display());
    let (dir, digest) = layout(t, "big", b"", &["--compression", "none", "--file", &file]);
    let (big, size) = largest_layer(&dir, &digest);
    (dir, digest, big, size)
}

#[test]
fn a_large_blob_goes_up_in_one_streamed_request() {
    let reg = Registry::start(Auth::None);
    let proxy = Proxy::start(reg.port, vec![]);
    let t = TempDir::new();
    let (dir, digest, big, size) = big_layout(&t);
    assert!(size > 20 << 20);
    let (success, r, out) = push(&t, &dir, &format!("{}/big/app:v1", proxy.host()), &[], None, &[]);
    assert!(success, "{out}");
    let report = r.unwrap();
    let blob = report["blobs"].as_array().unwrap().iter().find(|b| b["digest"] == big.as_str()).unwrap().clone();
    assert_eq!(blob["chunks"], 1, "{blob}");
    let seen = proxy.seen();
    assert!(seen.iter().all(|s| s.method != "PATCH"), "chunks where one request does: {seen:?}");
    let puts: Vec<usize> = seen
        .iter()
        .filter(|s| s.method == "PUT" && s.path.contains(&format!("digest={big}")))
        .map(|s| s.body_len)
        .collect();
    assert_eq!(puts, [size as usize], "the big blob's uploads");
    assert_eq!(skopeo_digest(&format!("{}/big/app:v1", reg.host()), None), digest);
}

#[test]
fn a_413_switches_to_chunks_of_at_most_4_mib() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    let (dir, digest, big, size) = big_layout(&t);
    // A registry (or a proxy in front of it) that refuses the whole blob in one request.
    let path: &'static str = Box::leak(format!("digest={big}").into_boxed_str());
    let proxy =
        Proxy::start(reg.port, vec![Rule { method: "PUT", path_contains: path, times: 1, fault: Fault::Status(413) }]);
    let (success, r, out) = push(&t, &dir, &format!("{}/big/app:v1", proxy.host()), &[], None, &[]);
    assert!(success, "{out}");
    let report = r.unwrap();
    let blob = report["blobs"].as_array().unwrap().iter().find(|b| b["digest"] == big.as_str()).unwrap().clone();
    assert!(blob["chunks"].as_u64().unwrap() >= 7, "one refused request and at least 6 chunks: {blob}");
    let seen = proxy.seen();
    assert_eq!(seen.iter().filter(|s| s.status == 413).count(), 1, "{seen:?}");
    let patches: Vec<usize> = seen.iter().filter(|s| s.method == "PATCH").map(|s| s.body_len).collect();
    assert!(patches.len() >= 6, "chunks seen by the proxy: {patches:?}");
    assert!(patches.iter().all(|n| *n <= 4 << 20), "a PATCH over 4 MiB: {patches:?}");
    assert_eq!(patches.iter().sum::<usize>() as u64, size);
    assert_eq!(skopeo_digest(&format!("{}/big/app:v1", reg.host()), None), digest);
}

#[test]
fn basic_auth_with_each_credential_source_and_clear_errors_without_secrets() {
    let reg = Registry::start(Auth::Htpasswd { user: "shipper", password: "s3cret-basic-pw" });
    let t = TempDir::new();
    let (one, digest) = layout(&t, "one", b"", &[]);
    let to = format!("{}/acme/hello:v1", reg.host());

    // Anonymous: refused, and the error says where credentials were looked for.
    let (success, _, out) = push(&t, &one, &to, &[], None, &[]);
    assert!(!success && out.contains("no credentials (anonymous)"), "{out}");

    // --username + --password-stdin, verbose: works, and the password is nowhere in the output.
    let (success, r, out) =
        push(&t, &one, &to, &["-v", "--username", "shipper", "--password-stdin"], Some("s3cret-basic-pw\n"), &[]);
    assert!(success, "{out}");
    assert_eq!(r.unwrap()["digest"], digest.as_str());
    assert!(out.contains("ship: PUT") && out.contains("-> 201"), "verbose logs the requests: {out}");
    assert!(
        !out.contains("s3cret-basic-pw") && !out.contains(&base64_encode("shipper:s3cret-basic-pw")),
        "a secret was printed"
    );

    // Wrong password from the environment: one clear error naming the source, no secret.
    let (success, _, out) = push(
        &t,
        &one,
        &to,
        &["-v"],
        None,
        &[("SHIP_REGISTRY_USERNAME", "shipper"), ("SHIP_REGISTRY_PASSWORD", "wrong-pw-value")],
    );
    assert!(!success, "{out}");
    assert!(out.contains("rejected the credentials from SHIP_REGISTRY_USERNAME/SHIP_REGISTRY_PASSWORD"), "{out}");
    assert!(!out.contains("wrong-pw-value"), "{out}");

    // docker's config.json (base64 auths), as `docker login` writes it.
    let docker = t.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auths = serde_json::json!({"auths": {reg.host(): {"auth": base64_encode("shipper:s3cret-basic-pw")}}});
    std::fs::write(docker.join("config.json"), auths.to_string()).unwrap();
    let (success, _, out) = push(&t, &one, &to, &["-v"], None, &[("DOCKER_CONFIG", docker.to_str().unwrap())]);
    assert!(success, "{out}");
    assert!(out.contains("credentials: the docker config"), "{out}");
    assert!(!out.contains("s3cret-basic-pw"));
}

#[test]
fn bearer_tokens_like_ghcr_and_a_read_only_token_is_denied() {
    let reg = Registry::start(Auth::Token {
        users: vec![("pusher", "push-pw-123", vec!["pull", "push"]), ("reader", "read-pw-456", vec!["pull"])],
    });
    let t = TempDir::new();
    let (one, digest) = layout(&t, "one", b"", &[]);
    let to = format!("{}/acme/hello:v1", reg.host());
    let env = |u: &'static str, p: &'static str| [("SHIP_REGISTRY_USERNAME", u), ("SHIP_REGISTRY_PASSWORD", p)];

    let (success, r, out) = push(&t, &one, &to, &["-v"], None, &env("pusher", "push-pw-123"));
    assert!(success, "{out}");
    assert_eq!(r.unwrap()["digest"], digest.as_str());
    assert!(out.contains("(token) -> 200"), "the token service was used: {out}");
    assert!(!out.contains("push-pw-123") && !out.contains("eyJ"), "a password or token was printed: {out}");
    assert_eq!(skopeo_digest(&to, Some("pusher:push-pw-123")), digest);

    let (success, _, out) =
        push(&t, &one, &format!("{}/acme/second:v1", reg.host()), &[], None, &env("reader", "read-pw-456"));
    assert!(!success, "a read-only token pushed: {out}");
    assert!(out.contains("SHIP_REGISTRY_USERNAME/SHIP_REGISTRY_PASSWORD") && !out.contains("read-pw-456"), "{out}");

    let (success, _, out) = push(&t, &one, &to, &[], None, &env("pusher", "not-the-password"));
    assert!(!success && out.contains("rejected the credentials"), "{out}");
    assert!(!out.contains("not-the-password"));
}

#[test]
fn podman_pulls_the_pushed_digest_and_runs_it() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    let (one, digest) = layout(&t, "one", b"", &["--port", "3000"]);
    let (success, _, out) = push(&t, &one, &format!("{}/acme/hello:v1", reg.host()), &[], None, &[]);
    assert!(success, "{out}");
    let podman = Podman::new();
    let pinned = format!("{}/acme/hello@{digest}", reg.host());
    ok(podman.cmd().args(["pull", "--tls-verify=false", "-q", &pinned]));
    let port = free_port();
    ok(podman.cmd().args(["run", "-d", "--name", "pulled", "--network=host", "-e", &format!("PORT={port}"), &pinned]));
    let (status, body) = wait_http(port, "/api/health", Duration::from_secs(30)).expect("no answer");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn faults_are_retried_or_fail_cleanly_without_a_dangling_manifest() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    let data = random_bytes(9 << 20, 7);
    std::fs::write(t.join("blob.bin"), &data).unwrap();
    let file = format!("{}:/data/blob.bin", t.join("blob.bin").display());
    let (dir, digest) = layout(&t, "img", b"", &["--compression", "none", "--file", &file]);

    // 500s and 429s a few times, a connection reset in the middle of the big blob's one-request
    // upload (ship goes on in chunks), and one in the middle of a chunk: it succeeds.
    let (big, _) = largest_layer(&dir, &digest);
    let whole: &'static str = Box::leak(format!("digest={big}").into_boxed_str());
    let rules = vec![
        Rule { method: "HEAD", path_contains: "/blobs/", times: 2, fault: Fault::Status(500) },
        Rule { method: "POST", path_contains: "/uploads/", times: 2, fault: Fault::Status(429) },
        Rule { method: "PUT", path_contains: whole, times: 1, fault: Fault::ResetMidBody },
        Rule { method: "PATCH", path_contains: "/uploads/", times: 1, fault: Fault::ResetMidBody },
        Rule { method: "PUT", path_contains: "/manifests/", times: 1, fault: Fault::Status(503) },
    ];
    let proxy = Proxy::start(reg.port, rules);
    let (success, r, out) = push(&t, &dir, &format!("{}/faults/app:v1", proxy.host()), &[], None, &[]);
    assert!(success, "{out}");
    assert_eq!(r.unwrap()["digest"], digest.as_str());
    let seen = proxy.seen();
    assert!(seen.iter().any(|s| s.method == "PUT" && s.path.contains(whole) && s.status == 0), "no reset: {seen:?}");
    assert!(seen.iter().any(|s| s.method == "PATCH" && s.status == 0), "no reset in a chunk: {seen:?}");
    assert!(
        seen.iter().any(|s| s.method == "GET" && s.path.contains("/uploads/")),
        "the upload was not resumed from the registry's Range: {seen:?}"
    );
    assert_eq!(skopeo_digest(&format!("{}/faults/app:v1", reg.host()), None), digest);

    // The proxy dies when the manifest goes up: a clear error, and no manifest in the registry.
    let (dir2, digest2) = layout(&t, "img2", b"other", &["--compression", "none", "--file", &file]);
    let proxy =
        Proxy::start(reg.port, vec![Rule { method: "PUT", path_contains: "/manifests/", times: 1, fault: Fault::Die }]);
    let (success, _, out) = push(&t, &dir2, &format!("{}/faults/dies:v1", proxy.host()), &[], None, &[]);
    assert!(!success, "{out}");
    assert!(out.contains("error: cannot reach"), "{out}");
    assert_eq!(reg.manifest_status("faults/dies", "v1", None), 404);
    assert_eq!(reg.manifest_status("faults/dies", &digest2, None), 404);

    // Every upload fails: no manifest is pushed at all.
    let proxy = Proxy::start(
        reg.port,
        vec![Rule { method: "PUT", path_contains: "/uploads/", times: 100, fault: Fault::Status(500) }],
    );
    let (success, _, out) = push(&t, &dir2, &format!("{}/faults/never:v1", proxy.host()), &[], None, &[]);
    assert!(!success, "{out}");
    assert!(proxy.seen().iter().all(|s| !s.path.contains("/manifests/")), "a manifest was sent after a blob failed");
    assert_eq!(reg.manifest_status("faults/never", "v1", None), 404);
}

#[test]
fn doctor_names_the_credential_source_without_the_secret() {
    let t = TempDir::new();
    let mut cmd = ship();
    cmd.args(["doctor", "--image", "ghcr.io/acme/app"])
        .current_dir(t.path())
        .env("DOCKER_CONFIG", t.join("none"))
        .env("GITHUB_TOKEN", "ghp_doctor_secret_value")
        .env("GITHUB_ACTOR", "octocat")
        .env_remove("SHIP_REGISTRY_PASSWORD");
    let (_, stdout, stderr) = run(&mut cmd);
    assert!(stdout.contains("ok   credentials for ghcr.io: GITHUB_TOKEN"), "{stdout}");
    assert!(!stdout.contains("ghp_doctor_secret_value") && !stderr.contains("ghp_doctor_secret_value"));

    let mut cmd = ship();
    cmd.args(["doctor", "--image", "127.0.0.1:5999/x/y"])
        .current_dir(t.path())
        .env("DOCKER_CONFIG", t.join("none"))
        .env("REGISTRY_AUTH_FILE", t.join("none.json"))
        .env_remove("SHIP_REGISTRY_PASSWORD");
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(!success, "anonymous credentials are a problem to report");
    assert!(
        stdout.contains("FAIL credentials for 127.0.0.1:5999: no credentials (anonymous)")
            && stdout.contains("fix: set SHIP_REGISTRY_USERNAME"),
        "{stdout}"
    );
    assert!(stderr.contains("error: "), "{stderr}");
}
