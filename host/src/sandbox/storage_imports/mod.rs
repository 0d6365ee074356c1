//! The host side of the guest's imports (world `storage-imports`):
//! `berth:registry/blobs` and `metadata`, backed by `berth_storage` traits,
//! `admission`, answered by the policy plugins, and `catalog`, answered by
//! the front's access rules, and `upstream`, the pull-through cache's
//! fetches.

mod admission;
mod blobs;
mod catalog;
mod metadata;
mod pins;
mod streams;
mod upstream;

pub use admission::Admission;
pub use pins::Pins;
pub use streams::{BlobSource, UploadSink};

use crate::backends::Backends;
use crate::sandbox::bindings::WitStorageError;
use crate::upstream::mirrors::Mirrors;
use berth_storage::StorageError;
use wasmtime::component::ResourceTable;

/// What the guest's `upload` resource stands for: a session id.
pub struct UploadSession {
    id: String,
}

/// What the storage imports work through: the request's resource table and
/// the server's backends, borrowed from the request state.
pub struct StorageCtx<'a> {
    pub backends: &'a Backends,
    pub table: &'a mut ResourceTable,
    pub admission: &'a Admission,
    pub pins: &'a mut Pins,
    pub mirrors: &'a Mirrors,
    /// Set when the request fetched a manifest upstream (a cache miss).
    pub proxy_fetched: &'a mut bool,
}

/// Marker for `add_to_linker`: the imports' data is a `StorageCtx`.
pub struct StorageImports;

impl wasmtime::component::HasData for StorageImports {
    type Data<'a> = StorageCtx<'a>;
}

/// Storage errors cross into the guest as the WIT variant. This is where a
/// backend failure becomes a response, so it is logged here, once, with its
/// whole cause: a temporary one (`unavailable`, a 503 the client may retry)
/// as a warning, any other as an error. The guest gets words for the client,
/// never the backend's text.
fn to_wit(err: StorageError) -> WitStorageError {
    match err {
        StorageError::NotFound => WitStorageError::NotFound,
        StorageError::DigestMismatch { actual } => WitStorageError::DigestMismatch(actual),
        StorageError::Invalid(msg) => WitStorageError::Invalid(msg),
        StorageError::Conflict(msg) => WitStorageError::Conflict(msg),
        other => match other.temporary() {
            Some(why) => {
                tracing::warn!(error = %other.cause(), "storage temporarily unavailable");
                WitStorageError::Unavailable(why)
            }
            None => {
                tracing::error!(error = %other.cause(), "storage backend failed");
                WitStorageError::Backend("storage backend failure".into())
            }
        },
    }
}

/// `Result` as the bindings want it: traps outside, storage errors inside.
type WitResult<T> = wasmtime::Result<Result<T, WitStorageError>>;

fn wit<T>(result: berth_storage::Result<T>) -> WitResult<T> {
    Ok(result.map_err(to_wit))
}

impl crate::sandbox::bindings::berth::registry::types::Host for StorageCtx<'_> {}
