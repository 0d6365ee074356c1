//! Backend-independent conformance tests, in the spirit of object_store's
//! `integration.rs`: every backend's test suite calls these same functions,
//! so the fs, S3 or in-memory stores are held to one contract.
//!
//! They panic on failure. Each function leaves its objects behind, using
//! names of its own, so they can share one store; `catalog_pagination`
//! alone needs a store without repositories.

mod blobs;
mod browse;
pub mod gc;
mod inventory;
mod metadata;
mod origins;
pub mod postgres;

pub use blobs::*;
pub use browse::*;
pub use inventory::*;
pub use metadata::*;
pub use origins::*;

use crate::{BlobStore, Digest, StorageError};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

/// One `#[tokio::test]` per metadata conformance case, so that every
/// backend runs the same list. `|case| setup` yields `(guard, store)` for a
/// fresh store, `store` a `Box<dyn MetadataStore>` (or anything that
/// dereferences to one) and `guard` whatever must live as long (a
/// temporary directory); `case` is the test's name, for stores that need
/// a unique prefix. Needs `tokio` (with `macros`) in the calling crate.
#[macro_export]
macro_rules! metadata_conformance_tests {
    (|$case:ident| $setup:expr) => {
        $crate::metadata_conformance_tests!(@each |$case| $setup;
            blob_links, tags_pagination, catalog_pagination, manifests_and_tags,
            delete_tag_keeps_manifest, referrers, uploads, all_metadata_tests);
    };
    (@each |$case:ident| $setup:expr; $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let $case = stringify!($name);
            let (_guard, store) = $setup;
            $crate::conformance::$name(&*store).await;
        }
    )*};
}

/// One `#[tokio::test]` per inventory case ([`crate::Inventory`]: what
/// fsck and usage reports walk), for stores that offer it; the same
/// `|case| setup` as [`metadata_conformance_tests!`].
#[macro_export]
macro_rules! inventory_conformance_tests {
    (|$case:ident| $setup:expr) => {
        $crate::metadata_conformance_tests!(@each |$case| $setup;
            inventory_lists_everything, inventory_drops_like_a_delete);
    };
}

/// One `#[tokio::test]` per case of the upstream a repository caches
/// ([`crate::MetadataStore::origin`]); the same `|case| setup` as
/// [`metadata_conformance_tests!`]. Apart from that list so that test
/// adapters of stores without pull-through caching can leave them out.
#[macro_export]
macro_rules! origin_conformance_tests {
    (|$case:ident| $setup:expr) => {
        $crate::metadata_conformance_tests!(@each |$case| $setup;
            origin_none_by_default, origin_set_and_replace, origin_and_catalog,
            origins_stay_apart, pulls_and_cached_listing, delete_repository_whole);
    };
}

/// Opens a (possibly new) handle on the same underlying storage.
pub type Reopen<'a, S> = &'a (dyn Fn() -> Box<S> + Sync);

/// The sha256 digest of `data`.
pub fn digest_of(data: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(data))
}

/// Appends `data` to session `id` through one writer and shuts it down.
pub async fn append_all(store: &dyn BlobStore, id: &str, data: &[u8]) {
    let mut w = store.append(id).await.expect("append");
    w.write_all(data).await.expect("write");
    w.shutdown().await.expect("shutdown");
}

/// Uploads `data` in one session and commits it; returns its digest.
pub async fn put(store: &dyn BlobStore, data: &[u8]) -> Digest {
    let id = store.create_upload().await.expect("create upload");
    append_all(store, &id, data).await;
    let digest = digest_of(data);
    assert_eq!(
        store.commit(&id, &digest).await.expect("commit"),
        data.len() as u64
    );
    digest
}

/// Reads a whole range into memory (for small ranges only).
pub async fn read_range(store: &dyn BlobStore, d: &Digest, offset: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunks = store.read(d, offset, len).await.expect("read");
    while let Some(chunk) = chunks.next().await {
        out.extend_from_slice(&chunk.expect("read chunk"));
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift), so tests need not keep copies.
pub struct Pattern(u64);

impl Pattern {
    /// A generator; equal seeds give equal streams.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

pub(crate) fn assert_not_found<T: std::fmt::Debug>(r: crate::Result<T>) {
    assert!(
        matches!(r, Err(StorageError::NotFound)),
        "expected NotFound, got {r:?}"
    );
}
