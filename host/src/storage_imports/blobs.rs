//! `berth:registry/blobs` on a `BlobStore`.

use super::{BlobSource, StorageCtx, UploadSession, UploadSink, WitResult, to_wit, wit};
use crate::bindings::berth::registry::blobs::{Host, HostUpload};
use berth_storage::{Digest, MetadataStore, StorageError};
use std::time::{Duration, Instant};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

/// How long a commit waits for garbage collection to finish with a digest it
/// condemned. A collector deletes the bytes and drops the tombstone within
/// milliseconds; only one that died mid-pass leaves it until the next pass.
const TOMBSTONE_WAIT: Duration = Duration::from_secs(2);
const TOMBSTONE_POLL: Duration = Duration::from_millis(10);

/// Marks the digest in flight before its bytes (re)appear, so garbage
/// collection cannot condemn it between commit and link. `protect_blob`
/// conflicts only while a collector holds a tombstone on the digest: wait
/// for it to be buried rather than fail a client that merely pushed a layer
/// the collector was removing. Past the wait the commit is refused
/// (`conflict`, 409) and the client retries.
async fn protect(metadata: &dyn MetadataStore, digest: &str) -> Result<(), StorageError> {
    let started = Instant::now();
    loop {
        match metadata.protect_blob(digest).await {
            Err(StorageError::Conflict(_)) if started.elapsed() < TOMBSTONE_WAIT => {
                tokio::time::sleep(TOMBSTONE_POLL).await;
            }
            result => return result,
        }
    }
}

fn parse_digest(digest: &str) -> Result<Digest, crate::bindings::WitStorageError> {
    digest.parse::<Digest>().map_err(to_wit)
}

impl Host for StorageCtx<'_> {
    async fn stat(&mut self, digest: String) -> WitResult<Option<u64>> {
        let digest = match parse_digest(&digest) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        wit(self.backends.blobs.stat(&digest).await)
    }

    async fn read(
        &mut self,
        digest: String,
        offset: u64,
        length: u64,
    ) -> WitResult<Resource<DynInputStream>> {
        let digest = match parse_digest(&digest) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let reader = match self.backends.blobs.read(&digest, offset, length).await {
            Ok(r) => r,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        let stream: DynInputStream = Box::new(BlobSource::new(reader));
        Ok(Ok(self.table.push(stream)?))
    }

    async fn redirect(&mut self, digest: String) -> WitResult<Option<String>> {
        let digest = match parse_digest(&digest) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        wit(self.backends.blobs.redirect_url(&digest).await)
    }

    async fn delete(&mut self, digest: String) -> WitResult<bool> {
        let digest = match parse_digest(&digest) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        wit(self.backends.blobs.delete(&digest).await)
    }
}

impl HostUpload for StorageCtx<'_> {
    async fn create(&mut self) -> WitResult<Resource<UploadSession>> {
        match self.backends.blobs.create_upload().await {
            Ok(id) => Ok(Ok(self.table.push(UploadSession { id })?)),
            Err(e) => Ok(Err(to_wit(e))),
        }
    }

    async fn open(&mut self, id: String) -> WitResult<Resource<UploadSession>> {
        // Opening checks the session exists, so later calls fail early and clearly.
        match self.backends.blobs.upload_size(&id).await {
            Ok(_) => Ok(Ok(self.table.push(UploadSession { id })?)),
            Err(e) => Ok(Err(to_wit(e))),
        }
    }

    async fn id(&mut self, this: Resource<UploadSession>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.id.clone())
    }

    async fn size(&mut self, this: Resource<UploadSession>) -> WitResult<u64> {
        let id = self.table.get(&this)?.id.clone();
        wit(self.backends.blobs.upload_size(&id).await)
    }

    async fn sink(
        &mut self,
        this: Resource<UploadSession>,
    ) -> WitResult<Resource<DynOutputStream>> {
        let id = self.table.get(&this)?.id.clone();
        let writer = match self.backends.blobs.append(&id).await {
            Ok(w) => w,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        let stream: DynOutputStream = Box::new(UploadSink::new(writer));
        Ok(Ok(self.table.push(stream)?))
    }

    async fn commit(&mut self, this: Resource<UploadSession>, expected: String) -> WitResult<u64> {
        let id = self.table.get(&this)?.id.clone();
        let expected = match parse_digest(&expected) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = protect(self.backends.metadata.as_ref(), &expected.to_string()).await {
            return Ok(Err(to_wit(e)));
        }
        wit(self.backends.blobs.commit(&id, &expected).await)
    }

    async fn abort(&mut self, this: Resource<UploadSession>) -> WitResult<()> {
        let id = self.table.get(&this)?.id.clone();
        wit(self.backends.blobs.abort(&id).await)
    }

    async fn drop(&mut self, this: Resource<UploadSession>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::{GcMetadata, GracePeriods, SqliteMetadata};
    use std::sync::Arc;

    const DIGEST: &str = "sha256:0123";

    /// Metadata in which a collector has condemned `DIGEST` and not yet
    /// buried it.
    async fn tombstoned() -> (tempfile::TempDir, Arc<SqliteMetadata>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Arc::new(SqliteMetadata::open(&dir.path().join("m.db")).expect("open"));
        meta.protect_blob(DIGEST).await.expect("protect");
        let now = u64::MAX / 4;
        let zero = GracePeriods {
            unreferenced: 0,
            uploaded: 0,
        };
        assert!(meta.gc_condemn(DIGEST, now, zero).await.expect("condemn"));
        (dir, meta)
    }

    #[tokio::test]
    async fn a_commit_waits_for_the_collector_to_bury_its_digest() {
        let (_dir, meta) = tombstoned().await;
        let collector = meta.clone();
        let bury = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            collector.gc_bury(DIGEST).await
        });
        let started = Instant::now();
        protect(meta.as_ref(), DIGEST)
            .await
            .expect("protected once buried");
        assert!(started.elapsed() >= Duration::from_millis(150));
        bury.await.expect("join").expect("bury");
    }

    #[tokio::test]
    async fn a_tombstone_nobody_buries_refuses_the_commit_after_the_wait() {
        let (_dir, meta) = tombstoned().await;
        let started = Instant::now();
        let refused = protect(meta.as_ref(), DIGEST).await;
        assert!(
            matches!(refused, Err(StorageError::Conflict(_))),
            "{refused:?}"
        );
        assert!(started.elapsed() >= TOMBSTONE_WAIT);
    }
}
