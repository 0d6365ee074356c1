//! A decorator that keeps small whole blobs (manifests, image configs) in
//! memory. Blobs are content-addressed, so a cached copy can never be stale;
//! only `delete` and `quarantine` have to forget it.

use crate::{BlobListing, BlobReader, BlobStore, Digest, Result, UploadEntry, UploadWriter};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Whole-blob reads up to this size are cached.
const MAX_CACHED_BLOB: u64 = 64 << 10;

/// Wraps a `BlobStore`, serving repeated small whole-blob reads from memory.
pub struct SmallBlobCache<S> {
    inner: S,
    budget: usize,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    blobs: HashMap<Digest, Bytes>,
    /// Insertion order, for evicting the oldest first.
    order: VecDeque<Digest>,
    bytes: usize,
}

impl<S: BlobStore> SmallBlobCache<S> {
    /// Caches at most `budget` bytes of small blobs in front of `inner`.
    pub fn new(inner: S, budget: usize) -> Self {
        Self {
            inner,
            budget,
            cache: Mutex::new(Cache::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the map inconsistent
        // in a way that matters: at worst an entry is missing.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, digest: &Digest) -> Option<Bytes> {
        self.lock().blobs.get(digest).cloned()
    }

    fn insert(&self, digest: &Digest, blob: Bytes) {
        let mut cache = self.lock();
        if cache.blobs.contains_key(digest) || blob.len() > self.budget {
            return;
        }
        while cache.bytes + blob.len() > self.budget {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            if let Some(evicted) = cache.blobs.remove(&oldest) {
                cache.bytes -= evicted.len();
            }
        }
        cache.bytes += blob.len();
        cache.order.push_back(digest.clone());
        cache.blobs.insert(digest.clone(), blob);
    }

    fn forget(&self, digest: &Digest) {
        let mut cache = self.lock();
        if let Some(removed) = cache.blobs.remove(digest) {
            cache.bytes -= removed.len();
            cache.order.retain(|d| d != digest);
        }
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for SmallBlobCache<S> {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        self.inner.stat(digest).await
    }

    async fn read(&self, digest: &Digest, offset: u64, length: u64) -> Result<BlobReader> {
        if let Some(blob) = self.get(digest) {
            let end = offset
                .checked_add(length)
                .filter(|&end| end <= blob.len() as u64);
            if let Some(end) = end {
                return Ok(crate::single_chunk(
                    blob.slice(offset as usize..end as usize),
                ));
            }
        }
        // Only a read that starts at 0 and ends at the blob's end is the
        // whole blob; `stat` tells, and small reads are the only ones asked.
        let whole = offset == 0
            && length <= MAX_CACHED_BLOB
            && self.inner.stat(digest).await? == Some(length);
        if !whole {
            return self.inner.read(digest, offset, length).await;
        }
        let mut chunks = self.inner.read(digest, offset, length).await?;
        let mut blob = Vec::with_capacity(length as usize);
        while let Some(chunk) = chunks.next().await {
            blob.extend_from_slice(&chunk?);
        }
        let blob = Bytes::from(blob);
        self.insert(digest, blob.clone());
        Ok(crate::single_chunk(blob))
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        self.forget(digest);
        self.inner.delete(digest).await
    }

    async fn create_upload(&self) -> Result<String> {
        self.inner.create_upload().await
    }

    async fn upload_size(&self, id: &str) -> Result<u64> {
        self.inner.upload_size(id).await
    }

    async fn append(&self, id: &str) -> Result<UploadWriter> {
        self.inner.append(id).await
    }

    async fn commit(&self, id: &str, expected: &Digest) -> Result<u64> {
        self.inner.commit(id, expected).await
    }

    async fn abort(&self, id: &str) -> Result<()> {
        self.inner.abort(id).await
    }

    async fn redirect_url(&self, digest: &Digest) -> Result<Option<String>> {
        self.inner.redirect_url(digest).await
    }

    fn upload_file(&self, id: &str) -> Option<std::path::PathBuf> {
        self.inner.upload_file(id)
    }

    fn hashes_uploads(&self) -> bool {
        self.inner.hashes_uploads()
    }

    async fn upload_digest(&self, id: &str) -> Result<Option<Digest>> {
        self.inner.upload_digest(id).await
    }

    async fn list_blobs(&self) -> Result<BlobListing> {
        self.inner.list_blobs().await
    }

    async fn list_uploads(&self) -> Result<Vec<UploadEntry>> {
        self.inner.list_uploads().await
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        self.forget(digest);
        let moved = self.inner.quarantine(digest).await;
        // A whole read racing with the move may have cached it meanwhile:
        // quarantined bytes are suspect, they must not be served.
        self.forget(digest);
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::SmallBlobCache;
    use crate::conformance::{self as c, put, read_range};
    use crate::{BlobStore, FsBlobStore};
    use tempfile::TempDir;

    fn cached(budget: usize) -> (TempDir, SmallBlobCache<FsBlobStore>) {
        let dir = TempDir::new().expect("tempdir");
        let store = FsBlobStore::open(dir.path()).expect("open");
        (dir, SmallBlobCache::new(store, budget))
    }

    fn blob_path(dir: &TempDir, d: &crate::Digest) -> std::path::PathBuf {
        dir.path()
            .join("blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex())
    }

    #[tokio::test]
    async fn passes_the_blob_conformance_suite() {
        let (_dir, store) = cached(1 << 20);
        c::all_blob_tests(&store).await;
    }

    #[tokio::test]
    async fn passes_the_listing_conformance_suite() {
        let (_dir, store) = cached(1 << 20);
        c::all_blob_tests(&store).await;
        c::all_listing_tests(&store).await;
    }

    #[tokio::test]
    async fn quarantine_forgets_the_cached_copy() {
        let (_dir, store) = cached(1 << 20);
        c::quarantine_hides(&store).await;
        let data = b"cached, then quarantined".to_vec();
        let d = put(&store, &data).await;
        assert_eq!(read_range(&store, &d, 0, data.len() as u64).await, data);
        assert!(store.lock().blobs.contains_key(&d), "not cached");
        assert!(store.quarantine(&d).await.expect("quarantine"));
        assert!(!store.lock().blobs.contains_key(&d), "still cached");
        assert!(store.read(&d, 0, data.len() as u64).await.is_err());
    }

    #[tokio::test]
    async fn repeated_reads_come_from_memory_until_deleted() {
        let (dir, store) = cached(1 << 20);
        let data = b"{\"schemaVersion\":2}".to_vec();
        let d = put(&store, &data).await;
        assert_eq!(read_range(&store, &d, 0, data.len() as u64).await, data);
        // Gone from disk behind the store's back: a cached blob still reads.
        std::fs::remove_file(blob_path(&dir, &d)).expect("remove");
        assert_eq!(read_range(&store, &d, 0, data.len() as u64).await, data);
        assert_eq!(read_range(&store, &d, 2, 3).await, data[2..5].to_vec());
        // Deleting through the store forgets the cached copy.
        store.delete(&d).await.expect("delete");
        assert!(store.read(&d, 0, data.len() as u64).await.is_err());
    }

    #[tokio::test]
    async fn partial_reads_are_not_cached_as_whole_blobs() {
        let (dir, store) = cached(1 << 20);
        let data = vec![7u8; 100];
        let d = put(&store, &data).await;
        assert_eq!(read_range(&store, &d, 0, 10).await, vec![7u8; 10]);
        std::fs::remove_file(blob_path(&dir, &d)).expect("remove");
        assert!(
            store.read(&d, 0, 100).await.is_err(),
            "a 10-byte read was cached as the blob"
        );
    }

    #[tokio::test]
    async fn stays_within_its_budget() {
        let (_dir, store) = cached(100);
        for seed in 0..3u8 {
            let data = vec![seed; 60];
            let d = put(&store, &data).await;
            assert_eq!(read_range(&store, &d, 0, 60).await, data);
        }
        let cache = store.lock();
        assert!(cache.bytes <= 100, "cache holds {} bytes", cache.bytes);
        assert_eq!(cache.blobs.len(), 1);
        assert_eq!(cache.order.len(), 1);
    }
}
