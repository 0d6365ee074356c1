//! `[auth]`: who may do what. Off unless a password file or a token key is
//! configured, so `berth serve` alone stays an open local registry.

use super::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Users, as `htpasswd -B` writes them (bcrypt entries only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub htpasswd: Option<PathBuf>,
    /// How clients authenticate: `token` (the Docker token flow, with
    /// Berth's own token endpoint issuing to htpasswd users) or `basic`
    /// (HTTP basic on every request, as registry:2's htpasswd mode).
    pub mode: AuthMode,
    /// Anyone may pull every repository without logging in.
    pub anonymous_pull: bool,
    /// The realm of the basic challenge.
    pub realm: String,
    pub token: TokenConfig,
    /// Group name → user names, for rules.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Access rules; without any, every authenticated user may do
    /// everything (registry:2's htpasswd behaviour).
    pub rules: Vec<AccessRule>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            htpasswd: None,
            mode: AuthMode::Token,
            anonymous_pull: false,
            realm: "berth".into(),
            token: TokenConfig::default(),
            groups: BTreeMap::new(),
            rules: Vec::new(),
        }
    }
}

impl AuthConfig {
    /// Whether requests are checked at all.
    pub fn enabled(&self) -> bool {
        self.htpasswd.is_some() || self.token.public_key.is_some() || self.token.jwks.is_some()
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Token,
    Basic,
}

/// Bearer tokens per the Docker registry token specification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Where clients get tokens. Unset: Berth's own `/auth/token` on the
    /// host and scheme the client used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// The `service` of challenges and the audience tokens must carry.
    pub service: String,
    /// The issuer tokens must name (Berth's own tokens use it too).
    pub issuer: String,
    /// PEM public key (RSA or EC) of an external token server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PathBuf>,
    /// JWKS file of an external token server (keys chosen by `kid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<PathBuf>,
    /// How long tokens Berth issues stay valid.
    pub lifetime: Span,
    /// The P-256 private key (PKCS#8 PEM) Berth signs its tokens with.
    /// Unset: one made on first start under `<root>/auth/`. Hosts sharing
    /// one store share this file, so a token from one is good at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<PathBuf>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            realm: None,
            service: "berth".into(),
            issuer: "berth".into(),
            public_key: None,
            jwks: None,
            lifetime: Span::secs(300),
            signing_key: None,
        }
    }
}

/// Grants `actions` on repositories matching any of `repositories` to the
/// listed users and groups (`*` is every authenticated user) and, if
/// `anonymous`, to callers without credentials.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessRule {
    /// Globs: `*` matches within one path component, `**` across them.
    pub repositories: Vec<String>,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub anonymous: bool,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// `[server.tls]`: HTTPS with given files, or with a CA and certificate
/// Berth makes itself on first start.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Create `<root>/tls/ca.crt` and a server certificate signed by it.
    pub self_signed: bool,
    /// Names and IP addresses the self-signed certificate is valid for
    /// (always with `localhost`, `127.0.0.1` and `::1`).
    pub hostnames: Vec<String>,
}

impl TlsConfig {
    pub fn enabled(&self) -> bool {
        self.self_signed || self.cert.is_some()
    }
}

/// `[limits]`: what one request or client may cost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Linear memory cap of one guest instance, in MiB.
    pub guest_memory_mib: u64,
    /// Wasm fuel (roughly, instructions) one request's guest may burn.
    pub guest_fuel: u64,
    /// Largest request head (request line and headers) accepted.
    pub max_header_bytes: u64,
    /// Time a client has to send its request head (slowloris).
    pub header_timeout: Span,
    /// A connection that sends and receives nothing this long is closed.
    pub idle_timeout: Span,
    /// Upload requests (POST/PATCH/PUT on blobs/uploads) one client
    /// address may have in flight at once.
    pub uploads_per_client: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            guest_memory_mib: 128,
            guest_fuel: 20_000_000_000,
            max_header_bytes: 64 << 10,
            header_timeout: Span::secs(30),
            idle_timeout: Span::secs(120),
            uploads_per_client: 32,
        }
    }
}
