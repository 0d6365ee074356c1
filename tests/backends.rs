//! The storage conformance suite (`berth_storage::conformance`) against a
//! real S3-compatible server (SeaweedFS, started by the test): the same
//! functions the filesystem, SQLite and in-memory backends pass in their
//! unit tests, so every backend is held to one contract.

mod common;

use berth_storage::conformance as c;
use berth_storage::{BlobStore, ObjectBlobStore};
use common::seaweed;
use std::sync::Arc;

/// A blob store over a fresh prefix of the test bucket, and a way to open
/// another "host" on the same prefix.
fn s3_blobs(name: &str) -> (Arc<dyn object_store::ObjectStore>, ObjectBlobStore) {
    let store = seaweed::shared().store(&seaweed::unique_prefix(name));
    let blobs = ObjectBlobStore::new(store.clone(), None);
    (store, blobs)
}

macro_rules! s3_blob_conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_, blobs) = s3_blobs(stringify!($name));
            c::$name(&blobs).await;
        }
    )*};
}

mod s3_blobs {
    use super::*;

    s3_blob_conformance!(
        put_get_delete,
        empty_blob,
        ranged_reads,
        multi_append,
        second_writer_conflicts,
        concurrent_same_digest,
        many_writers_same_digest,
        digest_mismatch,
        abort_discards,
        abort_with_open_writer,
        bad_upload_ids,
        all_blob_tests,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_streamed_64mib() {
        let (_, blobs) = s3_blobs("large");
        c::large_streamed(&blobs, 64 << 20).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_streamed_odd_size() {
        let (_, blobs) = s3_blobs("odd");
        c::large_streamed(&blobs, (3 << 20) + 12_345).await;
    }

    /// A new store on the same prefix resumes the sessions of the last.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resume_after_restart() {
        let (store, _) = s3_blobs("resume");
        let open = || Box::new(ObjectBlobStore::new(store.clone(), None)) as Box<dyn BlobStore>;
        c::resume_after_restart(&open).await;
    }

    /// Two stores ("hosts") over one prefix take turns on one upload.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hosts_alternate() {
        let (store, _) = s3_blobs("alternate");
        let open = || Box::new(ObjectBlobStore::new(store.clone(), None)) as Box<dyn BlobStore>;
        c::hosts_alternate(&open).await;
    }
}

/// Registry metadata in registry:2's layout inside the bucket. The suite's
/// manifest records get matching manifest documents stored as blobs first
/// (`ManifestBytes`), since this backend reads manifests from their bytes.
mod s3_layout_metadata {
    use super::*;
    use berth_storage::{LayoutMetadata, MetadataStore};
    use c::ManifestBytes;

    fn layout(store: &Arc<dyn object_store::ObjectStore>) -> Box<dyn MetadataStore> {
        ManifestBytes::object_store(store.clone())
            .wrap(Box::new(LayoutMetadata::new(store.clone())))
    }

    fn fresh(name: &str) -> (Arc<dyn object_store::ObjectStore>, Box<dyn MetadataStore>) {
        let store = seaweed::shared().store(&seaweed::unique_prefix(name));
        let meta = layout(&store);
        (store, meta)
    }

    berth_storage::metadata_conformance_tests!(|case| fresh(case));

    /// What fsck and du walk: the whole tree, listed in the bucket.
    mod inventory {
        berth_storage::inventory_conformance_tests!(|case| super::fresh(case));
    }

    /// A second handle on the same prefix (another host) sees everything.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_persists() {
        let (store, _) = fresh("persists");
        // One wrapper for both handles: it remembers the records' sizes.
        let bytes = ManifestBytes::object_store(store.clone());
        let open = || bytes.wrap(Box::new(LayoutMetadata::new(store.clone())));
        c::metadata_persists(&open).await;
    }
}
