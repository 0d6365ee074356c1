//! `berth health`: asks a running server for `/health`, the liveness probe
//! a container's `HEALTHCHECK` runs (the image has no shell and no curl).
//!
//! The server is the one the configuration describes unless a URL is
//! given: an address bound to every interface is reached on loopback, and
//! HTTPS is used when TLS is configured. The probe only reads a status from
//! a server on the same host (or the one named), so it accepts whatever
//! certificate that server shows: a self-signed one, or one issued for a
//! public name that does not cover 127.0.0.1.

use crate::config::Config;
use reqwest_upstream as reqwest;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long the whole probe may take: a HEALTHCHECK that hangs is worse
/// than one that fails, and a healthy server answers in microseconds.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    /// Why it is unhealthy, from its error body (empty on success).
    pub detail: String,
}

impl Answer {
    /// Healthy means exactly 200: a redirect or a 204 is some other server.
    pub fn healthy(&self) -> bool {
        self.status == reqwest::StatusCode::OK
    }
}

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("{url}: no answer within {}s", TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("{url}: {cause}")]
    Request { url: String, cause: String },
}

/// The `/health` URL to ask: `--url` (a server's base URL, or its
/// `/health` itself), else the configured address.
pub fn url(config: &Config, given: Option<&str>) -> String {
    match given {
        Some(base) => {
            let base = base.trim_end_matches('/');
            if base.ends_with("/health") {
                base.to_owned()
            } else {
                format!("{base}/health")
            }
        }
        None => {
            let scheme = if config.server.tls.enabled() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}/health", reachable(config.server.addr))
        }
    }
}

/// Where a client on this host reaches a server bound to `addr`: an
/// unspecified address (`:5000`, `0.0.0.0`, `::`) listens on loopback too.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// `GET url` within [`TIMEOUT`].
pub async fn probe(url: &str) -> Result<Answer, ProbeError> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        // A container's HTTP(S)_PROXY must not catch a loopback probe.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        // See the module comment: a local liveness probe, not a client that
        // trusts what it reads.
        .danger_accept_invalid_certs(true)
        .user_agent(concat!("berth-health/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProbeError::Client(causes(&e)))?;
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            ProbeError::Timeout {
                url: url.to_owned(),
            }
        } else {
            ProbeError::Request {
                url: url.to_owned(),
                // The URL leads the message already.
                cause: causes(&e.without_url()),
            }
        }
    };
    let response = client.get(url).send().await.map_err(failed)?;
    let status = response.status();
    if status == reqwest::StatusCode::OK {
        return Ok(Answer {
            status,
            detail: String::new(),
        });
    }
    // The body says why (a 503 names the storage check that failed); a
    // body that does not come in time only loses the detail.
    let body = response.bytes().await.unwrap_or_default();
    Ok(Answer {
        status,
        detail: detail(&body),
    })
}

/// One line from an error body: the spec's `errors[0].message`, else the
/// start of the text.
fn detail(body: &[u8]) -> String {
    const MAX: usize = 200;
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned));
    let text = message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", &line[..end]),
        None => line,
    }
}

/// An error and its causes on one line: reqwest's own message alone says
/// only "error sending request".
fn causes(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::resolve(None, vars, &Overrides::default()).expect("config")
    }

    #[test]
    fn asks_loopback_for_an_unspecified_address() {
        let cases = [
            ("0.0.0.0:5000", "http://127.0.0.1:5000/health"),
            (":5001", "http://127.0.0.1:5001/health"),
            ("[::]:5002", "http://[::1]:5002/health"),
            ("10.1.2.3:80", "http://10.1.2.3:80/health"),
            ("[::1]:5003", "http://[::1]:5003/health"),
        ];
        for (addr, want) in cases {
            assert_eq!(url(&config(&[("BERTH_SERVER_ADDR", addr)]), None), want);
        }
        assert_eq!(url(&config(&[]), None), "http://127.0.0.1:5000/health");
    }

    #[test]
    fn https_when_tls_is_configured() {
        let tls = config(&[
            ("BERTH_SERVER_ADDR", ":5443"),
            ("BERTH_SERVER_TLS_SELF_SIGNED", "true"),
        ]);
        assert_eq!(url(&tls, None), "https://127.0.0.1:5443/health");
    }

    #[test]
    fn a_given_url_wins() {
        let any = config(&[("BERTH_SERVER_ADDR", ":6000")]);
        for (given, want) in [
            ("http://h:1", "http://h:1/health"),
            ("http://h:1/", "http://h:1/health"),
            ("https://h:1/health", "https://h:1/health"),
            ("http://h:1/health/", "http://h:1/health"),
        ] {
            assert_eq!(url(&any, Some(given)), want, "{given}");
        }
    }

    #[test]
    fn detail_is_one_short_line() {
        let body = br#"{"errors":[{"code":"UNAVAILABLE","message":"3 storage checks\nfailed"}]}"#;
        assert_eq!(detail(body), "3 storage checks failed");
        assert_eq!(detail(b"plain\n text "), "plain text");
        let long = detail("x".repeat(500).as_bytes());
        assert_eq!(long.len(), 203);
        assert!(long.ends_with("..."));
    }

    #[tokio::test]
    async fn nothing_listening_is_an_error_naming_the_url() {
        // A port that was free a moment ago: bind, note it, release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("ephemeral port")
            .port();
        let url = format!("http://127.0.0.1:{port}/health");
        let err = probe(&url).await.expect_err("nothing listens");
        assert!(matches!(err, ProbeError::Request { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&url), "{err}");
    }
}
