//! Storage backends for Berth: where blob bytes and registry metadata live.
//!
//! Two small traits, [`BlobStore`] and [`MetadataStore`], mirror the WIT
//! interfaces `berth:registry/blobs` and `berth:registry/metadata`; the host
//! adapts them to the guest one-to-one.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod digest;
mod error;
pub mod fs_blobs;
pub mod layout_meta;
pub mod object_blobs;
pub mod small_blob_cache;
pub mod sqlite_meta;

pub use digest::Digest;
pub use error::{Result, StorageError};
pub use fs_blobs::FsBlobStore;
pub use layout_meta::LayoutMetadata;
pub use object_blobs::ObjectBlobStore;
pub use small_blob_cache::SmallBlobCache;
pub use sqlite_meta::SqliteMetadata;

use async_trait::async_trait;
use std::pin::Pin;
use tokio::io::AsyncWrite;

/// Bytes of a committed blob, streamed as chunks the backend filled directly
/// (no copy between the backend's buffer and the caller's).
pub type BlobReader = futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;

/// A reader over bytes already in memory: one chunk, or none when empty
/// (consumers treat the end of the stream as the end of the blob).
pub(crate) fn single_chunk(blob: bytes::Bytes) -> BlobReader {
    use futures::StreamExt as _;
    if blob.is_empty() {
        futures::stream::empty().boxed()
    } else {
        futures::stream::once(async { Ok(blob) }).boxed()
    }
}

/// Appends to an upload session, hashing as it goes. `shutdown()` completes
/// every write; dropping it without shutdown may lose buffered bytes.
pub type UploadWriter = Pin<Box<dyn AsyncWrite + Send>>;

/// Content-addressed blob storage with resumable upload sessions.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size of a committed blob, or `None` when absent.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;
    /// Streams `length` bytes of a committed blob starting at `offset`.
    async fn read(&self, digest: &Digest, offset: u64, length: u64) -> Result<BlobReader>;
    /// Removes a committed blob's bytes; `false` when absent.
    async fn delete(&self, digest: &Digest) -> Result<bool>;
    /// Starts an empty upload session and returns its id (URL-safe).
    async fn create_upload(&self) -> Result<String>;
    /// Bytes received by a session so far; `NotFound` for an unknown id.
    async fn upload_size(&self, id: &str) -> Result<u64>;
    /// A writer appending to the session; `Conflict` while another is open.
    async fn append(&self, id: &str) -> Result<UploadWriter>;
    /// Verifies the session's bytes hash to `expected`, makes them durable
    /// and visible as that blob, ends the session and returns the size. On a
    /// mismatch nothing becomes visible and the session is discarded.
    async fn commit(&self, id: &str, expected: &Digest) -> Result<u64>;
    /// Discards a session and its bytes.
    async fn abort(&self, id: &str) -> Result<()>;
    /// A URL a client may fetch the committed blob from directly (a
    /// presigned object-store URL), or `None` to serve the bytes through
    /// the registry. Stores without such URLs keep the default.
    async fn redirect_url(&self, _digest: &Digest) -> Result<Option<String>> {
        Ok(None)
    }
}

/// A manifest as stored; mirrors WIT `metadata.manifest-info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestInfo {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
    pub annotations: Option<String>,
}

/// A page of a sorted listing: at most `n` items strictly after `last`.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub last: Option<String>,
    pub n: Option<u32>,
}

/// Registry metadata; every method is one atomic operation. Semantics are
/// documented on the WIT interface `berth:registry/metadata`.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    async fn link_blob(&self, repo: &str, digest: &str) -> Result<()>;
    async fn blob_linked(&self, repo: &str, digest: &str) -> Result<bool>;
    async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool>;
    async fn put_manifest(
        &self,
        repo: &str,
        manifest: &ManifestInfo,
        references: &[String],
        tag: Option<&str>,
    ) -> Result<()>;
    async fn get_manifest(&self, repo: &str, digest: &str) -> Result<Option<ManifestInfo>>;
    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<String>>;
    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool>;
    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool>;
    async fn list_tags(&self, repo: &str, page: &Page) -> Result<Option<Vec<String>>>;
    async fn list_repositories(&self, page: &Page) -> Result<Vec<String>>;
    async fn list_referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestInfo>>;
    async fn begin_upload(&self, repo: &str, id: &str) -> Result<()>;
    async fn upload_repository(&self, id: &str) -> Result<Option<String>>;
    async fn end_upload(&self, id: &str) -> Result<()>;
}
