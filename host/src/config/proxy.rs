//! `[[proxy]]`: upstream registries Berth pulls through and caches, from
//! the file, `berth serve --proxy SPEC` and `BERTH_PROXY`. Only the
//! configuration lives here; its checks are in `check` (and `preflight`
//! for the files it names), the cache itself elsewhere.

use super::Span;
use serde::{Deserialize, Serialize, Serializer};
use std::path::PathBuf;

/// How long a tag is trusted before it is checked upstream again.
pub const DEFAULT_TAG_TTL: Span = Span::secs(300);

/// One upstream registry, cached under `prefix` (or, without one, the
/// mirror for unprefixed names).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Local repositories `<prefix>/<name>` are `<name>` upstream. None:
    /// the mirror for unprefixed names (registry:2's proxy.remoteurl):
    /// local content first, the upstream on a miss. At most one entry
    /// without prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `https://registry-1.docker.io` (http or https, optional port,
    /// optional path prefix).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Never printed: `Debug` and the rendered configuration show `****`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "masked"
    )]
    pub password: Option<String>,
    /// A file whose first line is the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// How long a tag is trusted before it is checked again upstream.
    /// Default 5 minutes; 0 = check every time.
    #[serde(default = "default_tag_ttl")]
    pub tag_ttl: Span,
    /// The host name clients know this upstream by (`docker.io`), matched
    /// against containerd's `?ns=` parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// PEM file of CAs to trust for this upstream, besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification (logged loudly).
    #[serde(default)]
    pub insecure: bool,
    /// A cached repository nobody pulled for this long is deleted (its
    /// blobs then go to garbage collection). None: kept until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unused_after: Option<Span>,
}

fn default_tag_ttl() -> Span {
    DEFAULT_TAG_TTL
}

fn masked<S: Serializer>(password: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match password {
        Some(_) => s.serialize_str("****"),
        None => s.serialize_none(),
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            prefix: None,
            url: String::new(),
            username: None,
            password: None,
            password_file: None,
            tag_ttl: DEFAULT_TAG_TTL,
            registry: None,
            ca_file: None,
            insecure: false,
            unused_after: None,
        }
    }
}

/// The password masked.
impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("prefix", &self.prefix)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("password_file", &self.password_file)
            .field("tag_ttl", &self.tag_ttl)
            .field("registry", &self.registry)
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .field("unused_after", &self.unused_after)
            .finish()
    }
}

impl ProxyConfig {
    /// An entry with defaults from a command-line SPEC: `PREFIX=URL`, or
    /// just `URL` (the mirror for unprefixed names). A `=` counts as the
    /// separator only before any `://`, so a URL is never split. Only
    /// emptiness is refused here; the prefix and URL are checked with the
    /// rest of the configuration (`config::check`).
    pub fn from_spec(spec: &str) -> Result<ProxyConfig, String> {
        let spec = spec.trim();
        let (prefix, url) = match spec.split_once('=') {
            Some((prefix, url)) if !prefix.contains("://") => (Some(prefix.trim()), url.trim()),
            _ => (None, spec),
        };
        if prefix == Some("") {
            return Err(format!(
                "{spec:?} has an empty prefix: write PREFIX=URL, or just URL for the mirror of \
                 unprefixed names"
            ));
        }
        if url.is_empty() {
            return Err(format!(
                "{spec:?} names no upstream URL: write PREFIX=URL or URL, e.g. \
                 hub=https://registry-1.docker.io"
            ));
        }
        Ok(ProxyConfig {
            prefix: prefix.map(str::to_string),
            url: url.to_string(),
            ..ProxyConfig::default()
        })
    }

    /// The password: `password`, or the first line of `password_file`
    /// without its line end. `None` without either.
    pub fn password(&self) -> std::io::Result<Option<String>> {
        if let Some(password) = &self.password {
            return Ok(Some(password.clone()));
        }
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)?;
        Ok(Some(text.lines().next().unwrap_or_default().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_with_and_without_prefix() {
        let hub = ProxyConfig::from_spec("hub=https://registry-1.docker.io").expect("spec");
        assert_eq!(hub.prefix.as_deref(), Some("hub"));
        assert_eq!(hub.url, "https://registry-1.docker.io");
        assert_eq!(hub.tag_ttl, DEFAULT_TAG_TTL);
        let mirror = ProxyConfig::from_spec("https://x").expect("spec");
        assert_eq!(mirror.prefix, None);
        assert_eq!(mirror.url, "https://x");
        // A `=` after `://` is part of the URL (and the check refuses the
        // query later), never a prefix separator.
        let odd = ProxyConfig::from_spec("https://x/?a=b").expect("spec");
        assert_eq!((odd.prefix, odd.url.as_str()), (None, "https://x/?a=b"));
        for bad in ["", "=https://x", "hub=", " hub = "] {
            assert!(ProxyConfig::from_spec(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_password_comes_from_the_value_or_the_first_line_of_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\r\nsecond line\n").expect("write");
        let mut proxy = ProxyConfig {
            password_file: Some(file.clone()),
            ..ProxyConfig::default()
        };
        assert_eq!(proxy.password().expect("read").as_deref(), Some("s3cret"));
        std::fs::write(&file, " spaced \n").expect("write");
        assert_eq!(proxy.password().expect("read").as_deref(), Some(" spaced "));
        std::fs::write(&file, "").expect("write");
        assert_eq!(proxy.password().expect("read").as_deref(), Some(""));
        proxy.password_file = Some(dir.path().join("missing"));
        assert!(proxy.password().is_err());
        proxy.password_file = None;
        assert_eq!(proxy.password().expect("none"), None);
        proxy.password = Some("given".into());
        assert_eq!(proxy.password().expect("value").as_deref(), Some("given"));
    }

    #[test]
    fn debug_masks_the_password() {
        let proxy = ProxyConfig {
            url: "https://x".into(),
            username: Some("bob".into()),
            password: Some("hunter2".into()),
            ..ProxyConfig::default()
        };
        let shown = format!("{proxy:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("****") && shown.contains("bob"), "{shown}");
    }
}
