//! Command-line interface.

use crate::config::{Config, ConfigError, Overrides, ProxyConfig, Span};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "berth", version, about = "An OCI container registry")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the registry over HTTP.
    Serve(ServeArgs),
    /// Run one garbage-collection pass now (also while a server runs on the
    /// same store) and print what it removes.
    Gc(GcArgs),
    /// Re-hash every blob and check every metadata reference.
    Fsck(FsckArgs),
    /// Storage used per repository.
    Du(DuArgs),
    /// Inspect configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The registry guest component, for other Wasm runtimes.
    #[command(subcommand)]
    Guest(GuestCommand),
    /// Write images from the store as an OCI image layout (a directory, or
    /// a tar archive when OUT ends in .tar, .tar.gz or .tar.zst), or as
    /// `docker load` takes it (--format docker).
    Export(ExportArgs),
    /// Store the images of an OCI image layout (directory or tar, plain,
    /// gzip or zstd) or of a `docker save` archive, verifying every digest.
    Import(ImportArgs),
    /// Copy images (every platform, and their referrers) from an upstream
    /// registry into the store, under the names a proxy prefix gives them.
    Sync(SyncArgs),
    /// Ask a running server whether it is healthy (its /health), for a
    /// container's HEALTHCHECK: exit status 0 when it answers 200.
    Health(HealthArgs),
    /// Work on a store's metadata.
    #[command(subcommand)]
    Metadata(MetadataCommand),
}

#[derive(Subcommand, Debug)]
pub enum MetadataCommand {
    /// Copy the store's metadata (metadata.kind "sqlite" or "layout",
    /// registry:2's tree included) into the database of
    /// [metadata.postgres]; blobs stay where they are. The store may keep
    /// serving meanwhile, and a second run catches up with what changed.
    /// Then set metadata.kind = "postgres".
    Migrate(MigrateArgs),
}

/// Where `berth metadata migrate` copies to.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrateTarget {
    Postgres,
}

#[derive(clap::Args, Debug, Clone)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The metadata kind to copy into.
    #[arg(long, value_enum)]
    pub to: MigrateTarget,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

impl MigrateArgs {
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.store.resolve(Overrides::default())
    }
}

/// Progress output of the transfer commands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProgressArgs {
    /// No progress bar or progress lines; errors and the summary only.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where to write: a directory, or OUT.tar, OUT.tar.gz, OUT.tar.zst.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
    /// Images: REPO:TAG, REPO@DIGEST, or REPO for every tag of it.
    #[arg(value_name = "REF", required_unless_present = "all")]
    pub refs: Vec<String>,
    /// Every tagged image of every repository.
    #[arg(long, conflicts_with = "refs")]
    pub all: bool,
    /// Leave referrers (signatures, SBOMs) out.
    #[arg(long)]
    pub no_referrers: bool,
    /// `oci` (an OCI image layout) or `docker` (what `docker load` takes,
    /// one platform per image).
    #[arg(long, value_enum, default_value_t = ExportFormat::Oci)]
    pub format: ExportFormat,
    /// The platform --format docker picks from a multi-platform image
    /// [default: linux/amd64].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExportFormat {
    #[default]
    Oci,
    Docker,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ImportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// An OCI image layout (directory or tar, plain, gzip or zstd) or a
    /// `docker save` archive.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// Check every digest of the archive; store nothing.
    #[arg(long)]
    pub verify_only: bool,
    /// Put every repository under this prefix (`mirror` makes `app:1`
    /// `mirror/app:1`).
    #[arg(long, value_name = "PREFIX")]
    pub repo_prefix: Option<String>,
    /// The repository of images the archive names by a tag alone (what
    /// `skopeo copy ... oci-archive:x.tar:v1` writes) or not at all.
    #[arg(long, value_name = "NAME")]
    pub repo: Option<String>,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct SyncArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The upstream: a configured [[proxy]]'s prefix, or a registry URL
    /// (https://registry.example.com).
    #[arg(long, value_name = "PREFIX|URL")]
    pub from: String,
    /// Images upstream: NAME:TAG, NAME@DIGEST, or NAME for every tag.
    #[arg(value_name = "REF", required = true)]
    pub refs: Vec<String>,
    /// Store them under this prefix [default: the proxy's prefix when
    /// --from names one, else none].
    #[arg(long, value_name = "PREFIX")]
    pub repo_prefix: Option<String>,
    /// Login for a URL upstream (a proxy's come from its configuration).
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
    /// A file holding the password for --username.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Leave referrers (signatures, SBOMs) out.
    #[arg(long)]
    pub no_referrers: bool,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct HealthArgs {
    /// The server's URL [default: from the configuration's address, as
    /// http(s)://127.0.0.1:PORT].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

impl ExportArgs {
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.store.resolve(Overrides::default())
    }
}

impl ImportArgs {
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.store.resolve(Overrides::default())
    }
}

impl SyncArgs {
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.store.resolve(Overrides::default())
    }
}

impl HealthArgs {
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.store.resolve(Overrides::default())
    }
}

#[derive(Subcommand, Debug)]
pub enum GuestCommand {
    /// Write the registry guest component to FILE. It imports Berth's
    /// storage interfaces (wit/registry.wit); with --standalone, the guest
    /// composed with a storage component on wasi:filesystem, which imports
    /// only wasi:* and runs under e.g. `wasmtime serve` with a data
    /// directory mounted at /data.
    Export {
        /// Write the composed, self-contained component instead.
        #[arg(long)]
        standalone: bool,
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Run every check `serve` runs at start on FILE (with the BERTH_*
    /// environment applied): one line per problem, exit status 1 on any
    /// error; when there is none, print the configuration it resolves to,
    /// secrets masked. Reads the files it names; creates nothing.
    Check { file: PathBuf },
}

/// Which store a command works on: the same flags as `serve`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// Configuration file (TOML); see docs/CONFIGURATION.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the store [default: ./registry-data]; `serve` creates
    /// it when missing, gc, fsck and du refuse a missing one.
    #[arg(long)]
    pub root: Option<PathBuf>,
}

impl StoreArgs {
    fn resolve(&self, overrides: Overrides) -> Result<Config, ConfigError> {
        let overrides = Overrides {
            root: self.root.clone(),
            ..overrides
        };
        Config::load(self.config.as_deref(), std::env::vars(), &overrides)
    }
}

/// `--addr`: the forms `server.addr` takes.
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    crate::config::addr::parse(text)
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on: 127.0.0.1:5000, [::1]:5000, :5000 (every
    /// interface) or HOST:PORT [default: 127.0.0.1:5000].
    #[arg(long, value_parser = parse_addr)]
    pub addr: Option<SocketAddr>,
    /// Run this guest component instead of the embedded one.
    #[arg(long, value_name = "FILE.wasm")]
    pub guest: Option<PathBuf>,
    /// Refuse pushes and deletes; reads keep working.
    #[arg(long)]
    pub read_only: bool,
    /// Require logins: users from this file, as `htpasswd -B` writes it.
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM)...
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// ...and this private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a local CA and certificate made on first start
    /// under the root; prints how to make docker trust it.
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// A name or IP address clients use to reach this server, for the
    /// self-signed certificate (repeatable).
    #[arg(long = "hostname", value_name = "NAME")]
    pub hostnames: Vec<String>,
    /// Pull through and cache an upstream registry (repeatable):
    /// PREFIX=URL serves `PREFIX/<name>` from `<name>` at URL; a bare URL
    /// answers unprefixed names from it when they are not stored locally
    /// (a Docker Hub mirror). Added after the file's [[proxy]] entries and
    /// those of BERTH_PROXY (SPECs separated by commas or spaces).
    #[arg(long = "proxy", value_name = "SPEC", value_parser = ProxyConfig::from_spec)]
    pub proxies: Vec<ProxyConfig>,
}

impl ServeArgs {
    /// The configuration these flags select: file, then environment, then
    /// the flags themselves. Only what cannot be read is an error here:
    /// `serve` checks the rest first thing (`crate::preflight`), and
    /// reports all of it at once.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let overrides = Overrides {
            root: self.store.root.clone(),
            addr: self.addr,
            guest: self.guest.clone(),
            read_only: self.read_only,
            htpasswd: self.htpasswd.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_self_signed: self.tls_self_signed,
            hostnames: self.hostnames.clone(),
            proxies: self.proxies.clone(),
        };
        Config::resolve(self.store.config.as_deref(), std::env::vars(), &overrides)
    }
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Grace period for unreferenced blobs, for this pass (e.g. 0s, 10m).
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<Span>,
    /// Grace period for uploaded, not yet referenced blobs, for this pass.
    #[arg(long, value_name = "DURATION")]
    pub upload_grace: Option<Span>,
}

impl GcArgs {
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let mut config = self.store.resolve(Overrides::default())?;
        if let Some(grace) = self.grace {
            config.gc.grace = grace;
        }
        if let Some(grace) = self.upload_grace {
            config.gc.upload_grace = grace;
        }
        Ok(config)
    }
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct FsckArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Quarantine corrupt blobs and drop references to missing ones.
    #[arg(long)]
    pub repair: bool,
}

impl FsckArgs {
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.store.resolve(Overrides::default())
    }
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct DuArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON (the same document as GET /berth/v1/usage).
    #[arg(long)]
    pub json: bool,
}

impl DuArgs {
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        self.store.resolve(Overrides::default())
    }
}
