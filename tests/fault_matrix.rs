//! Thirty seeded runs of `ship push` through a proxy that injects faults (500s, 429 with
//! Retry-After, resets mid-PATCH, lost replies to PUT, stalls, a wrong digest, a dead proxy).
//! Each run either succeeds with the right digest in the registry or fails with one clear
//! error within the deadline; never is a manifest left naming a blob the registry lacks.

mod common;
use common::registry::*;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: u64 = 30;
const DEADLINE: Duration = Duration::from_secs(20);

/// The same sequence for the same seed (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn faults(seed: u64) -> Vec<Rule> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let menu = |rng: &mut Rng| -> Rule {
        let times = 1 + rng.below(2) as usize;
        match rng.below(11) {
            0 => Rule {
                method: "HEAD",
                path_contains: "/blobs/",
                times: 1 + rng.below(3) as usize,
                fault: Fault::Status(500),
            },
            1 => Rule { method: "POST", path_contains: "/uploads/", times, fault: Fault::Status(429) },
            2 => Rule { method: "PATCH", path_contains: "/uploads/", times: 1, fault: Fault::ResetMidBody },
            3 => Rule { method: "PATCH", path_contains: "/uploads/", times, fault: Fault::Status(500) },
            4 => Rule { method: "PUT", path_contains: "/uploads/", times, fault: Fault::DropReply },
            5 => Rule { method: "PUT", path_contains: "/uploads/", times, fault: Fault::Status(503) },
            6 => Rule { method: "PUT", path_contains: "/manifests/", times, fault: Fault::Status(500) },
            7 => Rule { method: "PUT", path_contains: "/manifests/", times: 1, fault: Fault::WrongDigest },
            8 => {
                Rule { method: "HEAD", path_contains: "/blobs/", times: 1, fault: Fault::Stall(Duration::from_secs(3)) }
            }
            9 => Rule {
                method: "PATCH",
                path_contains: "/uploads/",
                times: 1,
                fault: Fault::Stall(Duration::from_secs(3)),
            },
            _ => Rule { method: "PUT", path_contains: "/manifests/", times: 1, fault: Fault::Die },
        }
    };
    (0..1 + rng.below(3)).map(|_| menu(&mut rng)).collect()
}

/// The manifest under `repo:v1`, if the registry has one, and whether every blob it names is
/// in the registry.
fn manifest_state(reg: &Registry, repo: &str) -> Option<(String, bool)> {
    require("skopeo");
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/{repo}:v1", reg.host()))
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = ship::image::digest::sha256(&out.stdout);
    let mut blobs = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    blobs.extend(manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    let complete = blobs.iter().all(|b| raw(reg.port, "HEAD", &format!("/v2/{repo}/blobs/{b}"), "", b"").0 == 200);
    Some((digest, complete))
}

#[test]
fn thirty_seeded_fault_runs_succeed_with_the_right_digest_or_fail_clearly_in_time() {
    let reg = Registry::start(Auth::None);
    let t = TempDir::new();
    std::fs::write(t.join("blob.bin"), random_bytes(9 << 20, 42)).unwrap();
    let file = format!("{}:/data/blob.bin", t.join("blob.bin").display());
    let (dir, digest) = layout(&t, "img", b"", &["--compression", "none", "--file", &file]);
    let (mut succeeded, mut failed) = (0, 0);
    for seed in 0..RUNS {
        let rules = faults(seed);
        let proxy = Proxy::start(reg.port, rules.clone());
        let repo = format!("matrix/run{seed}");
        // A cache directory per run: no mounts from earlier runs, every blob is uploaded.
        let cache = t.join(&format!("cache{seed}"));
        let start = Instant::now();
        let (success, report, out) = push(
            &t,
            &dir,
            &format!("{}/{repo}:v1", proxy.host()),
            &["--timeout", "20s", "--request-timeout", "2s"],
            None,
            &[("XDG_CACHE_HOME", cache.to_str().unwrap())],
        );
        let took = start.elapsed();
        let context = format!("seed {seed}, faults {rules:?}, took {took:?}:\n{out}");
        // Only a proxy that dies or lies about the digest makes a push fail; ship recovers
        // from everything else.
        let recoverable = !rules.iter().any(|r| matches!(r.fault, Fault::Die | Fault::WrongDigest));
        assert_eq!(success, recoverable, "{context}");
        assert!(took < DEADLINE + Duration::from_secs(10), "past the deadline: {context}");
        if success {
            succeeded += 1;
            assert_eq!(report.unwrap()["digest"], digest.as_str(), "{context}");
            let (stored, complete) = manifest_state(&reg, &repo).unwrap_or_else(|| panic!("no manifest: {context}"));
            assert_eq!(stored, digest, "{context}");
            assert!(complete, "{context}");
        } else {
            failed += 1;
            let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error: ")).collect();
            eprintln!("seed {seed}: {rules:?} -> {}", errors.first().unwrap_or(&"(no error line)"));
            assert_eq!(errors.len(), 1, "{context}");
            assert!(!errors[0].contains("error sending request"), "a vague error: {context}");
            assert!(out.lines().any(|l| l.starts_with("hint: ")), "no hint: {context}");
            if let Some((_, complete)) = manifest_state(&reg, &repo) {
                assert!(complete, "a manifest names a missing blob: {context}");
            }
        }
    }
    eprintln!("fault matrix: {succeeded} runs succeeded, {failed} failed cleanly");
    assert!(succeeded > 0 && failed > 0, "the seeds should give both kinds of run");
}
