//! Admission policy plugins: third-party components the host calls before
//! a manifest or tag is stored or deleted (`wit/policy/policy.wit`).
//!
//! Each call gets a fresh instance with no ambient authority: no preopened
//! directories, no sockets (WASI's default check refuses every address), no
//! environment, clocks frozen at zero; its memory is capped and its fuel
//! bounded. A plugin that traps or overruns counts as its `on_failure`
//! (deny unless configured otherwise), is logged, and the server goes on.

use crate::config::{OnFailure, PluginConfig};
use crate::sandbox::budget::{self, MemoryLimiter};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/policy",
        world: "berth:policy/plugin",
        exports: { default: async },
    });
}

pub use bindings::exports::berth::policy::admission::Operation;
use bindings::exports::berth::policy::admission::{Change, Decision, Setting};

/// The plugins built with Berth, usable as `builtin:<name>`.
const BUILTIN: &[(&str, &[u8])] = &[
    (
        "immutable-tags",
        include_bytes!(env!("BERTH_BUILD_PLUGIN_IMMUTABLE_TAGS_WASM")),
    ),
    (
        "required-annotations",
        include_bytes!(env!("BERTH_BUILD_PLUGIN_REQUIRED_ANNOTATIONS_WASM")),
    ),
];

/// The settings each built-in plugin reads: (name, required, optional).
/// The plugins deny every change when a setting is missing or unknown
/// (guest/plugins/*/src/lib.rs, `Config::parse`); this table lets a
/// misspelling be an error at start instead. A test holds it to the
/// plugins themselves.
const BUILTIN_SETTINGS: &[(&str, &[&str], &[&str])] = &[
    ("immutable-tags", &["patterns"], &["repositories"]),
    (
        "required-annotations",
        &["keys"],
        &["repositories", "media-types"],
    ),
];

/// Each error starts with the setting it is about (`plugins[0].path`).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugins[{index}].path: cannot read {path}: {source}")]
    Read {
        index: usize,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "plugins[{index}].path: no built-in plugin {path:?} (there are {})",
        builtin_names()
    )]
    UnknownBuiltin { index: usize, path: String },
    #[error("plugins[{index}].path: {path}: {reason}")]
    Load {
        index: usize,
        path: String,
        reason: String,
    },
    #[error("plugins[{index}].{field}: {reason}")]
    Setting {
        index: usize,
        field: String,
        reason: String,
    },
    #[error("plugins: {0}")]
    Engine(String),
}

fn builtin_names() -> String {
    let names: Vec<String> = BUILTIN
        .iter()
        .map(|(n, _)| format!("builtin:{n}"))
        .collect();
    names.join(", ")
}

/// How far [`check`] goes with plugin component files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Components {
    /// Compile each one: `config check`, where nothing else will.
    Compile,
    /// Only see that each can be read: `serve` compiles them once, right
    /// after, in [`Plugins::load`], with the same error.
    Read,
}

/// Everything wrong with `configs` that can be told without running a
/// plugin: unknown built-in names, settings a built-in plugin does not
/// read or needs, budgets no sandbox can have, component files that
/// cannot be read or compiled. Creates nothing.
pub fn check(configs: &[PluginConfig], files: Components) -> Vec<PluginError> {
    let mut problems = Vec::new();
    let compiles = files == Components::Compile;
    let engine = if compiles && configs.iter().any(|c| !c.path.starts_with("builtin:")) {
        match Engine::new(&budget::fueled_config()) {
            Ok(engine) => Some(engine),
            Err(e) => {
                problems.push(PluginError::Engine(format!("{e:#}")));
                None
            }
        }
    } else {
        None
    };
    for (index, config) in configs.iter().enumerate() {
        let setting = |field: &str, reason: String| PluginError::Setting {
            index,
            field: field.to_string(),
            reason,
        };
        if let Err(e) = budget::memory_cap(config.memory_mib) {
            problems.push(setting("memory_mib", e.to_string()));
        }
        if let Err(e) = budget::fuel_budget(config.fuel) {
            problems.push(setting("fuel", e.to_string()));
        }
        match config.path.strip_prefix("builtin:") {
            Some(name) => match BUILTIN_SETTINGS.iter().find(|(n, _, _)| *n == name) {
                None => problems.push(PluginError::UnknownBuiltin {
                    index,
                    path: config.path.clone(),
                }),
                Some((_, required, optional)) => {
                    builtin_settings(config, required, optional, &setting, &mut problems)
                }
            },
            None if compiles => {
                if let Some(engine) = &engine
                    && let Err(e) = compile(engine, index, config)
                {
                    problems.push(e);
                }
            }
            None => {
                if let Err(source) = std::fs::File::open(&config.path) {
                    problems.push(PluginError::Read {
                        index,
                        path: config.path.clone(),
                        source,
                    });
                }
            }
        }
    }
    problems
}

/// A built-in plugin's settings against what it reads.
fn builtin_settings(
    config: &PluginConfig,
    required: &[&str],
    optional: &[&str],
    setting: &dyn Fn(&str, String) -> PluginError,
    problems: &mut Vec<PluginError>,
) {
    let allowed: Vec<&str> = required.iter().chain(optional).copied().collect();
    for (key, value) in &config.settings {
        let field = format!("settings.{key}");
        if !allowed.contains(&key.as_str()) {
            problems.push(setting(
                &field,
                format!(
                    "{} reads no setting {key:?} (its settings: {}); the plugin would deny every change",
                    config.path,
                    allowed.join(", ")
                ),
            ));
            continue;
        }
        let values = value.values();
        if required.contains(&key.as_str()) && values.is_empty() {
            problems.push(setting(
                &field,
                "is empty; the plugin would deny every change".into(),
            ));
        }
        for pattern in values {
            let valid = match key.as_str() {
                "repositories" => crate::config::check::repository_pattern(&pattern),
                "patterns" => crate::config::check::tag_pattern(&pattern),
                _ => Ok(()),
            };
            if let Err(why) = valid {
                problems.push(setting(&field, format!("{pattern:?}: {why}")));
            }
        }
    }
    for key in required {
        if !config.settings.contains_key(*key) {
            problems.push(setting(
                "settings",
                format!(
                    "{} needs the setting {key:?}; without it the plugin denies every change",
                    config.path
                ),
            ));
        }
    }
}

/// The component file of a plugin that is not built in, compiled.
fn compile(engine: &Engine, index: usize, config: &PluginConfig) -> Result<Component, PluginError> {
    let path = config.path.as_str();
    let wasm = std::fs::read(path).map_err(|source| PluginError::Read {
        index,
        path: path.to_string(),
        source,
    })?;
    Component::new(engine, wasm).map_err(|e| PluginError::Load {
        index,
        path: path.to_string(),
        reason: format!("not a usable component: {e:#}"),
    })
}

/// What the guest asks, plus who is asking.
#[derive(Clone)]
pub struct Question {
    pub operation: Operation,
    pub repository: String,
    pub reference: String,
    pub digest: Option<String>,
    pub media_type: Option<String>,
    pub annotations: Vec<(String, String)>,
    pub previous: Option<String>,
    pub caller: Option<String>,
}

struct Plugin {
    name: String,
    pre: bindings::PluginPre<PluginState>,
    on_failure: OnFailure,
    memory: usize,
    fuel: u64,
    settings: Vec<Setting>,
}

/// The configured plugins, compiled once at start.
pub struct Plugins {
    engine: Engine,
    plugins: Vec<Plugin>,
}

impl Plugins {
    /// `None` when no plugin is configured.
    pub fn load(configs: &[PluginConfig]) -> Result<Option<Self>, PluginError> {
        if configs.is_empty() {
            return Ok(None);
        }
        let config = budget::fueled_config();
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::<PluginState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let mut plugins = Vec::new();
        for (index, config) in configs.iter().enumerate() {
            let path = config.path.as_str();
            let load_error = |e: wasmtime::Error| PluginError::Load {
                index,
                path: path.to_string(),
                reason: format!("{e:#}"),
            };
            let component = match path.strip_prefix("builtin:") {
                Some(name) => {
                    let (_, wasm) = BUILTIN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                        PluginError::UnknownBuiltin {
                            index,
                            path: path.to_string(),
                        }
                    })?;
                    Component::new(&engine, wasm).map_err(load_error)?
                }
                None => compile(&engine, index, config)?,
            };
            let pre = linker
                .instantiate_pre(&component)
                .and_then(bindings::PluginPre::new)
                .map_err(load_error)?;
            plugins.push(Plugin {
                name: path.to_string(),
                pre,
                on_failure: config.on_failure,
                memory: usize::try_from(config.memory_mib.saturating_mul(1 << 20))
                    .unwrap_or(usize::MAX),
                fuel: config.fuel,
                settings: config
                    .settings
                    .iter()
                    .map(|(key, value)| Setting {
                        key: key.clone(),
                        values: value.values(),
                    })
                    .collect(),
            });
            tracing::info!(plugin = path, "admission plugin loaded");
        }
        Ok(Some(Self { engine, plugins }))
    }

    /// Asks each plugin in order; the first deny's message, or `None`.
    pub async fn check(&self, question: Question) -> Option<String> {
        let change = Change {
            operation: question.operation,
            repository: question.repository,
            reference: question.reference,
            digest: question.digest,
            media_type: question.media_type,
            annotations: question.annotations,
            previous: question.previous,
            caller: question.caller,
        };
        for plugin in &self.plugins {
            let started = Instant::now();
            let outcome = self.call(plugin, &change).await;
            tracing::debug!(plugin = %plugin.name, micros = started.elapsed().as_micros() as u64, "admission plugin called");
            match outcome {
                Ok(Decision::Allow) => {}
                Ok(Decision::Deny(message)) => {
                    crate::metrics::get()
                        .plugin_denials
                        .with_label_values(&[plugin.name.as_str()])
                        .inc();
                    tracing::info!(plugin = %plugin.name, repository = %change.repository, reference = %change.reference, %message, "admission denied");
                    return Some(message);
                }
                Err(failure) => {
                    tracing::error!(plugin = %plugin.name, error = %failure, on_failure = ?plugin.on_failure, "admission plugin failed");
                    if plugin.on_failure == OnFailure::Deny {
                        crate::metrics::get()
                            .plugin_denials
                            .with_label_values(&[plugin.name.as_str()])
                            .inc();
                        return Some(format!(
                            "the registry's admission policy ({}) failed; the change is refused",
                            plugin.name
                        ));
                    }
                }
            }
        }
        None
    }

    async fn call(&self, plugin: &Plugin, change: &Change) -> Result<Decision, String> {
        let mut store = Store::new(&self.engine, PluginState::new(plugin.memory));
        store.limiter(|state| &mut state.limits);
        budget::arm(&mut store, plugin.fuel).map_err(|e| e.to_string())?;
        let instance = plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| describe(&store, e))?;
        instance
            .berth_policy_admission()
            .call_check(&mut store, &plugin.settings, change)
            .await
            .map_err(|e| describe(&store, e))
    }
}

/// Why a call failed, in words an operator can act on.
fn describe(store: &Store<PluginState>, error: wasmtime::Error) -> String {
    if store.get_fuel().is_ok_and(|fuel| fuel == 0) {
        return "exceeded its fuel budget".into();
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => "exceeded its fuel budget".into(),
        Some(trap) => format!("trapped: {trap}"),
        None => format!("{error:#}"),
    }
}

/// What one plugin call's store holds: a WASI context that grants nothing.
struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryLimiter,
}

impl PluginState {
    fn new(memory: usize) -> Self {
        let wasi = WasiCtx::builder()
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(Deterministic::new(vec![0x5a]))
            .insecure_random(Deterministic::new(vec![0xa5]))
            .insecure_random_seed(0)
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits: MemoryLimiter::new(memory).with_instances(8),
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Plugins learn nothing from clocks: every reading is zero.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SettingValue;

    fn builtin(name: &str, settings: &[(&str, &str)]) -> PluginConfig {
        PluginConfig {
            path: format!("builtin:{name}"),
            on_failure: OnFailure::Deny,
            memory_mib: 16,
            fuel: 100_000_000,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), SettingValue::Many(vec![v.to_string()])))
                .collect(),
        }
    }

    fn put() -> Question {
        Question {
            operation: Operation::PutManifest,
            repository: "acme/api".into(),
            reference: "latest".into(),
            digest: Some("sha256:aaaa".into()),
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            annotations: vec![("org.opencontainers.image.source".into(), "x".into())],
            previous: None,
            caller: None,
        }
    }

    /// The host's table of settings is the plugins' own: every setting it
    /// allows is one the plugin reads (the plugin allows a change with all
    /// of them set), and the one it refuses the plugin refuses too.
    #[tokio::test]
    async fn the_settings_table_matches_the_builtin_plugins() {
        assert_eq!(BUILTIN.len(), BUILTIN_SETTINGS.len());
        for (name, required, optional) in BUILTIN_SETTINGS {
            assert!(BUILTIN.iter().any(|(n, _)| n == name), "{name}");
            let values: Vec<(&str, &str)> = required
                .iter()
                .map(|k| (*k, "org.opencontainers.image.source"))
                .chain(optional.iter().map(|k| match *k {
                    "media-types" => (*k, "application/vnd.oci.image.manifest.v1+json"),
                    _ => (*k, "**"),
                }))
                .collect();
            let full = builtin(name, &values);
            assert!(
                check(std::slice::from_ref(&full), Components::Compile).is_empty(),
                "{name}"
            );
            let plugins = Plugins::load(&[full]).expect("load").expect("some");
            assert_eq!(plugins.check(put()).await, None, "{name} with all settings");

            let mut typo = values.clone();
            typo.push(("patern", "v*"));
            let typo = builtin(name, &typo);
            let found = check(std::slice::from_ref(&typo), Components::Compile);
            assert_eq!(found.len(), 1, "{name}: {found:?}");
            assert!(
                found[0]
                    .to_string()
                    .starts_with("plugins[0].settings.patern: "),
                "{}",
                found[0]
            );
            let plugins = Plugins::load(&[typo]).expect("load").expect("some");
            assert!(plugins.check(put()).await.is_some(), "{name} denies a typo");
        }
    }

    #[test]
    fn unknown_builtins_missing_files_and_budgets_are_found_at_once() {
        let mut zero = builtin("immutable-tags", &[("patterns", "v*")]);
        zero.memory_mib = 0;
        zero.fuel = 0;
        let configs = [
            builtin("immutable-tag", &[]),
            PluginConfig {
                path: "/nonexistent/policy.wasm".into(),
                ..builtin("x", &[])
            },
            zero,
            builtin("required-annotations", &[]),
        ];
        let found: Vec<String> = check(&configs, Components::Compile)
            .iter()
            .map(ToString::to_string)
            .collect();
        let starts = [
            "plugins[0].path: no built-in plugin \"builtin:immutable-tag\"",
            "plugins[1].path: cannot read /nonexistent/policy.wasm",
            "plugins[2].memory_mib: 0 MiB",
            "plugins[2].fuel: 0 fuel",
            "plugins[3].settings: builtin:required-annotations needs the setting \"keys\"",
        ];
        assert_eq!(found.len(), starts.len(), "{found:#?}");
        for (line, start) in found.iter().zip(starts) {
            assert!(line.starts_with(start), "{line} / {start}");
        }
    }
}
