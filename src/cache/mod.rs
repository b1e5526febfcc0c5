//! The S3 bucket sccache writes to: set it up (lifecycle, versioning), print the IAM policy CI
//! needs, report size and cost, prune old objects. aws-sdk-s3; never runs cargo.

use crate::net::{self, Timeouts};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectIdentifier, VersioningConfiguration,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// The lifecycle rule ship manages; other rules in the bucket are kept as they are.
pub const RULE_ID: &str = "ship-sccache-expiry";
/// The folder of the bucket the cache lives in when none is given.
pub const DEFAULT_PREFIX: &str = "sccache/";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("S3 denied {op} on bucket {bucket} (AccessDenied)")]
    AccessDenied { bucket: String, op: &'static str },
    #[error("cannot reach S3 at {endpoint}: {detail}")]
    Unreachable { endpoint: String, detail: String },
    #[error("gave up on S3 at {endpoint}: {op} did not finish within the overall deadline of {overall}")]
    Deadline { endpoint: String, op: &'static str, overall: String },
    #[error("the bucket {0} does not exist")]
    NoSuchBucket(String),
    #[error("S3 answered {code} to {op}: {message}")]
    S3 { op: &'static str, code: String, message: String },
    #[error("no bucket given")]
    NoBucket,
    #[error("--older-than {0:?} is not a duration like 30d, 12h or 90m")]
    BadDuration(String),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::AccessDenied { .. } => "use credentials with the permissions `ship cache policy` prints (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or GitHub OIDC web identity)".into(),
            Error::Unreachable { .. } => "check --endpoint (or [cache] endpoint) and the network; for S3 itself leave the endpoint empty".into(),
            Error::Deadline { .. } => "S3 is slow or stalled: check the endpoint, or allow more time with --timeout (e.g. --timeout 30m)".into(),
            Error::NoSuchBucket(_) => "create it with `ship cache init --bucket NAME`".into(),
            Error::NoBucket => "pass --bucket NAME or set [cache] bucket in ship.toml".into(),
            Error::BadDuration(_) => "write a number and a unit: 30d, 12h, 90m or 45s".into(),
            Error::S3 { .. } => return None,
        })
    }
}

/// Where the cache lives.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bucket: String,
    pub region: String,
    /// For S3-compatible stores (R2, MinIO); path-style addressing is used with it.
    pub endpoint: Option<String>,
    /// A folder of the bucket: empty (the whole bucket) or ending in `/`, never a bare string
    /// prefix (`sccache` would also match `sccache-backups/`). See [`normalize_prefix`].
    pub prefix: String,
    pub timeouts: Timeouts,
}

impl Settings {
    fn endpoint_name(&self) -> String {
        self.endpoint.clone().unwrap_or_else(|| format!("s3.{}.amazonaws.com", self.region))
    }
}

/// `sccache` → `sccache/`, `/ci/x` → `ci/x/`, `` → `` (the whole bucket): a prefix names a folder.
pub fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim_start_matches('/');
    if p.is_empty() || p.ends_with('/') { p.to_string() } else { format!("{p}/") }
}

fn map_err<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    s: &Settings,
    op: &'static str,
    e: SdkError<E>,
) -> Error {
    match &e {
        SdkError::TimeoutError(_) => Error::Unreachable {
            endpoint: s.endpoint_name(),
            detail: format!(
                "timed out: {op} took longer than {} in all (its attempts and retries)",
                net::human_duration(s.timeouts.overall)
            ),
        },
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Error::Unreachable { endpoint: s.endpoint_name(), detail: net::describe(&e, &s.timeouts) }
        }
        _ => {
            let code = e.code().unwrap_or("unknown").to_string();
            match code.as_str() {
                "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                    Error::AccessDenied { bucket: s.bucket.clone(), op }
                }
                "NoSuchBucket" => Error::NoSuchBucket(s.bucket.clone()),
                _ => Error::S3 {
                    op,
                    code,
                    message: e
                        .message()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e))),
                },
            }
        }
    }
}

/// A client and a runtime to drive it: ship's commands are synchronous.
struct S3 {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
    s: Settings,
}

impl S3 {
    fn new(s: &Settings) -> S3 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let t = s.timeouts;
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(t.connect)
            .read_timeout(t.request)
            .operation_attempt_timeout(t.request)
            .operation_timeout(t.overall)
            .build();
        let client = rt.block_on(async {
            // The standard chain: environment, profile, web identity (GitHub OIDC), IMDS.
            use aws_smithy_http_client::tls;
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
                .build_https();
            let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .http_client(http)
                .region(aws_config::Region::new(s.region.clone()))
                .timeout_config(timeouts)
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
                .load()
                .await;
            let mut conf = aws_sdk_s3::config::Builder::from(&shared);
            if let Some(e) = &s.endpoint {
                conf = conf.endpoint_url(e).force_path_style(true);
            }
            aws_sdk_s3::Client::from_conf(conf.build())
        });
        S3 { rt, client, s: s.clone() }
    }

    /// Run a command's S3 work under the overall deadline.
    fn run<T>(&self, op: &'static str, work: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
        self.rt.block_on(async {
            tokio::time::timeout(self.s.timeouts.overall, work).await.unwrap_or_else(|_| {
                Err(Error::Deadline {
                    endpoint: self.s.endpoint_name(),
                    op,
                    overall: net::human_duration(self.s.timeouts.overall),
                })
            })
        })
    }
}

/// ship's rule: current objects under the prefix expire after `days`; once replaced or deleted
/// (with versioning on, a delete keeps the old version) they expire `noncurrent_days` later.
fn rule(prefix: &str, days: i32, noncurrent_days: i32) -> LifecycleRule {
    LifecycleRule::builder()
        .id(RULE_ID)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
        .expiration(LifecycleExpiration::builder().days(days).build())
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(noncurrent_days).build())
        .abort_incomplete_multipart_upload(AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build())
        .build()
        .expect("id, status and filter are set")
}

/// Create the bucket, set the lifecycle rule and (optionally) versioning. Idempotent: returns
/// what it changed, empty if nothing.
pub fn init(s: &Settings, expire_days: i32, noncurrent_days: i32, versioning: bool) -> Result<Vec<String>, Error> {
    let s3 = S3::new(s);
    let (client, s) = (&s3.client, &s3.s);
    s3.run("init", async {
        let mut changed = Vec::new();
        // HEAD first: in us-east-1, CreateBucket on a bucket you own answers 200, not an error.
        let exists = match client.head_bucket().bucket(&s.bucket).send().await {
            Ok(_) => true,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
                return Err(Error::AccessDenied { bucket: s.bucket.clone(), op: "HeadBucket" });
            }
            Err(e) => return Err(map_err(s, "HeadBucket", e)),
        };
        if !exists {
            let mut create = client.create_bucket().bucket(&s.bucket);
            if s.region != "us-east-1" {
                let c = CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(s.region.as_str()))
                    .build();
                create = create.create_bucket_configuration(c);
            }
            match create.send().await {
                Ok(_) => changed.push(format!("created bucket {} in {}", s.bucket, s.region)),
                Err(e) if e.as_service_error().is_some_and(|se| se.is_bucket_already_owned_by_you()) => {}
                Err(e) => return Err(map_err(s, "CreateBucket", e)),
            }
        }
        let existing: Vec<LifecycleRule> = match client.get_bucket_lifecycle_configuration().bucket(&s.bucket).send().await {
            Ok(out) => out.rules().to_vec(),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => vec![],
            Err(e) => return Err(map_err(s, "GetBucketLifecycleConfiguration", e)),
        };
        let want = rule(&s.prefix, expire_days, noncurrent_days);
        if !existing.contains(&want) {
            let mut rules: Vec<LifecycleRule> = existing.into_iter().filter(|r| r.id() != Some(RULE_ID)).collect();
            rules.push(want);
            let config = BucketLifecycleConfiguration::builder().set_rules(Some(rules)).build().expect("rules are set");
            client
                .put_bucket_lifecycle_configuration()
                .bucket(&s.bucket)
                .lifecycle_configuration(config)
                .send()
                .await
                .map_err(|e| map_err(s, "PutBucketLifecycleConfiguration", e))?;
            changed.push(format!(
                "lifecycle rule {RULE_ID}: objects under {:?} expire after {expire_days} days, replaced or deleted versions {noncurrent_days} days later; incomplete multipart uploads are aborted after 1 day",
                s.prefix
            ));
        }
        if versioning {
            // Some S3-compatible servers (moto among them) wrap the answer in a root element the
            // SDK does not expect, and it fails to parse without an error code; the status is then
            // read from the raw body.
            let enabled = match client.get_bucket_versioning().bucket(&s.bucket).send().await {
                Ok(v) => v.status() == Some(&BucketVersioningStatus::Enabled),
                Err(e) if e.code().is_none() && e.raw_response().is_some_and(|r| r.status().is_success()) => e
                    .raw_response()
                    .and_then(|r| r.body().bytes())
                    .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
                Err(e) => return Err(map_err(s, "GetBucketVersioning", e)),
            };
            if !enabled {
                let v = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
                client
                    .put_bucket_versioning()
                    .bucket(&s.bucket)
                    .versioning_configuration(v)
                    .send()
                    .await
                    .map_err(|e| map_err(s, "PutBucketVersioning", e))?;
                changed.push("versioning enabled".into());
            }
        }
        Ok(changed)
    })
}

/// The least-privilege IAM policy CI needs for the cache. `prefix` is normalised (a folder).
pub fn policy(bucket: &str, prefix: &str) -> serde_json::Value {
    let objects = format!("arn:aws:s3:::{bucket}/{prefix}*");
    let mut list = serde_json::json!({
        "Sid": "ListTheCache",
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [format!("arn:aws:s3:::{bucket}")],
    });
    if !prefix.is_empty() {
        list["Condition"] = serde_json::json!({"StringLike": {"s3:prefix": [format!("{prefix}*")]}});
    }
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadWriteCacheObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [objects],
            },
            list,
        ]
    })
}

/// Prices for the estimate, in dollars (S3 Standard, us-east-1, as published).
#[derive(Debug, Clone, Serialize)]
pub struct Prices {
    pub storage_gb_month: f64,
    pub put_per_1000: f64,
    pub get_per_1000: f64,
    pub builds_per_month: u64,
    pub puts_per_build: u64,
    pub gets_per_build: u64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            storage_gb_month: 0.023,
            put_per_1000: 0.005,
            get_per_1000: 0.0004,
            builds_per_month: 300,
            puts_per_build: 50,
            gets_per_build: 400,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PrefixStats {
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub bucket: String,
    pub prefix: String,
    pub objects: u64,
    pub bytes: u64,
    /// Old versions kept by bucket versioning (replaced or deleted objects): they cost storage
    /// until the lifecycle rule expires them. None when the store cannot list versions.
    pub noncurrent_objects: Option<u64>,
    pub noncurrent_bytes: Option<u64>,
    pub oldest: Option<String>,
    pub newest: Option<String>,
    pub by_prefix: BTreeMap<String, PrefixStats>,
    pub prices: Prices,
    pub monthly_cost_storage: f64,
    pub monthly_cost_requests: f64,
    pub monthly_cost_total: f64,
}

/// One object: key, size, last modified (seconds since 1970).
type Object = (String, u64, i64);

async fn list(client: &aws_sdk_s3::Client, s: &Settings) -> Result<Vec<Object>, Error> {
    let mut out = Vec::new();
    let mut pages = client.list_objects_v2().bucket(&s.bucket).prefix(&s.prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| map_err(s, "ListObjectsV2", e))?;
        for o in page.contents() {
            let modified = o.last_modified().map(|t| t.secs()).unwrap_or(0);
            out.push((o.key().unwrap_or_default().to_string(), o.size().unwrap_or(0).max(0) as u64, modified));
        }
    }
    Ok(out)
}

/// Count and size of the noncurrent versions under the prefix; None where the store has no
/// ListObjectVersions (some S3-compatible ones).
async fn noncurrent(client: &aws_sdk_s3::Client, s: &Settings) -> Result<Option<(u64, u64)>, Error> {
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = client
            .list_object_versions()
            .bucket(&s.bucket)
            .prefix(&s.prefix)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if matches!(e.code(), Some("NotImplemented" | "MethodNotAllowed")) => return Ok(None),
            Err(e) => return Err(map_err(s, "ListObjectVersions", e)),
        };
        for v in page.versions().iter().filter(|v| v.is_latest() == Some(false)) {
            count += 1;
            bytes += v.size().unwrap_or(0).max(0) as u64;
        }
        if page.is_truncated() != Some(true) {
            return Ok(Some((count, bytes)));
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
        if key_marker.is_none() {
            return Ok(Some((count, bytes)));
        }
    }
}

fn rfc3339(secs: i64) -> String {
    crate::image::spec::rfc3339(secs).unwrap_or_default()
}

pub fn stats(s: &Settings, prices: Prices) -> Result<Stats, Error> {
    let s3 = S3::new(s);
    let (objects, old) =
        s3.run("stats", async { Ok((list(&s3.client, s).await?, noncurrent(&s3.client, s).await?)) })?;
    let mut by_prefix: BTreeMap<String, PrefixStats> = BTreeMap::new();
    for (key, size, _) in &objects {
        let rest = key.strip_prefix(&s.prefix).unwrap_or(key);
        let top = rest.split_once('/').map_or("(top level)".to_string(), |(t, _)| format!("{t}/"));
        let p = by_prefix.entry(top).or_default();
        p.objects += 1;
        p.bytes += size;
    }
    let bytes: u64 = objects.iter().map(|o| o.1).sum();
    let stored = bytes + old.map_or(0, |o| o.1);
    let storage = stored as f64 / 1e9 * prices.storage_gb_month;
    let requests = prices.builds_per_month as f64
        * (prices.puts_per_build as f64 * prices.put_per_1000 + prices.gets_per_build as f64 * prices.get_per_1000)
        / 1000.0;
    Ok(Stats {
        bucket: s.bucket.clone(),
        prefix: s.prefix.clone(),
        objects: objects.len() as u64,
        bytes,
        noncurrent_objects: old.map(|o| o.0),
        noncurrent_bytes: old.map(|o| o.1),
        oldest: objects.iter().map(|o| o.2).min().map(rfc3339),
        newest: objects.iter().map(|o| o.2).max().map(rfc3339),
        by_prefix,
        monthly_cost_storage: storage,
        monthly_cost_requests: requests,
        monthly_cost_total: storage + requests,
        prices,
    })
}

/// `30d`, `12h`, `90m`, `45s` as seconds.
pub fn parse_duration(v: &str) -> Result<i64, Error> {
    let bad = || Error::BadDuration(v.to_string());
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub deleted: Vec<String>,
    pub bytes: u64,
    pub kept: u64,
}

/// Delete objects under the prefix last modified more than `older_than` seconds before `now`.
/// With versioning on, a delete leaves a noncurrent version: the lifecycle rule expires those.
pub fn prune(s: &Settings, older_than: i64, now: i64, dry_run: bool) -> Result<PruneReport, Error> {
    let s3 = S3::new(s);
    let objects = s3.run("prune", list(&s3.client, s))?;
    let cutoff = now - older_than;
    let (old, young): (Vec<&Object>, Vec<&Object>) = objects.iter().partition(|o| o.2 < cutoff);
    if !dry_run {
        s3.run("prune", async {
            for chunk in old.chunks(1000) {
                let ids: Vec<ObjectIdentifier> =
                    chunk.iter().map(|o| ObjectIdentifier::builder().key(&o.0).build().expect("key is set")).collect();
                let delete = Delete::builder().set_objects(Some(ids)).quiet(true).build().expect("objects are set");
                s3.client
                    .delete_objects()
                    .bucket(&s.bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| map_err(s, "DeleteObjects", e))?;
            }
            Ok(())
        })?;
    }
    Ok(PruneReport {
        dry_run,
        deleted: old.iter().map(|o| o.0.clone()).collect(),
        bytes: old.iter().map(|o| o.1).sum(),
        kept: young.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("90m").unwrap(), 5_400);
        for bad in ["", "30", "d", "3w", "-1d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policy_is_least_privilege() {
        assert_eq!(normalize_prefix("ci"), "ci/");
        assert_eq!(normalize_prefix("/ci/x/"), "ci/x/");
        assert_eq!(normalize_prefix(""), "");
        let p = policy("acme-sccache", "ci/");
        let s = p["Statement"].as_array().unwrap();
        assert_eq!(s[0]["Action"], serde_json::json!(["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]));
        assert_eq!(s[0]["Resource"], serde_json::json!(["arn:aws:s3:::acme-sccache/ci/*"]));
        assert_eq!(s[1]["Action"], serde_json::json!(["s3:ListBucket"]));
        assert_eq!(s[1]["Resource"], serde_json::json!(["arn:aws:s3:::acme-sccache"]));
        assert_eq!(s[1]["Condition"]["StringLike"]["s3:prefix"], serde_json::json!(["ci/*"]));
        assert!(!p.to_string().contains("s3:*"));
        assert_eq!(policy("b", "")["Statement"][0]["Resource"], serde_json::json!(["arn:aws:s3:::b/*"]));
    }
}
