//! Blob store on any `object_store::ObjectStore`: S3-compatible buckets
//! (AWS S3, MinIO, Ceph, SeaweedFS) and `InMemory`.
//!
//! Several Berth processes may share a bucket and are interchangeable: all
//! state is in the store (layout in `layout.rs`); what a process keeps in
//! memory is a lock and caches of things that never change (`sessions.rs`).
//! Committed blobs sit where registry:2 keeps them, so either registry can
//! read what the other wrote. Memory per operation is bounded whatever the
//! blob size: bytes are streamed, never held whole.

mod chunks;
mod commit;
mod layout;
mod listing;
mod quarantine;
mod read;
mod sessions;
mod writer;

pub use layout::blob_path;

use crate::{
    BlobListing, BlobReader, BlobStore, Digest, Result, StorageError, UploadEntry, UploadWriter,
};
use async_trait::async_trait;
use layout::SessionId;
use object_store::signer::{Method, Signer};
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutPayload};
use sessions::Sessions;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a redirect URL stays valid.
const REDIRECT_TTL: Duration = Duration::from_secs(20 * 60);

/// What the store and its writer tasks share.
struct Shared {
    store: Arc<dyn ObjectStore>,
    sessions: Sessions,
}

/// Content-addressed blobs in an object store.
pub struct ObjectBlobStore {
    shared: Arc<Shared>,
    /// Signs the same keys as `store` sees: when `store` is a `PrefixStore`,
    /// the signer must be one too (`PrefixStore` implements `Signer`).
    signer: Option<Arc<dyn Signer>>,
}

impl ObjectBlobStore {
    /// A store over `store`; with a `signer`, `redirect_url` hands out
    /// presigned GET URLs for committed blobs.
    pub fn new(store: Arc<dyn ObjectStore>, signer: Option<Arc<dyn Signer>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                sessions: Sessions::default(),
            }),
            signer,
        }
    }
}

/// Maps a missing object to `NotFound`, other errors as they are.
fn not_found(e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        e => StorageError::ObjectStore(e),
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.shared.store.head(&blob_path(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, digest: &Digest, offset: u64, length: u64) -> Result<BlobReader> {
        read::read(&*self.shared.store, digest, offset, length).await
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        // S3 deletes are idempotent and do not say whether anything was there.
        if self.stat(digest).await?.is_none() {
            return Ok(false);
        }
        match self.shared.store.delete(&blob_path(digest)).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_upload(&self) -> Result<String> {
        let id = SessionId::new();
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.shared
            .store
            .put_opts(
                &id.started_at(),
                PutPayload::from(started.to_string()),
                PutMode::Create.into(),
            )
            .await?;
        tracing::debug!(upload = %id, "upload session created");
        Ok(id.as_str().to_owned())
    }

    async fn upload_size(&self, id: &str) -> Result<u64> {
        let id = SessionId::parse(id)?;
        let last = chunks::load(&self.shared, &id, chunks::Scope::Last).await?;
        Ok(chunks::size(&last))
    }

    async fn append(&self, id: &str) -> Result<UploadWriter> {
        let id = SessionId::parse(id)?;
        let lease = self.shared.sessions.acquire(id.as_str())?;
        // On an error below the lease is dropped, freeing the session.
        let last = chunks::load(&self.shared, &id, chunks::Scope::Last).await?;
        let offset = chunks::size(&last);
        Ok(writer::open(Arc::clone(&self.shared), id, lease, offset))
    }

    async fn commit(&self, id: &str, expected: &Digest) -> Result<u64> {
        let id = SessionId::parse(id)?;
        let _lease = self.shared.sessions.acquire(id.as_str())?;
        commit::commit(&self.shared, &id, expected).await
    }

    async fn abort(&self, id: &str) -> Result<()> {
        let id = SessionId::parse(id)?;
        self.shared
            .store
            .head(&id.started_at())
            .await
            .map_err(not_found)?;
        // Allowed while a writer is open: its claim will find the session
        // gone and clean up after itself (see `chunks::claim`).
        self.shared.sessions.forget(id.as_str());
        chunks::delete_session(&self.shared, &id).await?;
        tracing::debug!(upload = %id, "upload session aborted");
        Ok(())
    }

    async fn redirect_url(&self, digest: &Digest) -> Result<Option<String>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        if self.stat(digest).await?.is_none() {
            return Ok(None);
        }
        let url = signer
            .signed_url(Method::GET, &blob_path(digest), REDIRECT_TTL)
            .await?;
        Ok(Some(url.into()))
    }

    async fn list_blobs(&self) -> Result<BlobListing> {
        Ok(listing::list_blobs(&*self.shared.store))
    }

    async fn list_uploads(&self) -> Result<Vec<UploadEntry>> {
        listing::list_uploads(&self.shared).await
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        let moved = quarantine::quarantine(&self.shared, digest).await?;
        if moved {
            tracing::warn!(%digest, "blob quarantined");
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests;
