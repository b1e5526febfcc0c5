//! Bad input: one clear sentence and a hint, a non-zero exit, and nothing written.

mod common;
use common::*;

struct Case {
    args: Vec<String>,
    /// A phrase the error sentence must contain.
    says: &'static str,
}

fn case(args: &[&str], says: &'static str) -> Case {
    Case { args: args.iter().map(|s| s.to_string()).collect(), says }
}

/// Run and check the failure: exit non-zero, empty stdout, exactly one `error:` line (plus a
/// hint line), and `out` not created.
fn assert_fails_cleanly(t: &TempDir, c: &Case, out: &std::path::Path) {
    let before = tree_bytes(t.path());
    let mut cmd = ship();
    cmd.arg("image").args(&c.args).current_dir(t.path());
    let (success, stdout, stderr) = run(&mut cmd);
    assert!(!success, "{:?} succeeded", c.args);
    assert!(stdout.is_empty(), "{:?}: stdout must be empty on failure: {stdout}", c.args);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{:?}: one error line expected:\n{stderr}", c.args);
    assert!(errors[0].contains(c.says), "{:?}: error should mention {:?}: {}", c.args, c.says, errors[0]);
    assert!(stderr.lines().any(|l| l.starts_with("hint: ")), "{:?}: no hint:\n{stderr}", c.args);
    assert!(!out.exists(), "{:?}: {} was created", c.args, out.display());
    assert_eq!(before, tree_bytes(t.path()), "{:?}: files changed in the working directory", c.args);
}

#[test]
fn bad_inputs_fail_with_one_clear_error_and_write_nothing() {
    let t = TempDir::new();
    let bin = hello_service();
    let bin = bin.to_str().unwrap();
    std::fs::write(t.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(t.join("plain.txt"), "x").unwrap();
    std::fs::create_dir(t.join("adir")).unwrap();
    let out = t.join("out");
    let o = format!("oci:{}", out.display());
    let cases = [
        case(&["--binary", "missing-binary", "--output", &o], "cannot read the binary"),
        case(&["--binary", "script.sh", "--output", &o], "is not an ELF executable"),
        case(&["--binary", bin, "--file", "missing.toml:/etc/x", "--output", &o], "missing.toml"),
        case(&["--binary", bin, "--file", "adir:/etc/x", "--output", &o], "not a regular file"),
        // Readable by nobody, not even root: reading /proc/self/mem at offset 0 fails.
        case(&["--binary", bin, "--file", "/proc/self/mem:/etc/x", "--output", &o], "cannot read the file"),
        case(&["--binary", bin, "--file", "plain.txt:relative/x", "--output", &o], "must be absolute"),
        case(&["--binary", bin, "--env", "NOEQUALS", "--output", &o], "--env"),
        case(&["--binary", bin, "--env", "1BAD=x", "--output", &o], "--env"),
        case(&["--binary", bin, "--label", "=x", "--output", &o], "--label"),
        case(&["--binary", bin, "--port", "http", "--output", &o], "--port"),
        case(&["--binary", bin, "--port", "70000", "--output", &o], "--port"),
        case(&["--binary", bin, "--user", "a b", "--output", &o], "--user"),
        case(&["--binary", bin, "--compression", "brotli", "--output", &o], "--compression"),
        case(&["--binary", bin, "--source-date-epoch", "yesterday", "--output", &o], "--source-date-epoch"),
        case(&["--binary", bin, "--output", &format!("oci:{}:-bad", out.display())], "tag"),
        case(&["--binary", bin, "--output", &format!("oci:{}:has space", out.display())], "tag"),
        case(&["--binary", bin, "--output", &format!("docker-archive:{}:Upper/Case", out.display())], "upper-case"),
        case(&["--binary", bin, "--output", &format!("tarball:{}", out.display())], "oci: or docker-archive:"),
        case(&["--binary", bin, "--base", "Not A Ref!", "--output", &o], "--base"),
        case(
            &["--binary", bin, "--base", &format!("oci:{}:x", t.join("adir").display()), "--output", &o],
            "not an OCI image layout",
        ),
        case(&["--binary", bin, "--ca-bundle", "plain.txt", "--output", &o], "no PEM certificate"),
        case(&["--binary", bin, "--name", "Bad Name", "--output", &o], "invalid"),
        // Unwritable destinations, even for root: under a regular file, and in /proc.
        case(&["--binary", bin, "--output", &format!("oci:{}", t.join("plain.txt/sub").display())], "cannot write"),
        case(&["--binary", bin, "--output", "docker-archive:/proc/ship-test.tar"], "cannot write"),
    ];
    for c in &cases {
        assert_fails_cleanly(&t, c, &out);
    }
}

#[test]
fn a_non_layout_directory_is_not_overwritten() {
    let t = TempDir::new();
    std::fs::create_dir(t.join("stuff")).unwrap();
    std::fs::write(t.join("stuff/keep.txt"), "mine").unwrap();
    let c = case(
        &["--binary", hello_service().to_str().unwrap(), "--output", &format!("oci:{}", t.join("stuff").display())],
        "not an OCI image layout",
    );
    assert_fails_cleanly(&t, &c, &t.join("never-created"));
    assert_eq!(std::fs::read_to_string(t.join("stuff/keep.txt")).unwrap(), "mine");
}

#[test]
fn a_failed_second_write_leaves_the_existing_layout_untouched() {
    let t = TempDir::new();
    let layout = t.join("layout");
    let mut cmd = ship();
    cmd.args(["image", "--quiet", "--binary"])
        .arg(hello_service())
        .arg("--output")
        .arg(format!("oci:{}:one", layout.display()));
    ok(&mut cmd);
    let c = case(
        &[
            "--binary",
            hello_service().to_str().unwrap(),
            "--file",
            "/proc/self/mem:/x",
            "--output",
            &format!("oci:{}:two", layout.display()),
        ],
        "cannot read the file",
    );
    assert_fails_cleanly(&t, &c, &t.join("never-created"));
}

#[test]
fn a_broken_ship_toml_is_reported_with_its_line() {
    let t = TempDir::new();
    std::fs::write(t.join("ship.toml"), "[image]\nname = \"x\"\nprots = [3000]\n").unwrap();
    let c = case(
        &["--binary", hello_service().to_str().unwrap(), "--output", &format!("oci:{}", t.join("out").display())],
        "line 3",
    );
    assert_fails_cleanly(&t, &c, &t.join("out"));
}

#[test]
fn help_lists_every_command() {
    let help = ok(ship().arg("--help"));
    for present in ["build", "cache", "deploy", "doctor", "image", "plan", "pull", "push", "run", "toolchain", "verify"]
    {
        assert!(help.lines().any(|l| l.trim_start().starts_with(present)), "{present} is missing:\n{help}");
    }
}

#[test]
fn a_fifo_or_device_as_binary_is_refused_at_once() {
    let t = TempDir::new();
    ok(std::process::Command::new("mkfifo").arg(t.join("fifo")));
    for binary in [t.join("fifo"), "/dev/zero".into()] {
        let mut child = ship()
            .args(["image", "--binary"])
            .arg(&binary)
            .args(["--output", &format!("oci:{}", t.join("out").display())])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(20) {
                let _ = child.kill();
                panic!("ship image --binary {} blocked", binary.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("is not a regular file"), "{stderr}");
        assert!(!t.join("out").exists());
    }
}

#[test]
fn a_dynamically_linked_binary_needs_a_base_with_a_libc() {
    let t = TempDir::new();
    // Any dynamically linked program of this machine will do.
    let dynamic = t.join("true");
    std::fs::copy("/bin/true", &dynamic).unwrap();
    for base in ["ship", "scratch"] {
        let c = case(
            &[
                "--binary",
                dynamic.to_str().unwrap(),
                "--base",
                base,
                "--output",
                &format!("oci:{}", t.join("out").display()),
            ],
            "is linked dynamically",
        );
        assert_fails_cleanly(&t, &c, &t.join("out"));
        let mut cmd = ship();
        cmd.args(["image", "--binary"])
            .arg(&dynamic)
            .args(["--base", base, "--output"])
            .arg(format!("oci:{}", t.join("out").display()));
        let (_, _, stderr) = run(&mut cmd);
        assert!(stderr.contains("needs /lib") && stderr.contains("has no C library"), "{stderr}");
        assert!(stderr.contains("hint: build it statically"), "{stderr}");
    }
    // On a base from a layout (which may well have a libc), it is accepted.
    let base = t.join("base");
    ok(ship()
        .args(["image", "--quiet", "--binary"])
        .arg(hello_service())
        .arg("--output")
        .arg(format!("oci:{}:b", base.display())));
    ok(ship().args(["image", "--quiet", "--binary"]).arg(&dynamic).args([
        "--base",
        &format!("oci:{}:b", base.display()),
        "--output",
        &format!("oci:{}", t.join("ok").display()),
    ]));
}

#[test]
fn ship_toml_values_are_checked_when_read_and_named_with_file_key_and_line() {
    let t = TempDir::new();
    std::fs::write(t.join("ship.toml"), "[image]\nname = \"x\"\n\nports = [3000, 99999]\n").unwrap();
    let out = format!("oci:{}", t.join("out").display());
    let c = case(
        &["--binary", hello_service().to_str().unwrap(), "--output", &out],
        "[image] ports: \"99999\" is not a port",
    );
    assert_fails_cleanly(&t, &c, &t.join("out"));
    let (_, _, stderr) =
        run(ship().args(["image", "--binary"]).arg(hello_service()).args(["--output", &out]).current_dir(t.path()));
    assert!(stderr.contains("ship.toml") && stderr.contains("(line 4)"), "{stderr}");
    assert!(!stderr.contains("--port"), "no --port flag was given: {stderr}");

    // ship doctor finds it too, and ends with its own sentence.
    let (success, stdout, stderr) = run(ship().arg("doctor").current_dir(t.path()));
    assert!(!success);
    assert!(
        stdout.contains("FAIL config:") && stdout.contains("[image] ports") && stdout.contains("line 4"),
        "{stdout}"
    );
    assert!(stderr.contains("error: ship doctor found 1 problem"), "{stderr}");

    // A file named in ship.toml that cannot be read: the file, the key and the line.
    std::fs::write(t.join("ship.toml"), "[image]\nfiles = [\"missing.conf:/etc/x\"]\n").unwrap();
    let (_, _, stderr) =
        run(ship().args(["image", "--binary"]).arg(hello_service()).args(["--output", &out]).current_dir(t.path()));
    assert!(
        stderr.contains("ship.toml: [image] files: \"missing.conf:/etc/x\"") && stderr.contains("(line 2)"),
        "{stderr}"
    );
    assert!(!stderr.contains("--file"), "{stderr}");
}

#[test]
fn labels_ship_writes_itself_are_refused_not_silently_replaced() {
    let t = TempDir::new();
    let out = format!("oci:{}", t.join("out").display());
    let bin = hello_service();
    let c = case(
        &[
            "--binary",
            bin.to_str().unwrap(),
            "--label",
            "org.opencontainers.image.created=2020-01-01T00:00:00Z",
            "--output",
            &out,
        ],
        "the label org.opencontainers.image.created is ship's own",
    );
    assert_fails_cleanly(&t, &c, &t.join("out"));
    let (_, _, stderr) = run(ship()
        .args(["image", "--binary"])
        .arg(&bin)
        .args(["--label", "org.opencontainers.image.created=x", "--output", &out])
        .current_dir(t.path()));
    assert!(stderr.contains("hint: ship sets it from SOURCE_DATE_EPOCH: use --source-date-epoch"), "{stderr}");
    let c = case(
        &["--binary", bin.to_str().unwrap(), "--label", "dev.ship.toolchain=mine", "--output", &out],
        "is ship's own",
    );
    assert_fails_cleanly(&t, &c, &t.join("out"));
    std::fs::write(t.join("ship.toml"), "[image]\nlabels = { \"dev.ship.target\" = \"x\" }\n").unwrap();
    let c = case(
        &["--binary", bin.to_str().unwrap(), "--output", &out],
        "[image] labels: the label dev.ship.target is ship's own",
    );
    assert_fails_cleanly(&t, &c, &t.join("out"));
}
