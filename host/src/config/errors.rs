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
    #[error("unknown configuration variable {0}")]
    UnknownVariable(String),
    #[error("environment: {0}")]
    Environment(toml::de::Error),
    #[error("{0}")]
    Invalid(String),
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
        if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.split(']').next()) {
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
