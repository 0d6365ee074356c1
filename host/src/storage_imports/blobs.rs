//! `berth:registry/blobs` on a `BlobStore`.

use super::{BlobSource, StorageCtx, UploadSession, UploadSink, WitResult, to_wit, wit};
use crate::bindings::berth::registry::blobs::{Host, HostUpload};
use berth_storage::Digest;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream};

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
        // Mark the digest in flight before its bytes (re)appear, so garbage
        // collection cannot condemn it between commit and link; if it already
        // has, the commit is refused (`conflict`) and the client retries.
        if let Err(e) = self
            .backends
            .metadata
            .protect_blob(&expected.to_string())
            .await
        {
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
