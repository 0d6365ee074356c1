//! `REGISTRY_*` variables, registry:2's way of overriding its `config.yml`:
//! `REGISTRY_` + the key path in capitals joined by `_`
//! (`storage.s3.regionendpoint` → `REGISTRY_STORAGE_S3_REGIONENDPOINT`).
//! registry:2's keys hold no `_`, so a name splits unambiguously.
//!
//! Values are kept as the text given (a password stays `0123`, not a
//! number), except a value written as a YAML map or list
//! (`REGISTRY_STORAGE_MAINTENANCE_READONLY={"enabled":true}`), which is
//! parsed as registry:2 parses it. `REGISTRY_STORAGE=s3` and
//! `REGISTRY_AUTH=htpasswd` pick the driver or the login method, dropping
//! the others the file named.

use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;

use super::settings;
use crate::config::Problem;

/// Which variable set each key path (`storage.s3.bucket`), for messages.
pub type Origins = BTreeMap<String, String>;

/// The variable that set `path` or a table above it.
pub fn origin<'a>(origins: &'a Origins, path: &str) -> Option<&'a str> {
    origins
        .iter()
        .filter(|(key, _)| {
            path == key.as_str()
                || path
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
        // The longest match: `storage.s3.bucket` over `storage`.
        .max_by_key(|(key, _)| key.len())
        .map(|(_, var)| var.as_str())
}

/// Layers every `REGISTRY_*` variable of `vars` onto `tree`, in name order
/// (so `REGISTRY_STORAGE=s3` comes before `REGISTRY_STORAGE_S3_BUCKET`).
/// Returns which variable set which path, and the names that are no
/// registry:2 setting: errors inside a section Berth reads
/// (`REGISTRY_STORAGE_DELETE_ENABLE`), warnings elsewhere (a Kubernetes
/// service named `registry` sets `REGISTRY_PORT`).
pub fn overlay(tree: &mut Mapping, vars: &[(String, String)]) -> (Origins, Vec<Problem>) {
    let mut vars: Vec<&(String, String)> = vars
        .iter()
        .filter(|(name, _)| name.starts_with("REGISTRY_"))
        .collect();
    vars.sort();
    let mut origins = Origins::new();
    let mut problems = Vec::new();
    for (name, value) in vars {
        let path: Vec<String> = name["REGISTRY_".len()..]
            .split('_')
            .map(str::to_ascii_lowercase)
            .collect();
        let dotted = path.join(".");
        if path.iter().any(String::is_empty) || !settings::is_known(&dotted) {
            let message = format!(
                "not a registry:2 setting{}",
                settings::suggestion(&dotted)
                    .map(|s| format!("; did you mean REGISTRY_{}?", var_of(&s)))
                    .unwrap_or_default()
            );
            problems.push(if settings::in_checked_section(&dotted) {
                Problem::error(name, message)
            } else {
                Problem::warning(name, format!("{message}, ignored"))
            });
            continue;
        }
        if let Some(choices) = settings::chooser(&dotted) {
            let choice = value.trim().to_ascii_lowercase();
            // The chosen table is the variable's only when it makes it:
            // the file's keys in it stay the file's.
            if choose(tree, &path, &choice, choices) {
                origins.insert(format!("{dotted}.{choice}"), name.clone());
            }
        } else {
            set(tree, &path, parse(value));
            origins.insert(dotted, name.clone());
        }
    }
    (origins, problems)
}

/// `storage.s3.bucket` → `STORAGE_S3_BUCKET`.
fn var_of(path: &str) -> String {
    path.replace('.', "_").to_ascii_uppercase()
}

/// A map or list written in YAML is parsed; anything else stays text.
fn parse(value: &str) -> Value {
    let trimmed = value.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(parsed) = serde_yaml_ng::from_str::<Value>(value)
    {
        return parsed;
    }
    Value::String(value.to_owned())
}

/// `REGISTRY_STORAGE=s3`: the table at `path` keeps `choice` (and the keys
/// that are no choice, like `storage.delete`) and loses the other choices.
/// Returns whether it made the `choice` table.
fn choose(tree: &mut Mapping, path: &[String], choice: &str, choices: &[&str]) -> bool {
    let Some(table) = table_at(tree, path) else {
        return false;
    };
    table.retain(|key, _| {
        key.as_str()
            .is_none_or(|key| key == choice || !choices.contains(&key))
    });
    let key = Value::String(choice.to_owned());
    if table.contains_key(&key) {
        return false;
    }
    table.insert(key, Value::Mapping(Mapping::new()));
    true
}

/// Sets `a.b.c`, turning whatever is in the way into a table, as
/// registry:2 does.
fn set(tree: &mut Mapping, path: &[String], value: Value) {
    let Some((leaf, parents)) = path.split_last() else {
        return;
    };
    if let Some(table) = table_at(tree, parents) {
        table.insert(Value::String(leaf.clone()), value);
    }
}

/// The table at `path`, made where missing; `None` never happens (what is
/// in the way becomes a table) but is not worth a panic.
fn table_at<'a>(tree: &'a mut Mapping, path: &[String]) -> Option<&'a mut Mapping> {
    let mut current = tree;
    for part in path {
        let key = Value::String(part.clone());
        let entry = current
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !entry.is_mapping() {
            // `storage: filesystem` (a driver named without parameters)
            // keeps its name as a key.
            let mut table = Mapping::new();
            if let Value::String(name) = entry {
                table.insert(Value::String(name.clone()), Value::Mapping(Mapping::new()));
            }
            *entry = Value::Mapping(table);
        }
        current = entry.as_mapping_mut()?;
    }
    Some(current)
}
