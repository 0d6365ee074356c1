//! What a parsed configuration can be checked for without touching
//! anything outside it: combinations that cannot work, access rules that
//! name nothing, and settings that would leave the registry open. Files,
//! budgets and plugins are checked by `crate::preflight`, which adds these.

use super::{AuthConfig, AuthMode, Config, MetadataKind, ProxyConfig, StorageKind, TokenConfig};
use reqwest_upstream::Url;
use std::fmt;

/// How bad a problem is: errors stop `serve` and fail `config check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong with the configuration, for one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// The setting (`auth.rules[2].groups`), or an environment variable.
    pub key: String,
    pub message: String,
    /// `file:line` where the key is written, once located.
    pub at: Option<String>,
}

impl Problem {
    pub fn error(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            key: key.into(),
            message: message.into(),
            at: None,
        }
    }

    pub fn warning(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(key, message)
        }
    }

    /// From an error whose text starts with the setting it is about
    /// (`auth.htpasswd: cannot read …`), as the loaders' errors do.
    pub fn from_keyed(error: impl fmt::Display) -> Self {
        let text = error.to_string();
        match text.split_once(": ") {
            Some((key, message)) if !key.contains(' ') => Self::error(key, message),
            _ => Self::error("", text),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    /// `berth.toml:7: auth.rules[0].groups: no group "ops" in auth.groups`,
    /// with `warning: ` in front of a warning.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem `config` has on its own, in the order of its sections.
pub fn problems(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    storage(config, &mut out);
    metadata(config, &mut out);
    tls(config, &mut out);
    auth(&config.auth, &mut out);
    limits(config, &mut out);
    log(config, &mut out);
    proxies(&config.proxy, &mut out);
    super::notifications::problems(&config.notifications, &mut out);
    super::http::problems(&config.server, &mut out);
    out
}

fn storage(config: &Config, out: &mut Vec<Problem>) {
    if config.storage.kind == StorageKind::S3 && config.storage.s3.bucket.is_none() {
        out.push(Problem::error(
            "storage.s3.bucket",
            "required when storage.kind = \"s3\"",
        ));
    }
    if config.storage.s3.redirect && config.storage.kind != StorageKind::S3 {
        out.push(Problem::error(
            "storage.s3.redirect",
            "needs storage.kind = \"s3\"",
        ));
    }
    if let Some(endpoint) = &config.storage.s3.endpoint
        && config.storage.kind == StorageKind::S3
    {
        let lower = endpoint.to_ascii_lowercase();
        if lower.starts_with("http://") && !config.storage.s3.allow_http {
            out.push(Problem::error(
                "storage.s3.endpoint",
                format!(
                    "{endpoint:?} is plain http: set storage.s3.allow_http = true \
                     (or use https://)"
                ),
            ));
        } else if !lower.starts_with("http://") && !lower.starts_with("https://") {
            out.push(Problem::error(
                "storage.s3.endpoint",
                format!(
                    "{endpoint:?} is not a URL like https://s3.example.com or http://127.0.0.1:9000"
                ),
            ));
        }
    }
    if config.storage.root.as_os_str().is_empty() {
        out.push(Problem::error("storage.root", "is empty"));
    }
}

fn metadata(config: &Config, out: &mut Vec<Problem>) {
    let pg = &config.metadata.postgres;
    if config.metadata.kind != MetadataKind::Postgres {
        if pg.url.is_some() {
            out.push(Problem::warning(
                "metadata.postgres.url",
                "not used while metadata.kind is not \"postgres\" (only by `berth metadata \
                 migrate --to postgres`)",
            ));
        }
        return;
    }
    match &pg.url {
        None => out.push(Problem::error(
            "metadata.postgres.url",
            "required when metadata.kind = \"postgres\" \
             (postgres://user:password@host:5432/database)",
        )),
        Some(url) => {
            if let Err(e) = url.expose().parse::<tokio_postgres::Config>() {
                out.push(Problem::error(
                    "metadata.postgres.url",
                    format!("{:?} is not a PostgreSQL URL: {e}", url.masked()),
                ));
            }
        }
    }
    if pg.pool_size == 0 {
        out.push(Problem::error(
            "metadata.postgres.pool_size",
            "must be at least 1",
        ));
    }
    if pg.statement_timeout.0.is_zero() {
        out.push(Problem::error(
            "metadata.postgres.statement_timeout",
            "must be more than 0 (a statement would never be cancelled)",
        ));
    }
}

fn tls(config: &Config, out: &mut Vec<Problem>) {
    let tls = &config.server.tls;
    if tls.cert.is_some() && tls.key.is_none() {
        out.push(Problem::error(
            "server.tls.cert",
            "needs server.tls.key (they go together)",
        ));
    }
    if tls.key.is_some() && tls.cert.is_none() {
        out.push(Problem::error(
            "server.tls.key",
            "needs server.tls.cert (they go together)",
        ));
    }
    if tls.self_signed && tls.cert.is_some() {
        out.push(Problem::error(
            "server.tls.self_signed",
            "excludes server.tls.cert: use one or the other",
        ));
    }
}

/// Settings that only mean something once logins are on. Without a user
/// source (`htpasswd`, `token.public_key`, `token.jwks`) Berth serves
/// everyone everything, so each of them set is an error rather than a
/// registry silently left open.
fn auth(auth: &AuthConfig, out: &mut Vec<Problem>) {
    let defaults = AuthConfig::default();
    let token_defaults = TokenConfig::default();
    if !auth.enabled() {
        let set: [(&str, bool); 9] = [
            ("auth.rules", !auth.rules.is_empty()),
            ("auth.anonymous_pull", auth.anonymous_pull),
            ("auth.groups", !auth.groups.is_empty()),
            ("auth.mode", auth.mode != defaults.mode),
            ("auth.realm", auth.realm != defaults.realm),
            ("auth.token.realm", auth.token.realm.is_some()),
            ("auth.token.signing_key", auth.token.signing_key.is_some()),
            (
                "auth.token.service",
                auth.token.service != token_defaults.service,
            ),
            (
                "auth.token.issuer",
                auth.token.issuer != token_defaults.issuer,
            ),
        ];
        for (key, _) in set.iter().filter(|(_, set)| *set) {
            out.push(Problem::error(
                *key,
                "needs a user source (auth.htpasswd, auth.token.public_key or \
                 auth.token.jwks): without one, logins are off and anyone may pull, push \
                 and delete",
            ));
        }
        if auth.token.lifetime != token_defaults.lifetime {
            out.push(Problem::error(
                "auth.token.lifetime",
                "needs a user source (auth.htpasswd): without one, Berth issues no tokens",
            ));
        }
    }
    let issues = auth.htpasswd.is_some() && auth.mode == AuthMode::Token;
    if auth.enabled() && !issues {
        if auth.token.signing_key.is_some() {
            out.push(Problem::warning(
                "auth.token.signing_key",
                "is not used: Berth signs tokens only for htpasswd users with auth.mode = \"token\"",
            ));
        }
        if auth.token.lifetime != token_defaults.lifetime {
            out.push(Problem::warning(
                "auth.token.lifetime",
                "is not used: Berth issues tokens only to htpasswd users with auth.mode = \"token\"",
            ));
        }
    }
    if auth.enabled() && auth.mode == AuthMode::Basic && auth.htpasswd.is_none() {
        out.push(Problem::error(
            "auth.mode",
            "\"basic\" needs auth.htpasswd (tokens of an external issuer are bearer tokens)",
        ));
    }
    if auth.htpasswd.is_some() && auth.token.lifetime.0 < std::time::Duration::from_secs(1) {
        out.push(Problem::error(
            "auth.token.lifetime",
            "must be at least 1s: tokens would expire before clients use them",
        ));
    }
    for (name, members) in &auth.groups {
        if name.is_empty() {
            out.push(Problem::error("auth.groups", "a group has an empty name"));
        }
        if members.iter().any(|m| m == "*") {
            out.push(Problem::error(
                format!("auth.groups.{name}"),
                "`*` is not a user name (rules take `users = [\"*\"]` for every user)",
            ));
        }
    }
    for (index, rule) in auth.rules.iter().enumerate() {
        let key = |field: &str| format!("auth.rules[{index}]{field}");
        if rule.users.is_empty() && rule.groups.is_empty() && !rule.anonymous {
            out.push(Problem::error(
                key(""),
                "names no users, groups or anonymous = true, so it grants nothing",
            ));
        }
        if rule.actions.is_empty() {
            out.push(Problem::error(
                key(".actions"),
                "lists no actions (pull, push, delete), so the rule grants nothing",
            ));
        }
        if rule.repositories.is_empty() {
            out.push(Problem::error(
                key(".repositories"),
                "lists no repositories (`**` is every one), so the rule grants nothing",
            ));
        }
        for pattern in &rule.repositories {
            if let Err(why) = repository_pattern(pattern) {
                out.push(Problem::error(
                    key(".repositories"),
                    format!("{pattern:?}: {why}"),
                ));
            }
        }
        for group in &rule.groups {
            if !auth.groups.contains_key(group) {
                let known: Vec<&str> = auth.groups.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none are defined".to_string()
                } else {
                    format!("there are {}", known.join(", "))
                };
                out.push(Problem::error(
                    key(".groups"),
                    format!("no group {group:?} in auth.groups ({known})"),
                ));
            }
        }
        if rule.users.iter().any(String::is_empty) {
            out.push(Problem::error(key(".users"), "an empty user name"));
        }
    }
}

fn limits(config: &Config, out: &mut Vec<Problem>) {
    if config.server.health_interval.0.is_zero() {
        out.push(Problem::error(
            "server.health_interval",
            "0 would probe the storage without a pause: use e.g. 10s",
        ));
    }
    if config.limits.max_header_bytes < 8192 {
        out.push(Problem::error(
            "limits.max_header_bytes",
            format!(
                "{} is too small: at least 8192",
                config.limits.max_header_bytes
            ),
        ));
    }
}

fn log(config: &Config, out: &mut Vec<Problem>) {
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        out.push(Problem::error(
            "log.level",
            format!(
                "{:?} is not a log filter like info, debug or berth=debug,info: {e}",
                config.log.level
            ),
        ));
    }
}

/// `[[proxy]]`: each entry on its own, then what the entries must not
/// share (prefixes, the unprefixed mirror, `registry` names). A clash is
/// reported on the later entry, naming the earlier one.
fn proxies(proxies: &[ProxyConfig], out: &mut Vec<Problem>) {
    for (index, proxy) in proxies.iter().enumerate() {
        proxy_entry(index, proxy, out);
    }
    let mut mirror: Option<usize> = None;
    for (index, proxy) in proxies.iter().enumerate() {
        let Some(prefix) = &proxy.prefix else {
            if let Some(first) = mirror {
                out.push(Problem::error(
                    format!("proxy[{index}]"),
                    format!(
                        "a second entry without prefix: proxy[{first}] already answers \
                         unprefixed names (give this one a prefix)"
                    ),
                ));
            } else {
                mirror = Some(index);
            }
            continue;
        };
        let earlier = proxies[..index].iter().enumerate().find_map(|(other, p)| {
            let theirs = p.prefix.as_deref()?;
            let clash = theirs == prefix || nested(theirs, prefix) || nested(prefix, theirs);
            clash.then_some((other, theirs))
        });
        if let Some((other, theirs)) = earlier {
            let message = if theirs == prefix {
                format!("{prefix:?} is also the prefix of proxy[{other}]")
            } else {
                format!(
                    "{prefix:?} and the prefix {theirs:?} of proxy[{other}] overlap: a name \
                     under both could come from either upstream"
                )
            };
            out.push(Problem::error(format!("proxy[{index}].prefix"), message));
        }
    }
    for (index, proxy) in proxies.iter().enumerate() {
        let Some(registry) = &proxy.registry else {
            continue;
        };
        let earlier = proxies[..index].iter().position(|p| {
            p.registry
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(registry))
        });
        if let Some(other) = earlier {
            out.push(Problem::error(
                format!("proxy[{index}].registry"),
                format!("{registry:?} is also the registry of proxy[{other}]"),
            ));
        }
    }
}

/// Whether repository path `inner` is under `outer` (`hub/library` under
/// `hub`).
fn nested(outer: &str, inner: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.starts_with('/'))
}

fn proxy_entry(index: usize, proxy: &ProxyConfig, out: &mut Vec<Problem>) {
    let key = |field: &str| format!("proxy[{index}].{field}");
    let url = proxy_url(&proxy.url);
    let shown = url.as_ref().map_or_else(|_| proxy.url.clone(), shown_url);
    if let Err(why) = &url {
        out.push(Problem::error(key("url"), why.clone()));
    }
    let plain = url.as_ref().is_ok_and(|u| u.scheme() == "http");
    if let Some(prefix) = &proxy.prefix
        && let Err(why) = proxy_prefix(prefix)
    {
        out.push(Problem::error(key("prefix"), format!("{prefix:?} {why}")));
    }
    if let Some(registry) = &proxy.registry
        && !is_host_and_port(registry)
    {
        out.push(Problem::error(
            key("registry"),
            format!(
                "{registry:?} is not a host name like docker.io or registry.example.com:5000 \
                 (the name clients pull from, without scheme or path)"
            ),
        ));
    }
    let has_password = proxy.password.is_some() || proxy.password_file.is_some();
    if proxy.password.is_some() && proxy.password_file.is_some() {
        out.push(Problem::error(
            key("password_file"),
            "excludes password: use one or the other",
        ));
    }
    if proxy.username.is_some() && !has_password {
        out.push(Problem::error(
            key("username"),
            "needs password or password_file (they go together)",
        ));
    }
    if proxy.username.is_none() {
        for (field, set) in [
            ("password", proxy.password.is_some()),
            ("password_file", proxy.password_file.is_some()),
        ] {
            if set {
                out.push(Problem::error(
                    key(field),
                    "needs username (they go together)",
                ));
            }
        }
    }
    if plain && (proxy.username.is_some() || has_password) {
        out.push(Problem::warning(
            key("username"),
            format!("credentials for {shown} are sent in clear: it is plain http://"),
        ));
    }
    if plain && proxy.ca_file.is_some() {
        out.push(Problem::warning(
            key("ca_file"),
            format!("is not used: {shown} is plain http://"),
        ));
    }
    if proxy.unused_after.is_some_and(|span| span.0.is_zero()) {
        out.push(Problem::error(
            key("unused_after"),
            "0 would forget every cached repository at once: leave it out to keep them, \
             or give a duration like \"30d\"",
        ));
    }
    if proxy.insecure {
        out.push(Problem::warning(
            key("insecure"),
            if plain {
                format!("is not used: {shown} is plain http://")
            } else {
                format!("certificates of {shown} are not verified")
            },
        ));
    }
}

/// The upstream's base URL: http or https, a host, optional port and path,
/// no query, fragment or credentials (they go in username and password).
fn proxy_url(text: &str) -> Result<Url, String> {
    const FORM: &str = "a URL like https://registry-1.docker.io or http://10.0.0.5:5000";
    let url = Url::parse(text).map_err(|e| format!("{text:?} is not {FORM}: {e}"))?;
    let shown = shown_url(&url);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{shown:?}: the scheme must be http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{shown:?} has no host: expected {FORM}"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{shown:?} carries credentials: set username and password (or password_file) instead"
        ));
    }
    if url.query().is_some() {
        return Err(format!("{shown:?} has a query (`?...`): expected {FORM}"));
    }
    if url.fragment().is_some() {
        return Err(format!(
            "{shown:?} has a fragment (`#...`): expected {FORM}"
        ));
    }
    Ok(url)
}

/// `url` for messages, with a password in it masked.
fn shown_url(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("****"));
    }
    url.to_string().trim_end_matches('/').to_string()
}

/// A prefix is a repository name (so `<prefix>/<name>` is one too).
fn proxy_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("is empty: leave prefix out for the mirror of unprefixed names".into());
    }
    if prefix.ends_with('/') || prefix.starts_with('/') {
        return Err("must not start or end with `/` (write `hub`, not `hub/`)".into());
    }
    if !berth_oci::grammar::is_valid_name(prefix) {
        return Err(
            "is not a repository path: lowercase letters and digits, separated by `.`, `_`, \
             `__` or `-` within a component and `/` between components"
                .into(),
        );
    }
    Ok(())
}

/// `docker.io`, `registry.example.com:5000`, `10.0.0.5:5000`, `[::1]:5000`.
fn is_host_and_port(text: &str) -> bool {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (text, None),
    };
    if port.is_some_and(|port| port.parse::<u16>().map_or(true, |p| p == 0)) {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Checks a repository glob against berth-glob's grammar (guest/glob):
/// components of a repository name (lowercase letters, digits, `.`, `_`,
/// `-`) with `*` and `?` inside a component, and `**` only as a whole
/// component. A pattern outside it would match nothing, or not what it
/// says (`team/**x` is not "everything under team").
pub fn repository_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an empty pattern matches no repository".into());
    }
    for component in pattern.split('/') {
        if component.is_empty() {
            return Err("has an empty path component (a leading, trailing or double `/`)".into());
        }
        if component.contains("**") && component != "**" {
            return Err(format!(
                "`**` must be a whole path component (as in `team/**`), not part of {component:?}"
            ));
        }
        if let Some(c) = component.chars().find(|c| {
            !(c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '_' | '-' | '*' | '?'))
        }) {
            return Err(format!(
                "{c:?} cannot occur in a repository name (lowercase letters, digits, `.`, `_`, `-`; \
                 globs `*`, `?`, `**`)"
            ));
        }
    }
    Ok(())
}

/// Checks a tag glob: tag characters (letters, digits, `_`, `.`, `-`) with
/// `*` and `?`.
pub fn tag_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an empty pattern matches no tag".into());
    }
    match pattern
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*' | '?')))
    {
        Some(c) => Err(format!(
            "{c:?} cannot occur in a tag (letters, digits, `_`, `.`, `-`; globs `*`, `?`)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        toml::from_str(toml).expect("config parses")
    }

    fn keys(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn the_default_configuration_has_no_problem() {
        assert_eq!(problems(&Config::default()), vec![]);
    }

    #[test]
    fn auth_settings_without_users_are_errors() {
        let found = problems(&config(
            "[auth]\nanonymous_pull = true\n[auth.token]\nrealm = \"https://x/token\"\n\
             [[auth.rules]]\nrepositories = [\"**\"]\nusers = [\"*\"]\nactions = [\"pull\"]\n",
        ));
        assert_eq!(
            keys(&found),
            ["auth.rules", "auth.anonymous_pull", "auth.token.realm"]
        );
        assert!(
            found[0]
                .message
                .contains("anyone may pull, push and delete")
        );
        // The same with a user source is fine.
        let fine = config(
            "[auth]\nhtpasswd = \"/etc/htpasswd\"\nanonymous_pull = true\n\
             [[auth.rules]]\nrepositories = [\"**\"]\nusers = [\"*\"]\nactions = [\"pull\"]\n",
        );
        assert_eq!(problems(&fine), vec![]);
    }

    #[test]
    fn rules_that_name_nothing_or_unknown_groups_are_errors() {
        let found = problems(&config(
            "[auth]\nhtpasswd = \"/h\"\ngroups = { dev = [\"bob\"] }\n\
             [[auth.rules]]\nrepositories = [\"team/**x\"]\ngroups = [\"ops\"]\nactions = [\"pull\"]\n\
             [[auth.rules]]\nrepositories = [\"a\"]\nactions = [\"push\"]\n\
             [[auth.rules]]\nusers = [\"*\"]\n",
        ));
        assert_eq!(
            keys(&found),
            [
                "auth.rules[0].repositories",
                "auth.rules[0].groups",
                "auth.rules[1]",
                "auth.rules[2].actions",
                "auth.rules[2].repositories",
            ]
        );
        assert!(found[1].message.contains("no group \"ops\""), "{found:?}");
        assert!(found[1].message.contains("there are dev"), "{found:?}");
    }

    #[test]
    fn token_settings_berth_does_not_use_are_warnings() {
        let found = problems(&config(
            "[auth.token]\npublic_key = \"/k.pem\"\nsigning_key = \"/s.pem\"\nlifetime = \"1h\"\n",
        ));
        assert_eq!(
            keys(&found),
            ["auth.token.signing_key", "auth.token.lifetime"]
        );
        assert!(found.iter().all(|p| !p.is_error()), "{found:?}");
    }

    #[test]
    fn a_plain_http_endpoint_needs_allow_http() {
        let s3 = "[storage]\nkind = \"s3\"\n[storage.s3]\nbucket = \"b\"\n";
        let found = problems(&config(&format!("{s3}endpoint = \"http://minio:9000\"\n")));
        assert_eq!(keys(&found), ["storage.s3.endpoint"]);
        assert!(found[0].message.contains("allow_http"), "{found:?}");
        let fine = format!("{s3}endpoint = \"http://minio:9000\"\nallow_http = true\n");
        assert_eq!(problems(&config(&fine)), vec![]);
        let found = problems(&config(&format!("{s3}endpoint = \"minio:9000\"\n")));
        assert_eq!(keys(&found), ["storage.s3.endpoint"]);
    }

    #[test]
    fn repository_globs_follow_the_glob_grammar() {
        for good in ["**", "team/**", "*/prod-*", "a/**/z", "app-?", "lib.x/a_b"] {
            assert_eq!(repository_pattern(good), Ok(()), "{good}");
        }
        for bad in ["", "team/**x", "**x", "a//b", "/a", "a/", "Team/*", "a b"] {
            assert!(repository_pattern(bad).is_err(), "{bad:?}");
        }
        assert!(tag_pattern("v*").is_ok());
        assert!(tag_pattern("v/1").is_err());
    }

    fn proxy_problems(toml: &str) -> Vec<Problem> {
        problems(&config(toml))
    }

    fn entry(lines: &str) -> String {
        format!("[[proxy]]\n{lines}\n")
    }

    #[test]
    fn a_valid_proxy_configuration_has_no_problem() {
        let text = [
            entry(
                "prefix = \"hub\"\nurl = \"https://registry-1.docker.io\"\nregistry = \"docker.io\"\n\
                 username = \"bob\"\npassword_file = \"/run/secrets/hub\"\ntag_ttl = \"0\"",
            ),
            entry(
                "prefix = \"ghcr/team\"\nurl = \"https://ghcr.io:443/\"\nregistry = \"ghcr.io\"\n\
                 ca_file = \"/etc/ca.pem\"",
            ),
            entry("prefix = \"hubx\"\nurl = \"http://10.0.0.5:5000/mirror\""),
            entry("url = \"https://mirror.internal\"\nregistry = \"[::1]:5000\""),
        ]
        .concat();
        assert_eq!(proxy_problems(&text), vec![]);
    }

    #[test]
    fn proxy_urls_must_be_http_or_https_base_urls() {
        for (url, says) in [
            ("registry-1.docker.io", "is not a URL like"),
            ("ftp://x", "the scheme must be http or https"),
            ("https://x/?a=b", "has a query"),
            ("https://x/#top", "has a fragment"),
            ("https://bob:hunter2@x", "carries credentials"),
            ("", "is not a URL like"),
        ] {
            let found = proxy_problems(&entry(&format!("url = {url:?}")));
            assert_eq!(keys(&found), ["proxy[0].url"], "{url}");
            assert!(found[0].message.contains(says), "{url}: {found:?}");
            assert!(!found[0].message.contains("hunter2"), "{found:?}");
        }
    }

    #[test]
    fn proxy_prefixes_are_repository_paths() {
        for prefix in ["hub/", "/hub", "Hub", "hub//x", "", "hub_-x", "a b"] {
            let found =
                proxy_problems(&entry(&format!("prefix = {prefix:?}\nurl = \"https://x\"")));
            assert_eq!(keys(&found), ["proxy[0].prefix"], "{prefix:?}");
        }
        let found = proxy_problems(&entry("prefix = \"hub/\"\nurl = \"https://x\""));
        assert!(found[0].message.contains("`/`"), "{found:?}");
    }

    #[test]
    fn proxy_prefixes_are_unique_and_do_not_nest() {
        let found = proxy_problems(
            &[
                entry("prefix = \"hub\"\nurl = \"https://a\""),
                entry("prefix = \"hub/library\"\nurl = \"https://b\""),
                entry("prefix = \"hub\"\nurl = \"https://c\""),
                entry("prefix = \"hubx\"\nurl = \"https://d\""),
                entry("prefix = \"q/r\"\nurl = \"https://e\""),
                entry("prefix = \"q\"\nurl = \"https://f\""),
            ]
            .concat(),
        );
        assert_eq!(
            keys(&found),
            ["proxy[1].prefix", "proxy[2].prefix", "proxy[5].prefix"]
        );
        assert!(found[0].message.contains("overlap"), "{found:?}");
        assert_eq!(found[1].message, "\"hub\" is also the prefix of proxy[0]");
        assert!(found[2].message.contains("proxy[4]"), "{found:?}");
    }

    #[test]
    fn at_most_one_proxy_without_prefix() {
        let found = proxy_problems(
            &[
                entry("url = \"https://a\""),
                entry("prefix = \"p\"\nurl = \"https://b\""),
                entry("url = \"https://c\""),
            ]
            .concat(),
        );
        assert_eq!(keys(&found), ["proxy[2]"]);
        assert!(found[0].message.contains("proxy[0]"), "{found:?}");
    }

    #[test]
    fn proxy_registries_are_unique_host_names() {
        let found = proxy_problems(
            &[
                entry("prefix = \"a\"\nurl = \"https://a\"\nregistry = \"docker.io\""),
                entry("prefix = \"b\"\nurl = \"https://b\"\nregistry = \"Docker.IO\""),
            ]
            .concat(),
        );
        assert_eq!(keys(&found), ["proxy[1].registry"]);
        assert!(found[0].message.contains("proxy[0]"), "{found:?}");
        for bad in [
            "https://docker.io",
            "docker.io/library",
            "x:0",
            "x:http",
            "-x.io",
            "",
        ] {
            let found = proxy_problems(&entry(&format!("url = \"https://x\"\nregistry = {bad:?}")));
            assert_eq!(keys(&found), ["proxy[0].registry"], "{bad:?}");
        }
        for good in [
            "docker.io",
            "localhost:5000",
            "10.0.0.5:5000",
            "[fd00::1]",
            "a-b.c",
        ] {
            assert!(is_host_and_port(good), "{good}");
        }
    }

    #[test]
    fn proxy_credentials_go_together() {
        let https = "url = \"https://x\"\n";
        for (lines, key) in [
            (
                "username = \"u\"\npassword = \"p\"\npassword_file = \"/p\"",
                "proxy[0].password_file",
            ),
            ("username = \"u\"", "proxy[0].username"),
            ("password = \"p\"", "proxy[0].password"),
            ("password_file = \"/p\"", "proxy[0].password_file"),
        ] {
            let found = proxy_problems(&entry(&format!("{https}{lines}")));
            assert_eq!(keys(&found), [key], "{lines}");
            assert!(found[0].is_error(), "{found:?}");
        }
    }

    #[test]
    fn insecure_plain_http_credentials_and_an_unused_ca_are_warnings() {
        let found = proxy_problems(&entry("url = \"https://x:5000\"\ninsecure = true"));
        assert_eq!(keys(&found), ["proxy[0].insecure"]);
        assert!(!found[0].is_error());
        assert_eq!(
            found[0].message,
            "certificates of https://x:5000 are not verified"
        );
        let found = proxy_problems(&entry(
            "url = \"http://x\"\nusername = \"u\"\npassword = \"hunter2\"\n\
             ca_file = \"/ca.pem\"",
        ));
        assert_eq!(keys(&found), ["proxy[0].username", "proxy[0].ca_file"]);
        assert!(found.iter().all(|p| !p.is_error()), "{found:?}");
        assert!(found[0].message.contains("sent in clear"), "{found:?}");
        assert!(found[1].message.contains("not used"), "{found:?}");
        assert!(!format!("{found:?}").contains("hunter2"));
    }

    #[test]
    fn problems_print_with_position_key_and_severity() {
        let mut p = Problem::error("auth.rules[2].groups", "no group \"ops\" in auth.groups");
        p.at = Some("berth.toml:14".into());
        assert_eq!(
            p.to_string(),
            "berth.toml:14: auth.rules[2].groups: no group \"ops\" in auth.groups"
        );
        let w = Problem::warning("BERTH_FOO", "not a configuration variable");
        assert_eq!(
            w.to_string(),
            "warning: BERTH_FOO: not a configuration variable"
        );
        let keyed = Problem::from_keyed("auth.htpasswd: cannot read /x: gone");
        assert_eq!(keyed.key, "auth.htpasswd");
        assert_eq!(keyed.message, "cannot read /x: gone");
    }
}
