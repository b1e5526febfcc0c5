//! Building for another Linux platform than the host's: the Rust target, its C cross compiler
//! and static glibc, and a linker that is known to produce working static binaries for it. Every
//! piece is checked before cargo starts, so that a missing one is one sentence naming what to
//! install, not a link error after minutes of compiling.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An OCI platform ship can build for, and what it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// `linux/arm64`
    pub oci: &'static str,
    /// `aarch64-unknown-linux-gnu`
    pub triple: &'static str,
    /// The GNU tool prefix: `aarch64-linux-gnu` (`aarch64-linux-gnu-gcc`).
    pub gnu: &'static str,
    /// Debian's and Ubuntu's packages of the C cross compiler and the static glibc.
    pub gcc_package: &'static str,
    pub libc_package: &'static str,
}

pub const PLATFORMS: &[Platform] = &[
    Platform {
        oci: "linux/amd64",
        triple: "x86_64-unknown-linux-gnu",
        gnu: "x86_64-linux-gnu",
        gcc_package: "gcc-x86-64-linux-gnu",
        libc_package: "libc6-dev-amd64-cross",
    },
    Platform {
        oci: "linux/arm64",
        triple: "aarch64-unknown-linux-gnu",
        gnu: "aarch64-linux-gnu",
        gcc_package: "gcc-aarch64-linux-gnu",
        libc_package: "libc6-dev-arm64-cross",
    },
];

/// The platform named `os/arch` (`linux/arm64/v8` is accepted for arm64).
pub fn platform(name: &str) -> Option<Platform> {
    let name = name.trim();
    let name = name.strip_suffix("/v8").filter(|n| *n == "linux/arm64").unwrap_or(name);
    PLATFORMS.iter().copied().find(|p| p.oci == name)
}

/// The platform of the machine ship runs on, if it is one ship builds for.
pub fn host() -> Option<Platform> {
    for_triple(&format!("{}-unknown-linux-gnu", std::env::consts::ARCH)).filter(|_| cfg!(target_os = "linux"))
}

/// The platform whose Rust target is `triple`.
pub fn for_triple(triple: &str) -> Option<Platform> {
    PLATFORMS.iter().copied().find(|p| p.triple == triple)
}

/// What a cross build links with.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `aarch64-linux-gnu-gcc`: the linker driver, and the C compiler for -sys crates.
    pub gcc: PathBuf,
    /// `aarch64-linux-gnu-ar`, when there is one.
    pub ar: Option<PathBuf>,
}

/// A missing piece: what is missing, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub what: String,
    pub fix: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.fix)
    }
}

/// Check that everything a static build for `p` needs is here: the Rust standard library for
/// the target, the C cross compiler, and its static glibc.
pub fn check(rustc: &Path, path: Option<&OsString>, p: &Platform) -> Result<Tools, Missing> {
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", p.triple])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let has_std = libdir.and_then(|d| std::fs::read_dir(d).ok()).is_some_and(|entries| {
        entries.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("libstd-") && n.ends_with(".rlib")
        })
    });
    if !has_std {
        return Err(Missing {
            what: format!("the Rust standard library for {} ({}) is not installed", p.triple, p.oci),
            fix: format!("run `rustup target add {}`", p.triple),
        });
    }
    let gcc_name = format!("{}-gcc", p.gnu);
    let gcc = find_in(path, &gcc_name).ok_or_else(|| Missing {
        what: format!("no C cross compiler for {} ({gcc_name} is not on PATH)", p.oci),
        fix: format!(
            "install {} (Debian, Ubuntu: apt-get install {} {})",
            p.gcc_package, p.gcc_package, p.libc_package
        ),
    })?;
    let libc = Command::new(&gcc)
        .arg("-print-file-name=libc.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    // gcc prints the bare name back when it has no such file.
    if !libc.is_some_and(|l| l.is_absolute() && l.is_file()) {
        return Err(Missing {
            what: format!("{gcc_name} has no static glibc (libc.a) for {}", p.oci),
            fix: format!("install {} (Debian, Ubuntu: apt-get install {})", p.libc_package, p.libc_package),
        });
    }
    Ok(Tools { gcc, ar: find_in(path, &format!("{}-ar", p.gnu)) })
}

/// Whether `mold` (printing `version_line` for `--version`) is proven to link working static
/// binaries for `p`. mold 1.x links aarch64 static glibc binaries that crash at start (seen
/// with Debian 12's mold 1.10.1, with and without PIE); 2.x is the first line ship trusts
/// there. For x86_64 every mold ship has used links correctly.
pub fn mold_proven(version_line: &str, p: &Platform) -> bool {
    if p.triple.starts_with("x86_64-") {
        return true;
    }
    let major =
        version_line.split_whitespace().nth(1).and_then(|v| v.split('.').next()).and_then(|m| m.parse::<u32>().ok());
    major.is_some_and(|m| m >= 2)
}

/// What a build for `p` links with, said for people: mold where `mold_version` is proven for
/// `p`, else the GNU ld of the cross compiler `gcc` (none for the host's own platform).
pub fn linker(p: &Platform, mold_version: Option<&str>, gcc: Option<&Path>) -> String {
    match (mold_version.filter(|v| mold_proven(v, p)), gcc) {
        (Some(_), _) => "mold".into(),
        (None, Some(gcc)) => format!("GNU ld through {}", gcc.display()),
        (None, None) => "the default linker".into(),
    }
}

fn find_in(path: Option<&OsString>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(path?).map(|d| d.join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_by_name_and_triple() {
        assert_eq!(platform("linux/arm64").unwrap().triple, "aarch64-unknown-linux-gnu");
        assert_eq!(platform("linux/arm64/v8").unwrap().triple, "aarch64-unknown-linux-gnu");
        assert_eq!(platform(" linux/amd64 ").unwrap().gnu, "x86_64-linux-gnu");
        assert!(platform("linux/amd64/v8").is_none());
        assert!(platform("linux/s390x").is_none());
        assert_eq!(for_triple("x86_64-unknown-linux-gnu").unwrap().oci, "linux/amd64");
    }

    /// A fake `rustc` whose target libdir for every target is `libdir`.
    #[cfg(unix)]
    fn fake_rustc(dir: &Path, libdir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let rustc = dir.join("rustc");
        std::fs::write(&rustc, format!("#!/bin/sh\necho {}\n", libdir.display())).unwrap();
        std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
        rustc
    }

    #[cfg(unix)]
    #[test]
    fn each_missing_piece_is_named_with_what_to_install() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let arm = platform("linux/arm64").unwrap();
        let libdir = d.path().join("lib");
        std::fs::create_dir_all(&libdir).unwrap();
        let rustc = fake_rustc(d.path(), &libdir);
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let path = OsString::from(&bin);
        let err = check(&rustc, Some(&path), &arm).unwrap_err().to_string();
        assert_eq!(
            err,
            "the Rust standard library for aarch64-unknown-linux-gnu (linux/arm64) is not installed: \
             run `rustup target add aarch64-unknown-linux-gnu`"
        );
        std::fs::write(libdir.join("libstd-0123abcd.rlib"), b"").unwrap();
        let err = check(&rustc, Some(&path), &arm).unwrap_err().to_string();
        assert!(err.starts_with("no C cross compiler for linux/arm64 (aarch64-linux-gnu-gcc is not on PATH)"), "{err}");
        // A gcc without the static glibc prints the bare name back.
        let gcc = bin.join("aarch64-linux-gnu-gcc");
        std::fs::write(&gcc, "#!/bin/sh\necho libc.a\n").unwrap();
        std::fs::set_permissions(&gcc, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check(&rustc, Some(&path), &arm).unwrap_err().to_string();
        assert!(err.contains("has no static glibc (libc.a) for linux/arm64: install libc6-dev-arm64-cross"), "{err}");
        let libc = d.path().join("libc.a");
        std::fs::write(&libc, b"").unwrap();
        std::fs::write(&gcc, format!("#!/bin/sh\necho {}\n", libc.display())).unwrap();
        let tools = check(&rustc, Some(&path), &arm).unwrap();
        assert_eq!(tools.gcc, gcc);
    }

    #[test]
    fn mold_is_trusted_for_aarch64_from_2_on() {
        let arm = platform("linux/arm64").unwrap();
        let x86 = platform("linux/amd64").unwrap();
        assert!(!mold_proven("mold 1.10.1 (compatible with GNU ld)", &arm));
        assert!(mold_proven("mold 2.4.0 (compatible with GNU ld)", &arm));
        assert!(mold_proven("mold 1.10.1 (compatible with GNU ld)", &x86));
        assert!(!mold_proven("garbage", &arm));
    }
}
