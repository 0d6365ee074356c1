//! `berth.toml`: what a server stores where, from defaults, a file, the
//! environment and the command line, in rising order of precedence.
//!
//! Every key can be set by an environment variable named `BERTH_` + the key
//! path in capitals joined by `_` (`storage.s3.bucket` →
//! `BERTH_STORAGE_S3_BUCKET`). Because key names contain `_` themselves, the
//! variable names are matched against the known key list, never split.

pub mod addr;
mod auth;
pub mod check;
mod duration;
mod env;
mod errors;
mod http;
mod notifications;
mod plugins;
mod proxies;
mod proxy;
pub mod registry2;

pub use auth::{AccessRule, Action, AuthConfig, AuthMode, LimitsConfig, TlsConfig, TokenConfig};
pub use check::{Problem, Severity};
pub use duration::Span;
pub use errors::ConfigError;
pub use http::{CorsConfig, ExtraHeaders, ObserveConfig};
pub use notifications::{IgnoreConfig, NotificationEndpoint};
pub use plugins::{OnFailure, PluginConfig, SettingValue};
pub use proxy::ProxyConfig;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// Upstream registries pulled through and cached (`[[proxy]]`), then
    /// those of `BERTH_PROXY`, then those of `--proxy`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proxy: Vec<ProxyConfig>,
    /// Webhook endpoints receiving registry:2's events
    /// (`[[notifications]]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationEndpoint>,
    /// Where the values came from, for messages.
    #[serde(skip)]
    pub source: Source,
}

/// Where a configuration came from: the file (kept to find the line of a
/// key), which keys the environment and the flags set, and warnings from
/// reading it.
#[derive(Clone, Default, PartialEq)]
pub struct Source {
    file: Option<(PathBuf, String)>,
    /// Key → the variable or flag that set it.
    set_by: BTreeMap<String, String>,
    /// Unknown `BERTH_*` variables, registry:2 settings Berth ignores.
    pub warnings: Vec<Problem>,
    /// Said at INFO once logging is set up: registry:2 settings Berth does
    /// not need, a registry:2 tree served in place.
    pub notes: Vec<String>,
}

/// Without the file's text, which may hold secrets.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("file", &self.file())
            .field("set_by", &self.set_by)
            .field("warnings", &self.warnings)
            .field("notes", &self.notes)
            .finish()
    }
}

impl Source {
    /// Sets `problem.at` to what wrote its key: `file:line`, a `BERTH_*`
    /// variable or a flag.
    pub fn locate(&self, problem: &mut Problem) {
        if problem.at.is_some() || problem.key.is_empty() {
            return;
        }
        let by = self.set_by.iter().find(|(key, _)| {
            problem.key == **key
                || problem
                    .key
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        });
        if let Some((_, by)) = by {
            problem.at = Some(by.clone());
        } else if let Some((path, text)) = &self.file
            && let Some(line) = errors::line_of(text, &problem.key)
        {
            problem.at = Some(format!("{}:{line}", path.display()));
        }
    }

    /// The configuration file, if there is one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_ref().map(|(path, _)| path.as_path())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on: `127.0.0.1:5000`, `[::1]:5000`, `:5000`
    /// (every interface) or `host:port` (resolved at start).
    #[serde(deserialize_with = "addr::deserialize")]
    pub addr: SocketAddr,
    /// A guest component to run instead of the embedded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<PathBuf>,
    /// Refuse every write (pushes, deletes) with the spec's UNSUPPORTED
    /// error; reads keep working and garbage collection does not run.
    pub read_only: bool,
    /// Allow deletes (manifests, tags, blobs). Off: every DELETE gets the
    /// spec's UNSUPPORTED error, as registry:2 without
    /// `storage.delete.enabled` answers.
    pub delete: bool,
    /// Allow pushes (uploads, mounts, manifest PUTs). Off: each gets the
    /// spec's UNSUPPORTED error, as registry:2 answers in proxy mode.
    pub push: bool,
    pub tls: TlsConfig,
    /// Load balancers and reverse proxies (addresses or CIDR ranges) whose
    /// `X-Forwarded-For`, `-Proto` and `-Host` are believed. Empty: the
    /// headers are ignored and the peer address is the client.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "proxies::deserialize"
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How often the storage is probed for `/health` (503 after 3 failed
    /// checks in a row, 200 again after one success).
    pub health_interval: Span,
    /// Metrics, the debug listener and the web UI.
    pub observe: ObserveConfig,
    /// Browser origins allowed to call the API (`[server.cors]`).
    pub cors: CorsConfig,
    /// Added to every response, as registry:2's `http.headers`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: ExtraHeaders,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            guest: None,
            read_only: false,
            delete: true,
            push: true,
            tls: TlsConfig::default(),
            trusted_proxies: Vec::new(),
            health_interval: Span::secs(10),
            observe: ObserveConfig::default(),
            cors: CorsConfig::default(),
            headers: ExtraHeaders::new(),
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
    /// One line per request (method, path, status, bytes, duration,
    /// caller, user agent) at INFO, target `berth::access`.
    pub access: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            access: true,
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
    /// A PostgreSQL database (`[metadata.postgres]`): shared by any number
    /// of hosts, with online garbage collection across them.
    Postgres,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub kind: MetadataKind,
    pub postgres: PostgresConfig,
}

/// `[metadata.postgres]`: where the database is and how it is used.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`; shown with the
    /// password masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<DatabaseUrl>,
    /// Connections this host keeps open at most.
    pub pool_size: u32,
    /// The longest one statement may run before the database cancels it.
    pub statement_timeout: Span,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: None,
            pool_size: 16,
            statement_timeout: Span::secs(30),
        }
    }
}

/// A database URL: `Debug` and `Serialize` mask its password, if any.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What logs and messages show: `postgres://USER:****@HOST:PORT/DB`,
    /// rebuilt from the parsed settings so that a password is hidden in
    /// every form libpq accepts (in the URL, as `?password=`, or as
    /// `password=` in a `key=value` string); `****` when it does not parse.
    pub fn masked(&self) -> String {
        let Ok(config) = self.0.parse::<tokio_postgres::Config>() else {
            return "****".to_owned();
        };
        let user = config.get_user().unwrap_or_default();
        let password = if config.get_password().is_some() {
            ":****"
        } else {
            ""
        };
        let database = berth_storage::describe_database(&config);
        format!("postgres://{user}{password}@{database}")
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
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

/// A configuration file as read: Berth's TOML (with its path and text, to
/// locate keys) or registry:2's YAML.
enum ConfigFile {
    Berth(toml::Table, PathBuf, String),
    Registry2(PathBuf, String),
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
    /// `--proxy SPEC` entries, appended after the file's and the
    /// environment's `[[proxy]]` entries.
    pub proxies: Vec<ProxyConfig>,
}

impl Config {
    /// Defaults, then `file` (if any), then `BERTH_*` variables from `vars`,
    /// then `overrides`; refused with every problem [`Config::problems`]
    /// finds. What `serve` and `config check` add (files, budgets,
    /// plugins) is `crate::preflight`.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let config = Self::resolve(file, vars, overrides)?;
        let errors: Vec<Problem> = config
            .problems()
            .into_iter()
            .filter(Problem::is_error)
            .collect();
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Problems(errors))
        }
    }

    /// Like [`Config::load`], but only what cannot be read at all is an
    /// error: the caller checks the rest, to report all of it at once.
    pub fn resolve(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let file = file.map(Self::read_file).transpose()?;
        let (mut table, text, yaml) = match file {
            Some(ConfigFile::Berth(table, path, text)) => (table, Some((path, text)), None),
            Some(ConfigFile::Registry2(path, text)) => {
                (toml::Table::new(), None, Some((path, text)))
            }
            None => (toml::Table::new(), None, None),
        };
        let yaml = yaml
            .as_ref()
            .map(|(path, text)| (path.as_path(), text.as_str()));
        let dropin = registry2::apply(&mut table, yaml, &vars)?;
        let applied = env::apply(&mut table, vars)?;
        // Left out, it follows the root (`registry2::serve_in_place`).
        let metadata_kind_set = table.get("metadata").and_then(|m| m.get("kind")).is_some();
        let mut config: Config =
            Config::deserialize(toml::Value::Table(table)).map_err(ConfigError::Environment)?;
        let mut warnings = dropin.warnings;
        warnings.extend(applied.warnings);
        config.source = Source {
            file: text,
            set_by: dropin.set.into_iter().chain(applied.set).collect(),
            warnings,
            notes: dropin.notes,
        };
        config.apply(overrides);
        if !metadata_kind_set && let Some(note) = registry2::serve_in_place(&mut config) {
            config.source.notes.push(note);
        }
        Ok(config)
    }

    fn apply(&mut self, overrides: &Overrides) {
        let mut by = |key: &str, flag: &str| {
            self.source.set_by.insert(key.into(), flag.into());
        };
        if overrides.addr.is_some() {
            by("server.addr", "--addr");
        }
        if overrides.root.is_some() {
            by("storage.root", "--root");
        }
        if overrides.guest.is_some() {
            by("server.guest", "--guest");
        }
        if overrides.htpasswd.is_some() {
            by("auth.htpasswd", "--htpasswd");
        }
        if overrides.tls_cert.is_some() {
            by("server.tls.cert", "--tls-cert");
        }
        if overrides.tls_key.is_some() {
            by("server.tls.key", "--tls-key");
        }
        if let Some(addr) = overrides.addr {
            self.server.addr = addr;
        }
        if let Some(root) = &overrides.root {
            self.storage.root = root.clone();
        }
        if let Some(guest) = &overrides.guest {
            self.server.guest = Some(guest.clone());
        }
        if overrides.read_only {
            self.server.read_only = true;
        }
        if let Some(htpasswd) = &overrides.htpasswd {
            self.auth.htpasswd = Some(htpasswd.clone());
        }
        if let Some(cert) = &overrides.tls_cert {
            self.server.tls.cert = Some(cert.clone());
        }
        if let Some(key) = &overrides.tls_key {
            self.server.tls.key = Some(key.clone());
        }
        if overrides.tls_self_signed {
            self.server.tls.self_signed = true;
        }
        self.server
            .tls
            .hostnames
            .extend(overrides.hostnames.iter().cloned());
        for proxy in &overrides.proxies {
            self.source
                .set_by
                .insert(format!("proxy[{}]", self.proxy.len()), "--proxy".into());
            self.proxy.push(proxy.clone());
        }
    }

    /// Reads the file: Berth's TOML, parsed strictly (so errors carry its
    /// line and column) into a table the environment can be layered onto,
    /// or registry:2's YAML, left to `registry2::apply`.
    fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if registry2::is_yaml(path, &text) {
            return Ok(ConfigFile::Registry2(path.to_path_buf(), text));
        }
        toml::from_str::<Config>(&text).map_err(|e| errors::in_file(path, &text, &e))?;
        let table =
            toml::from_str::<toml::Table>(&text).map_err(|e| errors::in_file(path, &text, &e))?;
        Ok(ConfigFile::Berth(table, path.to_path_buf(), text))
    }

    /// Every problem the configuration has on its own (no file is read),
    /// each located in the file, variable or flag that set its key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = check::problems(self);
        for problem in &mut problems {
            self.source.locate(problem);
        }
        problems
    }

    /// The resolved configuration as TOML, secrets masked.
    pub fn render(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
