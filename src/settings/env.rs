//! Every environment variable ship reads, listed once, with what it does; read nowhere else.
//! (cargo's own variables, the AWS SDK's chain and docker's config are read by those tools.)

/// Name and meaning of each variable. README's table is this list.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("SHIP_CONFIG", "ship.toml to read, like --config"),
    ("SOURCE_DATE_EPOCH", "timestamp for `created`, every app-layer mtime and the build (reproducible-builds.org)"),
    ("SHIP_TOOLCHAIN", "toolchain store path; its etc/ssl/certs/ca-bundle.crt is the default CA bundle"),
    ("SHIP_REGISTRY_USERNAME", "registry user name (with SHIP_REGISTRY_PASSWORD)"),
    ("SHIP_REGISTRY_PASSWORD", "registry password or token"),
    ("GITHUB_TOKEN", "token for ghcr.io when no other credentials are given"),
    ("GITHUB_ACTOR", "user name for GITHUB_TOKEN"),
    ("GITHUB_ACTIONS", "`true` inside GitHub Actions: the Docker builder then uses the `type=gha` build cache"),
    ("GITHUB_STEP_SUMMARY", "file `ship run` appends a Markdown summary to (set by GitHub Actions)"),
    ("RAILWAY_TOKEN", "Railway account or workspace token for `ship deploy` (sent as Authorization: Bearer)"),
    ("RAILWAY_PROJECT_TOKEN", "Railway project token for `ship deploy` (sent as Project-Access-Token)"),
    ("RAILWAY_WEBHOOK_URL", "deploy webhook `ship deploy` POSTs to when there is no [deploy.railway]"),
    (
        "SHIP_RAILWAY_API",
        "Railway's GraphQL endpoint, like --api-url (default https://backboard.railway.com/graphql/v2)",
    ),
    ("XDG_CACHE_HOME", "where ship remembers pushed repositories (for blob mounts); default ~/.cache"),
    ("HOME", "home directory, for ~/.cache"),
    ("AWS_REGION", "region of the cache bucket when neither --region nor [cache] region is set"),
    (
        "SCCACHE_BUCKET",
        "sccache's S3 bucket when ship.toml has no [cache] (with SCCACHE_REGION, SCCACHE_ENDPOINT, SCCACHE_S3_KEY_PREFIX)",
    ),
    ("SCCACHE_REGION", "region for SCCACHE_BUCKET"),
    ("SCCACHE_ENDPOINT", "endpoint for SCCACHE_BUCKET"),
    ("SCCACHE_S3_KEY_PREFIX", "key prefix for SCCACHE_BUCKET"),
];

/// A listed variable's value; unset and empty are the same.
pub fn var(name: &'static str) -> Option<String> {
    debug_assert!(ENV_VARS.iter().any(|(n, _)| *n == name), "{name} must be listed in ENV_VARS");
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_variable_is_listed_once_and_in_the_readme() {
        let readme = include_str!("../../README.md");
        let mut seen = std::collections::BTreeSet::new();
        for (name, what) in super::ENV_VARS {
            assert!(seen.insert(*name), "{name} is listed twice");
            assert!(!what.is_empty());
            assert!(readme.contains(&format!("`{name}`")), "README's table lacks {name}");
        }
    }
}
