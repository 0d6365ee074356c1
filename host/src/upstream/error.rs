//! What can go wrong talking to an upstream. Every variant names the
//! upstream (its configured base URL), so a log line or a client's error
//! says which registry failed.

use reqwest_upstream as reqwest;

/// One upstream operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The settings cannot make a client (bad URL, unreadable CA file).
    #[error("upstream {upstream}: {reason}")]
    Config { upstream: String, reason: String },
    /// A repository name or reference outside the distribution grammar:
    /// refused before anything is sent.
    #[error("upstream {upstream}: {reason}")]
    Invalid { upstream: String, reason: String },
    /// No connection, a connect or read timeout, or a body that broke off.
    #[error("upstream {upstream} unreachable: {reason}")]
    Unreachable { upstream: String, reason: String },
    /// The TLS handshake failed (most often: a certificate nobody trusts).
    #[error("upstream {upstream}: TLS handshake failed: {reason}")]
    Tls { upstream: String, reason: String },
    /// 401 or 403 after authenticating as configured.
    #[error("upstream {upstream} refused access to {what}: {detail}")]
    Unauthorized {
        upstream: String,
        what: String,
        detail: String,
    },
    /// 404.
    #[error("upstream {upstream}: {what} not found")]
    NotFound { upstream: String, what: String },
    /// A body larger than the caller allows.
    #[error("upstream {upstream}: {what} is larger than {limit} bytes")]
    TooLarge {
        upstream: String,
        what: String,
        limit: u64,
    },
    /// The upstream broke the protocol: wrong digest, missing headers, an
    /// unreadable token answer.
    #[error("upstream {upstream}: {reason}")]
    Protocol { upstream: String, reason: String },
    /// Any other status (429, 5xx, ...).
    #[error("upstream {upstream} answered {status} for {what}{detail}")]
    Status {
        upstream: String,
        status: u16,
        what: String,
        /// `: CODE message` from the error body, or empty.
        detail: String,
    },
}

impl UpstreamError {
    /// Whether a later attempt may succeed without anything changing here
    /// (the upstream is down, slow or overloaded): a cache serves stale
    /// content on these.
    pub fn is_temporary(&self) -> bool {
        match self {
            UpstreamError::Unreachable { .. } => true,
            UpstreamError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Maps a transport error of reqwest.
    pub(super) fn transport(upstream: &str, err: &reqwest::Error) -> UpstreamError {
        let reason = chain(err);
        if let Some(tls) = tls_cause(err) {
            return UpstreamError::Tls {
                upstream: upstream.to_owned(),
                reason: format!("{tls} (set ca_file to the CA that signed its certificate)"),
            };
        }
        if err.is_builder() {
            return UpstreamError::Config {
                upstream: upstream.to_owned(),
                reason,
            };
        }
        // Nothing here asks reqwest to decode (no `.json()`), so its
        // "decode" errors are a body that broke off or stalled.
        let reason = if err.is_body() || err.is_decode() {
            format!("the body broke off: {reason}")
        } else {
            reason
        };
        UpstreamError::Unreachable {
            upstream: upstream.to_owned(),
            reason,
        }
    }
}

/// An error and its causes, `: `-joined (reqwest's own message alone only
/// says "error sending request").
pub(super) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}

/// The rustls error somewhere in the chain, if any. hyper-rustls wraps it
/// in an `io::Error`, whose `source()` skips it, so those are opened with
/// `get_ref`.
fn tls_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(tls) = e.downcast_ref::<tokio_rustls::rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(tls) = inner.downcast_ref::<tokio_rustls::rustls::Error>() {
                return Some(tls.to_string());
            }
            if let Some(found) = tls_cause(inner) {
                return Some(found);
            }
        }
        cause = e.source();
    }
    None
}
