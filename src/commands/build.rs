//! `ship build`: compile; print the binary's path (or the build facts).

use super::{Context, print_json, steps};
use crate::Error;
use crate::cli::BuildCommand;

pub fn run(ctx: &Context, cmd: &BuildCommand) -> Result<(), Error> {
    let platforms = crate::settings::platforms(cmd.build.platform.as_deref())?;
    let mut facts = Vec::new();
    // One binary per platform, one after another (each build uses every core).
    for p in &platforms {
        let built = steps::build_for(ctx, &cmd.build, None, *p)?;
        if !cmd.json {
            println!("{}", built.facts.binary.display());
        }
        facts.push(built.facts);
    }
    if cmd.json {
        match facts.as_slice() {
            [one] => print_json(one),
            several => print_json(&several),
        }
    }
    Ok(())
}
