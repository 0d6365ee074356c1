//! What one request's wasm `Store` holds: WASI context, wasi-http context, the
//! resource table they share, the server's storage backends, and the limiter
//! that caps the guest's memory.

use crate::backends::Backends;
use crate::sandbox::budget::MemoryLimiter;
use crate::sandbox::storage_imports::{Admission, Pins, StorageCtx};
use crate::upstream::mirrors::Mirrors;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

/// Per-request store data. Created fresh for every request, so nothing one
/// request does inside the guest can be seen by the next.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: GuestHttpHooks,
    table: ResourceTable,
    backends: Backends,
    /// Blobs this request committed and has not yet linked.
    pins: Pins,
    limiter: MemoryLimiter,
    /// Who is asking and which plugins decide, for the admission and
    /// catalog imports.
    pub admission: Admission,
    /// The upstreams the server caches, for the upstream import.
    mirrors: Arc<Mirrors>,
    /// Whether this request fetched a manifest from an upstream: a cache
    /// miss rather than a hit, for the proxy metrics.
    proxy_fetched: bool,
}

/// wasi-http policy for the guest: it serves requests and never makes any.
struct GuestHttpHooks;

impl WasiHttpHooks for GuestHttpHooks {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = OutgoingResult> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }

    /// Two 1 MiB chunks in flight let the guest splice the next chunk of a
    /// blob while hyper writes the previous one.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        2
    }
}

type OutgoingResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ),
    wasmtime_wasi_http::Error,
>;

impl RequestState {
    /// State for one request whose guest may use at most `memory_cap` bytes
    /// of linear memory.
    pub fn new(backends: Backends, mirrors: Arc<Mirrors>, memory_cap: usize) -> Self {
        // No preopens, no environment, no network: the guest reaches the world
        // only through wasi:http and our storage imports. stderr is kept for
        // the guest's diagnostics.
        let wasi = WasiCtx::builder().inherit_stderr().build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            hooks: GuestHttpHooks,
            table: ResourceTable::new(),
            pins: Pins::new(backends.metadata.clone()),
            backends,
            limiter: MemoryLimiter::new(memory_cap),
            admission: Admission::default(),
            mirrors,
            proxy_fetched: false,
        }
    }

    /// For `Store::limiter`.
    pub fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }

    /// Whether the guest asked for more memory than its cap.
    pub fn memory_cap_hit(&self) -> bool {
        self.limiter.hit()
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl RequestState {
    /// The view the storage imports get.
    pub fn storage(&mut self) -> StorageCtx<'_> {
        StorageCtx {
            backends: &self.backends,
            table: &mut self.table,
            admission: &self.admission,
            pins: &mut self.pins,
            mirrors: &self.mirrors,
            proxy_fetched: &mut self.proxy_fetched,
        }
    }
}
