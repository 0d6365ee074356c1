//! `berth:registry/blobs` on a `BlobStore`.

use super::{BlobSource, StorageCtx, UploadSession, UploadSink, WitResult, to_wit, wit};
use crate::backends::past_tombstones;
use crate::sandbox::bindings::berth::registry::blobs::{Host, HostUpload};
use berth_storage::{Digest, MetadataStore, StorageError};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

/// Pins the digest before its bytes (re)appear, so no collector can
/// condemn it between commit and link, at any grace period.
async fn pin(metadata: &dyn MetadataStore, digest: &str, request: u64) -> Result<(), StorageError> {
    past_tombstones(|| metadata.pin_blob(digest, request)).await
}

fn parse_digest(digest: &str) -> Result<Digest, crate::sandbox::bindings::WitStorageError> {
    Digest::parse(digest).map_err(|e| to_wit(e.into()))
}

impl Host for StorageCtx<'_> {
    async fn stat(&mut self, digest: String) -> WitResult<Option<u64>> {
        let digest = match parse_digest(&digest) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        wit(crate::metrics::timed(
            self.backends.drivers.blobs,
            "stat",
            self.backends.blobs.stat(&digest),
        )
        .await)
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
        let reader = match crate::metrics::timed(
            self.backends.drivers.blobs,
            "read",
            self.backends.blobs.read(&digest, offset, length),
        )
        .await
        {
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
        wit(crate::metrics::timed(
            self.backends.drivers.blobs,
            "redirect_url",
            self.backends.blobs.redirect_url(&digest),
        )
        .await)
    }

    async fn delete(&mut self, digest: String) -> WitResult<bool> {
        let digest = match parse_digest(&digest) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        wit(crate::metrics::timed(
            self.backends.drivers.blobs,
            "delete",
            self.backends.blobs.delete(&digest),
        )
        .await)
    }
}

impl HostUpload for StorageCtx<'_> {
    async fn create(&mut self) -> WitResult<Resource<UploadSession>> {
        match crate::metrics::timed(
            self.backends.drivers.blobs,
            "create_upload",
            self.backends.blobs.create_upload(),
        )
        .await
        {
            Ok(id) => Ok(Ok(self.table.push(UploadSession { id })?)),
            Err(e) => Ok(Err(to_wit(e))),
        }
    }

    async fn open(&mut self, id: String) -> WitResult<Resource<UploadSession>> {
        // Opening checks the session exists, so later calls fail early and clearly.
        match crate::metrics::timed(
            self.backends.drivers.blobs,
            "upload_size",
            self.backends.blobs.upload_size(&id),
        )
        .await
        {
            Ok(_) => Ok(Ok(self.table.push(UploadSession { id })?)),
            Err(e) => Ok(Err(to_wit(e))),
        }
    }

    async fn id(&mut self, this: Resource<UploadSession>) -> wasmtime::Result<String> {
        Ok(self.table.get(&this)?.id.clone())
    }

    async fn size(&mut self, this: Resource<UploadSession>) -> WitResult<u64> {
        let id = self.table.get(&this)?.id.clone();
        wit(crate::metrics::timed(
            self.backends.drivers.blobs,
            "upload_size",
            self.backends.blobs.upload_size(&id),
        )
        .await)
    }

    async fn sink(
        &mut self,
        this: Resource<UploadSession>,
    ) -> WitResult<Resource<DynOutputStream>> {
        let id = self.table.get(&this)?.id.clone();
        let writer = match crate::metrics::timed(
            self.backends.drivers.blobs,
            "append",
            self.backends.blobs.append(&id),
        )
        .await
        {
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
        let digest = expected.to_string();
        let metadata = self.backends.metadata.as_ref();
        if let Err(e) = pin(metadata, &digest, self.pins.request()).await {
            return Ok(Err(to_wit(e)));
        }
        self.pins.note_pinned(&digest);
        wit(crate::metrics::timed(
            self.backends.drivers.blobs,
            "commit",
            self.backends.blobs.commit(&id, &expected),
        )
        .await)
    }

    async fn abort(&mut self, this: Resource<UploadSession>) -> WitResult<()> {
        let id = self.table.get(&this)?.id.clone();
        wit(crate::metrics::timed(
            self.backends.drivers.blobs,
            "abort",
            self.backends.blobs.abort(&id),
        )
        .await)
    }

    async fn drop(&mut self, this: Resource<UploadSession>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::TOMBSTONE_WAIT;
    use berth_storage::{GcLease, GcMetadata, GracePeriods, SqliteMetadata};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const DIGEST: &str = "sha256:0123";

    /// Metadata in which a collector has condemned `DIGEST` and not yet
    /// buried it, with the collector's lease.
    async fn tombstoned() -> (tempfile::TempDir, Arc<SqliteMetadata>, GcLease) {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Arc::new(SqliteMetadata::open(&dir.path().join("m.db")).expect("open"));
        meta.pin_blob(DIGEST, 1).await.expect("pin");
        meta.unpin(1).await.expect("unpin");
        let now = u64::MAX / 4;
        let zero = GracePeriods {
            unreferenced: 0,
            uploaded: 0,
        };
        let (lease, _) = meta.gc_begin().await.expect("begin");
        assert!(
            meta.gc_condemn(&lease, DIGEST, now, zero)
                .await
                .expect("condemn")
        );
        (dir, meta, lease)
    }

    #[tokio::test]
    async fn a_commit_waits_for_the_collector_to_bury_its_digest() {
        let (_dir, meta, lease) = tombstoned().await;
        let collector = meta.clone();
        let bury = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            collector.gc_bury(&lease, DIGEST).await
        });
        let started = Instant::now();
        pin(meta.as_ref(), DIGEST, 2)
            .await
            .expect("pinned once buried");
        assert!(started.elapsed() >= Duration::from_millis(150));
        bury.await.expect("join").expect("bury");
    }

    #[tokio::test]
    async fn a_tombstone_nobody_buries_refuses_the_commit_after_the_wait() {
        let (_dir, meta, _lease) = tombstoned().await;
        let started = Instant::now();
        let refused = pin(meta.as_ref(), DIGEST, 2).await;
        assert!(
            matches!(refused, Err(StorageError::Conflict(_))),
            "{refused:?}"
        );
        assert!(started.elapsed() >= TOMBSTONE_WAIT);
    }
}
