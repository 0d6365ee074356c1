//! `BERTH_*` environment variables layered over the file's table.
//!
//! A variable of a known section (`BERTH_SERVER_*`, `BERTH_AUTH_*`, ...)
//! that names no key is an error, as a typo in the file is; any other
//! unknown `BERTH_*` variable is a warning. `BERTH_BUILD_*` (build-time
//! knobs) and `BERTH_TEST_*` (test knobs) are never configuration and pass
//! without a word.
//!
//! `BERTH_PROXY` is the one variable that is not a key: one or more
//! `--proxy` SPECs (`PREFIX=URL` or `URL`), separated by commas or
//! whitespace, each appended to `[[proxy]]` after the file's entries.

use super::ConfigError;
use super::check::Problem;

/// What a key's value must look like, checked before it enters the table so
/// that a bad value is reported with the variable's name.
#[derive(Clone, Copy)]
enum ValueKind {
    Text,
    Bool,
    Addr,
    Span,
    Int,
    /// Comma-separated.
    List,
    OneOf(&'static [&'static str]),
}

/// Every settable key. A new field in `Config` needs a line here.
const KEYS: &[(&str, ValueKind)] = &[
    ("server.addr", ValueKind::Addr),
    ("server.guest", ValueKind::Text),
    ("server.read_only", ValueKind::Bool),
    ("server.delete", ValueKind::Bool),
    ("server.push", ValueKind::Bool),
    ("server.tls.cert", ValueKind::Text),
    ("server.tls.key", ValueKind::Text),
    ("server.tls.self_signed", ValueKind::Bool),
    ("server.tls.hostnames", ValueKind::List),
    ("server.trusted_proxies", ValueKind::List),
    ("server.health_interval", ValueKind::Span),
    ("server.observe.metrics", ValueKind::Bool),
    ("server.observe.debug_addr", ValueKind::Addr),
    ("server.observe.ui", ValueKind::Bool),
    ("server.cors.allowed_origins", ValueKind::List),
    ("server.cors.allowed_methods", ValueKind::List),
    ("server.cors.allowed_headers", ValueKind::List),
    ("server.cors.exposed_headers", ValueKind::List),
    ("server.cors.allow_credentials", ValueKind::Bool),
    ("server.cors.max_age", ValueKind::Span),
    (
        "storage.kind",
        ValueKind::OneOf(&["filesystem", "s3", "memory"]),
    ),
    ("storage.root", ValueKind::Text),
    ("storage.s3.bucket", ValueKind::Text),
    ("storage.s3.endpoint", ValueKind::Text),
    ("storage.s3.region", ValueKind::Text),
    ("storage.s3.prefix", ValueKind::Text),
    ("storage.s3.access_key_id", ValueKind::Text),
    ("storage.s3.secret_access_key", ValueKind::Text),
    ("storage.s3.allow_http", ValueKind::Bool),
    ("storage.s3.redirect", ValueKind::Bool),
    (
        "metadata.kind",
        ValueKind::OneOf(&["sqlite", "layout", "postgres"]),
    ),
    ("metadata.postgres.url", ValueKind::Text),
    ("metadata.postgres.pool_size", ValueKind::Int),
    ("metadata.postgres.statement_timeout", ValueKind::Span),
    ("gc.enabled", ValueKind::Bool),
    ("gc.interval", ValueKind::Span),
    ("gc.grace", ValueKind::Span),
    ("gc.upload_grace", ValueKind::Span),
    ("gc.untagged", ValueKind::Bool),
    ("gc.upload_max_age", ValueKind::Span),
    ("auth.htpasswd", ValueKind::Text),
    ("auth.mode", ValueKind::OneOf(&["token", "basic"])),
    ("auth.anonymous_pull", ValueKind::Bool),
    ("auth.realm", ValueKind::Text),
    ("auth.token.realm", ValueKind::Text),
    ("auth.token.service", ValueKind::Text),
    ("auth.token.issuer", ValueKind::Text),
    ("auth.token.public_key", ValueKind::Text),
    ("auth.token.jwks", ValueKind::Text),
    ("auth.token.lifetime", ValueKind::Span),
    ("auth.token.signing_key", ValueKind::Text),
    ("limits.guest_memory_mib", ValueKind::Int),
    ("limits.guest_fuel", ValueKind::Int),
    ("limits.max_header_bytes", ValueKind::Int),
    ("limits.header_timeout", ValueKind::Span),
    ("limits.idle_timeout", ValueKind::Span),
    ("limits.uploads_per_client", ValueKind::Int),
    ("log.level", ValueKind::Text),
    ("log.format", ValueKind::OneOf(&["text", "json"])),
    ("log.access", ValueKind::Bool),
];

/// Sections whose variables must all be known keys: a typo there is an
/// error, while other unknown `BERTH_*` variables are warned about.
const SECTIONS: &[&str] = &[
    "BERTH_SERVER_",
    "BERTH_STORAGE_",
    "BERTH_METADATA_",
    "BERTH_GC_",
    "BERTH_AUTH_",
    "BERTH_LIMITS_",
    "BERTH_LOG_",
    "BERTH_PROXY_",
];

/// The variable of `--proxy` SPECs.
pub const PROXY_VAR: &str = "BERTH_PROXY";

/// Prefixes of variables that are not configuration: build-time inputs and
/// test knobs.
const NOT_CONFIGURATION: &[&str] = &["BERTH_BUILD_", "BERTH_TEST_"];

/// `storage.s3.allow_http` → `BERTH_STORAGE_S3_ALLOW_HTTP`
pub fn var_name(key: &str) -> String {
    format!("BERTH_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Every key with its variable name.
#[cfg(test)]
pub fn keys() -> impl Iterator<Item = (&'static str, String)> {
    KEYS.iter().map(|(key, _)| (*key, var_name(key)))
}

/// What the environment did: the keys it set (with the variable that set
/// each) and warnings about variables it ignored.
#[derive(Debug, Default)]
pub struct Applied {
    pub set: Vec<(String, String)>,
    pub warnings: Vec<Problem>,
}

/// Sets each key named by a variable in `vars` in `table`. Every bad
/// variable is an error, all reported at once; unknown variables outside
/// the known sections are warnings.
pub fn apply(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Applied, ConfigError> {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with("BERTH_"))
        .filter(|(name, _)| !NOT_CONFIGURATION.iter().any(|p| name.starts_with(p)))
        .collect();
    // Deterministic order, so errors do not depend on the environment's.
    vars.sort();
    let mut problems = Vec::new();
    let mut set = Vec::new();
    for (name, value) in vars {
        if name == PROXY_VAR {
            match proxies(table, &value) {
                Ok(keys) => set.extend(keys.into_iter().map(|key| (key, name.clone()))),
                Err(why) => problems.extend(why.into_iter().map(|w| Problem::error(&name, w))),
            }
            continue;
        }
        let Some((key, kind)) = KEYS.iter().find(|(key, _)| var_name(key) == name) else {
            if SECTIONS.iter().any(|s| name.starts_with(s)) {
                problems.push(Problem::error(
                    &name,
                    format!("unknown configuration variable{}", suggestion(&name)),
                ));
            } else {
                problems.push(Problem::warning(
                    &name,
                    format!(
                        "not a configuration variable, ignored{} (build and test knobs use \
                         BERTH_BUILD_* and BERTH_TEST_*)",
                        suggestion(&name)
                    ),
                ));
            }
            continue;
        };
        match parse(&name, &value, *kind).and_then(|value| insert(table, key, value)) {
            Ok(()) => set.push((key.to_string(), name)),
            Err(ConfigError::BadVariable {
                name,
                value,
                expected,
            }) => problems.push(Problem::error(
                name,
                format!("{value:?} is not valid: expected {expected}"),
            )),
            Err(other) => problems.push(Problem::error(name, other.to_string())),
        }
    }
    if problems.iter().any(Problem::is_error) {
        return Err(ConfigError::Problems(problems));
    }
    Ok(Applied {
        set,
        warnings: problems,
    })
}

/// Appends the `BERTH_PROXY` SPECs in `value` to the table's `proxy`
/// array; returns the keys (`proxy[3]`) of the entries it added, or why
/// each SPEC that is not one is wrong.
fn proxies(table: &mut toml::Table, value: &str) -> Result<Vec<String>, Vec<String>> {
    let mut entries = Vec::new();
    let mut wrong = Vec::new();
    for spec in value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|spec| !spec.is_empty())
    {
        match super::ProxyConfig::from_spec(spec) {
            Ok(proxy) => {
                let mut entry = toml::Table::new();
                if let Some(prefix) = proxy.prefix {
                    entry.insert("prefix".into(), toml::Value::String(prefix));
                }
                entry.insert("url".into(), toml::Value::String(proxy.url));
                entries.push(toml::Value::Table(entry));
            }
            Err(why) => wrong.push(why),
        }
    }
    if entries.is_empty() && wrong.is_empty() {
        wrong
            .push("names no upstream: write PREFIX=URL or URL, several separated by commas".into());
    }
    if !wrong.is_empty() {
        return Err(wrong);
    }
    let list = table
        .entry("proxy")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    let toml::Value::Array(list) = list else {
        return Err(vec![
            "`proxy` in the file is not a list of [[proxy]] tables".into(),
        ]);
    };
    let first = list.len();
    let keys = (first..first + entries.len())
        .map(|index| format!("proxy[{index}]"))
        .collect();
    list.extend(entries);
    Ok(keys)
}

/// `; did you mean BERTH_X?` for a variable one edit or a swapped word
/// away from a known one.
fn suggestion(name: &str) -> String {
    KEYS.iter()
        .map(|(key, _)| var_name(key))
        .chain([PROXY_VAR.to_string()])
        .find(|known| close(known, name))
        .map(|known| format!("; did you mean {known}?"))
        .unwrap_or_default()
}

/// Whether `a` and `b` differ by at most one inserted, deleted or changed
/// character.
pub(super) fn close(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    a.len().max(b.len()) - prefix - suffix <= 1
}

fn parse(name: &str, value: &str, kind: ValueKind) -> Result<toml::Value, ConfigError> {
    let bad = |expected: String| ConfigError::BadVariable {
        name: name.to_string(),
        value: value.to_string(),
        expected,
    };
    match kind {
        ValueKind::Text => Ok(toml::Value::String(value.to_string())),
        ValueKind::Bool => match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" => Ok(toml::Value::Boolean(false)),
            _ => Err(bad("true or false".into())),
        },
        ValueKind::Addr => super::addr::parse(value)
            .map(|_| toml::Value::String(value.to_string()))
            .map_err(|_| bad(format!("an address: {}", super::addr::FORMS))),
        ValueKind::Span => value
            .parse::<super::Span>()
            .map(|_| toml::Value::String(value.to_string()))
            .map_err(bad),
        ValueKind::Int => value
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(toml::Value::Integer)
            .ok_or_else(|| bad("a whole number".into())),
        ValueKind::List => Ok(toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.to_string()))
                .collect(),
        )),
        ValueKind::OneOf(choices) if choices.contains(&value) => {
            Ok(toml::Value::String(value.to_string()))
        }
        ValueKind::OneOf(choices) => Err(bad(format!("one of {}", choices.join(", ")))),
    }
}

/// Sets `a.b.c` in `table`, creating the tables on the way.
fn insert(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(leaf) = parts.pop() else {
        return Ok(());
    };
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(ConfigError::Invalid(format!("`{part}` is not a table"))),
        };
    }
    current.insert(leaf.to_string(), value);
    Ok(())
}
