//! `ship build`: compile; print the binary's path (or the build facts).

use super::{Context, print_json, steps};
use crate::Error;
use crate::cli::BuildCommand;

pub fn run(ctx: &Context, cmd: &BuildCommand) -> Result<(), Error> {
    let built = steps::build(ctx, &cmd.build, None)?;
    if cmd.json {
        print_json(&built.facts);
    } else {
        println!("{}", built.facts.binary.display());
    }
    Ok(())
}
