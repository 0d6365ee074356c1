//! Host-side bindings of the `storage-imports` world in `wit/registry.wit`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "berth:registry/storage-imports",
    imports: { default: async | trappable },
    require_store_data_send: true,
    with: {
        // One wasi:io for everyone, so our streams are the streams wasi-http splices.
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "berth:registry/blobs.upload": crate::sandbox::storage_imports::UploadSession,
    },
});

pub use self::berth::registry::types::StorageError as WitStorageError;
