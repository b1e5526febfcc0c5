//! Writing OCI layouts safely: concurrent writers, damaged blobs, interrupted and killed runs.

mod common;
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `ship image` of hello-service with `--env TAG=TAG`, so that every tag is a different
/// image that shares its layers with the others; the caller adds `--output`.
fn base_cmd(t: &TempDir, tag: &str) -> Command {
    write_ca(&t.join("ca.pem"));
    // ship's own temporary files (the staged layer blobs) land here, where `litter` looks.
    std::fs::create_dir_all(t.join("tmp")).unwrap();
    let mut cmd = ship();
    cmd.env("TMPDIR", t.join("tmp"));
    cmd.args(["image", "--binary"]).arg(hello_service()).arg("--ca-bundle").arg(t.join("ca.pem")).args([
        "--name",
        "hello",
        "--source-date-epoch",
        "1700000000",
        "--env",
        &format!("TAG={tag}"),
    ]);
    cmd
}

/// The same into `oci:DIR:TAG`.
fn image_cmd(t: &TempDir, dir: &Path, tag: &str) -> Command {
    let mut cmd = base_cmd(t, tag);
    cmd.args(["--output", &format!("oci:{}:{tag}", dir.display())]);
    cmd
}

fn index_tags(dir: &Path) -> Vec<String> {
    let index = read_json(&dir.join("index.json"));
    let mut tags: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

/// The layout is whole for every tag: umoci lists them, skopeo reads each, oci-image-tool
/// validates each.
fn assert_valid(dir: &Path, tags: &[String]) {
    require("umoci");
    require("skopeo");
    require("oci-image-tool");
    let listed = ok(Command::new("umoci").args(["ls", "--layout"]).arg(dir));
    let mut listed: Vec<&str> = listed.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    listed.sort();
    assert_eq!(listed, tags.iter().map(String::as_str).collect::<Vec<_>>(), "umoci ls");
    for tag in tags {
        ok(Command::new("skopeo").args(["inspect"]).arg(format!("oci:{}:{tag}", dir.display())));
    }
    let out = ok(Command::new("oci-image-tool").args(["validate", "--type", "image"]).arg(dir));
    assert!(out.contains("Validation succeeded"), "{out}");
}

/// Files an interrupted or failed writer could leave behind.
fn litter(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp-")
                || name.starts_with(".ship-layout-")
                || name.starts_with(".ship-archive-")
                || name.starts_with(".index.json.")
                || name.starts_with("ship-layers-")
            {
                found.push(e.path().display().to_string());
            }
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    found
}

fn run_concurrently(cmds: Vec<Command>) -> Vec<(bool, String, String)> {
    let children: Vec<Child> =
        cmds.into_iter().map(|mut c| c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()).collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .collect()
}

#[test]
fn twenty_concurrent_writers_into_an_existing_layout_keep_every_tag() {
    let t = TempDir::new();
    let dir = t.join("layout");
    ok(&mut image_cmd(&t, &dir, "first"));
    let tags: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    let results = run_concurrently(tags.iter().map(|tag| image_cmd(&t, &dir, tag)).collect());
    for (i, (success, stdout, stderr)) in results.iter().enumerate() {
        assert!(success, "writer {i} failed: {stderr}");
        assert!(stdout.trim().starts_with("sha256:"), "writer {i} printed no digest: {stdout}");
    }
    let mut want = tags.clone();
    want.push("first".into());
    want.sort();
    assert_eq!(index_tags(&dir), want, "a tag was lost");
    assert_valid(&dir, &want);
    assert!(litter(&dir).is_empty(), "{:?}", litter(&dir));
}

#[test]
fn twenty_concurrent_writers_creating_a_new_layout_all_land() {
    let t = TempDir::new();
    let dir = t.join("new/layout");
    let tags: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
    let results = run_concurrently(tags.iter().map(|tag| image_cmd(&t, &dir, tag)).collect());
    for (i, (success, _, stderr)) in results.iter().enumerate() {
        assert!(success, "writer {i} failed: {stderr}");
    }
    assert_eq!(index_tags(&dir), tags);
    assert_valid(&dir, &tags);
    assert!(litter(t.path()).is_empty(), "{:?}", litter(t.path()));
}

#[test]
fn a_second_writer_waits_for_the_lock_and_says_so() {
    let t = TempDir::new();
    let dir = t.join("layout");
    ok(&mut image_cmd(&t, &dir, "one"));
    // Hold the layout's lock from here, as another ship would.
    let lock = std::fs::File::options().write(true).open(dir.join(".ship-lock")).unwrap();
    lock.lock().unwrap();
    let mut child = image_cmd(&t, &dir, "two").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let start = Instant::now();
    let waiting = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.contains("waiting for") => break l,
            Ok(_) => {}
            Err(e) => panic!("no 'waiting for' line from the second writer: {e}"),
        }
    };
    assert!(waiting.contains("another ship is writing it"), "{waiting}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the second writer did not wait for the lock");
    assert_eq!(index_tags(&dir), ["one"]);
    drop(lock);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(start.elapsed() < Duration::from_secs(60));
    assert_eq!(index_tags(&dir), ["one", "two"]);
}

#[test]
fn a_damaged_blob_of_the_right_size_is_replaced_not_reused() {
    let t = TempDir::new();
    let dir = t.join("layout");
    ok(&mut image_cmd(&t, &dir, "a"));
    // The biggest blob is the app layer; damage it without changing its size.
    let blobs = dir.join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&biggest).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 2..len / 2 + 4096] {
        *b ^= 0xff;
    }
    std::fs::write(&biggest, &bytes).unwrap();
    // The same image under another tag: its layers are all "already there".
    let mut cmd = base_cmd(&t, "a");
    cmd.args(["--output", &format!("oci:{}:b", dir.display())]);
    ok(&mut cmd);
    let name = biggest.file_name().unwrap().to_string_lossy().into_owned();
    let got = ship::image::digest::sha256(&std::fs::read(&biggest).unwrap());
    assert_eq!(got, format!("sha256:{name}"), "the damaged blob was kept");
    require("skopeo");
    let copy = t.join("copy");
    ok(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:b", dir.display()))
        .arg(format!("oci:{}:b", copy.display())));
}

/// Start `cmd` and signal it with `signal` as soon as a file matching `is_tmp` exists under
/// `watch`; returns the exit status.
fn interrupt_when_writing(mut cmd: Command, watch: &Path, signal: &str) -> std::process::ExitStatus {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    loop {
        if !litter(watch).is_empty() {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("ship finished ({status}) before a temporary file was seen; make the payload bigger");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no temporary file appeared");
        std::thread::sleep(Duration::from_micros(500));
    }
    ok(Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()));
    child.wait().unwrap()
}

/// A big, quick-to-write payload: 200 MB of zeros, uncompressed.
fn big_file(t: &TempDir) -> String {
    let path = t.join("zeros.bin");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(200 << 20).unwrap();
    format!("{}:/data/zeros.bin", path.display())
}

/// A directory on another file system than the tests' (tmpfs /dev/shm): with ship's staging
/// directory there, layers cannot be hard-linked into a layout and are copied, so a writer has
/// temporary files in the layout for a while.
struct OtherFs(std::path::PathBuf);

impl OtherFs {
    fn new(t: &TempDir) -> OtherFs {
        use std::os::unix::fs::MetadataExt;
        let name = t.path().file_name().unwrap().to_string_lossy().into_owned();
        let dir = Path::new("/dev/shm").join(name);
        std::fs::create_dir_all(&dir).expect("these tests need /dev/shm (tmpfs) to force copies");
        let dev = |p: &Path| std::fs::metadata(p).unwrap().dev();
        assert_ne!(dev(&dir), dev(t.path()), "/dev/shm must be another file system than {}", t.path().display());
        OtherFs(dir)
    }
}

impl Drop for OtherFs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn an_interrupted_write_leaves_no_temporary_files_and_no_half_layout() {
    let t = TempDir::new();
    let file = big_file(&t);
    let dir = t.join("layout");
    ok(&mut image_cmd(&t, &dir, "keep"));
    let before = tree_bytes(&dir);
    // While the layers are being made in the staging directory: it goes, the layout stays.
    let mut cmd = image_cmd(&t, &dir, "big");
    cmd.args(["--compression", "none", "--file", &file]);
    let status = interrupt_when_writing(cmd, &t.join("tmp"), "INT");
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(litter(t.path()).is_empty(), "left behind: {:?}", litter(t.path()));
    assert_eq!(index_tags(&dir), ["keep"]);

    // Into an existing layout: the signal lands while the big blob is being copied in (or, on a
    // slow machine, just after the index was renamed: then the tag is there, whole).
    let other = OtherFs::new(&t);
    let mut cmd = image_cmd(&t, &dir, "big");
    cmd.args(["--compression", "none", "--file", &file]).env("TMPDIR", &other.0);
    let status = interrupt_when_writing(cmd, &dir, "INT");
    assert!(litter(&other.0).is_empty(), "left behind: {:?}", litter(&other.0));
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(litter(t.path()).is_empty(), "left behind: {:?}", litter(t.path()));
    if index_tags(&dir) == ["keep"] {
        let after = tree_bytes(&dir);
        let changed: Vec<&String> =
            after.keys().chain(before.keys()).filter(|k| after.get(*k) != before.get(*k)).collect();
        assert!(changed.is_empty(), "the existing layout changed: {changed:?}");
    } else {
        assert_valid(&dir, &["big".to_string(), "keep".to_string()]);
    }

    // A new layout: nothing of it stays, or all of it.
    let fresh = t.join("fresh");
    let mut cmd = image_cmd(&t, &fresh, "big");
    cmd.args(["--compression", "none", "--file", &file]).env("TMPDIR", &other.0);
    let status = interrupt_when_writing(cmd, &fresh, "TERM");
    assert_eq!(status.code(), Some(130), "{status}");
    if fresh.exists() {
        assert_valid(&fresh, &["big".to_string()]);
    }
    assert!(litter(t.path()).is_empty(), "left behind: {:?}", litter(t.path()));

    // A docker-archive being written (its layers staged elsewhere, so that the watch sees the
    // archive's temporary file): no temporary file, and no archive or a whole one.
    let mut cmd = base_cmd(&t, "x");
    cmd.args(["--compression", "none", "--file", &file, "--output"])
        .arg(format!("docker-archive:{}", t.join("out.tar").display()))
        .env("TMPDIR", &other.0);
    let status = interrupt_when_writing(cmd, t.path(), "INT");
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(litter(t.path()).is_empty(), "left behind: {:?}", litter(t.path()));
    assert!(litter(&other.0).is_empty(), "left behind: {:?}", litter(&other.0));
}

#[test]
fn interrupted_while_waiting_for_the_lock_changes_nothing() {
    let t = TempDir::new();
    let dir = t.join("layout");
    ok(&mut image_cmd(&t, &dir, "one"));
    let before = tree_bytes(&dir);
    let lock = std::fs::File::options().write(true).open(dir.join(".ship-lock")).unwrap();
    lock.lock().unwrap();
    let mut child = image_cmd(&t, &dir, "two").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    assert!(
        lines.by_ref().map_while(Result::ok).any(|l| l.contains("waiting for")),
        "the writer did not wait for the lock"
    );
    ok(Command::new("kill").arg("-INT").arg(child.id().to_string()));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
    drop(lock);
    assert_eq!(tree_bytes(&dir), before);
}

#[test]
fn what_a_killed_write_leaves_is_swept_by_the_next_one() {
    let t = TempDir::new();
    let file = big_file(&t);
    let dir = t.join("layout");
    ok(&mut image_cmd(&t, &dir, "keep"));
    // Staged on another file system, so the big layer is copied into the layout.
    let other = OtherFs::new(&t);
    let mut cmd = image_cmd(&t, &dir, "big");
    cmd.args(["--compression", "none", "--file", &file]).env("TMPDIR", &other.0);
    let status = interrupt_when_writing(cmd, &dir, "KILL");
    assert_eq!(status.code(), None, "SIGKILL cannot be caught");
    assert!(!litter(&dir).is_empty(), "the killed writer should have left its temporary blob");
    let mut cmd = image_cmd(&t, &dir, "again");
    ok(&mut cmd);
    assert!(litter(&dir).is_empty(), "not swept: {:?}", litter(&dir));
    assert_eq!(index_tags(&dir), ["again", "keep"]);

    // An archive temp file whose writer is gone (its lock is free) and that is two minutes old.
    let stale = t.join(".ship-archive-stale");
    std::fs::write(&stale, vec![0u8; 1000]).unwrap();
    let two_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(two_minutes_ago).unwrap();
    let fresh = t.join(".ship-archive-fresh-other-writer");
    std::fs::write(&fresh, b"x").unwrap();
    let mut cmd = base_cmd(&t, "x");
    cmd.arg("--output").arg(format!("docker-archive:{}", t.join("out.tar").display()));
    ok(&mut cmd);
    assert!(!stale.exists(), "a stale archive temp file was not swept");
    assert!(fresh.exists(), "a fresh temp file (maybe another writer's) was removed");
}

#[test]
fn an_unchanged_layer_is_reused_from_the_layout_and_a_poisoned_cache_is_caught() {
    let t = TempDir::new();
    let dir = t.join("layout");
    let with_cache = |tag: &str, cache: &str| {
        let mut cmd = image_cmd(&t, &dir, tag);
        cmd.env("XDG_CACHE_HOME", t.join(cache)).arg("--quiet");
        ok(&mut cmd).trim().to_string()
    };
    let first = with_cache("a", "cache");
    // The blobs of the first run, and when they were written.
    let blobs = dir.join("blobs/sha256");
    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let app_layer = {
        let manifest = read_json(&blobs.join(first.trim_start_matches("sha256:")));
        blobs.join(manifest["layers"][1]["digest"].as_str().unwrap().trim_start_matches("sha256:"))
    };
    let written = stamp(&app_layer);
    let mappings = std::fs::read_dir(t.join("cache/ship/layers")).unwrap().count();
    assert_eq!(mappings, 2, "one mapping per layer");
    std::thread::sleep(Duration::from_millis(20));
    // The same image again: the layers are found in the layout, not compressed and written again.
    assert_eq!(with_cache("a", "cache"), first);
    assert_eq!(stamp(&app_layer), written, "the reused blob was written again");
    // Without the cache, the same digest.
    let fresh = t.join("fresh");
    let mut cmd = image_cmd(&t, &fresh, "a");
    cmd.env("XDG_CACHE_HOME", t.join("empty-cache")).arg("--quiet");
    assert_eq!(ok(&mut cmd).trim(), first, "the cache changed the digest");

    // A damaged blob (same size) behind a mapping: caught by its hash, compressed anew.
    let mut bytes = std::fs::read(&app_layer).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&app_layer, &bytes).unwrap();
    assert_eq!(with_cache("a", "cache"), first);
    let got = ship::image::digest::sha256(&std::fs::read(&app_layer).unwrap());
    assert_eq!(got, format!("sha256:{}", app_layer.file_name().unwrap().to_string_lossy()), "the damaged blob stayed");
    // A mapping that names another digest (a blob that is not there): a miss, and the right blob.
    for m in std::fs::read_dir(t.join("cache/ship/layers")).unwrap() {
        let m = m.unwrap().path();
        std::fs::write(&m, format!("{{\"digest\":\"sha256:{}\",\"size\":1}}", "0".repeat(64))).unwrap();
    }
    let mut cmd = base_cmd(&t, "a");
    cmd.args(["--quiet", "--output", &format!("oci:{}:b", dir.display())]).env("XDG_CACHE_HOME", t.join("cache"));
    assert_eq!(ok(&mut cmd).trim(), first, "a poisoned mapping changed the digest");
    assert_valid(&dir, &["a".to_string(), "b".to_string()]);
}
