//! `[[notifications]]`: webhook endpoints receiving registry:2's event
//! envelope, with registry:2's endpoint keys. Only the configuration lives
//! here; the outbox and the senders are `crate::notify`.

use super::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One receiver of events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NotificationEndpoint {
    /// Names the endpoint in logs and metrics; also its outbox cursor, so
    /// renaming an endpoint starts it from the newest event.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Extra request headers (`Authorization`, ...), name → values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// How long one delivery may take.
    #[serde(default = "default_timeout")]
    pub timeout: Span,
    /// Failures in a row before the endpoint is logged as down (it is
    /// retried regardless: nothing is dropped).
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// Wait between retries of a failed delivery.
    #[serde(default = "default_backoff")]
    pub backoff: Span,
    /// Events not sent to this endpoint.
    #[serde(default)]
    pub ignore: IgnoreConfig,
    /// registry:2's `ignoredmediatypes`: the same as `ignore.mediatypes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignoredmediatypes: Vec<String>,
    /// Left in the file but sending nothing.
    #[serde(default)]
    pub disabled: bool,
}

/// Events an endpoint does not want.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IgnoreConfig {
    /// Target media types (`application/octet-stream` for layers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mediatypes: Vec<String>,
    /// `push`, `pull`, `mount` or `delete`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

fn default_timeout() -> Span {
    Span::secs(5)
}

fn default_threshold() -> u32 {
    10
}

fn default_backoff() -> Span {
    Span::secs(1)
}

/// What `[[notifications]]` is wrong about on its own: a URL that is not
/// http or https, names empty or given twice (a name is the endpoint's
/// outbox cursor), a threshold of 0, a zero timeout.
pub fn problems(endpoints: &[NotificationEndpoint], out: &mut Vec<super::Problem>) {
    use super::Problem;
    let mut seen = std::collections::BTreeMap::new();
    for (index, endpoint) in endpoints.iter().enumerate() {
        let key = |field: &str| format!("notifications[{index}].{field}");
        let name = endpoint.name.trim();
        if name.is_empty() {
            out.push(Problem::error(
                key("name"),
                "is empty: every endpoint needs a name (its delivery position is kept under it)",
            ));
        } else if let Some(first) = seen.insert(name.to_owned(), index) {
            out.push(Problem::error(
                key("name"),
                format!("{name:?} is already the name of notifications[{first}]"),
            ));
        }
        if let Err(why) = endpoint_url(&endpoint.url) {
            out.push(Problem::error(key("url"), why));
        }
        if endpoint.threshold == 0 {
            out.push(Problem::error(key("threshold"), "must be at least 1"));
        }
        if endpoint.timeout.0.is_zero() {
            out.push(Problem::error(key("timeout"), "must be longer than 0s"));
        }
        for action in &endpoint.ignore.actions {
            if !matches!(action.as_str(), "push" | "pull" | "mount" | "delete") {
                out.push(Problem::warning(
                    key("ignore.actions"),
                    format!("{action:?} is no action: events are push, pull, mount or delete"),
                ));
            }
        }
        for header in endpoint.headers.keys() {
            if reqwest_upstream::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                out.push(Problem::error(
                    key("headers"),
                    format!("{header:?} is not a valid header name"),
                ));
            }
        }
    }
}

/// An http or https URL with a host; credentials, if any, stay out of the
/// message.
fn endpoint_url(text: &str) -> Result<(), String> {
    const FORM: &str = "a URL like https://hooks.example.com/registry";
    let url = reqwest_upstream::Url::parse(text).map_err(|e| format!("is not {FORM}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("has no host: expected {FORM}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, url: &str) -> NotificationEndpoint {
        NotificationEndpoint {
            name: name.into(),
            url: url.into(),
            headers: BTreeMap::new(),
            timeout: default_timeout(),
            threshold: default_threshold(),
            backoff: default_backoff(),
            ignore: IgnoreConfig::default(),
            ignoredmediatypes: Vec::new(),
            disabled: false,
        }
    }

    fn keys(endpoints: &[NotificationEndpoint]) -> Vec<String> {
        let mut out = Vec::new();
        problems(endpoints, &mut out);
        out.into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn endpoints_need_a_web_url_a_unique_name_and_a_threshold() {
        assert!(keys(&[endpoint("a", "https://hooks.example.com/x")]).is_empty());
        assert!(keys(&[endpoint("a", "http://127.0.0.1:9000/")]).is_empty());
        assert_eq!(
            keys(&[endpoint("a", "ftp://example.com/")]),
            ["notifications[0].url"]
        );
        assert_eq!(
            keys(&[endpoint("a", "not a url")]),
            ["notifications[0].url"]
        );
        assert_eq!(
            keys(&[endpoint(" ", "http://h/")]),
            ["notifications[0].name"]
        );
        assert_eq!(
            keys(&[endpoint("a", "http://h/"), endpoint("a", "http://g/")]),
            ["notifications[1].name"]
        );
        let mut zero = endpoint("a", "http://h/");
        zero.threshold = 0;
        assert_eq!(keys(&[zero]), ["notifications[0].threshold"]);
    }
}
