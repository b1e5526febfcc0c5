//! `ship cache` against a real S3 server (moto).

mod common;
use common::*;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};

const SECRET: &str = "moto-secret-key-not-for-output";

struct Moto {
    port: u16,
    child: Child,
}

impl Moto {
    fn start() -> Moto {
        require("moto_server");
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server");
        let start = std::time::Instant::now();
        while http_get(port, "/").is_none() {
            assert!(start.elapsed() < std::time::Duration::from_secs(30), "moto did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Moto { port, child }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// boto3 (installed with moto) as an independent S3 client.
    fn boto(&self, code: &str) -> String {
        let script = format!(
            "import boto3, json, datetime\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='k', aws_secret_access_key='s')\n{code}",
            self.endpoint()
        );
        ok(Command::new("python3").args(["-c", &script]))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cache_cmd(t: &TempDir, args: &[&str]) -> (bool, String, String) {
    let mut cmd = ship();
    cmd.arg("cache")
        .args(args)
        .current_dir(t.path())
        .env("AWS_ACCESS_KEY_ID", "moto-access-key")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", t.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", t.join("no-aws-credentials"));
    let r = run(&mut cmd);
    assert!(!r.1.contains(SECRET) && !r.2.contains(SECRET), "the secret key was printed");
    r
}

#[test]
fn init_is_idempotent_and_reads_back_exactly() {
    let moto = Moto::start();
    let t = TempDir::new();
    let e = moto.endpoint();
    let args =
        ["init", "--bucket", "acme-sccache", "--endpoint", &e, "--prefix", "ci", "--expire-days", "14", "--versioning"];
    let (success, stdout, stderr) = cache_cmd(&t, &args);
    assert!(success, "{stderr}");
    assert!(stdout.contains("created bucket acme-sccache"), "{stdout}");
    assert!(stdout.contains("expire after 14 days") && stdout.contains("versioning enabled"), "{stdout}");
    let (success, stdout, stderr) = cache_cmd(&t, &args);
    assert!(success, "{stderr}");
    assert!(stdout.is_empty(), "the second init changed something: {stdout}");
    assert!(stderr.contains("nothing changed"), "{stderr}");

    let lifecycle =
        moto.boto("print(json.dumps(s3.get_bucket_lifecycle_configuration(Bucket='acme-sccache')['Rules']))");
    let rules: serde_json::Value = serde_json::from_str(&lifecycle).unwrap();
    assert_eq!(rules.as_array().unwrap().len(), 1, "{rules}");
    let r = &rules[0];
    assert_eq!(r["ID"], "ship-sccache-expiry");
    assert_eq!(r["Status"], "Enabled");
    assert_eq!(r["Filter"]["Prefix"], "ci/", "a prefix names a folder");
    assert_eq!(r["Expiration"]["Days"], 14);
    assert_eq!(r["NoncurrentVersionExpiration"]["NoncurrentDays"], 1);
    assert_eq!(r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"], 1);
    let versioning = moto.boto("print(s3.get_bucket_versioning(Bucket='acme-sccache').get('Status'))");
    assert_eq!(versioning.trim(), "Enabled");

    // A changed expiry replaces ship's rule, and only that.
    let (_, stdout, _) =
        cache_cmd(&t, &["init", "--bucket", "acme-sccache", "--endpoint", &e, "--prefix", "ci", "--expire-days", "7"]);
    assert!(stdout.contains("expire after 7 days") && !stdout.contains("created bucket"), "{stdout}");
    let days = moto
        .boto("print(s3.get_bucket_lifecycle_configuration(Bucket='acme-sccache')['Rules'][0]['Expiration']['Days'])");
    assert_eq!(days.trim(), "7");

    let (success, policy, _) = cache_cmd(&t, &["policy", "--bucket", "acme-sccache", "--prefix", "ci"]);
    assert!(success);
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(policy["Statement"][0]["Resource"][0], "arn:aws:s3:::acme-sccache/ci/*");
}

#[test]
fn stats_match_what_was_put_and_prune_removes_only_old_objects() {
    let moto = Moto::start();
    let t = TempDir::new();
    let e = moto.endpoint();
    assert!(cache_cmd(&t, &["init", "--bucket", "bkt", "--endpoint", &e, "--prefix", "ci"]).0);
    moto.boto(
        "for i in range(3): s3.put_object(Bucket='bkt', Key=f'ci/x86_64/old{i}', Body=b'a' * (1000 + i))\n\
         s3.put_object(Bucket='bkt', Key='ci/aarch64/old', Body=b'b' * 500)\n\
         s3.put_object(Bucket='bkt', Key='elsewhere/ignored', Body=b'c' * 7)",
    );
    let (success, stdout, stderr) =
        cache_cmd(&t, &["stats", "--bucket", "bkt", "--endpoint", &e, "--prefix", "ci", "--json"]);
    assert!(success, "{stderr}");
    let st: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(st["objects"], 4);
    assert_eq!(st["bytes"], 1000 + 1001 + 1002 + 500);
    assert_eq!(st["by_prefix"]["x86_64/"]["objects"], 3);
    assert_eq!(st["by_prefix"]["aarch64/"]["bytes"], 500);
    assert!(st["oldest"].as_str().unwrap().ends_with('Z'));
    let storage = 3503.0 / 1e9 * 0.023;
    assert!((st["monthly_cost_storage"].as_f64().unwrap() - storage).abs() < 1e-12);
    let requests = 300.0 * (50.0 * 0.005 + 400.0 * 0.0004) / 1000.0;
    assert!((st["monthly_cost_requests"].as_f64().unwrap() - requests).abs() < 1e-9, "{st}");
    let (_, human, _) = cache_cmd(&t, &["stats", "--bucket", "bkt", "--endpoint", &e, "--prefix", "ci"]);
    assert!(human.contains("objects:  4 (3.5 kB)") && human.contains("estimated monthly cost: $"), "{human}");

    // New objects three seconds later; then prune what is older than two seconds.
    std::thread::sleep(std::time::Duration::from_secs(3));
    moto.boto("s3.put_object(Bucket='bkt', Key='ci/x86_64/new', Body=b'n' * 10)");
    let (success, stdout, _) = cache_cmd(
        &t,
        &["prune", "--bucket", "bkt", "--endpoint", &e, "--prefix", "ci", "--older-than", "2s", "--dry-run", "--json"],
    );
    assert!(success);
    let dry: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(dry["deleted"].as_array().unwrap().len(), 4, "{dry}");
    let count = || moto.boto("print(s3.list_objects_v2(Bucket='bkt')['KeyCount'])").trim().parse::<u32>().unwrap();
    assert_eq!(count(), 6, "--dry-run deleted something");
    let (success, stdout, _) =
        cache_cmd(&t, &["prune", "--bucket", "bkt", "--endpoint", &e, "--prefix", "ci", "--older-than", "2s"]);
    assert!(success);
    assert!(stdout.contains("deleted 4 objects") && stdout.contains("kept 1"), "{stdout}");
    let left = moto.boto("print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='bkt')['Contents']))");
    assert_eq!(left.trim(), "['ci/x86_64/new', 'elsewhere/ignored']");
}

#[test]
fn keys_beside_the_prefix_are_never_pruned_nor_under_the_rule() {
    let moto = Moto::start();
    let t = TempDir::new();
    let e = moto.endpoint();
    assert!(cache_cmd(&t, &["init", "--bucket", "bkt", "--endpoint", &e, "--prefix", "sccache"]).0);
    moto.boto(
        "for k in ['sccache/x86_64/a', 'sccache/b', 'sccache-prod-backups/db.dump', 'sccachefoo', 'other/sccache/c']:\n    s3.put_object(Bucket='bkt', Key=k, Body=b'x' * 10)",
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (success, stdout, stderr) = cache_cmd(
        &t,
        &["prune", "--bucket", "bkt", "--endpoint", &e, "--prefix", "sccache", "--older-than", "1s", "--json"],
    );
    assert!(success, "{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["deleted"], serde_json::json!(["sccache/b", "sccache/x86_64/a"]), "{r}");
    let left = moto.boto("print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='bkt')['Contents']))");
    assert_eq!(left.trim(), "['other/sccache/c', 'sccache-prod-backups/db.dump', 'sccachefoo']");
    // The lifecycle rule's filter is the folder, so S3 would not expire the neighbours either.
    let filter =
        moto.boto("print(s3.get_bucket_lifecycle_configuration(Bucket='bkt')['Rules'][0]['Filter']['Prefix'])");
    assert_eq!(filter.trim(), "sccache/");
    for beside in ["sccache-prod-backups/db.dump", "sccachefoo"] {
        assert!(!beside.starts_with(filter.trim()), "{beside} is under the rule's filter");
    }
    let (_, stdout, _) =
        cache_cmd(&t, &["stats", "--bucket", "bkt", "--endpoint", &e, "--prefix", "sccache", "--json"]);
    let st: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((st["prefix"].as_str(), st["objects"].as_u64()), (Some("sccache/"), Some(0)), "{st}");
    let (_, policy, _) = cache_cmd(&t, &["policy", "--bucket", "bkt", "--prefix", "sccache"]);
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(policy["Statement"][0]["Resource"][0], "arn:aws:s3:::bkt/sccache/*");
    assert_eq!(policy["Statement"][1]["Condition"]["StringLike"]["s3:prefix"][0], "sccache/*");
}

#[test]
fn old_versions_are_reported_and_costed() {
    let moto = Moto::start();
    let t = TempDir::new();
    let e = moto.endpoint();
    assert!(cache_cmd(&t, &["init", "--bucket", "vbkt", "--endpoint", &e, "--prefix", "ci", "--versioning"]).0);
    // Two writes of one key (one old version) and a key written then pruned (one old version).
    moto.boto(
        "s3.put_object(Bucket='vbkt', Key='ci/k', Body=b'a' * 1000)\n\
         s3.put_object(Bucket='vbkt', Key='ci/k', Body=b'b' * 2000)\n\
         s3.put_object(Bucket='vbkt', Key='ci/gone', Body=b'c' * 300)\n\
         s3.put_object(Bucket='vbkt', Key='outside', Body=b'd' * 5)\n\
         s3.put_object(Bucket='vbkt', Key='outside', Body=b'e' * 5)",
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    moto.boto("s3.put_object(Bucket='vbkt', Key='ci/k', Body=b'f' * 4000)");
    let (success, _, stderr) =
        cache_cmd(&t, &["prune", "--bucket", "vbkt", "--endpoint", &e, "--prefix", "ci", "--older-than", "1s"]);
    assert!(success, "{stderr}");
    let (success, stdout, stderr) =
        cache_cmd(&t, &["stats", "--bucket", "vbkt", "--endpoint", &e, "--prefix", "ci", "--json"]);
    assert!(success, "{stderr}");
    let st: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((st["objects"].as_u64(), st["bytes"].as_u64()), (Some(1), Some(4000)), "{st}");
    // ci/k: 1000 and 2000 are old; ci/gone: 300 is old (its delete left a marker).
    assert_eq!((st["noncurrent_objects"].as_u64(), st["noncurrent_bytes"].as_u64()), (Some(3), Some(3300)), "{st}");
    let storage = (4000.0 + 3300.0) / 1e9 * 0.023;
    assert!((st["monthly_cost_storage"].as_f64().unwrap() - storage).abs() < 1e-12, "{st}");
    let (_, human, _) = cache_cmd(&t, &["stats", "--bucket", "vbkt", "--endpoint", &e, "--prefix", "ci"]);
    assert!(human.contains("old versions: 3 (3.3 kB), counted in the storage cost"), "{human}");
}

#[test]
fn a_stalled_s3_endpoint_fails_within_the_deadline_naming_the_timeout() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming() {
            held.push(c);
        }
    });
    let t = TempDir::new();
    let start = std::time::Instant::now();
    let (success, _, stderr) = cache_cmd(
        &t,
        &["stats", "--bucket", "bkt", "--endpoint", &endpoint, "--timeout", "6s", "--request-timeout", "2s"],
    );
    let took = start.elapsed();
    assert!(!success);
    assert!(took < std::time::Duration::from_secs(20), "took {took:?} against a 6 s deadline");
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(error.contains("timed out") || error.contains("overall deadline of 6 s"), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("hint: ")), "{stderr}");
}

/// An S3 stand-in that denies everything with S3's documented AccessDenied error.
fn denying_server() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten().take(50) {
            let mut conn = conn;
            let mut buf = [0u8; 65536];
            let _ = conn.read(&mut buf);
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>1</RequestId></Error>";
            let _ = write!(
                conn,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn access_denied_and_unreachable_endpoints_are_clear_errors() {
    let t = TempDir::new();
    let denied = format!("http://127.0.0.1:{}", denying_server());
    let (success, stdout, stderr) = cache_cmd(&t, &["stats", "--bucket", "bkt", "--endpoint", &denied]);
    assert!(!success && stdout.is_empty());
    assert!(stderr.contains("error: S3 denied ListObjectsV2 on bucket bkt (AccessDenied)"), "{stderr}");
    assert!(stderr.contains("hint: use credentials with the permissions `ship cache policy` prints"), "{stderr}");

    let closed = format!("http://127.0.0.1:{}", free_port());
    let (success, _, stderr) = cache_cmd(&t, &["init", "--bucket", "bkt", "--endpoint", &closed]);
    assert!(!success && stderr.contains("error: cannot reach S3 at"), "{stderr}");

    let (success, _, stderr) = cache_cmd(&t, &["stats"]);
    assert!(!success && stderr.contains("no bucket given"), "{stderr}");
    let (success, _, stderr) = cache_cmd(&t, &["prune", "--bucket", "bkt", "--older-than", "soon"]);
    assert!(!success && stderr.contains("is not a duration"), "{stderr}");
}

#[test]
fn a_clean_rebuild_with_a_warm_s3_cache_hits_and_a_dead_s3_is_a_warning() {
    let moto = Moto::start();
    let t = TempDir::new();
    let e = moto.endpoint();
    assert!(cache_cmd(&t, &["init", "--bucket", "ship-cache", "--endpoint", &e, "--prefix", "ci"]).0);
    let project = t.join("hs");
    copy_hello_service(&project);
    std::fs::write(
        project.join("ship.toml"),
        format!("[cache]\nbucket = \"ship-cache\"\nregion = \"us-east-1\"\nendpoint = \"{e}\"\nprefix = \"ci\"\n"),
    )
    .unwrap();
    let tc = toolchain_dir(&t.join("tc"), true);
    let build = |target: &str, extra: &[&str]| {
        let mut cmd = ship();
        cmd.args(["build", "--json", "--toolchain"])
            .arg(&tc)
            .arg("--target-dir")
            .arg(t.join(target))
            .args(extra)
            .current_dir(&project)
            .env("AWS_ACCESS_KEY_ID", "moto-access-key")
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let (success, stdout, stderr) = run(&mut cmd);
        assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
        (success, serde_json::from_str::<serde_json::Value>(&stdout).unwrap_or_default(), stderr)
    };
    let (success, cold, stderr) = build("cold", &[]);
    assert!(success, "{stderr}");
    let cold = &cold["sccache"];
    assert!(cold["misses"].as_u64().unwrap() > 10, "{cold}");
    assert!(cold["backend"].as_str().unwrap().starts_with("s3://ship-cache/ci/x86_64-unknown-linux-gnu/"), "{cold}");
    // The objects are in the bucket under the target- and toolchain-specific prefix.
    let keys = moto.boto("print(s3.list_objects_v2(Bucket='ship-cache')['KeyCount'])");
    assert!(keys.trim().parse::<u32>().unwrap() > 10, "{keys}");

    // A clean rebuild: same checkout and target dir (sccache keys include the paths in the
    // compiler arguments), nothing left in it.
    std::fs::remove_dir_all(t.join("cold")).unwrap();
    let (success, warm, stderr) = build("cold", &[]);
    assert!(success, "{stderr}");
    let warm = &warm["sccache"];
    assert!(warm["hit_rate"].as_f64().unwrap() >= 0.9, "a clean rebuild with a warm cache: {warm}");
    assert!(stderr.contains("% hit rate"), "{stderr}");

    // S3 unreachable: a warning and the build goes on; with --require-cache, an error.
    let dead = format!("[cache]\nbucket = \"ship-cache\"\nendpoint = \"http://127.0.0.1:{}\"\n", free_port());
    std::fs::write(project.join("ship.toml"), dead).unwrap();
    let (success, facts, stderr) = build("cold", &[]);
    assert!(success, "{stderr}");
    assert!(stderr.contains("warning: the sccache S3 cache cannot be used"), "{stderr}");
    assert!(facts["sccache"].is_null());
    let (success, _, stderr) = build("cold", &["--require-cache"]);
    assert!(!success && stderr.contains("error: the sccache S3 cache cannot be used"), "{stderr}");
}
