//! ship: build, package and deploy Rust web services reproducibly.
//!
//! The modules follow the pipeline (see DESIGN.md): `settings` resolves what the user asked
//! for, `project` the facts of the project, `toolchain` finds the compilers, `build` runs cargo,
//! `image` assembles, `registry` pushes and pulls, `cache` keeps the sccache bucket; `commands`
//! joins them into the commands, and is the only place that prints results.

pub mod build;
pub mod cache;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod image;
pub mod net;
pub mod project;
pub mod registry;
pub mod report;
pub mod settings;
pub mod toolchain;
pub mod verify;

pub use commands::run;

/// Any failure, by the module it came from.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] settings::Error),
    #[error(transparent)]
    Project(#[from] project::Error),
    #[error(transparent)]
    Toolchain(#[from] toolchain::Error),
    #[error(transparent)]
    Build(#[from] build::Error),
    #[error(transparent)]
    Image(#[from] image::Error),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Reference(#[from] registry::reference::Error),
    #[error(transparent)]
    Cache(#[from] cache::Error),
    #[error(transparent)]
    Docker(#[from] build::docker::Error),
    #[error(transparent)]
    Deploy(#[from] deploy::Error),
    #[error(transparent)]
    Verify(#[from] verify::Error),
    #[error("the rebuilt image differs from {0} (MISMATCH above)")]
    Mismatch(String),
    #[error("ship doctor found {0} problem{s}; the fix: lines above say what to do", s = if *.0 == 1 { "" } else { "s" })]
    Doctor(usize),
    #[error("cannot write {what}: {source}")]
    Output { what: String, source: std::io::Error },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Settings(e) => e.hint(),
            Error::Project(e) => e.hint(),
            Error::Toolchain(e) => e.hint(),
            Error::Build(e) => e.hint(),
            Error::Image(e) => e.hint(),
            Error::Registry(e) => e.hint(),
            Error::Reference(e) => e.hint(),
            Error::Cache(e) => e.hint(),
            Error::Docker(e) => e.hint(),
            Error::Deploy(e) => e.hint(),
            Error::Verify(e) => e.hint(),
            Error::Mismatch(_) => {
                Some("the differences above say where; a different toolchain is the usual cause".into())
            }
            Error::Doctor(_) => None,
            Error::Output { .. } => Some("check that the file's directory exists and is writable".into()),
        }
    }
}
