//! The wasm side of the host: one engine, the guest compiled once (and cached
//! on disk), one `InstancePre`, and a fresh `Store` per request.
//!
//! Each request's guest runs sandboxed: its linear memory is capped and it
//! gets a fuel budget (roughly, wasm instructions). A guest that traps, runs
//! out of fuel or out of memory costs only its own request, which gets a
//! `500` with the distribution spec's error body.

use crate::backends::Backends;
use crate::config::LimitsConfig;
use crate::sandbox::bindings::berth::registry::{
    admission, blobs, catalog, metadata, types, upstream,
};
use crate::sandbox::budget;
use crate::sandbox::context::RequestContext;
use crate::sandbox::plugins::Plugins;
use crate::sandbox::state::RequestState;
use crate::sandbox::storage_imports::{Admission, StorageImports};
use crate::upstream::mirrors::Mirrors;
use anyhow::Context as _;
use http_body_util::BodyExt as _;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The registry guest built by `build.rs`.
pub static EMBEDDED_GUEST: &[u8] = include_bytes!(env!("BERTH_BUILD_GUEST_WASM"));

/// The registry guest composed with the wasi:filesystem storage component
/// (by `build.rs`): imports only `wasi:*`, for other runtimes.
pub static STANDALONE_GUEST: &[u8] = include_bytes!(env!("BERTH_BUILD_STANDALONE_WASM"));

/// Instances alive at once; each is one in-flight request.
const MAX_INSTANCES: u32 = 1000;
/// Memory a returned instance slot keeps mapped for the next request.
const KEEP_RESIDENT: usize = 4 << 20;

/// What one guest instance may use.
#[derive(Debug, Clone, Copy)]
struct GuestLimits {
    /// Linear memory cap, in bytes.
    memory: usize,
    /// Fuel per request.
    fuel: u64,
}

/// `[limits]` values the sandbox cannot work with.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("limits.guest_memory_mib = {0} is not a usable memory cap (1 MiB up to 4 GiB)")]
    Memory(u64),
    #[error("limits.guest_fuel = 0 would stop every request before it starts")]
    NoFuel,
}

impl GuestLimits {
    fn from_config(config: &LimitsConfig) -> Result<Self, LimitsError> {
        let mib = config.guest_memory_mib;
        let memory = budget::memory_cap(mib).map_err(|_| LimitsError::Memory(mib))?;
        let fuel = budget::fuel_budget(config.guest_fuel).map_err(|_| LimitsError::NoFuel)?;
        Ok(Self { memory, fuel })
    }
}

/// Why a guest produced no response. The request gets a `500` whose
/// message says which; the other requests are not affected.
#[derive(Debug, thiserror::Error)]
pub enum GuestFailure {
    #[error("the registry guest exceeded its time budget ({fuel} fuel)")]
    OutOfFuel { fuel: u64 },
    #[error("the registry guest ran out of memory (cap {mib} MiB)")]
    OutOfMemory { mib: usize },
    #[error("the registry guest trapped: {0}")]
    Trapped(Trap),
    #[error("the registry guest failed: {0:#}")]
    Failed(wasmtime::Error),
    #[error("the registry guest answered with error code {0:?}")]
    ErrorCode(ErrorCode),
    #[error("the registry guest returned without a response")]
    NoResponse,
    #[error("the registry guest's task failed: {0}")]
    Task(tokio::task::JoinError),
}

impl GuestFailure {
    /// Names what stopped the guest, from the error its call returned.
    fn classify(error: wasmtime::Error, memory_cap_hit: bool, limits: GuestLimits) -> Self {
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Self::OutOfFuel { fuel: limits.fuel },
            // Rust guests abort (an `unreachable` trap) when an allocation
            // fails, so a refused `memory.grow` explains whatever follows.
            _ if memory_cap_hit => Self::OutOfMemory {
                mib: limits.memory >> 20,
            },
            Some(trap) => Self::Trapped(*trap),
            None => Self::Failed(error),
        }
    }

    /// Counts it in `berth_guest_failures_total`, by kind.
    fn count(&self) {
        let kind = match self {
            Self::OutOfFuel { .. } => "fuel",
            Self::OutOfMemory { .. } => "memory",
            Self::Trapped(_) => "trap",
            Self::Failed(_) | Self::ErrorCode(_) | Self::NoResponse | Self::Task(_) => "other",
        };
        crate::metrics::get()
            .guest_failures
            .with_label_values(&[kind])
            .inc();
    }

    /// What the client is told: the kind of failure, without internals.
    fn client_message(&self) -> &'static str {
        match self {
            Self::OutOfFuel { .. } => "the registry guest exceeded its time budget",
            Self::OutOfMemory { .. } => "the registry guest ran out of memory",
            Self::Trapped(_) => "the registry guest trapped",
            Self::Failed(_) | Self::ErrorCode(_) | Self::NoResponse | Self::Task(_) => {
                "the registry guest failed"
            }
        }
    }

    /// A `500` with the spec's error body.
    fn response(&self) -> hyper::Response<HyperOutgoingBody> {
        let body = crate::error_body::error_json("UNKNOWN", self.client_message());
        let body = http_body_util::Full::new(bytes::Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut resp = hyper::Response::new(body);
        *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        let headers = resp.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            crate::error_body::API_VERSION_HEADER,
            hyper::header::HeaderValue::from_static(crate::error_body::API_VERSION),
        );
        resp
    }
}

/// A loaded guest, ready to serve requests.
#[derive(Clone)]
pub struct GuestRuntime {
    engine: Engine,
    pre: ProxyPre<RequestState>,
    backends: Backends,
    limits: GuestLimits,
    plugins: Option<Arc<Plugins>>,
    mirrors: Arc<Mirrors>,
}

impl GuestRuntime {
    /// Compiles (or loads from `cache_dir`) the guest and links it; every
    /// instance gets the memory cap and fuel budget of `limits`.
    pub fn new(
        wasm: &[u8],
        cache_dir: &Path,
        backends: Backends,
        limits: &LimitsConfig,
    ) -> anyhow::Result<Self> {
        let limits = GuestLimits::from_config(limits)?;
        let engine = Engine::new(&engine_config(limits))?;
        let component = load_component(&engine, wasm, cache_dir)?;
        let mut linker = Linker::<RequestState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        types::add_to_linker::<_, StorageImports>(&mut linker, RequestState::storage)?;
        blobs::add_to_linker::<_, StorageImports>(&mut linker, RequestState::storage)?;
        metadata::add_to_linker::<_, StorageImports>(&mut linker, RequestState::storage)?;
        admission::add_to_linker::<_, StorageImports>(&mut linker, RequestState::storage)?;
        catalog::add_to_linker::<_, StorageImports>(&mut linker, RequestState::storage)?;
        upstream::add_to_linker::<_, StorageImports>(&mut linker, RequestState::storage)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Self {
            engine,
            pre,
            backends,
            limits,
            plugins: None,
            mirrors: Arc::new(Mirrors::none()),
        })
    }

    /// Caches these upstream registries (`[[proxy]]`).
    pub fn with_mirrors(mut self, mirrors: Arc<Mirrors>) -> Self {
        self.mirrors = mirrors;
        self
    }

    /// Asks these admission plugins before manifests and tags change.
    pub fn with_plugins(mut self, plugins: Option<Plugins>) -> Self {
        self.plugins = plugins.map(Arc::new);
        self
    }

    /// The storage every request works on.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Runs one HTTP request through a fresh guest instance. The response
    /// comes back as soon as the guest sets it; the body keeps streaming from
    /// a task that owns the instance. A guest that fails before answering
    /// yields a `500` with the spec's error body (not an `Err`); `Err` is
    /// left for the host failing to set the request up.
    pub async fn handle<B>(
        &self,
        req: hyper::Request<B>,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let limits = self.limits;
        let mut state =
            RequestState::new(self.backends.clone(), self.mirrors.clone(), limits.memory);
        state.admission = Admission {
            plugins: self.plugins.clone(),
            context: req
                .extensions()
                .get::<RequestContext>()
                .cloned()
                .unwrap_or_default(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.limiter());
        budget::arm(&mut store, limits.fuel)?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = wasmtime_wasi_http::WasiHttpView::http(store.data_mut())
            .new_incoming_request(Scheme::Http, req)?;
        let out = wasmtime_wasi_http::WasiHttpView::http(store.data_mut())
            .new_response_outparam(sender)?;
        let pre = self.pre.clone();
        let task = tokio::spawn(async move {
            let result = async {
                let started = std::time::Instant::now();
                let proxy = pre.instantiate_async(&mut store).await?;
                crate::metrics::get()
                    .guest_instantiation
                    .observe(crate::metrics::seconds_since(started));
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
            }
            .await;
            let fuel_used = budget::used(&store, limits.fuel);
            tracing::debug!(fuel_used, "guest finished");
            result.map_err(|error| {
                let detail = format!("{error:?}");
                let failure = GuestFailure::classify(error, store.data().memory_cap_hit(), limits);
                failure.count();
                // Logged here, not by the caller: after the response has
                // been sent, a failure can only cut the body short.
                tracing::error!(error = %failure, %detail, fuel_used, "guest request failed");
                failure
            })
        });
        let failure = match receiver.await {
            Ok(Ok(resp)) => return Ok(resp),
            Ok(Err(code)) => {
                let failure = GuestFailure::ErrorCode(code);
                failure.count();
                tracing::error!(error = %failure, "guest request failed");
                failure
            }
            Err(_) => match task.await {
                Ok(Ok(())) => {
                    let failure = GuestFailure::NoResponse;
                    failure.count();
                    tracing::error!(error = %failure, "guest request failed");
                    failure
                }
                // Logged by the task.
                Ok(Err(failure)) => failure,
                Err(e) => {
                    let failure = GuestFailure::Task(e);
                    failure.count();
                    tracing::error!(error = %failure, "guest request failed");
                    failure
                }
            },
        };
        Ok(failure.response())
    }
}

fn engine_config(limits: GuestLimits) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_INSTANCES)
        .total_core_instances(4 * MAX_INSTANCES)
        .total_memories(2 * MAX_INSTANCES)
        .total_tables(4 * MAX_INSTANCES)
        .max_memory_size(limits.memory)
        // Returning a slot with madvise costs page faults on the next request
        // and TLB shootdowns on every core; resetting the few pages a request
        // dirtied (found with PAGEMAP_SCAN where the kernel has it) is cheaper.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = budget::fueled_config();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Compiling the guest costs 100-300 ms; a restart loads the native code from
/// disk instead, keyed by the guest's bytes and the engine's settings.
fn load_component(engine: &Engine, wasm: &[u8], cache_dir: &Path) -> anyhow::Result<Component> {
    let path = cache_path(engine, wasm, cache_dir);
    if path.exists() {
        // SAFETY: the file is one we wrote with `Component::serialize` for this
        // exact engine configuration (the key covers both); wasmtime also
        // checks the header's version and settings before using it.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "recompiling guest"),
        }
    }
    let component = Component::new(engine, wasm)
        .map_err(|e| anyhow::anyhow!("compiling the guest component: {e:?}"))?;
    if let Err(e) = write_cache(&path, &component) {
        tracing::warn!(path = %path.display(), error = %e, "could not cache compiled guest");
    }
    Ok(component)
}

fn cache_path(engine: &Engine, wasm: &[u8], cache_dir: &Path) -> PathBuf {
    let mut key = Sha256::new();
    key.update(wasm);
    std::hash::Hash::hash(
        &engine.precompile_compatibility_hash(),
        &mut HashToSha(&mut key),
    );
    cache_dir.join(format!(
        "guest-{}.cwasm",
        &hex::encode(key.finalize())[..32]
    ))
}

fn write_cache(path: &Path, component: &Component) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has a parent")?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, component.serialize()?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Feeds `Hash` output into a sha256, so the cache key is stable across runs.
struct HashToSha<'a>(&'a mut Sha256);

impl std::hash::Hasher for HashToSha<'_> {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
