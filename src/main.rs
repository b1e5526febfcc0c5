use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ship::cli::Cli::parse();
    ship::cleanup::install_signal_handler();
    match ship::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ship::cleanup::settle();
            eprintln!("error: {e}");
            // The causes the sentence does not already say: "caused by: connection refused".
            let mut said = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                let text = c.to_string();
                if !said.contains(&text) {
                    eprintln!("caused by: {text}");
                    said.push_str(&text);
                }
                cause = c.source();
            }
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
