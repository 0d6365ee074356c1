//! registry:2's event and envelope, field for field
//! (`notifications/event.go`): `{"events":[...]}`, each event with `id`,
//! `timestamp`, `action`, `target`, `request`, `actor` and `source`. Empty
//! fields are left out, as Go's `omitempty` leaves them out.

use serde::{Deserialize, Serialize};

/// The `Content-Type` of a POSTed envelope (registry:2 3.x).
pub const MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v2+json";

/// What a layer (any blob) is called in a target.
pub const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Push,
    Pull,
    Mount,
    Delete,
}

impl Action {
    /// The word the envelope and `ignore.actions` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Mount => "mount",
            Action::Delete => "delete",
        }
    }
}

/// One event, as registry:2 sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per event; a redelivery carries the same one.
    pub id: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub timestamp: String,
    pub action: Action,
    pub target: Target,
    pub request: RequestRecord,
    pub actor: Actor,
    pub source: Source,
}

/// What the event is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// The same as `size` (registry:2 keeps both).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub length: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// Where a mounted blob came from.
    #[serde(
        rename = "fromRepository",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub from_repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// When the request named a tag.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tag: String,
}

/// The request that caused the event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub id: String,
    /// The client's address (`ip:port` when the client is the peer).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub addr: String,
    /// The host the client asked for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    pub method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub useragent: String,
}

/// Who made the request: the logged-in user, or nobody (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Which registry instance saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// `hostname:port` of the listener.
    pub addr: String,
    /// Unique per server start.
    #[serde(rename = "instanceID")]
    pub instance_id: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The envelope around events already serialized (stored outbox payloads
/// are event JSON), without parsing them again.
pub fn envelope<'a>(events: impl IntoIterator<Item = &'a str>) -> String {
    let mut body = String::from("{\"events\":[");
    for (i, event) in events.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(event);
    }
    body.push_str("]}");
    body
}

/// What an endpoint's `ignore` rules look at, read back from a stored
/// payload.
#[derive(Deserialize)]
pub struct Head {
    pub action: Action,
    #[serde(default)]
    pub target: HeadTarget,
}

#[derive(Deserialize, Default)]
pub struct HeadTarget {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
}

/// A fresh id (a version 4 UUID in form): this process's random base plus
/// a counter, so a manifest GET pays no system call for its event's id.
/// Unique, not unpredictable, which is all an event or request id needs.
pub fn new_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: OnceLock<u128> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| uuid::Uuid::new_v4().as_u128());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let low = (base as u64).wrapping_add(n);
    let bits = (base & !u128::from(u64::MAX)) | u128::from(low);
    uuid::Builder::from_random_bytes(bits.to_be_bytes())
        .into_uuid()
        .to_string()
}

/// Now, as registry:2 writes times: `2026-12-05T15:32:39.228696526Z`.
pub fn now() -> String {
    crate::clock::rfc3339_nanos(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_version_4_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            let parsed = uuid::Uuid::parse_str(id).expect("a uuid");
            assert_eq!(parsed.get_version_num(), 4, "{id}");
        }
    }

    #[test]
    fn events_leave_out_what_is_empty_as_registry2_does() {
        let event = Event {
            id: "e1".into(),
            timestamp: "t".into(),
            action: Action::Delete,
            target: Target {
                digest: "sha256:ab".into(),
                repository: "a/b".into(),
                ..Target::default()
            },
            request: RequestRecord {
                id: "r1".into(),
                method: "DELETE".into(),
                ..RequestRecord::default()
            },
            actor: Actor::default(),
            source: Source {
                addr: "host:5000".into(),
                instance_id: "i".into(),
            },
        };
        let json = serde_json::to_string(&event).expect("serialize");
        assert_eq!(
            json,
            r#"{"id":"e1","timestamp":"t","action":"delete","target":{"digest":"sha256:ab","repository":"a/b"},"request":{"id":"r1","method":"DELETE"},"actor":{},"source":{"addr":"host:5000","instanceID":"i"}}"#
        );
        let body = envelope([json.as_str(), json.as_str()]);
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("envelope parses");
        assert_eq!(parsed["events"].as_array().map(Vec::len), Some(2));
        let head: Head = serde_json::from_str(&json).expect("head");
        assert_eq!(head.action, Action::Delete);
    }
}
