//! Storage backends for Berth: where blob bytes and registry metadata live.
//!
//! Two small traits, [`BlobStore`] and [`MetadataStore`], mirror the WIT
//! interfaces `berth:registry/blobs` and `berth:registry/metadata`; the host
//! adapts them to the guest one-to-one.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

mod error;
pub mod fs_blobs;
pub mod layout_meta;
pub mod object_blobs;
pub mod outbox;
pub mod pg_meta;
pub mod small_blob_cache;
pub mod sqlite_meta;

pub use berth_oci::Digest;
pub use error::{Result, StorageError};
pub use fs_blobs::FsBlobStore;
pub use layout_meta::LayoutMetadata;
pub use object_blobs::ObjectBlobStore;
pub use pg_meta::{PostgresMetadata, PostgresSettings, describe_database};
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
    /// The local file an upload session's bytes are appended to, for
    /// stores that keep one: readers may read what the session's writer
    /// flushed while it is still being written (the pull-through cache
    /// streams a blob to its clients that way instead of writing it twice).
    /// `None` for stores whose sessions are not one local file.
    fn upload_file(&self, _id: &str) -> Option<std::path::PathBuf> {
        None
    }
    /// Whether [`BlobStore::upload_digest`] answers for sessions written
    /// in one go through `append`: the store hashes bytes as it accepts
    /// them.
    fn hashes_uploads(&self) -> bool {
        false
    }
    /// The sha256 of upload session `id`'s bytes so far, from the hash the
    /// store kept while they were written (no re-read), once its writer is
    /// shut down; `None` when the store keeps no such hash. A commit after
    /// this does not hash again, so a caller that must know the digest
    /// before the bytes are durable (the pull-through cache) asks here
    /// instead of hashing them twice.
    async fn upload_digest(&self, _id: &str) -> Result<Option<Digest>> {
        Ok(None)
    }
    /// Every committed blob, in no particular order, streamed (a store may
    /// hold millions). Used by garbage collection, fsck and usage reports.
    async fn list_blobs(&self) -> Result<BlobListing>;
    /// Every upload session with its start time (unix seconds), for purging
    /// abandoned ones.
    async fn list_uploads(&self) -> Result<Vec<UploadEntry>>;
    /// Moves a committed blob out of service (fsck --repair of a corrupt
    /// blob): it is no longer served or listed, but kept for inspection
    /// where the store can. `false` when it was not there.
    async fn quarantine(&self, digest: &Digest) -> Result<bool>;
}

/// One committed blob in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobEntry {
    pub digest: Digest,
    pub size: u64,
    /// When its bytes were written (unix seconds).
    pub modified: u64,
}

/// A stream of every committed blob.
pub type BlobListing = futures::stream::BoxStream<'static, Result<BlobEntry>>;

/// One upload session in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadEntry {
    pub id: String,
    /// Unix seconds.
    pub started_at: u64,
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

/// A repository cached from an upstream registry, for evicting those
/// nobody pulls ([`MetadataStore::cached_repositories`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedRepository {
    pub name: String,
    /// The upstream registry's URL, as `set_origin` recorded it.
    pub origin: String,
    /// When it was last pulled (unix seconds); when it was first marked as
    /// a cache if it was never pulled since.
    pub pulled: u64,
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

    /// Records that `repo` holds content cached from the upstream registry
    /// `origin` (its URL), creating the repository if needed (as a blob
    /// link does: it exists, but is in the catalog only once it holds a
    /// manifest). Idempotent; a later call with another origin replaces it.
    /// `Invalid` for an empty origin or a name that cannot be stored.
    async fn set_origin(&self, repo: &str, origin: &str) -> Result<()>;

    /// The upstream `repo` is a cache of, or None for a repository of its
    /// own (and for an unknown one).
    async fn origin(&self, repo: &str) -> Result<Option<String>>;

    /// Records that cached repository `repo` was pulled at `now` (unix
    /// seconds). Nothing for a repository without an origin.
    async fn note_pulled(&self, repo: &str, now: u64) -> Result<()>;

    /// Every repository with an origin: name, origin, and when it was last
    /// pulled (unix seconds; when `set_origin` first marked it if never
    /// pulled since). Sorted by name.
    async fn cached_repositories(&self) -> Result<Vec<CachedRepository>>;

    /// Removes repository `repo` whole: its tags, manifests, blob links,
    /// origin and pull time, as if each manifest and link had been deleted
    /// one by one, so that garbage collection then reviews every blob it
    /// held (blob bytes are not deleted here). Upload sessions recorded for
    /// the repository are forgotten too. Nested repositories (`repo/x`)
    /// are left alone. Returns false when there was no such repository.
    async fn delete_repository(&self, repo: &str) -> Result<bool>;

    /// The tags of `repo` pointing at manifest `digest`, in lexical order:
    /// what deleting that manifest would take with it. The default walks
    /// every tag; stores with an index answer directly.
    async fn tags_of(&self, repo: &str, digest: &str) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for tag in self
            .list_tags(repo, &Page::default())
            .await?
            .unwrap_or_default()
        {
            if self.resolve_tag(repo, &tag).await?.as_deref() == Some(digest) {
                found.push(tag);
            }
        }
        Ok(found)
    }

    /// Called before blob `digest` is (re)committed from an upload by
    /// `request` (a number unique within this process): pins it, so garbage
    /// collection leaves it alone at any grace period until the request
    /// links it, stores it as a manifest, or unpins, and opens its upload
    /// grace period. `Conflict` while a collection pass has condemned it
    /// (its bytes are about to go). Stores without garbage collection
    /// accept everything.
    async fn pin_blob(&self, _digest: &str, _request: u64) -> Result<()> {
        Ok(())
    }

    /// Drops whatever pins `request` still holds.
    async fn unpin(&self, _request: u64) -> Result<()> {
        Ok(())
    }

    /// Links a blob `request` pinned and committed, dropping its pin in the
    /// same step (from then on the link and the upload grace period hold it).
    async fn link_committed(&self, repo: &str, digest: &str, _request: u64) -> Result<()> {
        self.link_blob(repo, digest).await
    }

    /// Links a blob that is already stored (a cross-repository mount), in
    /// one step with checking that some repository or manifest still holds
    /// it: `false`, and nothing linked, when none does (its bytes may be
    /// gone; the client uploads instead). `Conflict` while a collection
    /// pass has condemned it.
    async fn mount_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        self.link_blob(repo, digest).await.map(|()| true)
    }

    /// `put_manifest` for a manifest whose bytes `request` pinned and
    /// committed, dropping that pin once the manifest holds them.
    async fn put_manifest_committed(
        &self,
        repo: &str,
        manifest: &ManifestInfo,
        references: &[String],
        tag: Option<&str>,
        _request: u64,
    ) -> Result<()> {
        self.put_manifest(repo, manifest, references, tag).await
    }

    /// For browsing (the web UI): per repository of `names`, in that order,
    /// its tag count, last push and the digests it needs. The default
    /// counts tags and leaves the rest unknown; stores with an index answer
    /// in a few queries.
    async fn summarize(&self, names: &[String]) -> Result<Vec<RepositorySummary>> {
        let mut summaries = Vec::with_capacity(names.len());
        for name in names {
            let tags = self.list_tags(name, &Page::default()).await?;
            summaries.push(RepositorySummary {
                name: name.clone(),
                tags: tags.map_or(0, |t| t.len() as u64),
                ..RepositorySummary::default()
            });
        }
        Ok(summaries)
    }

    /// When manifest `digest` was stored in `repo` (unix seconds), where
    /// the store records it.
    async fn pushed_at(&self, _repo: &str, _digest: &str) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Up to `limit` repositories (sorted) that link, hold or reference
    /// `digest`, where the store can tell.
    async fn holders(&self, _digest: &str, _limit: u32) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    /// Garbage-collection bookkeeping, for stores that keep it.
    fn gc(&self) -> Option<&dyn GcMetadata> {
        None
    }

    /// A walk over everything the store records (fsck, usage reports), for
    /// stores that can list themselves.
    fn inventory(&self) -> Option<&dyn Inventory> {
        None
    }

    /// The notifications outbox, for stores that keep one (`outbox.rs`).
    fn outbox(&self) -> Option<&dyn outbox::Outbox> {
        None
    }
}

/// Everything a metadata store records, listed whole: what `berth fsck`
/// checks against the blob store and `berth du` adds up. A walk, not a
/// snapshot: on a store in use it may see a push half done.
#[async_trait]
pub trait Inventory: Send + Sync {
    /// Every link, manifest, manifest reference and tag.
    async fn references(&self) -> Result<Vec<Reference>>;
    /// Removes one dangling entry (fsck --repair) the way a client's delete
    /// would: a `Link` is unlinked, a `Manifest` or a `Ref` deletes the
    /// manifest (with its tags), a `Tag` is deleted.
    async fn drop_reference(&self, reference: &Reference) -> Result<()>;
    /// Per repository: tags, manifest count and the digests it needs.
    async fn usage(&self) -> Result<Vec<RepositoryUsage>>;
    /// Every upload session the store records an owner for (`begin_upload`
    /// without `end_upload`): purging finds those whose session is gone.
    async fn upload_ids(&self) -> Result<Vec<String>>;
}

/// How long blobs wait in the review queue before they may be collected.
#[derive(Clone, Copy, Debug)]
pub struct GracePeriods {
    /// After the last manifest or link referring to a blob was removed.
    pub unreferenced: u64,
    /// After a blob was uploaded (or re-uploaded) and not yet referenced by
    /// a manifest: covers pushes in flight.
    pub uploaded: u64,
}

/// Something in the metadata that names a digest, for fsck.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reference {
    /// Repository `repo` links blob `digest`.
    Link { repo: String, digest: String },
    /// Repository `repo` holds manifest `digest` (its bytes are a blob).
    Manifest { repo: String, digest: String },
    /// Manifest `manifest` of `repo` references `digest`.
    Ref {
        repo: String,
        manifest: String,
        digest: String,
    },
    /// Tag `tag` of `repo` points at manifest `digest`, which the
    /// repository must hold.
    Tag {
        repo: String,
        tag: String,
        digest: String,
    },
}

/// How logs name it: `link REPO -> DIGEST`, `manifest REPO@DIGEST`,
/// `reference REPO@MANIFEST -> DIGEST`, `tag REPO:TAG -> DIGEST`.
impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Link { repo, digest } => write!(f, "link {repo} -> {digest}"),
            Reference::Manifest { repo, digest } => write!(f, "manifest {repo}@{digest}"),
            Reference::Ref {
                repo,
                manifest,
                digest,
            } => write!(f, "reference {repo}@{manifest} -> {digest}"),
            Reference::Tag { repo, tag, digest } => write!(f, "tag {repo}:{tag} -> {digest}"),
        }
    }
}

impl Reference {
    /// The digest it names: a blob that must exist in the blob store or,
    /// for a tag, a manifest the repository must hold.
    pub fn digest(&self) -> &str {
        match self {
            Reference::Link { digest, .. }
            | Reference::Manifest { digest, .. }
            | Reference::Ref { digest, .. }
            | Reference::Tag { digest, .. } => digest,
        }
    }
}

/// One repository's share of the store, for `berth du`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositoryUsage {
    pub name: String,
    pub tags: Vec<String>,
    pub manifests: u64,
    /// Every digest the repository needs: its manifests and what they
    /// reference, and linked blobs.
    pub digests: Vec<String>,
}

/// One repository at a glance, for browsing ([`MetadataStore::summarize`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositorySummary {
    pub name: String,
    pub tags: u64,
    /// When its newest manifest was stored (unix seconds); `None` when the
    /// store does not record it.
    pub last_push: Option<u64>,
    /// Every digest it needs (as in [`RepositoryUsage`]), each with whether
    /// another repository needs it too; `None` when the store cannot tell.
    pub digests: Option<Vec<(String, bool)>>,
}

/// One collection pass's claim on the tombstones it writes: while the
/// lease lives no other pass, in this process or another, finishes them.
/// Dropping it (the pass ended, failed or its process died) leaves them to
/// the next pass.
pub struct GcLease {
    id: String,
    _alive: Box<dyn std::any::Any + Send + Sync>,
}

impl GcLease {
    /// A lease named `id`, alive as long as `alive` is kept.
    pub fn new(id: String, alive: Box<dyn std::any::Any + Send + Sync>) -> Self {
        Self { id, _alive: alive }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Online garbage collection's view of the metadata (a review queue in the
/// spirit of GitLab's container registry). All times are unix seconds.
#[async_trait]
pub trait GcMetadata: Send + Sync {
    /// Starts a pass: its lease, and the tombstones of passes that are no
    /// longer alive, now the lease's (their bytes must be deleted). Pins of
    /// processes that are gone are dropped.
    async fn gc_begin(&self) -> Result<(GcLease, Vec<String>)>;
    /// Queued blobs whose grace periods have passed at `now`, at most `limit`.
    async fn gc_due(&self, now: u64, grace: GracePeriods, limit: u32) -> Result<Vec<String>>;
    /// In one transaction: a queued blob that is referenced (by a manifest,
    /// or as a manifest) leaves the queue and `false` is returned; one that
    /// is still unreferenced, unpinned and due loses its repository links, is
    /// tombstoned for `lease` and `true` is returned (the caller then
    /// deletes its bytes and calls `gc_bury`). Anything else: `false`,
    /// nothing changes.
    async fn gc_condemn(
        &self,
        lease: &GcLease,
        digest: &str,
        now: u64,
        grace: GracePeriods,
    ) -> Result<bool>;
    /// Forgets `lease`'s tombstone of a blob whose bytes are gone.
    async fn gc_bury(&self, lease: &GcLease, digest: &str) -> Result<()>;
    /// Queues every `(digest, written_at)` the metadata neither references
    /// nor queues yet, as uploaded at `written_at` (blobs that reached the
    /// store without the metadata knowing, e.g. a crash before link).
    /// Returns how many were queued.
    async fn gc_adopt(&self, present: &[(String, u64)]) -> Result<u64>;
    /// True when a manifest references `digest` or it is a manifest.
    async fn gc_is_referenced(&self, digest: &str) -> Result<bool>;
    /// `(repository, digest)` of manifests with no tag, not referenced by
    /// another manifest of the repository, whose subject (if any) is gone,
    /// stored before `before`: what untagged-manifest collection deletes.
    async fn gc_untagged(&self, before: u64) -> Result<Vec<(String, String)>>;
    /// Deletes one manifest `gc_untagged` listed, in one transaction with
    /// checking it still qualifies (a push may have tagged it since).
    async fn gc_delete_untagged(&self, repo: &str, digest: &str, before: u64) -> Result<bool>;
    /// Queued blobs that are unreferenced but not yet due at `now`, each
    /// with the time its grace periods end: what a pass would take later.
    /// Pinned and condemned blobs are not waiting and are left out.
    async fn gc_waiting(&self, now: u64, grace: GracePeriods) -> Result<Vec<(String, u64)>>;
}
