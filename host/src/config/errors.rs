//! Configuration errors, with the file position and key path where known.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `file:line:column: key: message`
    #[error("{0}")]
    File(String),
    #[error("environment variable {name}={value:?}: expected {expected}")]
    BadVariable {
        name: String,
        value: String,
        expected: String,
    },
    /// Several problems, one line each.
    #[error("{}", lines(.0))]
    Problems(Vec<super::check::Problem>),
    #[error("environment: {0}")]
    Environment(toml::de::Error),
    #[error("{0}")]
    Invalid(String),
}

fn lines(problems: &[super::check::Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Describes a parse error of `text` (read from `path`) as
/// `path:line:column: key: message`, naming the key at that position.
pub fn in_file(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let message = err.message().trim();
    let Some(span) = err.span() else {
        return ConfigError::File(format!("{}: {message}", path.display()));
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let key = key_at(text, span.start);
    let key = key.map(|k| format!("{k}: ")).unwrap_or_default();
    ConfigError::File(format!(
        "{}:{line}:{column}: {key}{message}",
        path.display()
    ))
}

/// The dotted key whose line contains byte `offset`: the nearest `[table]`
/// header above it joined with the name before `=` on that line.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut table = String::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        let trimmed = line.trim();
        // `[table]` and `[[array.of.tables]]` alike.
        if trimmed.starts_with('[')
            && let Some(header) = trimmed.trim_start_matches('[').split(']').next()
        {
            table = header.trim().to_string();
        }
        if (start..end).contains(&offset) || end == text.len() && offset >= end {
            let name = trimmed.split('=').next()?.trim();
            if trimmed.starts_with('[') || name.is_empty() || !trimmed.contains('=') {
                return (!table.is_empty()).then_some(table);
            }
            return Some(if table.is_empty() {
                name.to_string()
            } else {
                format!("{table}.{name}")
            });
        }
        start = end;
    }
    None
}

/// The line of `text` (a TOML document) where `key` is written:
/// `auth.rules[2].groups` is the `groups =` line of the third
/// `[[auth.rules]]`. A key the file leaves out gives the line of the
/// nearest enclosing table it does write, or `None`.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let document = toml::de::DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut value: Option<&toml::de::DeValue<'_>> = None;
    let mut found: Option<usize> = None;
    for segment in segments(key) {
        let next = match (segment, value) {
            (Segment::Name(name), None) => table
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == name)
                .map(|(k, v)| (k.span().start, v)),
            (Segment::Name(name), Some(toml::de::DeValue::Table(t))) => t
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == name)
                .map(|(k, v)| (k.span().start, v)),
            (Segment::Index(i), Some(toml::de::DeValue::Array(items))) => {
                items.get(i).map(|v| (v.span().start, v))
            }
            _ => None,
        };
        let Some((offset, next)) = next else {
            break;
        };
        found = Some(offset);
        match next.get_ref() {
            toml::de::DeValue::Table(t) => {
                table = t;
                value = Some(next.get_ref());
            }
            other => value = Some(other),
        }
    }
    found.map(|offset| text[..offset.min(text.len())].matches('\n').count() + 1)
}

#[derive(Debug, PartialEq)]
enum Segment<'a> {
    Name(&'a str),
    Index(usize),
}

/// `auth.rules[2].groups` → `auth`, `rules`, `2`, `groups`.
fn segments(key: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(Segment::Name(name));
        }
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Segment::Index(i));
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{key_at, line_of};

    const FILE: &str = "\
[server]
addr = \":5000\"

[auth]
htpasswd = \"/etc/htpasswd\"
groups = { dev = [\"bob\"] }

[[auth.rules]]
repositories = [\"a/**\"]
users = [\"*\"]

[[auth.rules]]
repositories = [\"b/**\"]
groups = [\"ops\"]

[[plugins]]
path = \"builtin:immutable-tags\"
settings = { patern = [\"v*\"] }
";

    #[test]
    fn finds_the_line_of_a_key() {
        assert_eq!(line_of(FILE, "server.addr"), Some(2));
        assert_eq!(line_of(FILE, "auth.htpasswd"), Some(5));
        assert_eq!(line_of(FILE, "auth.groups.dev"), Some(6));
        assert_eq!(line_of(FILE, "auth.rules[1].groups"), Some(14));
        assert_eq!(line_of(FILE, "auth.rules[0].users"), Some(10));
        assert_eq!(line_of(FILE, "plugins[0].settings.patern"), Some(18));
        // Not written: the nearest table that is (a `[[table]]` header).
        assert_eq!(line_of(FILE, "auth.rules[1].actions"), Some(12));
        assert_eq!(line_of(FILE, "storage.root"), None);
    }

    /// An array of tables names its key without the brackets.
    #[test]
    fn names_the_key_under_an_array_of_tables() {
        let at = |needle: &str| FILE.find(needle).expect("in FILE");
        assert_eq!(
            key_at(FILE, at("patern")).as_deref(),
            Some("plugins.settings")
        );
        assert_eq!(
            key_at(FILE, at("groups = [")).as_deref(),
            Some("auth.rules.groups")
        );
        assert_eq!(key_at(FILE, at("addr")).as_deref(), Some("server.addr"));
    }
}
