//! What Berth does with each registry:2 setting: reads it (`translate.rs`
//! maps it), accepts it as not needed, reports it in the one warning of
//! settings it ignores, or refuses to start because serving without it
//! would be less safe than what the operator asked for.

/// The fate of a setting and of everything under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Mapped onto Berth's configuration by `translate.rs`.
    Read,
    /// Accepted: Berth does the job itself. The note is logged at INFO.
    Noted(&'static str),
    /// Not acted on: named in the one warning.
    Ignored,
    /// A table of driver parameters: the ones Berth reads are `Read`
    /// entries of their own, any other key is named in the warning.
    Open,
    /// Stops the start: without it the registry would be less protected
    /// than configured, or would serve the wrong store.
    Refused(&'static str),
}

const TOKEN: &str = "registry:2's token authentication is not taken over: serving without \
     it would let anyone in; configure Berth's [auth.token] (realm, service, issuer, public_key \
     or jwks) in a berth.toml instead";
const SILLY: &str =
    "the `silly` test login is not supported: serving without it would let anyone in";
const CLIENT_CAS: &str = "client certificates are not supported: serving without them would \
     let in clients without one";
const LETSENCRYPT: &str = "Berth does not obtain certificates from Let's Encrypt: serving \
     without it would be plain HTTP; give http.tls.certificate and http.tls.key";
const CIPHERS: &str = "Berth's TLS cannot be limited to a list of cipher suites (it offers \
     only TLS 1.2 and 1.3 AEAD suites with forward secrecy): remove the setting to accept them";
const MIDDLEWARE: &str = "registry:2 middleware is not supported: serving without it could \
     skip the checks or redirects it adds";
const DRIVER: &str = "Berth stores on the filesystem or in S3 only: serving would show an empty \
     registry instead of this store";

/// Every registry:2 setting Berth knows of. A path's fate is that of the
/// longest entry equal to it or above it.
pub const SETTINGS: &[(&str, Fate)] = &[
    ("version", Fate::Read),
    ("loglevel", Fate::Read),
    ("log.level", Fate::Read),
    ("log.formatter", Fate::Read),
    ("log.fields", Fate::Ignored),
    ("log.hooks", Fate::Ignored),
    ("log.accesslog", Fate::Ignored),
    ("log.reportcaller", Fate::Ignored),
    ("http.addr", Fate::Read),
    ("http.net", Fate::Read),
    (
        "http.secret",
        Fate::Noted(
            "http.secret is not needed: Berth keeps upload state in its store, where every host \
             sharing it finds it",
        ),
    ),
    ("http.tls.certificate", Fate::Read),
    ("http.tls.key", Fate::Read),
    ("http.tls.minimumtls", Fate::Read),
    ("http.tls.clientcas", Fate::Refused(CLIENT_CAS)),
    ("http.tls.letsencrypt", Fate::Refused(LETSENCRYPT)),
    ("http.tls.ciphersuites", Fate::Refused(CIPHERS)),
    ("http.host", Fate::Ignored),
    ("http.prefix", Fate::Ignored),
    ("http.relativeurls", Fate::Ignored),
    ("http.draintimeout", Fate::Ignored),
    ("http.headers", Fate::Read),
    ("http.debug", Fate::Ignored),
    ("http.debug.addr", Fate::Read),
    ("http.debug.prometheus.enabled", Fate::Read),
    ("http.debug.prometheus.path", Fate::Read),
    ("http.http2", Fate::Ignored),
    ("http.h2c", Fate::Ignored),
    ("storage.filesystem.rootdirectory", Fate::Read),
    ("storage.filesystem.maxthreads", Fate::Ignored),
    ("storage.inmemory", Fate::Read),
    ("storage.s3", Fate::Open),
    ("storage.s3.region", Fate::Read),
    ("storage.s3.bucket", Fate::Read),
    ("storage.s3.regionendpoint", Fate::Read),
    ("storage.s3.accesskey", Fate::Read),
    ("storage.s3.secretkey", Fate::Read),
    ("storage.s3.rootdirectory", Fate::Read),
    ("storage.s3.secure", Fate::Read),
    ("storage.s3.forcepathstyle", Fate::Read),
    ("storage.s3.v4auth", Fate::Read),
    ("storage.s3.encrypt", Fate::Read),
    ("storage.s3.skipverify", Fate::Read),
    ("storage.azure", Fate::Refused(DRIVER)),
    ("storage.gcs", Fate::Refused(DRIVER)),
    ("storage.swift", Fate::Refused(DRIVER)),
    ("storage.oss", Fate::Refused(DRIVER)),
    ("storage.delete.enabled", Fate::Read),
    ("storage.redirect.disable", Fate::Read),
    (
        "storage.cache",
        Fate::Noted("storage.cache is not needed: Berth keeps its own caches"),
    ),
    ("storage.tag", Fate::Ignored),
    ("storage.maintenance.uploadpurging.enabled", Fate::Read),
    ("storage.maintenance.uploadpurging.age", Fate::Read),
    ("storage.maintenance.uploadpurging.interval", Fate::Read),
    ("storage.maintenance.uploadpurging.dryrun", Fate::Read),
    ("storage.maintenance.readonly.enabled", Fate::Read),
    ("auth.htpasswd.path", Fate::Read),
    ("auth.htpasswd.realm", Fate::Read),
    ("auth.token", Fate::Refused(TOKEN)),
    ("auth.silly", Fate::Refused(SILLY)),
    ("middleware", Fate::Refused(MIDDLEWARE)),
    ("proxy.remoteurl", Fate::Read),
    ("proxy.username", Fate::Read),
    ("proxy.password", Fate::Read),
    ("proxy.ttl", Fate::Read),
    ("proxy.exec", Fate::Ignored),
    ("health.storagedriver.enabled", Fate::Read),
    ("health.storagedriver.interval", Fate::Read),
    ("health.storagedriver.threshold", Fate::Read),
    ("health.file", Fate::Ignored),
    ("health.http", Fate::Ignored),
    ("health.tcp", Fate::Ignored),
    ("notifications", Fate::Ignored),
    ("notifications.endpoints", Fate::Read),
    ("redis", Fate::Ignored),
    ("reporting", Fate::Ignored),
    ("validation", Fate::Ignored),
    ("compatibility", Fate::Ignored),
    ("catalog", Fate::Ignored),
    ("policy", Fate::Ignored),
];

/// Why `http.net: unix` is refused.
pub const UNIX_SOCKET: &str = "Berth listens on TCP only (http.net: tcp)";

/// Tables whose value may name one of their keys (`REGISTRY_STORAGE=s3`),
/// with the keys that are choices.
const CHOOSERS: &[(&str, &[&str])] = &[
    (
        "storage",
        &[
            "filesystem",
            "inmemory",
            "s3",
            "azure",
            "gcs",
            "swift",
            "oss",
        ],
    ),
    ("auth", &["htpasswd", "token", "silly"]),
];

/// Sections whose unknown `REGISTRY_*` variables are errors, as a typo
/// in a key of Berth's own file is.
const CHECKED: &[&str] = &["http", "storage", "auth", "proxy", "log", "health"];

/// The entry `path` falls under, with its fate.
pub fn fate(path: &str) -> Option<(&'static str, Fate)> {
    SETTINGS
        .iter()
        .filter(|(entry, _)| under(path, entry))
        .max_by_key(|(entry, _)| entry.len())
        .copied()
}

/// Whether registry:2 has a setting at `path`, or a table of them.
pub fn is_known(path: &str) -> bool {
    fate(path).is_some() || SETTINGS.iter().any(|(entry, _)| under(entry, path))
}

/// The choices of a table that may name one (`storage`, `auth`).
pub fn chooser(path: &str) -> Option<&'static [&'static str]> {
    CHOOSERS
        .iter()
        .find(|(table, _)| *table == path)
        .map(|(_, choices)| *choices)
}

pub fn in_checked_section(path: &str) -> bool {
    let section = path.split('.').next().unwrap_or_default();
    CHECKED.contains(&section)
}

/// A setting one typo away from `path`.
pub fn suggestion(path: &str) -> Option<String> {
    SETTINGS
        .iter()
        .map(|(entry, _)| *entry)
        .find(|entry| crate::config::env::close(entry, path))
        .map(str::to_owned)
}

/// `path` is `entry` or lies below it.
fn under(path: &str, entry: &str) -> bool {
    path == entry
        || path
            .strip_prefix(entry)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_entry_decides() {
        assert_eq!(
            fate("storage.s3.bucket"),
            Some(("storage.s3.bucket", Fate::Read))
        );
        assert_eq!(
            fate("storage.s3.chunksize"),
            Some(("storage.s3", Fate::Open))
        );
        assert_eq!(
            fate("notifications.events.includereferences"),
            Some(("notifications", Fate::Ignored))
        );
        assert!(matches!(
            fate("auth.token.realm"),
            Some(("auth.token", Fate::Refused(_)))
        ));
        assert_eq!(fate("storage.delete.enable"), None);
        assert!(is_known("storage") && is_known("storage.maintenance.readonly"));
        assert!(!is_known("port") && !is_known("storage.delete.enable"));
        assert_eq!(
            suggestion("storage.delete.enable").as_deref(),
            Some("storage.delete.enabled")
        );
    }
}
