//! Filesystem blob store, the default backend.
//!
//! Layout under the root:
//! - committed blobs, one file each, at `blobs/sha256/<2 hex>/<64 hex>`
//!   ([`FsBlobStore::open`]) or, in the tree distribution's `registry:2`
//!   filesystem driver keeps, at
//!   `docker/registry/v2/blobs/sha256/<2 hex>/<64 hex>/data`
//!   ([`FsBlobStore::open_distribution`]);
//! - `uploads/<uuid>/data`: the bytes of an upload session so far (outside
//!   registry:2's tree, which has its own `_uploads`);
//! - `uploads/<uuid>/startedat`: session creation time (unix seconds), so an
//!   operator or a later purge can find abandoned sessions;
//! - `quarantine/sha256/<64 hex>`: blobs taken out of service by
//!   [`BlobStore::quarantine`], kept for inspection (outside registry:2's
//!   tree too).
//!
//! A blob only appears under `blobs/` through an atomic rename of a fully
//! written, fsynced and verified session file, so readers never see partial
//! content.

mod listing;
mod sessions;
mod writer;

use crate::{
    BlobListing, BlobReader, BlobStore, Digest, Result, StorageError, UploadEntry, UploadWriter,
};
use async_trait::async_trait;
use futures::StreamExt as _;
use sessions::{HashState, Sessions};
use sha2::{Digest as _, Sha256};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Read/write granularity: the host streams blobs in 1 MiB chunks.
const IO_BUF: usize = 1 << 20;
/// Ranges up to this size are read whole when opened: manifests and configs.
const SMALL_READ: u64 = 64 << 10;

/// A committed blob's range, ready to stream.
enum OpenedRange {
    Small(Vec<u8>),
    File(std::fs::File),
}

/// Streams `length` bytes from the file's position in chunks of up to
/// `IO_BUF`, each read straight into the buffer that is handed on.
fn file_chunks(file: std::fs::File, length: u64) -> BlobReader {
    futures::stream::try_unfold((file, length), |(mut file, remaining)| async move {
        if remaining == 0 {
            return Ok(None);
        }
        let want = remaining.min(IO_BUF as u64);
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(want as usize);
            // `take` + `read_to_end` fills the spare capacity without zeroing it first.
            (&mut file).take(want).read_to_end(&mut chunk)?;
            Ok::<_, std::io::Error>((file, chunk))
        })
        .await
        .map_err(std::io::Error::other)??;
        if chunk.is_empty() {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "blob shorter than its size",
            ));
        }
        let remaining = remaining - chunk.len() as u64;
        Ok(Some((bytes::Bytes::from(chunk), (file, remaining))))
    })
    .boxed()
}

fn open_range(path: &Path, offset: u64, length: u64) -> Result<OpenedRange> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path).map_err(not_found)?;
    let size = file.metadata()?.len();
    // Refuse ranges past the end: a silently short stream would be served
    // with a Content-Length it cannot fill.
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(StorageError::Invalid(format!(
            "range {offset}+{length} outside blob of {size} bytes"
        )));
    }
    file.seek(SeekFrom::Start(offset))?;
    if length <= SMALL_READ {
        let mut bytes = vec![0; length as usize];
        file.read_exact(&mut bytes)?;
        return Ok(OpenedRange::Small(bytes));
    }
    Ok(OpenedRange::File(file))
}

/// Where committed blobs live under the root.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// `blobs/sha256/<2 hex>/<64 hex>`: Berth's own.
    Flat,
    /// `docker/registry/v2/blobs/sha256/<2 hex>/<64 hex>/data`: registry:2's,
    /// so either registry can serve the other's directory.
    Distribution,
}

impl Layout {
    /// The directory holding every `sha256/` blob.
    fn sha256_dir(self, root: &Path) -> PathBuf {
        match self {
            Layout::Flat => root.join("blobs").join("sha256"),
            Layout::Distribution => root.join("docker/registry/v2/blobs/sha256"),
        }
    }

    fn blob_path(self, root: &Path, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        let fan_out = self.sha256_dir(root).join(&hex[..2]);
        match self {
            Layout::Flat => fan_out.join(hex),
            Layout::Distribution => fan_out.join(hex).join("data"),
        }
    }
}

/// Content-addressed blobs in a directory tree.
pub struct FsBlobStore {
    root: PathBuf,
    layout: Layout,
    sessions: Sessions,
}

impl FsBlobStore {
    /// Opens (creating if needed) a blob store rooted at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_with(root, Layout::Flat)
    }

    /// Opens (creating if needed) a blob store keeping committed blobs where
    /// registry:2's filesystem driver does, with `root` as its
    /// `rootdirectory`.
    pub fn open_distribution(root: &Path) -> Result<Self> {
        Self::open_with(root, Layout::Distribution)
    }

    fn open_with(root: &Path, layout: Layout) -> Result<Self> {
        std::fs::create_dir_all(layout.sha256_dir(root))?;
        std::fs::create_dir_all(root.join("uploads"))?;
        Ok(Self {
            root: root.to_path_buf(),
            layout,
            sessions: Sessions::default(),
        })
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.layout.blob_path(&self.root, digest)
    }

    /// Where [`BlobStore::quarantine`] moves a blob, whatever the layout.
    fn quarantine_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("quarantine")
            .join("sha256")
            .join(digest.hex())
    }

    /// The session directory, after checking `id` cannot escape `uploads/`.
    fn session_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        Ok(self.root.join("uploads").join(id))
    }
}

/// Accepts only canonical lowercase hyphenated uuids, the ids we hand out.
fn validate_id(id: &str) -> Result<()> {
    let ok = id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => matches!(b, b'0'..=b'9' | b'a'..=b'f'),
        });
    if ok {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!("malformed upload id {id:?}")))
    }
}

/// Maps a missing file to `NotFound`, keeping other I/O errors as they are.
fn not_found(e: std::io::Error) -> StorageError {
    if e.kind() == ErrorKind::NotFound {
        StorageError::NotFound
    } else {
        StorageError::Io(e)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Backend(format!("blocking task failed: {e}")))?
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn read(&self, digest: &Digest, offset: u64, length: u64) -> Result<BlobReader> {
        let path = self.blob_path(digest);
        // One trip to the blocking pool opens, checks and positions the file;
        // small blobs (manifests, configs) are read in the same trip.
        let opened = tokio::task::spawn_blocking(move || open_range(&path, offset, length))
            .await
            .map_err(|e| StorageError::Backend(format!("blocking task failed: {e}")))??;
        Ok(match opened {
            OpenedRange::Small(bytes) => crate::single_chunk(bytes.into()),
            OpenedRange::File(file) => file_chunks(file, length),
        })
    }

    async fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        if let Layout::Distribution = self.layout
            && let Some(dir) = path.parent()
        {
            // The `<hex>/` directory held only `data`; registry:2 removes it
            // with the blob too. Failing (not empty, gone) is harmless.
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(true)
    }

    async fn create_upload(&self) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.session_dir(&id)?;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        tokio::fs::create_dir(&dir).await?;
        tokio::fs::write(dir.join("startedat"), started.to_string()).await?;
        tokio::fs::File::create(dir.join("data")).await?;
        self.sessions.put_idle(&id, HashState::default());
        tracing::debug!(upload = %id, "upload session created");
        Ok(id)
    }

    async fn upload_size(&self, id: &str) -> Result<u64> {
        let data = self.session_dir(id)?.join("data");
        Ok(tokio::fs::metadata(data).await.map_err(not_found)?.len())
    }

    async fn append(&self, id: &str) -> Result<UploadWriter> {
        let data = self.session_dir(id)?.join("data");
        let lease = self.sessions.acquire(id)?;
        // On any error below the lease is dropped, which restores the slot.
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&data)
            .await
            .map_err(not_found)?;
        let len = file.metadata().await?.len();
        Ok(Box::pin(writer::HashingWriter::new(file, lease, len)))
    }

    fn upload_file(&self, id: &str) -> Option<PathBuf> {
        self.session_dir(id).ok().map(|dir| dir.join("data"))
    }

    fn hashes_uploads(&self) -> bool {
        true
    }

    async fn upload_digest(&self, id: &str) -> Result<Option<Digest>> {
        let data = self.session_dir(id)?.join("data");
        let lease = self.sessions.acquire(id)?;
        let len = tokio::fs::metadata(&data).await.map_err(not_found)?.len();
        // The lease hands the state back when it is dropped.
        Ok(lease
            .state
            .as_ref()
            .filter(|state| state.len == len)
            .map(|state| Digest::from_sha256(&state.hasher.clone().finalize())))
    }

    async fn commit(&self, id: &str, expected: &Digest) -> Result<u64> {
        let dir = self.session_dir(id)?;
        let mut lease = self.sessions.acquire(id)?;
        let cached = lease.take_state();
        let final_path = self.blob_path(expected);
        let expected = expected.clone();
        let result = blocking(move || finish(&dir, cached, &expected, &final_path)).await;
        // The session is gone after a commit or a mismatch; on an I/O error it
        // stays (without cached hash state) so the client can retry.
        match &result {
            Ok(_) | Err(StorageError::DigestMismatch { .. }) => lease.forget(),
            Err(_) => {}
        }
        result
    }

    async fn abort(&self, id: &str) -> Result<()> {
        let dir = self.session_dir(id)?;
        // Aborting is allowed while a writer is open: its file handle writes
        // into an unlinked file and its hash state is not handed back.
        self.sessions.remove(id);
        tokio::fs::remove_dir_all(&dir).await.map_err(not_found)?;
        tracing::debug!(upload = %id, "upload session aborted");
        Ok(())
    }

    async fn list_blobs(&self) -> Result<BlobListing> {
        Ok(listing::list_blobs(self.layout, &self.root))
    }

    async fn list_uploads(&self) -> Result<Vec<UploadEntry>> {
        let uploads = self.root.join("uploads");
        blocking(move || listing::list_uploads(&uploads)).await
    }

    async fn quarantine(&self, digest: &Digest) -> Result<bool> {
        let (from, to) = (self.blob_path(digest), self.quarantine_path(digest));
        let layout = self.layout;
        let moved = blocking(move || quarantine(layout, &from, &to)).await?;
        if moved {
            tracing::warn!(%digest, "blob quarantined");
        }
        Ok(moved)
    }
}

/// Moves a committed blob's file to `to` and makes both directory changes
/// durable; blocking. `false` when there was no blob. An earlier
/// quarantined copy of the same digest is replaced.
fn quarantine(layout: Layout, from: &Path, to: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(from) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let parent = to
        .parent()
        .ok_or_else(|| StorageError::Backend("quarantine path has no parent".into()))?;
    let created = missing_dirs(parent);
    std::fs::create_dir_all(parent)?;
    match std::fs::rename(from, to) {
        Ok(()) => {}
        // Deleted (or quarantined) since we looked.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    sync_dir(parent)?;
    for new_dir in &created {
        if let Some(up) = new_dir.parent() {
            sync_dir(up)?;
        }
    }
    let Some(old_dir) = from.parent() else {
        return Ok(true);
    };
    match layout {
        Layout::Flat => sync_dir(old_dir)?,
        Layout::Distribution => {
            // As `delete` does: the `<hex>/` directory held only `data`.
            // If it cannot go (not empty), its entry for `data` must.
            match std::fs::remove_dir(old_dir) {
                Ok(()) => {
                    if let Some(fan_out) = old_dir.parent() {
                        sync_dir(fan_out)?;
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(_) => sync_dir(old_dir)?,
            }
        }
    }
    Ok(true)
}

/// Verifies, fsyncs and publishes a session's data; blocking.
fn finish(
    dir: &Path,
    cached: Option<HashState>,
    expected: &Digest,
    final_path: &Path,
) -> Result<u64> {
    let data = dir.join("data");
    let mut file = std::fs::File::open(&data).map_err(not_found)?;
    let size = file.metadata()?.len();
    let hasher = match cached {
        Some(state) if state.len == size => state.hasher,
        _ => {
            tracing::debug!(path = %data.display(), "re-hashing upload from disk");
            rehash(&mut file)?
        }
    };
    let actual = Digest::from_sha256(&hasher.finalize());
    if &actual != expected {
        std::fs::remove_dir_all(dir)?;
        return Err(StorageError::DigestMismatch {
            actual: actual.to_string(),
        });
    }
    let parent = final_path
        .parent()
        .ok_or_else(|| StorageError::Backend("blob path has no parent".into()))?;
    if final_path.exists() {
        // Another session already published identical bytes: keep those.
        std::fs::remove_dir_all(dir)?;
        return Ok(size);
    }
    file.sync_all()?;
    drop(file);
    let mut created = missing_dirs(parent);
    std::fs::create_dir_all(parent)?;
    if let Err(e) = std::fs::rename(&data, final_path) {
        if e.kind() != ErrorKind::NotFound {
            return Err(e.into());
        }
        // A delete of the same digest may have just removed the emptied
        // per-blob directory (distribution layout): make it again, once.
        created = missing_dirs(parent);
        std::fs::create_dir_all(parent)?;
        std::fs::rename(&data, final_path)?;
    }
    // Make the new directory entries durable, not just the bytes: the blob's
    // entry, and that of every directory just created in its parent.
    sync_dir(parent)?;
    for new_dir in &created {
        if let Some(up) = new_dir.parent() {
            sync_dir(up)?;
        }
    }
    std::fs::remove_dir_all(dir)?;
    tracing::debug!(digest = %expected, size, "blob committed");
    Ok(size)
}

fn rehash(file: &mut std::fs::File) -> Result<Sha256> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; IO_BUF];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(hasher),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
    }
}

/// `dir` and those of its ancestors that do not exist yet, deepest first.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect()
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests;
