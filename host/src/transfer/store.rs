//! Putting blobs and manifests into the store the way a push does, for
//! `import` and `sync`: every blob verified against its digest before it
//! is visible, pinned against garbage collection (docs/GC.md) from its
//! commit until a link or a manifest holds it, and an image's manifest
//! stored last, after every blob and child manifest it names, so a reader
//! never sees an image whose content is missing.
//!
//! One [`StoreWriter`] is one pin request (a number unique in this
//! process; the metadata store adds which process): blobs it commits or
//! finds already stored stay pinned until [`StoreWriter::link`] or
//! [`StoreWriter::put_manifest`] uses the pin, and [`StoreWriter::finish`]
//! drops what is left. If the process dies first, the metadata store
//! forgets its pins and the committed blobs wait out the upload grace
//! period like an abandoned push's: a second run finds them stored and
//! does not read their bytes again.

use crate::backends::{Backends, past_tombstones};
use berth_oci::Digest;
use berth_oci::manifest::{self, Parsed};
use berth_storage::{BlobStore, ManifestInfo, MetadataStore, StorageError};
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

/// The bit every transfer pin request number carries: the sandbox's
/// requests count up from 1 and the pull-through cache's flights use the
/// top bit, so in a server process (should one ever run a transfer) the
/// three never share a number.
const PIN_REQUEST_BIT: u64 = 1 << 62;
static NEXT_PIN_REQUEST: AtomicU64 = AtomicU64::new(1);

/// How errors name a blob whose digest is not known yet.
const UNNAMED: &str = "(unnamed)";

/// How much is copied from the source to the store at a time.
const COPY_CHUNK: usize = 1 << 20;

/// What went wrong putting content into the store.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    #[error("blob {digest}: reading it: {source}")]
    Read {
        digest: Digest,
        source: std::io::Error,
    },
    #[error("blob {digest}: the bytes hash to {actual}")]
    DigestMismatch { digest: Digest, actual: String },
    #[error("blob {digest}: {actual} bytes where {expected} were declared")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("manifest {digest} is not a manifest Berth stores: {why}")]
    BadManifest { digest: Digest, why: String },
    #[error(
        "manifest {digest} is larger than {} bytes",
        manifest::MAX_MANIFEST_BYTES
    )]
    ManifestTooLarge { digest: Digest },
    #[error("{what} {digest}: {source}")]
    Storage {
        what: &'static str,
        digest: String,
        source: StorageError,
    },
}

impl PutError {
    fn storage(what: &'static str, digest: &str) -> impl FnOnce(StorageError) -> PutError {
        let digest = digest.to_owned();
        move |source| PutError::Storage {
            what,
            digest,
            source,
        }
    }
}

/// Puts content into one store under one pin request.
pub struct StoreWriter {
    blobs: Arc<dyn BlobStore>,
    metadata: Arc<dyn MetadataStore>,
    request: u64,
    /// Digests this writer pinned whose pin no link or manifest used yet.
    pinned: HashSet<String>,
}

impl StoreWriter {
    pub fn new(backends: &Backends) -> Self {
        Self {
            blobs: backends.blobs.clone(),
            metadata: backends.metadata.clone(),
            request: PIN_REQUEST_BIT | NEXT_PIN_REQUEST.fetch_add(1, Ordering::Relaxed),
            pinned: HashSet::new(),
        }
    }

    /// The size of blob `digest` if the store holds it, pinned so that it
    /// stays until [`Self::link`] or [`Self::put_manifest`] holds it;
    /// `None` when it must be stored. A blob a collector is removing right
    /// now counts as missing once the collector is done.
    pub async fn hold_existing(&mut self, digest: &Digest) -> Result<Option<u64>, PutError> {
        let stored = PutError::storage("checking blob", digest.as_str());
        if self.blobs.stat(digest).await.map_err(stored)?.is_none() {
            return Ok(None);
        }
        match self.pin(digest).await {
            Ok(()) => {}
            // Still condemned after the wait: its bytes are going.
            Err(PutError::Storage {
                source: StorageError::Conflict(_),
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        }
        // Pinned now; whether the bytes survived until the pin is what the
        // second look says.
        let again = PutError::storage("checking blob", digest.as_str());
        self.blobs.stat(digest).await.map_err(again)
    }

    /// Stores the bytes `reader` yields as blob `digest` (of `size` bytes
    /// when known), verified before they become visible, and pinned like
    /// [`Self::hold_existing`]. Returns the size. Nothing is stored when
    /// the bytes are wrong or reading fails.
    pub async fn put_blob<R: AsyncRead + Unpin>(
        &mut self,
        digest: &Digest,
        size: Option<u64>,
        reader: R,
    ) -> Result<u64, PutError> {
        let created = PutError::storage("starting upload of blob", digest.as_str());
        let id = self.blobs.create_upload().await.map_err(created)?;
        let result = self.write_and_commit(&id, digest, size, reader).await;
        if result.is_err() {
            self.abort(&id).await;
        }
        result
    }

    async fn write_and_commit<R: AsyncRead + Unpin>(
        &mut self,
        id: &str,
        digest: &Digest,
        size: Option<u64>,
        reader: R,
    ) -> Result<u64, PutError> {
        let written = self.copy(id, reader, digest, size, None).await?;
        if let Some(expected) = size
            && written != expected
        {
            return Err(PutError::SizeMismatch {
                digest: digest.clone(),
                expected,
                actual: written,
            });
        }
        self.pin(digest).await?;
        match self.blobs.commit(id, digest).await {
            Ok(size) => Ok(size),
            Err(StorageError::DigestMismatch { actual }) => Err(PutError::DigestMismatch {
                digest: digest.clone(),
                actual,
            }),
            Err(e) => Err(PutError::storage("committing blob", digest.as_str())(e)),
        }
    }

    /// Stores the bytes `reader` yields as a blob whose digest is learnt
    /// from them, pinned like [`Self::put_blob`]; returns digest and size.
    /// For content no name gives the digest of before it is read (a
    /// `docker save` archive's `layer.tar` files, which a tar read once
    /// cannot look at twice): the caller checks the digest against what
    /// the image says afterwards. Hashes once: the store's own hash when it
    /// keeps one.
    pub async fn put_unnamed_blob<R: AsyncRead + Unpin>(
        &mut self,
        reader: R,
    ) -> Result<(Digest, u64), PutError> {
        let created = PutError::storage("starting upload of blob", UNNAMED);
        let id = self.blobs.create_upload().await.map_err(created)?;
        let result = self.write_and_commit_unnamed(&id, reader).await;
        if result.is_err() {
            self.abort(&id).await;
        }
        result
    }

    async fn write_and_commit_unnamed<R: AsyncRead + Unpin>(
        &mut self,
        id: &str,
        reader: R,
    ) -> Result<(Digest, u64), PutError> {
        // Until the digest is known, read errors name the content by a
        // placeholder digest: that of no bytes.
        let unknown = Digest::of(b"");
        let mut own_hash = (!self.blobs.hashes_uploads()).then(sha2::Sha256::default);
        let written = self
            .copy(id, reader, &unknown, None, own_hash.as_mut())
            .await?;
        let lost = || StorageError::Invalid("the store lost the upload's hash".into());
        let digest = match own_hash {
            Some(hash) => Digest::from_sha256(&sha2::Digest::finalize(hash)),
            None => self
                .blobs
                .upload_digest(id)
                .await
                .and_then(|digest| digest.ok_or_else(lost))
                .map_err(PutError::storage("writing blob", UNNAMED))?,
        };
        self.pin(&digest).await?;
        let committed = PutError::storage("committing blob", digest.as_str());
        let size = self.blobs.commit(id, &digest).await.map_err(committed)?;
        debug_assert_eq!(size, written);
        Ok((digest, size))
    }

    /// Copies `reader` into upload `id` (stopping once it passes `limit`
    /// bytes), feeding `hash` too when given; the number of bytes copied.
    /// `digest` names the content in errors.
    async fn copy<R: AsyncRead + Unpin>(
        &self,
        id: &str,
        mut reader: R,
        digest: &Digest,
        limit: Option<u64>,
        mut hash: Option<&mut sha2::Sha256>,
    ) -> Result<u64, PutError> {
        let write = |source: StorageError| PutError::Storage {
            what: "writing blob",
            digest: digest.to_string(),
            source,
        };
        let mut sink = self.blobs.append(id).await.map_err(write)?;
        let mut buf = vec![0; COPY_CHUNK];
        let mut written = 0u64;
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|source| PutError::Read {
                    digest: digest.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if let Some(expected) = limit
                && written > expected
            {
                return Err(PutError::SizeMismatch {
                    digest: digest.clone(),
                    expected,
                    actual: written,
                });
            }
            if let Some(hash) = hash.as_deref_mut() {
                sha2::Digest::update(hash, &buf[..n]);
            }
            sink.write_all(&buf[..n])
                .await
                .map_err(|e| write(e.into()))?;
        }
        sink.shutdown().await.map_err(|e| write(e.into()))?;
        Ok(written)
    }

    async fn abort(&self, id: &str) {
        if let Err(e) = self.blobs.abort(id).await {
            tracing::warn!(upload = id, error = %e, "aborting a failed upload");
        }
    }

    async fn pin(&mut self, digest: &Digest) -> Result<(), PutError> {
        let (metadata, request) = (&self.metadata, self.request);
        past_tombstones(|| metadata.pin_blob(digest.as_str(), request))
            .await
            .map_err(PutError::storage("pinning blob", digest.as_str()))?;
        self.pinned.insert(digest.to_string());
        Ok(())
    }

    /// Links blob `digest`, which this writer stored or holds, into `repo`.
    pub async fn link(&mut self, repo: &str, digest: &Digest) -> Result<(), PutError> {
        let linked = PutError::storage("linking blob", digest.as_str());
        if self.pinned.contains(digest.as_str()) {
            self.metadata
                .link_committed(repo, digest.as_str(), self.request)
                .await
                .map_err(linked)?;
            self.pinned.remove(digest.as_str());
        } else {
            self.metadata
                .link_blob(repo, digest.as_str())
                .await
                .map_err(linked)?;
        }
        Ok(())
    }

    /// Stores `manifest` in `repo` and points each of `tags` at it.
    /// Everything it names (blobs for an image, child manifests for an
    /// index) must be linked or stored in `repo` first; the metadata store
    /// refuses it otherwise.
    pub async fn put_manifest(
        &mut self,
        repo: &str,
        manifest: &Manifest,
        tags: &[String],
    ) -> Result<(), PutError> {
        let Manifest {
            digest,
            bytes,
            parsed,
        } = manifest;
        if self.hold_existing(digest).await?.is_none() {
            self.put_blob(digest, Some(bytes.len() as u64), bytes.as_ref())
                .await?;
        }
        let info = ManifestInfo {
            digest: digest.to_string(),
            media_type: parsed.media_type.to_owned(),
            size: bytes.len() as u64,
            artifact_type: parsed.artifact_type.clone(),
            subject: parsed.subject.clone(),
            annotations: parsed
                .annotations
                .as_deref()
                .map(manifest::annotations_to_json),
        };
        let references: Vec<String> = parsed.required.iter().map(|d| d.to_string()).collect();
        let stored = PutError::storage("storing manifest", digest.as_str());
        let first_tag = tags.first().map(String::as_str);
        self.metadata
            .put_manifest_committed(repo, &info, &references, first_tag, self.request)
            .await
            .map_err(stored)?;
        self.pinned.remove(digest.as_str());
        // Storing a manifest that is already there only moves the tag.
        for tag in tags.iter().skip(1) {
            let stored = PutError::storage("tagging manifest", digest.as_str());
            self.metadata
                .put_manifest(repo, &info, &references, Some(tag))
                .await
                .map_err(stored)?;
        }
        Ok(())
    }

    /// Drops the pins no link or manifest used (content of an image that
    /// was refused): those blobs wait out the upload grace period.
    pub async fn finish(self) {
        if self.pinned.is_empty() {
            return;
        }
        if let Err(e) = self.metadata.unpin(self.request).await {
            tracing::warn!(request = self.request, error = %e, "dropping transfer pins");
        }
    }
}

/// A manifest checked the way a push checks it (size, schema, media
/// type), parsed once for both its caller and [`StoreWriter::put_manifest`].
pub struct Manifest {
    pub digest: Digest,
    pub bytes: Bytes,
    pub parsed: Parsed,
}

impl Manifest {
    /// `bytes` as a manifest served as `media_type`.
    pub fn parse(media_type: Option<&str>, bytes: Bytes) -> Result<Self, PutError> {
        let digest = Digest::of(&bytes);
        if bytes.len() as u64 > manifest::MAX_MANIFEST_BYTES {
            return Err(PutError::ManifestTooLarge { digest });
        }
        let parsed = parse(&digest, media_type, &bytes)?;
        Ok(Self {
            digest,
            bytes,
            parsed,
        })
    }
}

/// `bytes` parsed as a manifest the way a push parses it.
pub fn parse(digest: &Digest, media_type: Option<&str>, bytes: &[u8]) -> Result<Parsed, PutError> {
    manifest::parse(media_type, bytes).map_err(|e| PutError::BadManifest {
        digest: digest.clone(),
        // The variant carries the detail (which field, which digest).
        why: format!("{}: {e:?}", e.descriptor().message),
    })
}
