//! Berth as a drop-in for registry:2's configuration: its `config.yml`
//! (`berth serve --config /etc/docker/registry/config.yml`) and its
//! `REGISTRY_*` variables, translated into the table Berth's own file
//! gives, so that `BERTH_*`, flags and checks apply unchanged on top:
//! file < `REGISTRY_*` < `BERTH_*` < flags.
//!
//! - `env.rs`: `REGISTRY_*` laid over registry:2's tree;
//! - `settings.rs`: what becomes of each registry:2 setting;
//! - `translate.rs`: the tree → Berth's keys;
//! - `in_place.rs`: a root holding registry:2's tree is served in place.
//!
//! Settings Berth does not act on are named in one warning; those whose
//! absence would leave the registry less protected stop the start.

mod env;
mod in_place;
mod settings;
mod translate;

pub use in_place::{METADATA_DB, REGISTRY2_TREE, serve_in_place};

use super::ConfigError;
use super::check::Problem;
use serde_yaml_ng::{Mapping, Value};
use std::path::Path;

/// What registry:2's configuration did to the table.
#[derive(Debug, Default)]
pub struct Applied {
    /// Berth key → what set it.
    pub set: Vec<(String, String)>,
    /// The one warning of ignored settings, unknown `REGISTRY_*` names.
    pub warnings: Vec<Problem>,
    /// Accepted settings Berth does not need, for INFO.
    pub notes: Vec<String>,
}

/// Whether the configuration file at `path` is registry:2's YAML: by its
/// extension, or by registry:2's `version: 0.1` line.
pub fn is_yaml(path: &Path, text: &str) -> bool {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if matches!(extension.as_deref(), Some("yml" | "yaml")) {
        return true;
    }
    text.lines().any(|line| {
        line.strip_prefix("version:")
            .map(|v| v.trim().trim_matches(['"', '\'']))
            == Some("0.1")
    })
}

/// Lays registry:2's configuration onto `table`: the YAML `file` (path
/// and text; `table` is then empty) with the `REGISTRY_*` variables of
/// `vars` over it, or, with Berth's own file, the variables alone.
pub fn apply(
    table: &mut toml::Table,
    file: Option<(&Path, &str)>,
    vars: &[(String, String)],
) -> Result<Applied, ConfigError> {
    let mut tree = match file {
        Some((path, text)) => parse(path, text)?,
        None => Mapping::new(),
    };
    let (origins, mut problems) = env::overlay(&mut tree, vars);
    if file.is_none() && origins.is_empty() {
        return finish(problems, Applied::default());
    }
    let translation = translate::translate(&tree, file.is_some(), &origins, file.map(|f| f.0));
    problems.extend(translation.problems);
    merge(table, translation.table);
    let mut set = translation.set;
    if let Some(entry) = translation.proxy
        && let Err(problem) = merge_proxy(table, entry, &mut set)
    {
        problems.push(problem);
    }
    let mut notes = translation.notes;
    if let Some(source) = translation.s3 {
        notes.extend(s3_in_place(table, source, &mut set));
    }
    finish(
        problems,
        Applied {
            set,
            warnings: Vec::new(),
            notes,
        },
    )
}

/// registry:2 keeps its metadata as links in the bucket: unless
/// `metadata.kind` is set, Berth reads them there (layout metadata), or a
/// registry:2 bucket would look empty beside a new SQLite database.
fn s3_in_place(
    table: &mut toml::Table,
    source: String,
    set: &mut Vec<(String, String)>,
) -> Option<String> {
    let metadata = table
        .entry("metadata")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let metadata = metadata.as_table_mut()?;
    if metadata.contains_key("kind") {
        return None;
    }
    metadata.insert("kind".into(), toml::Value::String("layout".into()));
    set.push(("metadata.kind".into(), source));
    Some(
        "registry:2's S3 driver: its store is read in place, with metadata.kind \"layout\" \
         (registry:2's links in the bucket)"
            .into(),
    )
}

/// Errors refuse the configuration (all of them, with the warnings);
/// otherwise the warnings travel with it.
fn finish(problems: Vec<Problem>, mut applied: Applied) -> Result<Applied, ConfigError> {
    if problems.iter().any(Problem::is_error) {
        return Err(ConfigError::Problems(problems));
    }
    applied.warnings = problems;
    Ok(applied)
}

fn parse(path: &Path, text: &str) -> Result<Mapping, ConfigError> {
    let value: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| ConfigError::File(format!("{}: {e}", path.display())))?;
    match value {
        Value::Mapping(map) => Ok(map),
        // An empty file.
        Value::Null => Ok(Mapping::new()),
        _ => Err(ConfigError::File(format!(
            "{}: not a registry:2 configuration (a YAML map with version: 0.1)",
            path.display()
        ))),
    }
}

/// Deep-merges `from` into `into`, `from` winning.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => merge(inner, value),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// registry:2's proxy is Berth's unprefixed `[[proxy]]`: its keys go into
/// the file's unprefixed entry, or a new one.
fn merge_proxy(
    table: &mut toml::Table,
    entry: toml::Table,
    set: &mut [(String, String)],
) -> Result<(), Problem> {
    let list = table
        .entry("proxy")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    let toml::Value::Array(list) = list else {
        return Err(Problem::error(
            "proxy",
            "the file's `proxy` is not a list of [[proxy]] tables",
        ));
    };
    let unprefixed = list
        .iter()
        .position(|e| e.as_table().is_some_and(|t| !t.contains_key("prefix")));
    let index = match unprefixed {
        Some(index) => index,
        None if entry.contains_key("url") => {
            list.push(toml::Value::Table(toml::Table::new()));
            list.len() - 1
        }
        None => {
            return Err(Problem::error(
                "REGISTRY_PROXY_REMOTEURL",
                "is required with the other REGISTRY_PROXY_* variables (no unprefixed \
                 [[proxy]] in the file to complete)",
            ));
        }
    };
    if let Some(toml::Value::Table(target)) = list.get_mut(index) {
        target.extend(entry);
    }
    for (key, _) in set.iter_mut() {
        if let Some(field) = key.strip_prefix("proxy.") {
            *key = format!("proxy[{index}].{field}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
