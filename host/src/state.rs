//! What one request's wasm `Store` holds: WASI context, wasi-http context, the
//! resource table they share, and the server's storage backends.

use crate::storage_imports::{Backends, StorageView};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Per-request store data. Created fresh for every request, so nothing one
/// request does inside the guest can be seen by the next.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    backends: Backends,
}

impl RequestState {
    pub fn new(backends: Backends) -> Self {
        // No preopens, no environment, no network: the guest reaches the world
        // only through wasi:http and our storage imports. stderr is kept for
        // the guest's diagnostics.
        let wasi = WasiCtx::builder().inherit_stderr().build();
        Self { wasi, http: WasiHttpCtx::new(), table: ResourceTable::new(), backends }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

impl StorageView for RequestState {
    fn backends(&self) -> &Backends {
        &self.backends
    }

    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}
