//! Registry client pieces. For now: image references, docker's rules.

pub mod reference;

pub use reference::Reference;
