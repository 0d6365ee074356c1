//! registry:2's configuration tree (its `config.yml` with the `REGISTRY_*`
//! variables laid over it) turned into the TOML table `Config`
//! deserializes. Every leaf of the tree is accounted for: read here,
//! accepted as not needed, named in the one warning, or refused
//! (`settings.rs` says which).

use serde_yaml_ng::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::env::{Origins, origin};
use super::settings::{self, Fate};
use crate::config::{Problem, Span, addr};

/// registry:2's storage root when `storage.filesystem` names none.
const DEFAULT_ROOTDIRECTORY: &str = "/var/lib/registry";
/// registry:2 expires what its proxy cached after a week.
const DEFAULT_PROXY_TTL: Span = Span::hours(168);
/// Failed storage checks in a row before `/health` fails, in Berth.
const HEALTH_THRESHOLD: u64 = 3;

/// What the tree gave.
#[derive(Debug, Default)]
pub struct Translation {
    pub table: toml::Table,
    /// The unprefixed `[[proxy]]` entry of `proxy.*` (without `url` when
    /// only the variables name a login for it).
    pub proxy: Option<toml::Table>,
    /// Berth key → what set it (`REGISTRY_HTTP_ADDR`, `config.yml (http.addr)`).
    pub set: Vec<(String, String)>,
    pub problems: Vec<Problem>,
    /// Accepted settings Berth does not need, logged at INFO.
    pub notes: Vec<String>,
    /// What set registry:2's S3 driver, when it is chosen: its store is
    /// registry:2's tree in the bucket.
    pub s3: Option<String>,
}

/// Translates `tree`. `whole`: it is a whole registry:2 configuration (a
/// `config.yml`), so registry:2's defaults apply where they differ from
/// Berth's (deletes off, S3 redirects on, `/var/lib/registry`); otherwise
/// only what the variables name is set.
pub fn translate(
    tree: &Mapping,
    whole: bool,
    origins: &Origins,
    file: Option<&Path>,
) -> Translation {
    let mut leaves = BTreeMap::new();
    flatten("", tree, &mut leaves);
    let mut cx = Cx {
        leaves,
        used: BTreeSet::new(),
        origins,
        file,
        whole,
        ignored: Vec::new(),
        out: Translation::default(),
    };
    cx.take("version");
    log(&mut cx);
    http(&mut cx);
    http_extras(&mut cx);
    notifications(&mut cx);
    storage(&mut cx);
    auth(&mut cx);
    proxy(&mut cx);
    health(&mut cx);
    cx.leftovers();
    cx.out
}

struct Cx<'a> {
    /// Dotted path → value; an empty table is a leaf too.
    leaves: BTreeMap<String, Value>,
    used: BTreeSet<String>,
    origins: &'a Origins,
    file: Option<&'a Path>,
    whole: bool,
    /// Settings for the one warning, as the operator wrote them.
    ignored: Vec<String>,
    out: Translation,
}

impl Cx<'_> {
    /// The value at `path`, which counts as read.
    fn take(&mut self, path: &str) -> Option<Value> {
        self.used.insert(path.to_owned());
        self.leaves.get(path).cloned()
    }

    /// Whether anything is written at or under `path` (an empty table
    /// there counts as read).
    fn present(&mut self, path: &str) -> bool {
        self.used.insert(path.to_owned());
        self.leaves.keys().any(|leaf| under(leaf, path))
    }

    /// How the operator wrote `path`: its variable, or the path itself.
    fn name(&self, path: &str) -> String {
        origin(self.origins, path).map_or_else(|| path.to_owned(), str::to_owned)
    }

    /// Whether `path` came from the file (no variable set it).
    fn in_file(&self, path: &str) -> bool {
        origin(self.origins, path).is_none()
    }

    /// What set `path`, for `Source::set_by`.
    fn source(&self, path: &str) -> String {
        match (origin(self.origins, path), self.file) {
            (Some(var), _) => var.to_owned(),
            (None, Some(file)) => format!("{} ({path})", file.display()),
            (None, None) => path.to_owned(),
        }
    }

    fn set(&mut self, key: &str, value: toml::Value, path: &str) {
        insert(&mut self.out.table, key, value);
        let source = self.source(path);
        self.out.set.push((key.to_owned(), source));
    }

    fn problem(&mut self, mut problem: Problem, path: &str) {
        if self.in_file(path)
            && let Some(file) = self.file
        {
            problem.at = Some(file.display().to_string());
        }
        self.out.problems.push(problem);
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        let key = self.name(path);
        self.problem(Problem::error(key, message), path);
    }

    fn ignore(&mut self, path: &str) {
        let name = self.name(path);
        if !self.ignored.contains(&name) {
            self.ignored.push(name);
        }
    }

    fn text(&mut self, path: &str) -> Option<String> {
        match self.take(path)? {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => None,
            _ => {
                self.error(path, "expected a single value, not a table or list");
                None
            }
        }
    }

    fn flag(&mut self, path: &str) -> Option<bool> {
        let value = self.take(path)?;
        let parsed = match &value {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Some(true),
                "false" | "no" | "0" => Some(false),
                _ => None,
            },
            Value::Null => return None,
            _ => None,
        };
        if parsed.is_none() {
            self.error(path, "expected true or false");
        }
        parsed
    }

    /// A Go duration (`168h`, `1h30m`), or Go's nanoseconds as a number.
    fn span(&mut self, path: &str) -> Option<Span> {
        let value = self.take(path)?;
        let parsed = match &value {
            Value::Number(n) => n
                .as_u64()
                .map(|ns| Span(std::time::Duration::from_nanos(ns)))
                .ok_or_else(|| format!("{n} is not a duration")),
            Value::String(s) => s.parse::<Span>(),
            _ => Err("expected a duration like 24h or 1h30m".to_owned()),
        };
        match parsed {
            Ok(span) => Some(span),
            Err(why) => {
                self.error(path, why);
                None
            }
        }
    }

    /// Sets `key` to the text at `path`, if any.
    fn copy_text(&mut self, path: &str, key: &str) {
        if let Some(text) = self.text(path) {
            self.set(key, toml::Value::String(text), path);
        }
    }

    fn copy_flag(&mut self, path: &str, key: &str) {
        if let Some(flag) = self.flag(path) {
            self.set(key, toml::Value::Boolean(flag), path);
        }
    }

    fn copy_span(&mut self, path: &str, key: &str) {
        if let Some(span) = self.span(path) {
            self.set(key, toml::Value::String(span.to_string()), path);
        }
    }

    /// Every leaf nothing read: noted, ignored (the one warning), refused,
    /// or no registry:2 setting at all.
    fn leftovers(&mut self) {
        let unread: Vec<String> = self
            .leaves
            .iter()
            .filter(|(leaf, _)| !self.used.contains(*leaf))
            // `auth:` or `health: {}` left empty sets nothing.
            .filter(|(leaf, value)| !(is_empty(value) && settings::is_known(leaf)))
            .map(|(leaf, _)| leaf.clone())
            .collect();
        let mut refused = BTreeSet::new();
        for leaf in unread {
            match settings::fate(&leaf) {
                Some((_, Fate::Noted(note))) => {
                    if !self.out.notes.iter().any(|n| n == note) {
                        self.out.notes.push(note.to_owned());
                    }
                }
                Some((_, Fate::Open)) => self.ignore(&leaf),
                // Named as written: the variable, or the file's setting.
                Some((entry, Fate::Ignored | Fate::Read)) => match origin(self.origins, &leaf) {
                    Some(_) => self.ignore(&leaf),
                    None => self.ignore(entry),
                },
                Some((entry, Fate::Refused(why))) => {
                    if refused.insert(entry) {
                        self.error(entry, why);
                    }
                }
                None => {
                    let hint = settings::suggestion(&leaf)
                        .map(|s| format!("; did you mean {s}?"))
                        .unwrap_or_default();
                    self.error(&leaf, format!("not a registry:2 setting{hint}"));
                }
            }
        }
        if !self.ignored.is_empty() {
            let list = std::mem::take(&mut self.ignored).join(", ");
            let mut warning =
                Problem::warning("", format!("registry:2 settings Berth ignores: {list}"));
            warning.at = self.file.map(|f| f.display().to_string());
            self.out.problems.push(warning);
        }
    }
}

fn log(cx: &mut Cx) {
    let level = match cx.text("log.level") {
        Some(level) => Some(("log.level", level)),
        None => cx.text("loglevel").map(|level| ("loglevel", level)),
    };
    cx.take("loglevel");
    if let Some((path, level)) = level {
        let filter = match level.trim().to_ascii_lowercase().as_str() {
            "panic" | "fatal" | "error" => "error",
            "warn" | "warning" => "warn",
            "info" => "info",
            "debug" => "debug",
            "trace" => "trace",
            _ => {
                cx.error(
                    path,
                    format!("{level:?} is not a log level: error, warn, info or debug"),
                );
                return;
            }
        };
        cx.set("log.level", toml::Value::String(filter.into()), path);
    }
    if let Some(formatter) = cx.text("log.formatter") {
        let format = match formatter.trim() {
            "text" => "text",
            // Logstash's format is JSON with its own field names.
            "json" | "logstash" => "json",
            other => {
                cx.error(
                    "log.formatter",
                    format!("{other:?} is not a formatter: text, json or logstash"),
                );
                return;
            }
        };
        cx.set(
            "log.format",
            toml::Value::String(format.into()),
            "log.formatter",
        );
    }
}

fn http(cx: &mut Cx) {
    if let Some(text) = cx.text("http.addr") {
        match addr::parse(&text) {
            Ok(_) => cx.set("server.addr", toml::Value::String(text), "http.addr"),
            Err(why) => cx.error("http.addr", why),
        }
    }
    match cx.text("http.net").as_deref().map(str::trim) {
        None | Some("tcp") => {}
        Some(_) => cx.error("http.net", settings::UNIX_SOCKET),
    }
    cx.copy_text("http.tls.certificate", "server.tls.cert");
    cx.copy_text("http.tls.key", "server.tls.key");
    match cx.text("http.tls.minimumtls").as_deref().map(str::trim) {
        // Berth's own minimum, TLS 1.2, is as strict or stricter.
        None | Some("tls1.0" | "tls1.1" | "tls1.2") => {}
        Some("tls1.3") => cx.error(
            "http.tls.minimumtls",
            "Berth accepts TLS 1.2 and 1.3 and cannot refuse 1.2: serving would accept \
             connections this setting refuses",
        ),
        Some(other) => cx.error(
            "http.tls.minimumtls",
            format!("{other:?} is not tls1.0, tls1.1, tls1.2 or tls1.3"),
        ),
    }
}

/// `http.debug` (the debug listener and its Prometheus switch) and
/// `http.headers` (added to every response).
fn http_extras(cx: &mut Cx) {
    if let Some(text) = cx.text("http.debug.addr") {
        match crate::config::addr::parse(&text) {
            Ok(_) => cx.set(
                "server.observe.debug_addr",
                toml::Value::String(text),
                "http.debug.addr",
            ),
            Err(why) => cx.error("http.debug.addr", why),
        }
    }
    if let Some(on) = cx.flag("http.debug.prometheus.enabled") {
        cx.set(
            "server.observe.metrics",
            toml::Value::Boolean(on),
            "http.debug.prometheus.enabled",
        );
    }
    if let Some(path) = cx.text("http.debug.prometheus.path")
        && path.trim() != "/metrics"
    {
        cx.ignore("http.debug.prometheus.path");
    }
    let headers: Vec<String> = cx
        .leaves
        .keys()
        .filter(|leaf| under(leaf, "http.headers") && *leaf != "http.headers")
        .cloned()
        .collect();
    for path in headers {
        let name = path.trim_start_matches("http.headers.").to_owned();
        let values = match cx.take(&path) {
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<String>>>(),
            Some(Value::String(s)) => Some(vec![s]),
            _ => None,
        };
        match values {
            Some(values) => cx.set(
                &format!("server.headers.{name}"),
                toml::Value::Array(values.into_iter().map(toml::Value::String).collect()),
                &path,
            ),
            None => cx.error(&path, "expected a list of header values"),
        }
    }
}

/// `notifications.endpoints`: registry:2's endpoint keys are Berth's
/// (`name`, `url`, `headers`, `timeout`, `threshold`, `backoff`,
/// `ignoredmediatypes`, `ignore`, `disabled`), so each entry becomes one
/// `[[notifications]]` as written; Berth's own checks judge the values.
fn notifications(cx: &mut Cx) {
    let path = "notifications.endpoints";
    let Some(endpoints) = cx.take(path) else {
        return;
    };
    let Value::Sequence(items) = endpoints else {
        cx.error(path, "expected a list of endpoints");
        return;
    };
    let mut entries = Vec::new();
    for item in items {
        match toml::Value::try_from(&item) {
            Ok(entry @ toml::Value::Table(_)) => entries.push(entry),
            _ => {
                cx.error(
                    path,
                    "each endpoint must be a table of registry:2's endpoint keys",
                );
                return;
            }
        }
    }
    cx.set("notifications", toml::Value::Array(entries), path);
}

fn storage(cx: &mut Cx) {
    let filesystem = cx.present("storage.filesystem");
    let memory = cx.present("storage.inmemory");
    let s3 = cx.present("storage.s3");
    if [filesystem, memory, s3].iter().filter(|d| **d).count() > 1 {
        cx.error(
            "storage",
            "names more than one storage driver (filesystem, inmemory, s3): keep one",
        );
    }
    if filesystem {
        cx.set(
            "storage.kind",
            toml::Value::String("filesystem".into()),
            "storage.filesystem",
        );
        match cx.text("storage.filesystem.rootdirectory") {
            Some(root) => cx.set(
                "storage.root",
                toml::Value::String(root),
                "storage.filesystem.rootdirectory",
            ),
            None if cx.whole => cx.set(
                "storage.root",
                toml::Value::String(DEFAULT_ROOTDIRECTORY.into()),
                "storage.filesystem",
            ),
            None => {}
        }
    }
    if memory {
        cx.set(
            "storage.kind",
            toml::Value::String("memory".into()),
            "storage.inmemory",
        );
    }
    if s3 {
        s3_driver(cx);
    } else {
        // Only the S3 driver redirects, in registry:2 as in Berth.
        cx.take("storage.redirect.disable");
    }
    match cx.flag("storage.delete.enabled") {
        Some(on) => cx.set(
            "server.delete",
            toml::Value::Boolean(on),
            "storage.delete.enabled",
        ),
        // registry:2 refuses deletes unless told otherwise.
        None if cx.whole => cx.set(
            "server.delete",
            toml::Value::Boolean(false),
            "storage.delete",
        ),
        None => {}
    }
    // `REGISTRY_STORAGE_MAINTENANCE_READONLY=true` as well as the map.
    let readonly = match cx.leaves.get("storage.maintenance.readonly") {
        Some(_) => "storage.maintenance.readonly",
        None => "storage.maintenance.readonly.enabled",
    };
    cx.copy_flag(readonly, "server.read_only");
    let purging = "storage.maintenance.uploadpurging";
    if cx.flag(&format!("{purging}.enabled")) == Some(false) {
        cx.ignore(&format!("{purging}.enabled"));
    }
    if cx.flag(&format!("{purging}.dryrun")) == Some(true) {
        cx.ignore(&format!("{purging}.dryrun"));
    }
    cx.copy_span(&format!("{purging}.age"), "gc.upload_max_age");
    // Berth purges uploads in its collection pass.
    cx.copy_span(&format!("{purging}.interval"), "gc.interval");
}

fn s3_driver(cx: &mut Cx) {
    cx.set(
        "storage.kind",
        toml::Value::String("s3".into()),
        "storage.s3",
    );
    cx.out.s3 = Some(cx.source("storage.s3"));
    cx.copy_text("storage.s3.region", "storage.s3.region");
    cx.copy_text("storage.s3.bucket", "storage.s3.bucket");
    cx.copy_text("storage.s3.accesskey", "storage.s3.access_key_id");
    cx.copy_text("storage.s3.secretkey", "storage.s3.secret_access_key");
    cx.copy_text("storage.s3.rootdirectory", "storage.s3.prefix");
    let secure = cx.flag("storage.s3.secure").unwrap_or(true);
    if let Some(endpoint) = cx.text("storage.s3.regionendpoint") {
        let lower = endpoint.to_ascii_lowercase();
        // registry:2 takes an endpoint without a scheme too, `secure`
        // choosing it.
        let endpoint = if lower.starts_with("http://") || lower.starts_with("https://") {
            endpoint
        } else if secure {
            format!("https://{endpoint}")
        } else {
            format!("http://{endpoint}")
        };
        let plain = endpoint.to_ascii_lowercase().starts_with("http://");
        cx.set(
            "storage.s3.endpoint",
            toml::Value::String(endpoint),
            "storage.s3.regionendpoint",
        );
        if plain {
            cx.set(
                "storage.s3.allow_http",
                toml::Value::Boolean(true),
                "storage.s3.regionendpoint",
            );
        }
    }
    if !secure {
        cx.set(
            "storage.s3.allow_http",
            toml::Value::Boolean(true),
            "storage.s3.secure",
        );
    }
    // Berth addresses a bucket path-style (`endpoint/bucket/key`).
    if cx.flag("storage.s3.forcepathstyle") == Some(false) {
        cx.ignore("storage.s3.forcepathstyle");
    }
    // Berth signs with SigV4 only.
    if cx.flag("storage.s3.v4auth") == Some(false) {
        cx.ignore("storage.s3.v4auth");
    }
    if cx.flag("storage.s3.skipverify") == Some(true) {
        cx.ignore("storage.s3.skipverify");
    }
    if cx.flag("storage.s3.encrypt") == Some(true) {
        cx.error(
            "storage.s3.encrypt",
            "Berth does not ask S3 for server-side encryption: objects would be stored \
             unencrypted unless the bucket encrypts by default; enable default encryption on \
             the bucket and remove this setting",
        );
    }
    match cx.flag("storage.redirect.disable") {
        Some(disable) => cx.set(
            "storage.s3.redirect",
            toml::Value::Boolean(!disable),
            "storage.redirect.disable",
        ),
        // registry:2 sends clients to the bucket unless told otherwise.
        None if cx.whole => cx.set(
            "storage.s3.redirect",
            toml::Value::Boolean(true),
            "storage.s3",
        ),
        None => {}
    }
}

fn auth(cx: &mut Cx) {
    if !cx.present("auth.htpasswd") {
        return;
    }
    match cx.text("auth.htpasswd.path") {
        Some(path) => cx.set(
            "auth.htpasswd",
            toml::Value::String(path),
            "auth.htpasswd.path",
        ),
        None => cx.error(
            "auth.htpasswd.path",
            "is required with auth.htpasswd: the file of users",
        ),
    }
    cx.copy_text("auth.htpasswd.realm", "auth.realm");
    // registry:2 asks for HTTP basic credentials on every request.
    cx.set(
        "auth.mode",
        toml::Value::String("basic".into()),
        "auth.htpasswd",
    );
}

fn proxy(cx: &mut Cx) {
    if !cx.present("proxy") {
        return;
    }
    let mut entry = toml::Table::new();
    let mut set = Vec::new();
    for (path, key) in [
        ("proxy.remoteurl", "url"),
        ("proxy.username", "username"),
        ("proxy.password", "password"),
    ] {
        if let Some(text) = cx.text(path) {
            entry.insert(key.into(), toml::Value::String(text));
            set.push((key, path));
        }
    }
    let ttl = match cx.span("proxy.ttl") {
        Some(span) => Some(span),
        None if entry.contains_key("url") => Some(DEFAULT_PROXY_TTL),
        None => None,
    };
    // registry:2 keeps what it cached forever with a ttl of 0.
    if let Some(ttl) = ttl.filter(|t| !t.0.is_zero()) {
        entry.insert("unused_after".into(), toml::Value::String(ttl.to_string()));
        set.push(("unused_after", "proxy.ttl"));
    }
    if entry.is_empty() {
        return;
    }
    if entry.contains_key("url") {
        // registry:2 takes no pushes as a pull-through cache; taking them
        // would let a push stand in for the upstream's image of that name.
        cx.set(
            "server.push",
            toml::Value::Boolean(false),
            "proxy.remoteurl",
        );
    } else if cx.whole {
        cx.error(
            "proxy.remoteurl",
            "is required with the other proxy settings",
        );
        return;
    }
    for (key, path) in set {
        let source = cx.source(path);
        cx.out.set.push((format!("proxy.{key}"), source));
    }
    cx.out.proxy = Some(entry);
}

fn health(cx: &mut Cx) {
    let driver = "health.storagedriver";
    if cx.flag(&format!("{driver}.enabled")) == Some(false) {
        cx.ignore(&format!("{driver}.enabled"));
    }
    cx.copy_span(&format!("{driver}.interval"), "server.health_interval");
    let threshold = format!("{driver}.threshold");
    if let Some(text) = cx.text(&threshold)
        && text.trim().parse::<u64>().ok() != Some(HEALTH_THRESHOLD)
    {
        cx.ignore(&threshold);
    }
}

/// Every leaf of `map` under `prefix`, by dotted path.
fn flatten(prefix: &str, map: &Mapping, out: &mut BTreeMap<String, Value>) {
    for (key, value) in map {
        let key = match key {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => format!("{other:?}"),
        };
        let path = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Mapping(inner) if !inner.is_empty() => flatten(&path, inner, out),
            _ => {
                out.insert(path, value.clone());
            }
        }
    }
}

/// Nothing written: `key:` or `key: {}`.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Mapping(map) => map.is_empty(),
        _ => false,
    }
}

/// `path` is `entry` or below it.
fn under(path: &str, entry: &str) -> bool {
    path == entry
        || path
            .strip_prefix(entry)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Sets `a.b.c` in `table`, making the tables on the way (replacing a
/// value in the way: the tree has one).
fn insert(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(leaf) = parts.pop() else {
        return;
    };
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let Some(next) = entry.as_table_mut() else {
            return;
        };
        current = next;
    }
    current.insert(leaf.to_owned(), value);
}
