//! `ship toolchain`: resolve the toolchain and describe it.

use super::{Context, print_json, steps};
use crate::Error;
use crate::cli::ToolchainCommand;
use crate::settings;
use serde_json::json;

pub fn run(ctx: &Context, cmd: &ToolchainCommand) -> Result<(), Error> {
    let request = settings::toolchain(cmd.toolchain.as_deref(), &ctx.loaded)?;
    let manifest = settings::manifest_path(cmd.manifest_path.as_deref(), &ctx.loaded);
    let platforms = settings::platforms(cmd.platform.as_deref())?;
    let tc = steps::toolchain(ctx, &request, &manifest.value)?;
    let versions = tc.versions();
    // What each asked-for platform needs from this toolchain (the host's needs nothing more).
    let envs = crate::build::cargo_env(&tc);
    let rustc = tc.tool("rustc").expect("a resolved toolchain has rustc");
    let mut missing = 0;
    let targets: Vec<serde_json::Value> = platforms
        .iter()
        .flatten()
        .map(|p| {
            let host = crate::build::cross::host() == Some(*p);
            let checked = if host {
                Ok(None)
            } else {
                crate::build::cross::check(rustc, envs.get(std::ffi::OsStr::new("PATH")), p).map(Some)
            };
            match checked {
                Ok(tools) => {
                    let gcc = tools.as_ref().map(|t| t.gcc.as_path());
                    let linker = crate::build::cross::linker(p, versions.mold.as_deref(), gcc);
                    json!({"platform": p.oci, "target": p.triple, "ready": true, "linker": linker})
                }
                Err(m) => {
                    missing += 1;
                    json!({"platform": p.oci, "target": p.triple, "ready": false, "missing": m.what, "fix": m.fix})
                }
            }
        })
        .collect();
    if cmd.json {
        let mut out = json!({
            "source": tc.source,
            "identity": tc.identity(&versions),
            "root": tc.root,
            "flake": tc.flake,
            "hermetic": tc.is_hermetic(),
            "tools": tc.tools,
            "versions": versions,
        });
        if cmd.platform.is_some() {
            out["platforms"] = json!(targets);
        }
        print_json(&out);
        return platforms_result(missing);
    }
    println!("source:    {}", tc.source.describe());
    println!("path:      {}", tc.root.as_ref().map_or("-".to_string(), |r| r.display().to_string()));
    if let Some(f) = &tc.flake {
        println!("flake:     {f}");
    }
    println!("identity:  {}", tc.identity(&versions));
    let show = |label: &str, v: &Option<String>| println!("{label:<10} {}", v.as_deref().unwrap_or("not found"));
    show("cargo:", &versions.cargo);
    show("mold:", &versions.mold);
    show("sccache:", &versions.sccache);
    show("clang:", &versions.clang);
    println!("rustc -vV:");
    for line in versions.rustc.as_deref().unwrap_or("not found").lines() {
        println!("  {line}");
    }
    for t in &targets {
        match t["ready"].as_bool() {
            Some(true) => println!(
                "{}: ready, links with {}",
                t["platform"].as_str().unwrap_or_default(),
                t["linker"].as_str().unwrap_or_default()
            ),
            _ => println!(
                "{}: {}\n  fix: {}",
                t["platform"].as_str().unwrap_or_default(),
                t["missing"].as_str().unwrap_or_default(),
                t["fix"].as_str().unwrap_or_default()
            ),
        }
    }
    platforms_result(missing)
}

/// An asked-for platform this toolchain cannot build for makes the command fail.
fn platforms_result(missing: usize) -> Result<(), Error> {
    if missing == 0 {
        return Ok(());
    }
    Err(crate::build::Error::MissingCross(format!(
        "this toolchain cannot build for {missing} of the platforms asked for; the fix for each is above"
    ))
    .into())
}
