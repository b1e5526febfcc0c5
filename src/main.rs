use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ship::cli::Cli::parse();
    match ship::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
