//! `[[plugins]]`: admission policy components, called in order before a
//! manifest or tag is stored or deleted.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// A component file, or `builtin:immutable-tags` /
    /// `builtin:required-annotations` (embedded in the binary).
    pub path: String,
    /// What a plugin that traps or overruns its budget counts as.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Linear memory cap, in MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Wasm fuel (roughly, instructions) per call.
    #[serde(default = "default_fuel")]
    pub fuel: u64,
    /// Passed to the plugin on every call; each value a string or a list.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingValue>,
}

fn default_memory_mib() -> u64 {
    16
}

fn default_fuel() -> u64 {
    100_000_000
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SettingValue {
    One(String),
    Many(Vec<String>),
}

impl SettingValue {
    pub fn values(&self) -> Vec<String> {
        match self {
            SettingValue::One(v) => vec![v.clone()],
            SettingValue::Many(vs) => vs.clone(),
        }
    }
}
