//! Credentials (where they come from, first found wins) and the registry auth challenges.

use std::fmt;

/// A secret that prints as `<redacted>` however it is formatted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the credentials came from: errors and `ship doctor` name it, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flags,
    ShipEnv,
    GithubToken,
    DockerConfig,
    Podman,
    Anonymous,
}

impl Source {
    pub fn describe(&self) -> &'static str {
        match self {
            Source::Flags => "--username/--password-stdin",
            Source::ShipEnv => "SHIP_REGISTRY_USERNAME/SHIP_REGISTRY_PASSWORD",
            Source::GithubToken => "GITHUB_TOKEN",
            Source::DockerConfig => "the docker config (config.json or its credential helper)",
            Source::Podman => "podman's auth.json",
            Source::Anonymous => "no credentials (anonymous)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub source: Source,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl Credentials {
    pub fn anonymous() -> Self {
        Credentials { source: Source::Anonymous, username: None, password: None }
    }

    pub fn basic(&self) -> Option<(&str, &str)> {
        Some((self.username.as_deref()?, self.password.as_ref()?.expose()))
    }
}

/// What the caller gave: flags and environment, resolved by `config`.
#[derive(Debug, Default, Clone)]
pub struct Inputs {
    pub flag_username: Option<String>,
    pub flag_password: Option<Secret>,
    pub env_username: Option<String>,
    pub env_password: Option<Secret>,
    pub github_token: Option<Secret>,
    pub github_actor: Option<String>,
}

/// The server key docker's config uses for a registry.
fn docker_server_key(registry: &str) -> String {
    if registry == super::reference::DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// First found wins: flags, SHIP_REGISTRY_*, GITHUB_TOKEN (ghcr.io only), docker config
/// (auths, credHelpers, credsStore), podman's auth.json, anonymous.
pub fn resolve(registry: &str, inputs: &Inputs) -> Credentials {
    let with = |source, username: &Option<String>, password: &Option<Secret>| Credentials {
        source,
        username: username.clone(),
        password: password.clone(),
    };
    if inputs.flag_password.is_some() {
        return with(Source::Flags, &inputs.flag_username, &inputs.flag_password);
    }
    if inputs.env_password.is_some() {
        return with(Source::ShipEnv, &inputs.env_username, &inputs.env_password);
    }
    if registry == "ghcr.io" && inputs.github_token.is_some() {
        let user = Some(inputs.github_actor.clone().unwrap_or_else(|| "github-actions".into()));
        return with(Source::GithubToken, &user, &inputs.github_token);
    }
    let key = docker_server_key(registry);
    // The docker_credential crate reads config.json (DOCKER_CONFIG or ~/.docker) and runs the
    // credential helpers; identity tokens (OAuth refresh tokens) are not supported here.
    if let Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) = docker_credential::get_credential(&key) {
        return Credentials { source: Source::DockerConfig, username: Some(u), password: Some(Secret(p)) };
    }
    if let Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) =
        docker_credential::get_podman_credential(&key)
    {
        return Credentials { source: Source::Podman, username: Some(u), password: Some(Secret(p)) };
    }
    Credentials::anonymous()
}

/// A `WWW-Authenticate` challenge ship can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Pick the challenge to answer from every `WWW-Authenticate` header of a response (RFC 7235:
/// each header may hold several challenges). Bearer wins over Basic, as docker does. Err says
/// in words what is wrong with the headers.
pub fn parse_challenges<'a>(headers: impl IntoIterator<Item = &'a str>) -> Result<Challenge, String> {
    let mut basic = false;
    let mut bearer = None;
    let mut offered = Vec::new();
    let mut seen = false;
    for header in headers {
        seen = true;
        let parsed = http_auth::parse_challenges(header)
            .map_err(|e| format!("its WWW-Authenticate header {header:?} is malformed ({e})"))?;
        for c in parsed {
            let param =
                |name: &str| c.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped());
            if c.scheme.eq_ignore_ascii_case("bearer") {
                let realm = param("realm").filter(|r| !r.is_empty()).ok_or_else(|| {
                    format!("its Bearer challenge {header:?} names no realm (the token service to ask)")
                })?;
                bearer.get_or_insert(Challenge::Bearer { realm, service: param("service"), scope: param("scope") });
            } else if c.scheme.eq_ignore_ascii_case("basic") {
                basic = true;
            } else {
                offered.push(c.scheme.to_string());
            }
        }
    }
    if let Some(b) = bearer {
        return Ok(b);
    }
    if basic {
        return Ok(Challenge::Basic);
    }
    if !seen {
        return Err("it answered 401 without a WWW-Authenticate header".into());
    }
    Err(format!("it asks for {} authentication, and ship speaks only Bearer and Basic", offered.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        let c = Credentials { source: Source::Flags, username: Some("u".into()), password: Some(s) };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn challenges_parse() {
        let one = |h: &str| parse_challenges([h]);
        let ghcr = Challenge::Bearer {
            realm: "https://ghcr.io/token".into(),
            service: Some("ghcr.io".into()),
            scope: Some("repository:a/b:pull,push".into()),
        };
        assert_eq!(
            one(r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push""#),
            Ok(ghcr.clone())
        );
        assert_eq!(one(r#"Basic realm="Registry Realm""#), Ok(Challenge::Basic));
        // Several challenges in one header, and several headers: Bearer wins wherever it is.
        assert_eq!(
            one(
                r#"Basic realm="r", Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push""#
            ),
            Ok(ghcr.clone())
        );
        assert_eq!(
            parse_challenges([
                r#"Negotiate"#,
                r#"Basic realm="r""#,
                r#"Bearer realm="https://ghcr.io/token", service="ghcr.io", scope="repository:a/b:pull,push""#
            ]),
            Ok(ghcr)
        );
        let err = one("Bearer service=x").unwrap_err();
        assert!(err.contains("names no realm"), "{err}");
        let err = one("Negotiate, NTLM").unwrap_err();
        assert!(err.contains("Negotiate, NTLM") && err.contains("only Bearer and Basic"), "{err}");
        let err = one(r#"Bearer realm="unterminated"#).unwrap_err();
        assert!(err.contains("is malformed"), "{err}");
        assert!(parse_challenges([]).unwrap_err().contains("without a WWW-Authenticate header"));
    }

    #[test]
    fn the_first_source_found_wins() {
        let mut i =
            Inputs { env_username: Some("e".into()), env_password: Some(Secret::new("ep")), ..Default::default() };
        assert_eq!(resolve("r.example", &i).source, Source::ShipEnv);
        i.flag_username = Some("f".into());
        i.flag_password = Some(Secret::new("fp"));
        assert_eq!(resolve("r.example", &i).source, Source::Flags);
        let gh = Inputs { github_token: Some(Secret::new("t")), github_actor: Some("me".into()), ..Default::default() };
        let c = resolve("ghcr.io", &gh);
        assert_eq!((c.source, c.username.as_deref()), (Source::GithubToken, Some("me")));
        assert_ne!(resolve("other.example", &gh).source, Source::GithubToken);
    }
}
