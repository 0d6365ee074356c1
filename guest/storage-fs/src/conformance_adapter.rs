//! The store seen through `berth_storage`'s traits, so the conformance
//! suite every other backend passes runs on it too. Test-only: the
//! component exports the WIT interfaces directly (`component.rs`).
//!
//! The adapter adds no behaviour of its own. Reads and appends go to the
//! files [`Blobs`] names, as the component's streams do: a range is read
//! from its [`RangeSource`] to the end of the file, and a writer appends to
//! the session's data file, as the runtime's append stream does. The
//! listing, quarantine and single-writer parts of `BlobStore` are what the
//! WIT `blobs` interface (and so this store) does not have; see
//! `blobs/tests.rs` for the cases that are therefore not run.

use crate::error::{Error, not_found};
use crate::{Blobs, ManifestInfo, Metadata, Page, RangeSource};
use async_trait::async_trait;
use berth_storage::{BlobListing, BlobReader, Digest, StorageError, UploadEntry, UploadWriter};
use futures::StreamExt as _;
use std::io::{Read as _, Seek as _, SeekFrom};

type Result<T> = berth_storage::Result<T>;

/// Bytes read per chunk of a blob stream.
const CHUNK: usize = 1 << 20;

impl From<Error> for StorageError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound => StorageError::NotFound,
            Error::DigestMismatch(actual) => StorageError::DigestMismatch { actual },
            Error::Invalid(why) => StorageError::Invalid(why),
            Error::Conflict(why) => StorageError::Conflict(why),
            Error::Backend(why) => StorageError::Backend(why),
        }
    }
}

/// A missing file is `NotFound`, as in the store itself.
fn io(e: std::io::Error) -> StorageError {
    not_found(e).into()
}

fn unsupported<T>() -> Result<T> {
    Err(StorageError::Backend("unsupported by storage-fs".into()))
}

/// [`Metadata`] as a [`berth_storage::MetadataStore`].
pub struct MetadataAdapter(pub Metadata);

/// The storage crate's manifest record as this store's.
pub fn info_in(m: &berth_storage::ManifestInfo) -> ManifestInfo {
    ManifestInfo {
        digest: m.digest.clone(),
        media_type: m.media_type.clone(),
        size: m.size,
        artifact_type: m.artifact_type.clone(),
        subject: m.subject.clone(),
        annotations: m.annotations.clone(),
    }
}

fn info_out(m: ManifestInfo) -> berth_storage::ManifestInfo {
    berth_storage::ManifestInfo {
        digest: m.digest,
        media_type: m.media_type,
        size: m.size,
        artifact_type: m.artifact_type,
        subject: m.subject,
        annotations: m.annotations,
    }
}

fn page_in(p: &berth_storage::Page) -> Page {
    Page {
        last: p.last.clone(),
        n: p.n,
    }
}

#[async_trait]
impl berth_storage::MetadataStore for MetadataAdapter {
    async fn link_blob(&self, repo: &str, digest: &str) -> Result<()> {
        Ok(self.0.link_blob(repo, digest)?)
    }

    async fn blob_linked(&self, repo: &str, digest: &str) -> Result<bool> {
        Ok(self.0.blob_linked(repo, digest)?)
    }

    async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        Ok(self.0.unlink_blob(repo, digest)?)
    }

    async fn put_manifest(
        &self,
        repo: &str,
        manifest: &berth_storage::ManifestInfo,
        references: &[String],
        tag: Option<&str>,
    ) -> Result<()> {
        Ok(self
            .0
            .put_manifest(repo, &info_in(manifest), references, tag)?)
    }

    async fn get_manifest(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<berth_storage::ManifestInfo>> {
        Ok(self.0.get_manifest(repo, digest)?.map(info_out))
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<String>> {
        Ok(self.0.resolve_tag(repo, tag)?)
    }

    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool> {
        Ok(self.0.delete_manifest(repo, digest)?)
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        Ok(self.0.delete_tag(repo, tag)?)
    }

    async fn list_tags(
        &self,
        repo: &str,
        page: &berth_storage::Page,
    ) -> Result<Option<Vec<String>>> {
        Ok(self.0.list_tags(repo, &page_in(page))?)
    }

    async fn list_repositories(&self, page: &berth_storage::Page) -> Result<Vec<String>> {
        Ok(self.0.list_repositories(&page_in(page))?)
    }

    async fn list_referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<berth_storage::ManifestInfo>> {
        let found = self.0.list_referrers(repo, subject, artifact_type)?;
        Ok(found.into_iter().map(info_out).collect())
    }

    async fn begin_upload(&self, repo: &str, id: &str) -> Result<()> {
        Ok(self.0.begin_upload(repo, id)?)
    }

    async fn upload_repository(&self, id: &str) -> Result<Option<String>> {
        Ok(self.0.upload_repository(id)?)
    }

    async fn end_upload(&self, id: &str) -> Result<()> {
        Ok(self.0.end_upload(id)?)
    }

    /// This store keeps no upstreams (the WIT `metadata` interface has none).
    async fn set_origin(&self, _repo: &str, _origin: &str) -> Result<()> {
        unsupported()
    }

    /// Every repository here is its own: none can have been cached.
    async fn origin(&self, _repo: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// No repository here has an origin to note a pull for.
    async fn note_pulled(&self, _repo: &str, _now: u64) -> Result<()> {
        unsupported()
    }

    /// Nothing here is cached.
    async fn cached_repositories(&self) -> Result<Vec<berth_storage::CachedRepository>> {
        Ok(Vec::new())
    }

    /// The WIT `metadata` interface has no repository delete.
    async fn delete_repository(&self, _repo: &str) -> Result<bool> {
        unsupported()
    }
}

/// [`Blobs`] as a [`berth_storage::BlobStore`].
pub struct BlobsAdapter(pub Blobs);

#[async_trait]
impl berth_storage::BlobStore for BlobsAdapter {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.0.stat(digest.as_str())?)
    }

    async fn read(&self, digest: &Digest, offset: u64, length: u64) -> Result<BlobReader> {
        let (mut file, start) = match self.0.open_range(digest.as_str(), offset, length)? {
            RangeSource::Blob { path, offset } => (std::fs::File::open(path).map_err(io)?, offset),
            RangeSource::Copy { path } => {
                // As the component does: the open file keeps the copy's
                // bytes, its name goes at once.
                let opened = std::fs::File::open(&path);
                let _ = std::fs::remove_file(&path);
                (opened.map_err(io)?, 0)
            }
        };
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        // To the end of the file, as a `wasi:filesystem` stream reads: the
        // source must end exactly where the range does.
        let chunks = futures::stream::try_unfold(file, |mut file| async move {
            let mut buf = vec![0u8; CHUNK];
            let n = file.read(&mut buf)?;
            buf.truncate(n);
            Ok((n > 0).then(|| (bytes::Bytes::from(buf), file)))
        });
        Ok(chunks.boxed())
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        Ok(self.0.delete(digest.as_str())?)
    }

    async fn create_upload(&self) -> Result<String> {
        Ok(self.0.create_upload()?)
    }

    async fn upload_size(&self, id: &str) -> Result<u64> {
        Ok(self.0.upload_size(id)?)
    }

    /// An append-mode handle on the session's data file, as the
    /// component's sink is. Never `Conflict`: the store cannot tell when a
    /// sink is dropped, so it does not limit a session to one.
    async fn append(&self, id: &str) -> Result<UploadWriter> {
        let data = self.0.upload_data(id)?;
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(data)
            .await
            .map_err(io)?;
        Ok(Box::pin(file))
    }

    async fn commit(&self, id: &str, expected: &Digest) -> Result<u64> {
        Ok(self.0.commit(id, expected.as_str())?)
    }

    async fn abort(&self, id: &str) -> Result<()> {
        Ok(self.0.abort(id)?)
    }

    async fn list_blobs(&self) -> Result<BlobListing> {
        unsupported()
    }

    async fn list_uploads(&self) -> Result<Vec<UploadEntry>> {
        unsupported()
    }

    async fn quarantine(&self, _digest: &Digest) -> Result<bool> {
        unsupported()
    }
}
