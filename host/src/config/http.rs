//! What the HTTP front adds around the registry: registry:2's
//! `http.headers` on every response, CORS for single-page registry UIs,
//! the separate debug listener for `/metrics` and `/debug/health`, the web
//! UI and the metrics switch.

use super::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// `[server.observe]`: what the server shows about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ObserveConfig {
    /// Prometheus metrics at `/metrics`.
    pub metrics: bool,
    /// A second listener (registry:2's `http.debug.addr`) for `/metrics`
    /// and `/debug/health`; when set, neither is on the main listener.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::addr::deserialize_optional"
    )]
    pub debug_addr: Option<SocketAddr>,
    /// The web UI at `/ui/`.
    pub ui: bool,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            debug_addr: None,
            ui: true,
        }
    }
}

/// `[server.cors]`: which browser origins may call the registry API
/// (joxit/docker-registry-ui and the like). Empty `allowed_origins`: no
/// CORS headers at all, as registry:2 without `http.headers` CORS entries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// `https://ui.example.com`, or `*` for any origin.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub exposed_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` (never with `*`).
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    pub max_age: Span,
}

impl Default for CorsConfig {
    fn default() -> Self {
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: strings(&["HEAD", "GET", "OPTIONS", "DELETE"]),
            allowed_headers: strings(&["Authorization", "Accept", "Cache-Control"]),
            exposed_headers: strings(&["Docker-Content-Digest", "Link", "Content-Length"]),
            allow_credentials: false,
            max_age: Span::secs(600),
        }
    }
}

/// registry:2's `http.headers`: name → values, added to every response.
pub type ExtraHeaders = BTreeMap<String, Vec<String>>;
