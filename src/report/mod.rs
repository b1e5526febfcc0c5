//! What ship tells the user on stderr while it works. stdout is reserved for results.

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

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_units() {
        assert_eq!(super::human_bytes(40), "40 B");
        assert_eq!(super::human_bytes(15_234_567), "15.2 MB");
        assert_eq!(super::human_bytes(812_000), "812.0 kB");
    }
}
