//! `berth.toml`: what a server stores where, from defaults, a file, the
//! environment and the command line, in rising order of precedence.
//!
//! Every key can be set by an environment variable named `BERTH_` + the key
//! path in capitals joined by `_` (`storage.s3.bucket` →
//! `BERTH_STORAGE_S3_BUCKET`). Because key names contain `_` themselves, the
//! variable names are matched against the known key list, never split.

mod auth;
mod duration;
mod env;
mod errors;
mod plugins;

pub use auth::{AccessRule, Action, AuthConfig, AuthMode, LimitsConfig, TlsConfig, TokenConfig};
pub use duration::Span;
pub use errors::ConfigError;
pub use plugins::{OnFailure, PluginConfig, SettingValue};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole configuration. Unknown keys are errors, so that a typo never
/// silently falls back to a default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub metadata: MetadataConfig,
    pub gc: GcConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
    /// Admission policy plugins, called in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<PluginConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// A guest component to run instead of the embedded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<PathBuf>,
    /// Refuse every write (pushes, deletes) with the spec's UNSUPPORTED
    /// error; reads keep working and garbage collection does not run.
    pub read_only: bool,
    pub tls: TlsConfig,
    /// Load balancers and reverse proxies (addresses or CIDR ranges) whose
    /// `X-Forwarded-For`, `-Proto` and `-Host` are believed. Empty: the
    /// headers are ignored and the peer address is the client.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            guest: None,
            read_only: false,
            tls: TlsConfig::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[log]`: what the server writes to stderr.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `berth=debug,info`. `RUST_LOG`
    /// wins over it.
    pub level: String,
    /// `text` for people, `json` (one object per line) for log shippers.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Online garbage collection and upload purging (SQLite metadata only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// Run passes in the background while serving.
    pub enabled: bool,
    /// Time between the end of one pass and the start of the next.
    pub interval: Span,
    /// How long a blob stays after the last manifest or link referring to
    /// it went away, before it may be collected.
    pub grace: Span,
    /// How long a blob uploaded but not yet referenced by a manifest is
    /// kept: covers pushes in flight.
    pub upload_grace: Span,
    /// Also delete manifests that no tag, index or subject keeps.
    pub untagged: bool,
    /// Upload sessions idle longer than this are removed with their data.
    pub upload_max_age: Span,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Span::hours(1),
            grace: Span::hours(1),
            upload_grace: Span::hours(24),
            untagged: false,
            upload_max_age: Span::hours(24),
        }
    }
}

/// Where blob bytes live.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    Filesystem,
    S3,
    /// Nothing survives the process: for tests and experiments.
    Memory,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub kind: StorageKind,
    /// Local state: blobs and uploads (filesystem), the SQLite database,
    /// the compiled-guest cache.
    pub root: PathBuf,
    pub s3: S3Config,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Filesystem,
            root: PathBuf::from("./registry-data"),
            s3: S3Config::default(),
        }
    }
}

/// An S3-compatible bucket. Unset credentials, region and endpoint fall back
/// to the usual `AWS_*` environment variables.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// e.g. `http://127.0.0.1:9000` for MinIO; unset means AWS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Key prefix inside the bucket (registry:2's `rootdirectory`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    /// Permit plain `http://` endpoints (local servers).
    pub allow_http: bool,
    /// Answer blob GETs with a 307 to a presigned URL of the bucket.
    pub redirect: bool,
}

/// Where repositories, tags and manifests are recorded.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetadataKind {
    /// `<root>/metadata.db`, local to this host.
    #[default]
    Sqlite,
    /// Inside the blob store, in registry:2's layout: shareable by several
    /// hosts and by registry:2 itself.
    Layout,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub kind: MetadataKind,
}

/// A value that must not be printed: `Debug` and `Serialize` mask it.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"****\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("****")
    }
}

/// Command-line values, which win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub addr: Option<SocketAddr>,
    pub root: Option<PathBuf>,
    pub guest: Option<PathBuf>,
    pub read_only: bool,
    pub htpasswd: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: bool,
    pub hostnames: Vec<String>,
}

impl Config {
    /// Defaults, then `file` (if any), then `BERTH_*` variables from `vars`,
    /// then `overrides`; checked for consistency.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => Self::read_file(path)?,
            None => toml::Table::new(),
        };
        env::apply(&mut table, vars)?;
        let mut config: Config =
            Config::deserialize(toml::Value::Table(table)).map_err(ConfigError::Environment)?;
        if let Some(addr) = overrides.addr {
            config.server.addr = addr;
        }
        if let Some(root) = &overrides.root {
            config.storage.root = root.clone();
        }
        if let Some(guest) = &overrides.guest {
            config.server.guest = Some(guest.clone());
        }
        if overrides.read_only {
            config.server.read_only = true;
        }
        if let Some(htpasswd) = &overrides.htpasswd {
            config.auth.htpasswd = Some(htpasswd.clone());
        }
        if let Some(cert) = &overrides.tls_cert {
            config.server.tls.cert = Some(cert.clone());
        }
        if let Some(key) = &overrides.tls_key {
            config.server.tls.key = Some(key.clone());
        }
        if overrides.tls_self_signed {
            config.server.tls.self_signed = true;
        }
        config
            .server
            .tls
            .hostnames
            .extend(overrides.hostnames.iter().cloned());
        config.validate()?;
        Ok(config)
    }

    /// Parses the file strictly (so errors carry its line and column) and
    /// returns it as a table the environment can be layered onto.
    fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str::<Config>(&text).map_err(|e| errors::in_file(path, &text, &e))?;
        toml::from_str::<toml::Table>(&text).map_err(|e| errors::in_file(path, &text, &e))
    }

    /// Combinations that parse but cannot work.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.storage.kind == StorageKind::S3 && self.storage.s3.bucket.is_none() {
            return Err(ConfigError::Invalid(
                "storage.s3.bucket is required when storage.kind = \"s3\"".into(),
            ));
        }
        if self.storage.s3.redirect && self.storage.kind != StorageKind::S3 {
            return Err(ConfigError::Invalid(
                "storage.s3.redirect needs storage.kind = \"s3\"".into(),
            ));
        }
        let tls = &self.server.tls;
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(ConfigError::Invalid(
                "server.tls.cert and server.tls.key go together".into(),
            ));
        }
        if tls.self_signed && tls.cert.is_some() {
            return Err(ConfigError::Invalid(
                "server.tls.self_signed and server.tls.cert exclude each other".into(),
            ));
        }
        if self.auth.mode == AuthMode::Basic && self.auth.enabled() && self.auth.htpasswd.is_none()
        {
            return Err(ConfigError::Invalid(
                "auth.mode = \"basic\" needs auth.htpasswd".into(),
            ));
        }
        if self.limits.max_header_bytes < 8192 {
            return Err(ConfigError::Invalid(
                "limits.max_header_bytes must be at least 8192".into(),
            ));
        }
        Ok(())
    }

    /// The resolved configuration as TOML, secrets masked.
    pub fn render(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
