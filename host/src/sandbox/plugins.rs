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
        include_bytes!(env!("BERTH_PLUGIN_IMMUTABLE_TAGS_WASM")),
    ),
    (
        "required-annotations",
        include_bytes!(env!("BERTH_PLUGIN_REQUIRED_ANNOTATIONS_WASM")),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "plugin {path}: no built-in plugin by that name (there are immutable-tags and required-annotations)"
    )]
    UnknownBuiltin { path: String },
    #[error("plugin {path}: {reason}")]
    Load { path: String, reason: String },
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
        let load_error = |path: &str, e: wasmtime::Error| PluginError::Load {
            path: path.to_string(),
            reason: format!("{e:#}"),
        };
        let engine = Engine::new(&config).map_err(|e| load_error("(engine)", e))?;
        let mut linker = Linker::<PluginState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| load_error("(linker)", e))?;
        let mut plugins = Vec::new();
        for config in configs {
            let path = config.path.as_str();
            let component = match path.strip_prefix("builtin:") {
                Some(name) => {
                    let (_, wasm) = BUILTIN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
                        PluginError::UnknownBuiltin {
                            path: path.to_string(),
                        }
                    })?;
                    Component::new(&engine, wasm)
                }
                None => {
                    let wasm = std::fs::read(path).map_err(|source| PluginError::Read {
                        path: path.to_string(),
                        source,
                    })?;
                    Component::new(&engine, wasm)
                }
            }
            .map_err(|e| load_error(path, e))?;
            let pre = linker
                .instantiate_pre(&component)
                .and_then(bindings::PluginPre::new)
                .map_err(|e| load_error(path, e))?;
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
                    tracing::info!(plugin = %plugin.name, repository = %change.repository, reference = %change.reference, %message, "admission denied");
                    return Some(message);
                }
                Err(failure) => {
                    tracing::error!(plugin = %plugin.name, error = %failure, on_failure = ?plugin.on_failure, "admission plugin failed");
                    if plugin.on_failure == OnFailure::Deny {
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
