//! The wasm side of the host: one engine, the guest compiled once (and cached
//! on disk), one `InstancePre`, and a fresh `Store` per request.

use crate::bindings::berth::registry::{blobs, metadata, types};
use crate::state::RequestState;
use crate::storage_imports::{Backends, StorageImports};
use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The registry guest built by `build.rs`.
pub static EMBEDDED_GUEST: &[u8] = include_bytes!(env!("BERTH_GUEST_WASM"));

/// Instances alive at once; each is one in-flight request.
const MAX_INSTANCES: u32 = 1000;
/// Linear memory cap per guest instance.
const MAX_GUEST_MEMORY: usize = 128 << 20;
/// Memory a returned instance slot keeps mapped for the next request.
const KEEP_RESIDENT: usize = 4 << 20;

/// A loaded guest, ready to serve requests.
#[derive(Clone)]
pub struct GuestRuntime {
    engine: Engine,
    pre: ProxyPre<RequestState>,
    backends: Backends,
}

impl GuestRuntime {
    /// Compiles (or loads from `cache_dir`) the guest and links it.
    pub fn new(wasm: &[u8], cache_dir: &Path, backends: Backends) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config())?;
        let component = load_component(&engine, wasm, cache_dir)?;
        let mut linker = Linker::<RequestState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        types::add_to_linker::<_, StorageImports>(&mut linker, RequestState::storage)?;
        blobs::add_to_linker::<_, StorageImports>(&mut linker, RequestState::storage)?;
        metadata::add_to_linker::<_, StorageImports>(&mut linker, RequestState::storage)?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Self {
            engine,
            pre,
            backends,
        })
    }

    /// The storage every request works on.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Runs one HTTP request through a fresh guest instance. The response
    /// comes back as soon as the guest sets it; the body keeps streaming from
    /// a task that owns the instance.
    pub async fn handle<B>(
        &self,
        req: hyper::Request<B>,
    ) -> anyhow::Result<hyper::Response<HyperOutgoingBody>>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let mut store = Store::new(&self.engine, RequestState::new(self.backends.clone()));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = wasmtime_wasi_http::WasiHttpView::http(store.data_mut())
            .new_incoming_request(Scheme::Http, req)?;
        let out = wasmtime_wasi_http::WasiHttpView::http(store.data_mut())
            .new_response_outparam(sender)?;
        let pre = self.pre.clone();
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => Err(anyhow::anyhow!("guest answered with error code {code:?}")),
            Err(_) => {
                let err = match task.await {
                    Ok(Ok(())) => anyhow::anyhow!("guest returned without a response"),
                    Ok(Err(e)) => anyhow::anyhow!("guest failed: {e:?}"),
                    Err(e) => anyhow::anyhow!("guest task failed: {e}"),
                };
                Err(err)
            }
        }
    }
}

fn engine_config() -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_INSTANCES)
        .total_core_instances(4 * MAX_INSTANCES)
        .total_memories(2 * MAX_INSTANCES)
        .total_tables(4 * MAX_INSTANCES)
        .max_memory_size(MAX_GUEST_MEMORY)
        // Returning a slot with madvise costs page faults on the next request
        // and TLB shootdowns on every core; resetting the few pages a request
        // dirtied (found with PAGEMAP_SCAN where the kernel has it) is cheaper.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
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
