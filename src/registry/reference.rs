//! Image references, parsed the way docker parses them:
//! `[host[:port]/]path[:tag][@sha256:hex]`, docker.io and `library/` by default.

use std::fmt;

pub const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("image reference {0:?} is empty")]
    Empty(String),
    #[error("image reference {reference:?} has an upper-case repository name")]
    UpperCase { reference: String, lower: String },
    #[error("image reference {reference:?} is invalid: {why}")]
    Invalid { reference: String, why: &'static str },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::UpperCase { lower, .. } => {
                Some(format!("repository names must be lower case (GHCR requires it): use {lower}"))
            }
            Error::Invalid { .. } | Error::Empty(_) => {
                Some("write references like ghcr.io/owner/name:tag or name@sha256:<64 hex digits>".into())
            }
        }
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

/// One path component: lower-case alphanumerics joined by `.`, `_`, `__` or runs of `-`.
fn is_valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port 1-65535.
/// Err says what is wrong, so that a typo is caught here and not after seconds of retries.
fn check_registry(registry: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or("the IPv6 address has no closing ']'")?;
        v6.parse::<std::net::Ipv6Addr>().map_err(|_| "the IPv6 address in brackets is malformed")?;
        match after {
            "" => (None, None),
            p => (None, Some(p.strip_prefix(':').ok_or("only :PORT may follow the IPv6 address")?)),
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(registry), None),
        }
    };
    if let Some(h) = host {
        if h.is_empty() {
            return Err("the registry host is empty (write host:port/path)");
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if h.len() > 253 || !h.split('.').all(label_ok) {
            return Err("the registry host is not a valid host name or IP address");
        }
    }
    if let Some(p) = port {
        let n: u32 = p.parse().map_err(|_| "the registry port is not a number")?;
        if !(1..=65535).contains(&n) || !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err("the registry port is not between 1 and 65535");
        }
    }
    Ok(())
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[')
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference, Error> {
        let invalid = |why| Error::Invalid { reference: input.to_string(), why };
        if input.is_empty() {
            return Err(Error::Empty(input.to_string()));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let hex = d.strip_prefix("sha256:").ok_or_else(|| invalid("only sha256 digests are supported"))?;
                if hex.len() != 64 || !hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
                    return Err(invalid("the digest must be sha256: and 64 lower-case hex digits"));
                }
                (r, Some(d.to_string()))
            }
            None => (input, None),
        };
        // A ':' after the last '/' separates the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(rest[last_slash + i + 1..].to_string())),
            None => (rest, None),
        };
        if let Some(t) = &tag
            && !is_valid_tag(t)
        {
            return Err(invalid("a tag is 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_host(first) => (first.to_string(), path.to_string()),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        check_registry(&registry).map_err(invalid)?;
        let path = if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path };
        if path.is_empty() || !path.to_lowercase().split('/').all(is_valid_component) {
            return Err(invalid(
                "repository path components are lower-case letters, digits and single '.', '_', '__' or '-' separators",
            ));
        }
        if path.bytes().any(|c| c.is_ascii_uppercase()) {
            // `name` is a prefix of `input`; host names are case-insensitive, tags are not.
            let lower = format!("{}{}", name.to_lowercase(), &input[name.len()..]);
            return Err(Error::UpperCase { reference: input.to_string(), lower });
        }
        if path.len() > 255 {
            return Err(invalid("the repository name is longer than 255 characters"));
        }
        Ok(Reference { registry, repository: path, tag, digest })
    }

    /// The tag, or `latest` if neither a tag nor a digest was given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// The short name docker prints: no `docker.io/library/`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            let repo = self.repository.strip_prefix("library/").unwrap_or(&self.repository);
            repo.to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The last path component: `ghcr.io/acme/hello` → `hello`.
    pub fn short_name(&self) -> &str {
        self.repository.rsplit('/').next().unwrap_or(&self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn docker_defaults() {
        let r = p("nginx");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/nginx", None)
        );
        assert_eq!(r.tag_or_latest(), "latest");
        assert_eq!(r.familiar_name(), "nginx");
        assert_eq!(p("acme/app:1.0").repository, "acme/app");
    }

    #[test]
    fn hosts_ports_tags_and_digests() {
        let r = p("ghcr.io/acme/hello-service:v1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("ghcr.io", "acme/hello-service", Some("v1"))
        );
        assert_eq!(r.short_name(), "hello-service");
        let r = p("127.0.0.1:5000/x/y");
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag), ("127.0.0.1:5000", "x/y", None));
        let r = p("localhost/app");
        assert_eq!(r.registry, "localhost");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("localhost:5000/app:t@{d}"));
        assert_eq!((r.tag.as_deref(), r.digest.as_deref()), (Some("t"), Some(d.as_str())));
        assert_eq!(r.to_string(), format!("localhost:5000/app:t@{d}"));
    }

    #[test]
    fn rejects_bad_references() {
        assert!(
            matches!(Reference::parse("ghcr.io/Acme/App"), Err(Error::UpperCase { lower, .. }) if lower == "ghcr.io/acme/app")
        );
        for bad in [
            "",
            "app:",
            "app:-x",
            "a//b",
            "app@sha256:xyz",
            "-app",
            "app_-x",
            "a b",
            "host:notaport/x",
            "127.0.0.1:99999/x",
            "127.0.0.1:0/x",
            ":5000/x",
            "[::1/x",
            "[zz]:5000/x",
            "bad_host.io/x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let why = |r: &str| Reference::parse(r).unwrap_err().to_string();
        assert!(why("host:notaport/x").contains("port is not a number"));
        assert!(why("127.0.0.1:99999/x").contains("between 1 and 65535"));
        assert!(why(":5000/x").contains("host is empty"));
        assert_eq!(p("[::1]:5000/a/b").registry, "[::1]:5000");
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(is_valid_tag("v1.2.3_rc-1"));
    }
}
