//! One file per command: resolve settings, call steps ([`steps`]), render. Results are printed
//! here and nowhere else; progress goes to stderr through [`crate::report`].

mod build;
mod cache;
mod deploy;
mod doctor;
mod image;
mod plan;
mod pull;
mod push;
mod run;
mod steps;
mod toolchain;
mod verify;

use crate::Error;
use crate::cli::{Cli, Command};
use crate::report::Reporter;
use crate::settings::{self, Loaded};

/// What every command has: the reporter, the verbosity, ship.toml.
pub struct Context {
    pub report: Reporter,
    pub verbose: bool,
    pub loaded: Loaded,
}

/// Run one command; the result goes to stdout, progress to stderr.
pub fn run(cli: Cli) -> Result<(), Error> {
    if let Some(Command::Doctor(cmd)) = &cli.command {
        return doctor::run(cmd, cli.config.as_deref());
    }
    let loaded = settings::load(cli.config.as_deref())?;
    let ctx = Context { report: Reporter::new(cli.quiet), verbose: cli.verbose, loaded };
    match cli.command {
        None => run::run(&ctx, &crate::cli::RunArgs::default()),
        Some(Command::Run(args)) => run::run(&ctx, &args),
        Some(Command::Plan(args)) => plan::run(&ctx, &args),
        Some(Command::Build(cmd)) => build::run(&ctx, &cmd),
        Some(Command::Image(args)) => image::run(&ctx, &args),
        Some(Command::Pull(cmd)) => pull::run(&ctx, &cmd),
        Some(Command::Deploy(cmd)) => deploy::run(&ctx, &cmd),
        Some(Command::Verify(cmd)) => verify::run(&ctx, &cmd),
        Some(Command::Push(cmd)) => push::run(&ctx, &cmd),
        Some(Command::Toolchain(cmd)) => toolchain::run(&ctx, &cmd),
        Some(Command::Cache(cmd)) => cache::run(&ctx, cmd),
        Some(Command::Doctor(_)) => unreachable!("handled above"),
    }
}

/// Pretty JSON on stdout.
/// Seconds since 1970 now (0 if the clock is before it).
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON"));
}
