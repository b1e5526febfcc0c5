//! What ship tells the user on stderr while it works (stdout is reserved for results), and the
//! reports it renders: text, JSON, and the GitHub step summary.

pub mod attest;
pub mod summary;

use std::time::Instant;

pub struct Reporter {
    quiet: bool,
    start: Instant,
}

impl Reporter {
    pub fn new(quiet: bool) -> Self {
        Self { quiet, start: Instant::now() }
    }

    /// A line of progress, prefixed with the time since start.
    pub fn step(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("[{:>6.2}s] {message}", self.start.elapsed().as_secs_f64());
        }
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Warnings are shown even with --quiet: they say something about the result.
    pub fn warn(&self, message: impl std::fmt::Display) {
        eprintln!("warning: {message}");
    }
}

/// `15.2 MB`, `812 kB`, `40 B`: decimal units, as registries show sizes.
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

/// Push progress: a bar per blob on a terminal, plain lines otherwise, nothing when quiet.
pub struct PushProgress {
    quiet: bool,
    bars:
        Option<(indicatif::MultiProgress, std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>)>,
}

impl PushProgress {
    pub fn new(quiet: bool) -> Self {
        use std::io::IsTerminal;
        let bars =
            (!quiet && std::io::stderr().is_terminal()).then(|| (indicatif::MultiProgress::new(), Default::default()));
        PushProgress { quiet, bars }
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

impl crate::registry::push::Progress for PushProgress {
    fn start(&self, digest: &str, size: u64) {
        if let Some((multi, bars)) = &self.bars {
            let bar = multi.add(indicatif::ProgressBar::new(size));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .expect("template"),
            );
            bar.set_prefix(short(digest).to_string());
            bars.lock().expect("bars").insert(digest.to_string(), bar);
        }
    }

    fn advance(&self, digest: &str, bytes: u64) {
        if let Some((_, bars)) = &self.bars
            && let Some(b) = bars.lock().expect("bars").get(digest)
        {
            b.inc(bytes);
        }
    }

    fn finish(&self, digest: &str, outcome: crate::registry::push::Outcome, from: Option<&str>) {
        let what = match (outcome, from) {
            (crate::registry::push::Outcome::Skipped, _) => "already there".to_string(),
            (crate::registry::push::Outcome::Mounted, Some(f)) => format!("mounted from {f}"),
            (crate::registry::push::Outcome::Mounted, None) => "mounted".to_string(),
            (crate::registry::push::Outcome::Uploaded, _) => "uploaded".to_string(),
        };
        match &self.bars {
            Some((_, bars)) => {
                if let Some(b) = bars.lock().expect("bars").get(digest) {
                    b.finish_with_message(what);
                }
            }
            None if !self.quiet => eprintln!("  {} {what}", short(digest)),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_units() {
        assert_eq!(super::human_bytes(40), "40 B");
        assert_eq!(super::human_bytes(15_234_567), "15.2 MB");
        assert_eq!(super::human_bytes(812_000), "812.0 kB");
    }
}
