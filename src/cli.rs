//! Command-line definitions only. Settings are resolved in `settings`, commands run in
//! `commands`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ship",
    version,
    about = "Build, package and deploy Rust web services reproducibly.",
    long_about = "Build, package and deploy Rust web services reproducibly.\n\nWithout a command, ship runs `ship run` as ship.toml says: build → image → push (when there is a registry to push to)."
)]
pub struct Cli {
    /// ship.toml to read (default: ./ship.toml if it exists).
    #[arg(long, global = true, env = "SHIP_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// No progress on stderr: only warnings and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Log every registry request (method, URL without query, status) on stderr. Never secrets.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// Without one, `ship run`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything ship.toml asks for: build → image → push; print REF@sha256:<digest> (or the local layout).
    Run(RunArgs),
    /// Print every step `ship run` would take, each setting with its source, and the inputs the digest depends on; does nothing.
    Plan(RunArgs),
    /// Compile the service (cargo build --release --locked, static, mold, sccache); print the binary's path.
    Build(BuildCommand),
    /// Assemble a reproducible OCI image (building the binary first unless --binary); print sha256:<manifest digest>.
    Image(ImageArgs),
    /// Push an image from an OCI layout to a registry; print REPO@sha256:<digest>.
    Push(PushCommand),
    /// Fetch an image from a registry into an OCI layout (every blob verified); print its digest.
    Pull(PullCommand),
    /// Deploy REPO@sha256:<digest> on Railway and wait until it is healthy (or notify a deploy webhook).
    Deploy(DeployCommand),
    /// Rebuild an image from the revision it records and compare digests: REPRODUCED, or MISMATCH with what differs.
    Verify(VerifyCommand),
    /// Resolve the toolchain and print where it is and the exact version of each tool.
    Toolchain(ToolchainCommand),
    /// The sccache S3 bucket: init | policy | stats | prune.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Check the machine, the config and the registry credentials; say what to fix.
    Doctor(DoctorCommand),
}

/// Which bucket (flags win over [cache] in ship.toml).
#[derive(Debug, Args, Default, Clone)]
pub struct S3Args {
    /// Bucket name.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Region (default: [cache] region, $AWS_REGION, us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store (R2, MinIO); path-style addressing is used with it.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Key prefix (a folder) of the cache (default: [cache] prefix, else sccache); `sccache`
    /// means `sccache/`: keys beside it (`sccache-backups/`) are never touched.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Give up after this long in all, retries included: 90s, 10m, 1h (default 10m).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Longest wait for one request's complete answer (default 60s, at most --timeout).
    #[arg(long, value_name = "DURATION")]
    pub request_timeout: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Create the bucket, expire old objects, abort stale uploads, optionally enable versioning; print what changed.
    Init {
        #[command(flatten)]
        s3: S3Args,
        /// Days after which cache objects expire.
        #[arg(long, default_value_t = 30)]
        expire_days: i32,
        /// Days after which a replaced or deleted object's old version expires (versioned buckets).
        #[arg(long, default_value_t = 1)]
        noncurrent_days: i32,
        /// Turn on bucket versioning.
        #[arg(long)]
        versioning: bool,
    },
    /// Print the least-privilege IAM policy CI needs for the cache.
    Policy {
        #[command(flatten)]
        s3: S3Args,
    },
    /// Objects, bytes, oldest and newest, per top-level prefix, and an estimated monthly cost.
    Stats {
        #[command(flatten)]
        s3: S3Args,
        /// Dollars per GB-month of storage.
        #[arg(long, default_value_t = 0.023)]
        storage_price: f64,
        /// Dollars per 1000 PUT requests.
        #[arg(long, default_value_t = 0.005)]
        put_price: f64,
        /// Dollars per 1000 GET requests.
        #[arg(long, default_value_t = 0.0004)]
        get_price: f64,
        /// Builds per month, for the request cost.
        #[arg(long, default_value_t = 300)]
        builds_per_month: u64,
        /// PUT requests per build (cache misses written).
        #[arg(long, default_value_t = 50)]
        puts_per_build: u64,
        /// GET requests per build (cache lookups).
        #[arg(long, default_value_t = 400)]
        gets_per_build: u64,
        #[arg(long)]
        json: bool,
    },
    /// Delete cache objects older than a duration (for stores without lifecycle support).
    Prune {
        #[command(flatten)]
        s3: S3Args,
        /// Age: 30d, 12h, 90m, 45s.
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        /// Say what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct DoctorCommand {
    /// Image reference whose registry credentials to check (default: [image] name in ship.toml).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Platforms to check the cross-compilation pieces for (default: report every other one
    /// ship builds for, without failing).
    #[arg(long, value_name = "OS/ARCH[,OS/ARCH]")]
    pub platform: Option<String>,
}

/// How to reach and log in to a registry.
#[derive(Debug, Args, Default, Clone)]
pub struct RegistryArgs {
    /// Registry user name (with --password-stdin).
    #[arg(long)]
    pub username: Option<String>,
    /// Read the password or token from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Use plain HTTP for this registry host (loopback registries always are). Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Give up after this long in all, retries included: 90s, 10m, 1h (default 10m).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Longest wait for one request's complete answer (default 60s, at most --timeout).
    #[arg(long, value_name = "DURATION")]
    pub request_timeout: Option<String>,
}

/// How to push: the registry login and bounds, and how many blobs at once.
#[derive(Debug, Args, Clone)]
pub struct UploadArgs {
    /// Blobs uploaded at once.
    #[arg(long, default_value_t = 3)]
    pub concurrency: usize,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

impl Default for UploadArgs {
    fn default() -> Self {
        UploadArgs { concurrency: 3, registry: RegistryArgs::default() }
    }
}

#[derive(Debug, Args, Default, Clone)]
pub struct DeployCommand {
    /// The image, by digest: REGISTRY/REPO@sha256:<digest> (what `ship push` and `ship run` print).
    pub reference: String,
    /// Railway service id (default: [deploy.railway] service).
    #[arg(long, value_name = "ID")]
    pub service: Option<String>,
    /// Railway environment id (default: [deploy.railway] environment).
    #[arg(long, value_name = "ID")]
    pub environment: Option<String>,
    /// How long to wait for the deployment to succeed: 90s, 10m (default: [deploy.railway] timeout, else 10m).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// A URL that must answer 2xx once the deployment succeeded (bounded retries).
    #[arg(long, value_name = "URL")]
    pub health_url: Option<String>,
    /// When the deployment fails, roll back to the previous successful one (and say so).
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// Railway's GraphQL endpoint (default: $SHIP_RAILWAY_API, else Railway's).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// Notify this deploy webhook instead of using Railway's API (weaker: no status to wait for).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// The git revision the image was built from, sent to a webhook.
    #[arg(long, value_name = "SHA")]
    pub revision: Option<String>,
    /// Print the deploy report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct VerifyCommand {
    /// The image: REGISTRY/REPO[:TAG|@sha256:...] or oci:DIR[:TAG] (not needed with --twice).
    #[arg(required_unless_present = "twice")]
    pub image: Option<String>,
    /// The git repository to check the recorded revision out of (default: the current one).
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
    /// Build the current project twice, in two temporary directories, and compare: a
    /// reproducibility self-check.
    #[arg(long)]
    pub twice: bool,
    /// Cargo's target directory for the rebuilds (default: a fresh one in the temporary checkout).
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// With --twice: which project (default: beside ship.toml, else ./Cargo.toml).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// With --twice: auto | nix | host | a toolchain directory (default: auto).
    #[arg(long, value_name = "SOURCE")]
    pub toolchain: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the verdict and every difference as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullCommand {
    /// What to fetch: [host[:port]/]path[:tag][@sha256:...].
    pub reference: String,
    /// Where to: oci:DIR[:TAG].
    #[arg(long, value_name = "oci:DIR[:TAG]")]
    pub output: String,
    /// Platform to pick from an image index, os/arch (default: this machine's, linux).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct PushCommand {
    /// The image to push.
    #[arg(long, value_name = "oci:DIR[:TAG]")]
    pub from: String,
    /// Where to: [host[:port]/]path[:tag] (docker's rules: docker.io, library/).
    pub reference: String,
    /// More tags to push the manifest under. Repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Another repository on the same registry to mount blobs from. Repeatable.
    #[arg(long = "mount-from", value_name = "REPO")]
    pub mount_from: Vec<String>,
    #[command(flatten)]
    pub upload: UploadArgs,
    /// Print a JSON report: digest, bytes uploaded, blobs skipped/mounted/uploaded, requests.
    #[arg(long)]
    pub json: bool,
}

/// Which package to build and with what.
#[derive(Debug, Args, Default, Clone)]
pub struct BuildArgs {
    /// Cargo.toml of the package or workspace (default: beside ship.toml, else ./Cargo.toml).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Package to build (default: the one whose manifest is given, else the workspace's only binary).
    #[arg(long, short = 'p', value_name = "NAME")]
    pub package: Option<String>,
    /// Binary target to build.
    #[arg(long, value_name = "NAME")]
    pub bin: Option<String>,
    /// auto | nix | host | a toolchain directory (default: auto).
    #[arg(long, value_name = "SOURCE")]
    pub toolchain: Option<String>,
    /// Cargo's target directory.
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Fail unless the toolchain is Nix's and has mold and sccache.
    #[arg(long)]
    pub require_hermetic: bool,
    /// Fail instead of building without the S3 cache when it cannot be used.
    #[arg(long)]
    pub require_cache: bool,
    /// Build for this platform instead of the host's, cross-compiled and static: linux/amd64 or
    /// linux/arm64. `ship build` takes several, comma-separated.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildCommand {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Print the build facts as JSON (binary, toolchain, flags, linker, duration).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ToolchainCommand {
    /// auto | nix | host | a toolchain directory (default: auto).
    #[arg(long, value_name = "SOURCE")]
    pub toolchain: Option<String>,
    /// Cargo.toml of the project whose flake provides the toolchain.
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Also say whether this toolchain can build for these platforms, and what is missing.
    #[arg(long, value_name = "OS/ARCH[,OS/ARCH]")]
    pub platform: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What goes into the image (ship.toml's [image] gives the same; flags win).
#[derive(Debug, Args, Default, Clone)]
pub struct ImageOptions {
    /// Image name; its last path component names the binary: /app/<name> (default: the binary's file name).
    #[arg(long)]
    pub name: Option<String>,
    /// Port to expose: N or N/tcp or N/udp. Repeatable.
    #[arg(long = "port", value_name = "N")]
    pub ports: Vec<String>,
    /// Environment variable KEY=VALUE. Repeatable.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Image label KEY=VALUE. Repeatable.
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// User to run as, UID[:GID] (default 65532:65532, "nonroot").
    #[arg(long, value_name = "UID:GID")]
    pub user: Option<String>,
    /// Working directory in the container (absolute).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Extra file SRC:DEST[:MODE] (MODE octal, default 0644). Repeatable.
    #[arg(long = "file", value_name = "SRC:DEST")]
    pub files: Vec<String>,
    /// Layer compression.
    #[arg(long, value_name = "gzip|zstd|none")]
    pub compression: Option<String>,
    /// Timestamp for the build, `created` and every mtime (default: $SOURCE_DATE_EPOCH, else HEAD's commit time, else 0).
    #[arg(long, value_name = "N")]
    pub source_date_epoch: Option<String>,
    /// Base: `ship` (generated, the default), `scratch` (none), oci:DIR[:TAG], or a registry reference.
    #[arg(long, value_name = "BASE")]
    pub base: Option<String>,
    /// PEM CA bundle for the generated base (default: the toolchain's, else the host's).
    #[arg(long, value_name = "PATH")]
    pub ca_bundle: Option<PathBuf>,
}

#[derive(Debug, Args, Default, Clone)]
pub struct ImageArgs {
    /// The executable to ship (an ELF binary; static for the default base). Default: `ship build`.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    #[command(flatten)]
    pub image: ImageOptions,
    #[command(flatten)]
    pub build: BuildArgs,
    /// Where to write: oci:DIR[:TAG] or docker-archive:FILE[:REF].
    #[arg(long, value_name = "DEST")]
    pub output: String,
    /// Print digest, manifest size and layers as JSON.
    #[arg(long)]
    pub json: bool,
    /// Registry login, for a --base from a registry.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `ship run` and `ship plan`.
#[derive(Debug, Args, Default, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub image: ImageOptions,
    /// Where to push: REGISTRY/REPO[:TAG] (default: [image] name; without either, nothing is pushed).
    #[arg(long = "image", value_name = "REF")]
    pub reference: Option<String>,
    /// Push even without --image or [image] name: to ghcr.io/<owner>/<repo> from the git remote origin.
    #[arg(long)]
    pub push: bool,
    /// Tag to push (default: [image] tags, else latest); {git_sha} and {version} are filled in. Repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// native (cargo and ship's image assembly), dockerfile (docker buildx with Dockerfile.production:
    /// the fallback for machines with Docker but no Nix), or auto (dockerfile only when Nix is absent
    /// and a Docker daemon with buildx answers).
    #[arg(long, value_name = "BUILDER", default_value = "auto")]
    pub builder: String,
    #[command(flatten)]
    pub upload: UploadArgs,
    /// Print a JSON report (`ship plan`: the plan) instead of the result line.
    #[arg(long)]
    pub json: bool,
}
