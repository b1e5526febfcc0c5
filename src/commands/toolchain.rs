//! `ship toolchain`: resolve the toolchain and describe it.

use super::{Context, print_json, steps};
use crate::Error;
use crate::cli::ToolchainCommand;
use crate::settings;
use serde_json::json;

pub fn run(ctx: &Context, cmd: &ToolchainCommand) -> Result<(), Error> {
    let request = settings::toolchain(cmd.toolchain.as_deref(), &ctx.loaded)?;
    let manifest = settings::manifest_path(cmd.manifest_path.as_deref(), &ctx.loaded);
    let tc = steps::toolchain(ctx, &request, &manifest.value)?;
    let versions = tc.versions();
    if cmd.json {
        let out = json!({
            "source": tc.source,
            "identity": tc.identity(&versions),
            "root": tc.root,
            "flake": tc.flake,
            "hermetic": tc.is_hermetic(),
            "tools": tc.tools,
            "versions": versions,
        });
        print_json(&out);
        return Ok(());
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
    Ok(())
}
