//! The environment cargo runs in: an explicit allowlist from the caller's environment plus
//! what ship sets. Nothing else is inherited: a stray RUSTFLAGS, RUSTC_WRAPPER, CC or
//! LD_LIBRARY_PATH on one machine must not change the binary.

use std::collections::BTreeMap;
use std::ffi::OsString;

/// Variables passed through unchanged, if set: where cargo and rustup keep their state, how to
/// reach the network, how to draw the terminal.
pub const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "TERM",
    "NO_COLOR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "SSH_AUTH_SOCK",
    "GIT_SSH_COMMAND",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// Prefixes passed through: cargo's network and registry settings, sccache's settings and the
/// AWS credentials its S3 backend reads.
pub const INHERITED_PREFIXES: &[&str] =
    &["CARGO_HTTP_", "CARGO_NET_", "CARGO_REGISTRIES_", "CARGO_REGISTRY_", "CARGO_TERM_", "SCCACHE_", "AWS_"];

/// The allowlisted part of `vars`.
pub fn inherited(vars: impl Iterator<Item = (OsString, OsString)>) -> BTreeMap<OsString, OsString> {
    vars.filter(|(k, _)| {
        let k = k.to_string_lossy();
        INHERITED.contains(&k.as_ref()) || INHERITED_PREFIXES.iter().any(|p| k.starts_with(p))
    })
    .collect()
}

/// CARGO_ENCODED_RUSTFLAGS: flags separated by 0x1f, so paths with spaces survive.
pub fn encode_rustflags(flags: &[String]) -> String {
    flags.join("\u{1f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allowlist_passes() {
        let vars = [
            ("PATH", "/bin"),
            ("RUSTFLAGS", "-Cx"),
            ("RUSTC_WRAPPER", "w"),
            ("SCCACHE_BUCKET", "b"),
            ("CC", "gcc"),
            ("CARGO_NET_OFFLINE", "true"),
            ("LD_LIBRARY_PATH", "/x"),
        ];
        let got = inherited(vars.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))));
        let keys: Vec<_> = got.keys().map(|k| k.to_string_lossy().into_owned()).collect();
        assert_eq!(keys, ["CARGO_NET_OFFLINE", "PATH", "SCCACHE_BUCKET"]);
    }

    #[test]
    fn rustflags_are_unit_separated() {
        assert_eq!(encode_rustflags(&["-C".into(), "a b".into()]), "-C\u{1f}a b");
    }
}
