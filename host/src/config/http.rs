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

/// What `[server.observe]`, `[server.cors]` and `server.headers` are wrong
/// about on their own.
pub fn problems(server: &super::ServerConfig, out: &mut Vec<super::Problem>) {
    use super::Problem;
    if server.observe.debug_addr == Some(server.addr) {
        out.push(Problem::error(
            "server.observe.debug_addr",
            format!(
                "{} is server.addr too: the debug listener needs an address of its own",
                server.addr
            ),
        ));
    }
    for (name, values) in &server.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            out.push(Problem::error(
                format!("server.headers.{name}"),
                format!("{name:?} is not an HTTP header name"),
            ));
        }
        if let Some(bad) = values
            .iter()
            .find(|v| http::HeaderValue::from_str(v).is_err())
        {
            out.push(Problem::error(
                format!("server.headers.{name}"),
                format!("{bad:?} is not an HTTP header value (control characters?)"),
            ));
        }
    }
    let cors = &server.cors;
    for origin in &cors.allowed_origins {
        if origin != "*" && !is_origin(origin) {
            out.push(Problem::error(
                "server.cors.allowed_origins",
                format!(
                    "{origin:?} is not an origin: write scheme://host[:port] as the browser \
                     sends it (https://ui.example.com), or \"*\""
                ),
            ));
        }
    }
    for (key, list) in [
        ("server.cors.allowed_methods", &cors.allowed_methods),
        ("server.cors.allowed_headers", &cors.allowed_headers),
        ("server.cors.exposed_headers", &cors.exposed_headers),
    ] {
        if http::HeaderValue::from_str(&list.join(", ")).is_err() {
            out.push(Problem::error(key, "holds characters no HTTP header may"));
        }
    }
}

/// `https://ui.example.com` or `http://localhost:8080`: a scheme, a host
/// and maybe a port, nothing after.
fn is_origin(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' '])
        && rest.parse::<http::uri::Authority>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Problem};

    fn errors(toml: &str) -> Vec<Problem> {
        let config: Config = toml::from_str(toml).expect("parses");
        config
            .problems()
            .into_iter()
            .filter(Problem::is_error)
            .collect()
    }

    #[test]
    fn origins_headers_and_the_debug_address_are_checked() {
        assert!(errors("[server.cors]\nallowed_origins = [\"https://ui.example.com\", \"*\", \"http://localhost:8080\"]\n").is_empty());
        for bad in ["ui.example.com", "https://ui.example.com/", "ftp://x"] {
            let found = errors(&format!("[server.cors]\nallowed_origins = [{bad:?}]\n"));
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert_eq!(found[0].key, "server.cors.allowed_origins");
        }
        let found = errors("[server.headers]\n\"Bad Name\" = [\"x\"]\n");
        assert_eq!(found.len(), 1, "{found:?}");
        let found = errors(
            "[server]\naddr = \"127.0.0.1:5000\"\n[server.observe]\ndebug_addr = \"127.0.0.1:5000\"\n",
        );
        assert_eq!(found[0].key, "server.observe.debug_addr", "{found:?}");
    }
}
