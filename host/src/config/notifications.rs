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
