//! One flight's task: fetches the blob, tees it into the store (and a
//! spool where readers cannot read the store's upload), verifies it,
//! releases the last byte, commits and links, or undoes all of it.

use super::super::{Upstream, UpstreamError};
use super::{Flight, Status, lock};
use crate::backends::past_tombstones;
use berth_oci::Digest;
use berth_storage::{BlobStore, MetadataStore, StorageError};
use bytes::BytesMut;
use futures::{FutureExt as _, StreamExt as _};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::AsyncWriteExt as _;

/// The most the task gathers from the upstream before it writes: network
/// reads are small (16-64 KiB), and a spool and a store write per read
/// cost more than the bytes.
const BATCH: usize = 1 << 20;

/// The high bit of every pin request number a flight uses: the sandbox's
/// requests (`storage_imports/pins.rs`) count up from 1 and never reach
/// it, so a flight's pins and a client request's pins never share a number
/// (the metadata store drops pins by request number).
pub(super) const PIN_REQUEST_BIT: u64 = 1 << 63;
static NEXT_PIN_REQUEST: AtomicU64 = AtomicU64::new(1);

/// A pin request number of its own for one flight's commit.
pub(super) fn pin_request() -> u64 {
    PIN_REQUEST_BIT | NEXT_PIN_REQUEST.fetch_add(1, Ordering::Relaxed)
}

/// Spool file names, unique within this process.
static NEXT_SPOOL: AtomicU64 = AtomicU64::new(1);

/// How a flight failed: before the body (the callers get the error from
/// `fetch`) or during it (the readers' streams end in it).
enum Failure {
    BeforeBody(UpstreamError),
    Body(UpstreamError),
    /// After the bytes verified and went out: the store failed.
    Storing(UpstreamError),
}

/// A flight's blob, verified and stored.
struct Stored {
    spool: Arc<File>,
    size: u64,
}

/// What a failed flight must undo.
#[derive(Default)]
struct Undo {
    spool: Option<PathBuf>,
    upload: Option<String>,
    pin: Option<u64>,
}

/// One flight's fetch, tee and commit.
pub(super) struct Task {
    pub(super) upstream: Arc<Upstream>,
    pub(super) remote: String,
    pub(super) digest: Digest,
    pub(super) repository: String,
    pub(super) spool_dir: PathBuf,
    pub(super) blobs: Arc<dyn BlobStore>,
    pub(super) metadata: Arc<dyn MetadataStore>,
    pub(super) flights: Arc<Mutex<HashMap<Digest, Arc<Flight>>>>,
    pub(super) flight: Arc<Flight>,
}

impl Task {
    pub(super) async fn fly(self) {
        let started = Instant::now();
        tracing::info!(
            upstream = %self.upstream.url(),
            remote = %self.remote,
            digest = %self.digest,
            repository = %self.repository,
            "fetching a blob from the upstream"
        );
        let mut undo = Undo::default();
        let outcome = AssertUnwindSafe(self.run(&mut undo))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(Failure::Body(self.local("the fetch task panicked"))));
        match outcome {
            Ok(Stored { spool, size }) => {
                self.flight
                    .status
                    .send_replace(Status::Committed { spool, size });
                self.forget();
                remove_spool(undo.spool.as_deref());
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(
                    upstream = %self.upstream.url(),
                    remote = %self.remote,
                    digest = %self.digest,
                    bytes = size,
                    seconds = format_args!("{secs:.3}"),
                    mib_per_s = format_args!("{:.1}", size as f64 / (1 << 20) as f64 / secs.max(1e-6)),
                    "blob fetched, verified, committed and linked"
                );
            }
            // The clients got verified bytes; only the store failed. They
            // keep reading the spool through their handles; nothing is
            // stored, and the next pull fetches again.
            Err(Failure::Storing(e)) => {
                self.undo(undo).await;
                self.forget();
                tracing::warn!(
                    upstream = %self.upstream.url(),
                    remote = %self.remote,
                    digest = %self.digest,
                    error = %e,
                    "blob fetched and verified, but storing it failed; served, not cached"
                );
            }
            Err(Failure::BeforeBody(e)) => {
                let e = Arc::new(e);
                self.fail(undo, started, Status::Refused(e.clone()), &e)
                    .await;
            }
            Err(Failure::Body(e)) => {
                let e = Arc::new(e);
                self.fail(undo, started, Status::Broken(e.clone()), &e)
                    .await;
            }
        }
    }

    /// Undoes a failed flight, forgets it (before anyone hears of the
    /// failure, so that a retry starts a new flight), and tells its readers.
    async fn fail(&self, undo: Undo, started: Instant, status: Status, error: &UpstreamError) {
        self.undo(undo).await;
        self.forget();
        tracing::warn!(
            upstream = %self.upstream.url(),
            remote = %self.remote,
            digest = %self.digest,
            seconds = format_args!("{:.3}", started.elapsed().as_secs_f64()),
            error = %error,
            "blob fetch failed; nothing stored"
        );
        self.flight.status.send_replace(status);
    }

    /// Fetches, tees, verifies, commits and links; the spool and the size.
    async fn run(&self, undo: &mut Undo) -> Result<Stored, Failure> {
        let what = format!("blob {}@{}", self.remote, self.digest);
        let mut body = self
            .upstream
            .blob_get(&self.remote, &self.digest)
            .await
            .map_err(Failure::BeforeBody)?;
        let length = body.length;

        let before_body = |e: StorageError| Failure::BeforeBody(self.store_error(e));
        let id = self.blobs.create_upload().await.map_err(before_body)?;
        undo.upload = Some(id.clone());
        let mut writer = self.blobs.append(&id).await.map_err(before_body)?;
        // Readers read the upload's own file where the store keeps one
        // (written once), else a spool of the flight's own (written twice:
        // the store's copy may be remote and unreadable until committed).
        let (spool, spooled) = match self.blobs.upload_file(&id) {
            Some(path) => (
                open_for_reading(&path).await.map_err(|e| {
                    Failure::BeforeBody(self.local(&format!("reading {}: {e}", path.display())))
                })?,
                false,
            ),
            None => {
                let (path, spool) = self.create_spool().await.map_err(Failure::BeforeBody)?;
                undo.spool = Some(path);
                (spool, true)
            }
        };
        let spool = Arc::new(spool);
        self.flight.status.send_replace(Status::Streaming {
            spool: spool.clone(),
            length,
            readable: 0,
        });

        let failed = |e: UpstreamError| Failure::Body(e);
        // The store hashes what it accepts where it can tell the digest
        // before the commit; hashing here too would cost a second pass.
        let mut hasher = (!self.blobs.hashes_uploads()).then(Sha256::new);
        let mut written = 0u64;
        let mut ended = false;
        while !ended {
            // Whatever arrived by now, up to a batch: one spool write and
            // one store write per batch rather than per network read.
            let mut batch = BytesMut::new();
            loop {
                let next = if batch.is_empty() {
                    body.body.next().await
                } else {
                    match body.body.next().now_or_never() {
                        Some(next) => next,
                        None => break,
                    }
                };
                match next {
                    Some(chunk) => batch.extend_from_slice(&chunk.map_err(failed)?),
                    None => {
                        ended = true;
                        break;
                    }
                }
                if batch.len() >= BATCH {
                    break;
                }
            }
            if batch.is_empty() {
                continue;
            }
            let chunk = batch.freeze();
            let end = written + chunk.len() as u64;
            if let Some(declared) = length
                && end > declared
            {
                return Err(failed(self.protocol(format!(
                    "{what}: more than the {declared} bytes declared"
                ))));
            }
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&chunk);
            }
            let to_spool = async {
                if !spooled {
                    return Ok(());
                }
                let (spool, chunk, at) = (spool.clone(), chunk.clone(), written);
                tokio::task::spawn_blocking(move || spool.write_all_at(&chunk, at))
                    .await
                    .map_err(std::io::Error::other)?
            };
            let (to_spool, to_store) = tokio::join!(to_spool, writer.write_all(&chunk));
            to_spool.map_err(|e| failed(self.local(&format!("spooling {what}: {e}"))))?;
            to_store.map_err(|e| failed(self.store_error(e.into())))?;
            // What readers may read: the spool has this batch; the upload's
            // file has what the writer finished, which is at least every
            // earlier batch (it writes one batch while the next arrives).
            // Never the last byte, which waits for the digest.
            let readable = if spooled { end } else { written };
            written = end;
            self.publish(readable.min(written - 1));
        }
        writer
            .flush()
            .await
            .map_err(|e| failed(self.store_error(e.into())))?;
        self.publish(written.saturating_sub(1));
        if let Some(declared) = length
            && written != declared
        {
            return Err(failed(self.protocol(format!(
                "{what}: the body ended after {written} of the {declared} bytes declared"
            ))));
        }
        writer
            .shutdown()
            .await
            .map_err(|e| failed(self.store_error(e.into())))?;
        drop(writer);
        let actual = match hasher {
            Some(hasher) => Some(format!("sha256:{}", hex::encode(hasher.finalize()))),
            None => self
                .blobs
                .upload_digest(&id)
                .await
                .map_err(|e| failed(self.store_error(e)))?
                .map(|d| d.to_string()),
        };
        if let Some(actual) = &actual
            && actual != self.digest.as_str()
        {
            return Err(failed(self.protocol(format!(
                "{what}: the {written} bytes sent hash to {actual}"
            ))));
        }
        // Verified: the clients may have the last byte now, while the bytes
        // are made durable and committed. A store that could not tell the
        // digest verifies it as it commits, and the clients wait for that.
        let verified = actual.is_some();
        if verified {
            self.flight.status.send_replace(Status::Verified {
                spool: spool.clone(),
                size: written,
            });
        }
        let storing = |e: StorageError| Failure::Storing(self.store_error(e));

        let request = pin_request();
        let metadata = self.metadata.as_ref();
        let digest = self.digest.as_str();
        past_tombstones(|| metadata.pin_blob(digest, request))
            .await
            .map_err(storing)?;
        undo.pin = Some(request);
        let size = match self.blobs.commit(&id, &self.digest).await {
            Ok(size) => size,
            Err(StorageError::DigestMismatch { actual }) => {
                // The store discarded the session.
                undo.upload = None;
                let e = self.protocol(format!("{what}: the {written} bytes sent hash to {actual}"));
                return Err(if verified {
                    Failure::Storing(e)
                } else {
                    failed(e)
                });
            }
            Err(e) => return Err(storing(e)),
        };
        undo.upload = None;

        // Every repository that asked, including those that join while
        // this links.
        loop {
            let batch = self.flight.take_links();
            if batch.is_empty() {
                break;
            }
            for repository in batch {
                if let Err(e) = metadata.link_committed(&repository, digest, request).await {
                    tracing::warn!(digest, repository, error = %e, "linking a fetched blob");
                }
            }
        }
        undo.pin = None;
        if let Err(e) = metadata.unpin(request).await {
            tracing::warn!(digest, request, error = %e, "unpinning a fetched blob");
        }
        Ok(Stored { spool, size })
    }

    async fn create_spool(&self) -> Result<(PathBuf, File), UpstreamError> {
        let name = format!(
            "{}-{}-{}.spool",
            self.digest.hex(),
            std::process::id(),
            NEXT_SPOOL.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.spool_dir.join(name);
        let dir = self.spool_dir.clone();
        let at = path.clone();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&at)
        })
        .await
        .map_err(|e| self.local(&format!("creating a spool file: {e}")))?
        .map_err(|e| self.local(&format!("creating spool file {}: {e}", path.display())))?;
        Ok((path, file))
    }

    /// Lets readers read the first `readable` bytes.
    fn publish(&self, readable: u64) {
        self.flight.status.send_modify(|status| {
            if let Status::Streaming { readable: now, .. } = status {
                *now = readable.max(*now);
            }
        });
    }

    /// Undoes what a failed flight did: nothing of it stays stored.
    async fn undo(&self, undo: Undo) {
        if let Some(id) = undo.upload
            && let Err(e) = self.blobs.abort(&id).await
        {
            tracing::warn!(digest = %self.digest, upload = id, error = %e, "aborting a failed fetch's upload");
        }
        if let Some(request) = undo.pin
            && let Err(e) = self.metadata.unpin(request).await
        {
            tracing::warn!(digest = %self.digest, request, error = %e, "unpinning a failed fetch");
        }
        remove_spool(undo.spool.as_deref());
    }

    /// Takes this flight out of the map (only this one: a new flight of
    /// the same digest may have started).
    fn forget(&self) {
        let mut flights = lock(&self.flights);
        if flights
            .get(&self.digest)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.digest);
        }
    }

    fn protocol(&self, reason: String) -> UpstreamError {
        UpstreamError::Protocol {
            upstream: self.upstream.url().to_owned(),
            reason,
        }
    }

    /// A local failure (spool, blob or metadata store). `UpstreamError` has
    /// no variant of its own for it; `Config`'s words are neutral
    /// ("upstream U: ...") and name the cause.
    fn local(&self, reason: &str) -> UpstreamError {
        UpstreamError::Config {
            upstream: self.upstream.url().to_owned(),
            reason: format!("blob {}: local storage: {reason}", self.digest),
        }
    }

    fn store_error(&self, e: StorageError) -> UpstreamError {
        self.local(&e.to_string())
    }
}

/// A read-only handle on an upload's file, which readers keep through the
/// commit's rename (and an abort's unlink).
async fn open_for_reading(path: &Path) -> std::io::Result<File> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || File::open(path))
        .await
        .map_err(std::io::Error::other)?
}

/// Unlinks a spool file; readers keep reading through their handle.
fn remove_spool(path: Option<&Path>) {
    if let Some(path) = path
        && let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "removing a blob spool file");
    }
}
