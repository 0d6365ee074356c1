//! The blob tee of the pull-through cache: one upstream fetch per blob on
//! this host, streamed to every client while it is written to storage,
//! and visible in storage only once its digest verified.
//!
//! A fetch ([`BlobFlights::fetch`]) starts a *flight* for a digest, or joins
//! the one in progress (flights are keyed by digest alone: the bytes of a
//! digest are the same whichever upstream or repository they come from).
//! The flight's task, independent of every reader, reads the upstream body
//! in batches of up to [`BATCH`] and writes each to a `BlobStore` upload
//! session. Readers read the bytes back with positional reads on a shared
//! handle as they arrive, so a reader that joins late starts from byte 0:
//! from the upload's own file where the store keeps one (the filesystem
//! store; each byte is written once), else from a spool file under the
//! spool directory that the task writes too (an object store, which cannot
//! be read before the commit). Progress is published on a `watch` channel.
//!
//! Verified before visible: the task hashes the bytes as they arrive. When
//! the body ended it checks the length against the declared one and the
//! hash against the digest; until then readers get everything but the
//! last byte, then the rest and the end of the stream. Only after that it
//! pins the digest for garbage collection (docs/GC.md), commits the
//! session with the expected digest (the store checks it again), links
//! every repository that asked, and unpins: the client does not wait for
//! the bytes to become durable. If the transfer fails, the session is
//! aborted (nothing is stored), every reader's stream ends in an error
//! (never a clean short end) and the flight is forgotten, so the next
//! fetch starts over. If only the store fails, after the bytes verified,
//! the readers finish from the spool and nothing is stored.
//!
//! Memory stays bounded: one upstream chunk in the task, up to
//! [`READ_CHUNK`] per reader read.

use super::{Upstream, UpstreamError};
use crate::backends::past_tombstones;
use berth_oci::Digest;
use berth_storage::{BlobReader, BlobStore, MetadataStore, StorageError};
use bytes::{Bytes, BytesMut};
use futures::{FutureExt as _, StreamExt as _};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;

/// The most one reader reads from the spool at a time.
const READ_CHUNK: u64 = 1 << 20;

/// The most the task gathers from the upstream before it writes: network
/// reads are small (16-64 KiB), and a spool and a store write per read
/// cost more than the bytes.
const BATCH: usize = 1 << 20;

/// The high bit of every pin request number a flight uses: the sandbox's
/// requests (`storage_imports/pins.rs`) count up from 1 and never reach
/// it, so a flight's pins and a client request's pins never share a number
/// (the metadata store drops pins by request number).
const PIN_REQUEST_BIT: u64 = 1 << 63;
static NEXT_PIN_REQUEST: AtomicU64 = AtomicU64::new(1);

/// A pin request number of its own for one flight's commit.
fn pin_request() -> u64 {
    PIN_REQUEST_BIT | NEXT_PIN_REQUEST.fetch_add(1, Ordering::Relaxed)
}

/// Spool file names, unique within this process.
static NEXT_SPOOL: AtomicU64 = AtomicU64::new(1);

/// The blob fetches in progress on this host. One per server, shared by
/// every request.
pub struct BlobFlights {
    spool_dir: PathBuf,
    blobs: Arc<dyn BlobStore>,
    metadata: Arc<dyn MetadataStore>,
    flights: Arc<Mutex<HashMap<Digest, Arc<Flight>>>>,
}

impl std::fmt::Debug for BlobFlights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobFlights")
            .field("spool_dir", &self.spool_dir)
            .field("in_flight", &lock(&self.flights).len())
            .finish_non_exhaustive()
    }
}

/// A blob as a fetch hands it out: its length when known (declared by the
/// upstream, or the committed size), and its bytes as they arrive. The
/// stream ends cleanly only after the bytes verified against the digest;
/// anything else ends it in an `Err`.
pub struct FetchedBlob {
    pub length: Option<u64>,
    pub body: BlobReader,
}

impl std::fmt::Debug for FetchedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedBlob")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// One blob's fetch, shared by its task, the map and every caller that
/// joined it.
struct Flight {
    status: watch::Sender<Status>,
    links: Mutex<Links>,
}

/// The repositories a flight links once its blob is committed.
struct Links {
    pending: Vec<String>,
    /// The task linked everything it was asked to and takes no more: a
    /// caller joining now links its repository itself.
    closed: bool,
}

/// Where a flight is; what its readers watch.
#[derive(Clone)]
enum Status {
    /// Waiting for the upstream's answer.
    Connecting,
    /// Failed before the body: the error every caller gets.
    Refused(Arc<UpstreamError>),
    /// The body is arriving: `readable` bytes of the spool may be read
    /// (everything written but the last byte).
    Streaming {
        spool: Arc<File>,
        length: Option<u64>,
        readable: u64,
    },
    /// The bytes hash to the digest: all `size` bytes may be read, while
    /// the task stores and links them.
    Verified { spool: Arc<File>, size: u64 },
    /// Verified, committed and linked: all `size` bytes may be read.
    Committed { spool: Arc<File>, size: u64 },
    /// Failed during the body: nothing was stored; readers end in an error.
    Broken(Arc<UpstreamError>),
}

impl Flight {
    fn new(repository: &str) -> Flight {
        Flight {
            status: watch::Sender::new(Status::Connecting),
            links: Mutex::new(Links {
                pending: vec![repository.to_owned()],
                closed: false,
            }),
        }
    }

    /// Adds `repository` to those the task links; `false` when the task
    /// has linked its last already (the caller then links it).
    fn join(&self, repository: &str) -> bool {
        let mut links = lock(&self.links);
        if links.closed {
            return false;
        }
        if !links.pending.iter().any(|r| r == repository) {
            links.pending.push(repository.to_owned());
        }
        true
    }

    /// The repositories still to link; when there are none, closes the
    /// list (later callers link their own).
    fn take_links(&self) -> Vec<String> {
        let mut links = lock(&self.links);
        if links.pending.is_empty() {
            links.closed = true;
        }
        std::mem::take(&mut links.pending)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BlobFlights {
    /// `spool_dir` is a local directory for the spool files (created if
    /// missing). Spool files a previous process left there are removed.
    pub fn new(
        spool_dir: PathBuf,
        blobs: Arc<dyn BlobStore>,
        metadata: Arc<dyn MetadataStore>,
    ) -> BlobFlights {
        if let Err(e) = std::fs::create_dir_all(&spool_dir) {
            // Not fatal here: each flight tries again and reports it.
            tracing::warn!(dir = %spool_dir.display(), error = %e, "creating the blob spool directory");
        }
        remove_stale_spools(&spool_dir);
        BlobFlights {
            spool_dir,
            blobs,
            metadata,
            flights: Arc::default(),
        }
    }

    /// Starts, or joins, the fetch of blob `digest` from repository
    /// `remote` of `upstream`, and links it to local `repository` once it
    /// is committed.
    ///
    /// Returns once the upstream answered: its error (404, 401,
    /// unreachable...) to this caller and every one that joined meanwhile,
    /// or the blob's stream. A joiner's `upstream` and `remote` are not
    /// used: it gets the bytes the flight in progress fetches.
    pub async fn fetch(
        &self,
        upstream: &Arc<Upstream>,
        remote: &str,
        digest: &Digest,
        repository: &str,
    ) -> Result<FetchedBlob, UpstreamError> {
        let (flight, leader) = {
            let mut flights = lock(&self.flights);
            match flights.get(digest) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let flight = Arc::new(Flight::new(repository));
                    flights.insert(digest.clone(), flight.clone());
                    (flight, true)
                }
            }
        };
        // Subscribed before the task runs, so nothing is missed.
        let mut status = flight.status.subscribe();
        let mut link_myself = false;
        if leader {
            let task = Task {
                upstream: upstream.clone(),
                remote: remote.to_owned(),
                digest: digest.clone(),
                repository: repository.to_owned(),
                spool_dir: self.spool_dir.clone(),
                blobs: self.blobs.clone(),
                metadata: self.metadata.clone(),
                flights: self.flights.clone(),
                flight,
            };
            tokio::spawn(task.fly());
        } else {
            link_myself = !flight.join(repository);
            tracing::debug!(%digest, repository, "joining the blob fetch in progress");
        }
        let answered = status
            .wait_for(|s| !matches!(s, Status::Connecting))
            .await
            .map(|s| s.clone());
        let length = match answered {
            Ok(Status::Streaming { length, .. }) => length,
            Ok(Status::Verified { size, .. } | Status::Committed { size, .. }) => Some(size),
            Ok(Status::Refused(e) | Status::Broken(e)) => return Err(copy(&e)),
            // The task holds the sender until it published an outcome.
            Ok(Status::Connecting) | Err(_) => {
                return Err(UpstreamError::Protocol {
                    upstream: upstream.url().to_owned(),
                    reason: format!("the fetch of blob {digest} ended without a result"),
                });
            }
        };
        if link_myself {
            // The flight committed and linked its repositories already; the
            // blob is stored, so this is a mount.
            self.mount(repository, digest).await;
        }
        Ok(FetchedBlob {
            length,
            body: reader(status),
        })
    }

    /// Whether a fetch of `digest` is in progress (a caller then joins it
    /// rather than asking the upstream about bytes it is still storing).
    pub fn in_flight(&self, digest: &Digest) -> bool {
        lock(&self.flights).contains_key(digest)
    }

    async fn mount(&self, repository: &str, digest: &Digest) {
        let metadata = self.metadata.as_ref();
        match past_tombstones(|| metadata.mount_blob(repository, digest.as_str())).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(%digest, repository, "a fetched blob was gone before it could be linked");
            }
            Err(e) => tracing::warn!(%digest, repository, error = %e, "linking a fetched blob"),
        }
    }
}

/// Removes the `*.spool` files in `dir`. Safe even while another process
/// used one: flights read and write their spool through an open handle.
fn remove_stale_spools(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "spool") && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed stale blob spool files");
    }
}

/// A reader of a flight's spool: waits for bytes, reads up to
/// [`READ_CHUNK`] at a time, ends cleanly only after the commit.
fn reader(status: watch::Receiver<Status>) -> BlobReader {
    futures::stream::try_unfold((status, 0u64), |(mut status, offset)| async move {
        let mut sender_gone = false;
        loop {
            let current = status.borrow_and_update().clone();
            let (spool, end, finished) = match current {
                Status::Streaming {
                    spool, readable, ..
                } => (spool, readable, false),
                Status::Verified { spool, size } | Status::Committed { spool, size } => {
                    (spool, size, true)
                }
                Status::Refused(e) | Status::Broken(e) => {
                    return Err(std::io::Error::other(copy(&e)));
                }
                Status::Connecting => {
                    return Err(std::io::Error::other("the blob fetch has not started"));
                }
            };
            if offset < end {
                let want = (end - offset).min(READ_CHUNK) as usize;
                let chunk = tokio::task::spawn_blocking(move || {
                    let mut chunk = vec![0u8; want];
                    spool.read_exact_at(&mut chunk, offset).map(|()| chunk)
                })
                .await
                .map_err(std::io::Error::other)??;
                let next = offset + chunk.len() as u64;
                return Ok(Some((Bytes::from(chunk), (status, next))));
            }
            if finished {
                return Ok(None);
            }
            if sender_gone {
                return Err(std::io::Error::other(
                    "the blob fetch ended without a result",
                ));
            }
            // An error means the sender is gone: look once more at the
            // last status it left.
            sender_gone = status.changed().await.is_err();
        }
    })
    .boxed()
}

/// An `UpstreamError` again, for every caller of a shared outcome (the
/// type is not `Clone`; every variant is plain data).
fn copy(e: &UpstreamError) -> UpstreamError {
    use UpstreamError as E;
    match e {
        E::Config { upstream, reason } => E::Config {
            upstream: upstream.clone(),
            reason: reason.clone(),
        },
        E::Invalid { upstream, reason } => E::Invalid {
            upstream: upstream.clone(),
            reason: reason.clone(),
        },
        E::Unreachable { upstream, reason } => E::Unreachable {
            upstream: upstream.clone(),
            reason: reason.clone(),
        },
        E::Tls { upstream, reason } => E::Tls {
            upstream: upstream.clone(),
            reason: reason.clone(),
        },
        E::Unauthorized {
            upstream,
            what,
            detail,
        } => E::Unauthorized {
            upstream: upstream.clone(),
            what: what.clone(),
            detail: detail.clone(),
        },
        E::NotFound { upstream, what } => E::NotFound {
            upstream: upstream.clone(),
            what: what.clone(),
        },
        E::TooLarge {
            upstream,
            what,
            limit,
        } => E::TooLarge {
            upstream: upstream.clone(),
            what: what.clone(),
            limit: *limit,
        },
        E::Protocol { upstream, reason } => E::Protocol {
            upstream: upstream.clone(),
            reason: reason.clone(),
        },
        E::Status {
            upstream,
            status,
            what,
            detail,
        } => E::Status {
            upstream: upstream.clone(),
            status: *status,
            what: what.clone(),
            detail: detail.clone(),
        },
    }
}

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
struct Task {
    upstream: Arc<Upstream>,
    remote: String,
    digest: Digest,
    repository: String,
    spool_dir: PathBuf,
    blobs: Arc<dyn BlobStore>,
    metadata: Arc<dyn MetadataStore>,
    flights: Arc<Mutex<HashMap<Digest, Arc<Flight>>>>,
    flight: Arc<Flight>,
}

impl Task {
    async fn fly(self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::UpstreamSettings;
    use axum::body::Body;
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{Method, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use berth_storage::{FsBlobStore, SqliteMetadata};
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// How many chunks the stub sends a blob in, with a pause before each.
    const CHUNKS: usize = 16;
    const PAUSE: Duration = Duration::from_millis(15);

    /// A registry on loopback serving one blob under
    /// `/v2/<mode>/blobs/<digest>`, where `mode` says how, and counting
    /// the GETs and HEADs of it.
    struct Stub {
        blob: Bytes,
        gets: AtomicUsize,
        heads: AtomicUsize,
    }

    fn blob_bytes() -> Bytes {
        // 1 MiB and a bit, not a multiple of anything.
        (0..(1 << 20) + 4321u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    /// `blob` in `CHUNKS` slow chunks; `Err` after half when `cut`.
    fn slow_body(blob: Bytes, cut: bool) -> Body {
        let size = blob.len().div_ceil(CHUNKS);
        let chunks = futures::stream::iter(0..CHUNKS).then(move |i| {
            let blob = blob.clone();
            async move {
                tokio::time::sleep(PAUSE).await;
                if cut && i == CHUNKS / 2 {
                    return Err(std::io::Error::other("cut off"));
                }
                let start = (i * size).min(blob.len());
                Ok(blob.slice(start..((i + 1) * size).min(blob.len())))
            }
        });
        Body::from_stream(chunks)
    }

    async fn serve_blob(
        State(stub): State<Arc<Stub>>,
        method: Method,
        UrlPath(rest): UrlPath<String>,
    ) -> Response {
        let Some((mode, _)) = rest.split_once("/blobs/") else {
            return StatusCode::NOT_FOUND.into_response();
        };
        if method == Method::HEAD {
            stub.heads.fetch_add(1, Ordering::SeqCst);
        } else {
            stub.gets.fetch_add(1, Ordering::SeqCst);
        }
        let length = stub.blob.len().to_string();
        let blob = stub.blob.clone();
        let with_length = |body: Body| {
            Response::builder()
                .header(header::CONTENT_LENGTH, &length)
                .body(body)
                .expect("response")
        };
        match mode {
            "slow" => with_length(slow_body(blob, false)),
            "cutoff" => with_length(slow_body(blob, true)),
            "corrupt" => {
                let mut bad = blob.to_vec();
                bad[blob.len() / 2] ^= 0x55;
                with_length(slow_body(bad.into(), false))
            }
            // Chunked, no Content-Length.
            "chunked" => slow_body(blob, false).into_response(),
            "redirected" => (
                StatusCode::TEMPORARY_REDIRECT,
                [(
                    header::LOCATION,
                    format!("/v2/slow/blobs/{}", Digest::of(&blob)),
                )],
            )
                .into_response(),
            "denied" => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, r#"Basic realm="stub""#)],
            )
                .into_response(),
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                StatusCode::NOT_FOUND.into_response()
            }
        }
    }

    struct Env {
        dir: tempfile::TempDir,
        stub: Arc<Stub>,
        upstream: Arc<Upstream>,
        blobs: Arc<FsBlobStore>,
        metadata: Arc<SqliteMetadata>,
        flights: BlobFlights,
        digest: Digest,
    }

    async fn env() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let stub = Arc::new(Stub {
            blob: blob_bytes(),
            gets: AtomicUsize::new(0),
            heads: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .route("/v2/{*rest}", axum::routing::get(serve_blob))
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stub");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let mut settings = UpstreamSettings::new(&format!("http://127.0.0.1:{port}"));
        settings.read_timeout = Duration::from_secs(5);
        let upstream = Arc::new(Upstream::new(&settings).expect("client"));
        let blobs = Arc::new(FsBlobStore::open(&dir.path().join("blobs")).expect("blob store"));
        let metadata =
            Arc::new(SqliteMetadata::open(&dir.path().join("metadata.db")).expect("metadata"));
        let flights = BlobFlights::new(dir.path().join("spool"), blobs.clone(), metadata.clone());
        let digest = Digest::of(&stub.blob);
        Env {
            dir,
            stub,
            upstream,
            blobs,
            metadata,
            flights,
            digest,
        }
    }

    impl Env {
        async fn fetch(&self, mode: &str, repository: &str) -> Result<FetchedBlob, UpstreamError> {
            self.flights
                .fetch(&self.upstream, mode, &self.digest, repository)
                .await
        }

        fn gets(&self) -> usize {
            self.stub.gets.load(Ordering::SeqCst)
        }

        async fn stored(&self) -> Option<u64> {
            self.blobs.stat(&self.digest).await.expect("stat")
        }

        async fn linked(&self, repository: &str) -> bool {
            self.metadata
                .blob_linked(repository, self.digest.as_str())
                .await
                .expect("blob_linked")
        }

        fn spool_files(&self) -> usize {
            std::fs::read_dir(self.dir.path().join("spool"))
                .expect("spool dir")
                .count()
        }

        /// Waits (up to 5 s) until the flight left the map and its spool
        /// file is gone: the task's last steps follow the readers' end.
        async fn settled(&self) {
            for _ in 0..500 {
                if lock(&self.flights.flights).is_empty() && self.spool_files() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the flight did not end");
        }
    }

    /// Everything a stream yields: the bytes, and its error if it ended in one.
    async fn read_all(mut body: BlobReader) -> (Vec<u8>, Option<std::io::Error>) {
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    assert!(chunk.len() as u64 <= READ_CHUNK);
                    bytes.extend_from_slice(&chunk);
                }
                Err(e) => return (bytes, Some(e)),
            }
        }
        (bytes, None)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn twenty_concurrent_fetches_make_one_upstream_request() {
        let env = env().await;
        let repositories: Vec<String> = (0..20).map(|i| format!("hub/repo{}", i % 5)).collect();
        let results = futures::future::join_all(repositories.iter().map(|repo| async {
            let fetched = env.fetch("slow", repo).await.expect("fetch");
            assert_eq!(fetched.length, Some(env.stub.blob.len() as u64));
            read_all(fetched.body).await
        }))
        .await;
        for (bytes, error) in results {
            assert!(error.is_none(), "{error:?}");
            assert!(bytes == env.stub.blob, "a reader got other bytes");
        }
        assert_eq!(env.gets(), 1, "one GET for 20 fetches");
        env.settled().await;
        assert_eq!(env.stored().await, Some(env.stub.blob.len() as u64));
        for repo in &repositories {
            assert!(env.linked(repo).await, "{repo} linked");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_joiner_gets_every_byte_from_the_spool() {
        let env = env().await;
        let mut first = env.fetch("slow", "hub/first").await.expect("fetch");
        let head = first.body.next().await.expect("a chunk").expect("bytes");
        assert!(!head.is_empty());
        // The flight is well under way (its task holds back the end).
        let late = env.fetch("slow", "hub/late").await.expect("join");
        let (late_bytes, late_error) = read_all(late.body).await;
        let (rest, first_error) = read_all(first.body).await;
        assert!(late_error.is_none() && first_error.is_none());
        assert!(
            late_bytes == env.stub.blob,
            "the late joiner got other bytes"
        );
        assert!([&head[..], &rest[..]].concat() == env.stub.blob);
        assert_eq!(env.gets(), 1);
        // Readers finish once the bytes verified; storing follows.
        env.settled().await;
        assert!(env.linked("hub/first").await && env.linked("hub/late").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_off_upstream_leaves_nothing_and_the_next_fetch_starts_over() {
        let env = env().await;
        let (a, b) = tokio::join!(env.fetch("cutoff", "hub/a"), env.fetch("cutoff", "hub/b"));
        for fetched in [a.expect("fetch"), b.expect("join")] {
            let (bytes, error) = read_all(fetched.body).await;
            let error = error.expect("the stream ends in an error, not short");
            assert!(bytes.len() < env.stub.blob.len());
            assert!(error.to_string().contains("127.0.0.1"), "{error}");
        }
        assert_eq!(env.gets(), 1);
        assert_eq!(env.stored().await, None, "nothing stored");
        assert!(!env.linked("hub/a").await);
        env.settled().await;
        assert!(env.blobs.list_uploads().await.expect("uploads").is_empty());

        let again = env.fetch("slow", "hub/a").await.expect("a new flight");
        let (bytes, error) = read_all(again.body).await;
        assert!(error.is_none() && bytes == env.stub.blob);
        assert_eq!(env.gets(), 2);
        env.settled().await;
        assert_eq!(env.stored().await, Some(env.stub.blob.len() as u64));
        assert!(env.linked("hub/a").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupted_byte_is_an_error_before_the_whole_blob_and_nothing_is_stored() {
        let env = env().await;
        let fetched = env.fetch("corrupt", "hub/a").await.expect("fetch");
        let (bytes, error) = read_all(fetched.body).await;
        let error = error.expect("a mismatch ends in an error");
        assert!(error.to_string().contains("hash to"), "{error}");
        assert!(
            bytes.len() < env.stub.blob.len(),
            "the last byte was held back"
        );
        assert_eq!(env.stored().await, None);
        assert!(!env.linked("hub/a").await);
        env.settled().await;
        assert!(env.blobs.list_uploads().await.expect("uploads").is_empty());
    }

    /// A blob store whose commits fail, as an object store that went away
    /// at the end of a blob would.
    struct FailingCommits(Arc<FsBlobStore>);

    #[async_trait::async_trait]
    impl BlobStore for FailingCommits {
        async fn stat(&self, digest: &Digest) -> berth_storage::Result<Option<u64>> {
            self.0.stat(digest).await
        }
        async fn read(
            &self,
            digest: &Digest,
            offset: u64,
            length: u64,
        ) -> berth_storage::Result<BlobReader> {
            self.0.read(digest, offset, length).await
        }
        async fn delete(&self, digest: &Digest) -> berth_storage::Result<bool> {
            self.0.delete(digest).await
        }
        async fn create_upload(&self) -> berth_storage::Result<String> {
            self.0.create_upload().await
        }
        async fn upload_size(&self, id: &str) -> berth_storage::Result<u64> {
            self.0.upload_size(id).await
        }
        async fn append(&self, id: &str) -> berth_storage::Result<berth_storage::UploadWriter> {
            self.0.append(id).await
        }
        async fn commit(&self, _id: &str, _expected: &Digest) -> berth_storage::Result<u64> {
            Err(StorageError::Unavailable(
                "the test store fails commits".into(),
            ))
        }
        async fn abort(&self, id: &str) -> berth_storage::Result<()> {
            self.0.abort(id).await
        }
        async fn list_blobs(&self) -> berth_storage::Result<berth_storage::BlobListing> {
            self.0.list_blobs().await
        }
        async fn list_uploads(&self) -> berth_storage::Result<Vec<berth_storage::UploadEntry>> {
            self.0.list_uploads().await
        }
        async fn quarantine(&self, digest: &Digest) -> berth_storage::Result<bool> {
            self.0.quarantine(digest).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_failure_after_verification_serves_the_bytes_and_stores_nothing() {
        let mut env = env().await;
        env.flights = BlobFlights::new(
            env.dir.path().join("spool"),
            Arc::new(FailingCommits(env.blobs.clone())),
            env.metadata.clone(),
        );
        let fetched = env.fetch("slow", "hub/a").await.expect("fetch");
        let (bytes, error) = read_all(fetched.body).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(bytes, env.stub.blob);
        assert_eq!(env.stored().await, None);
        assert!(!env.linked("hub/a").await);
        env.settled().await;
        assert!(env.blobs.list_uploads().await.expect("uploads").is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fetch_completes_without_readers() {
        let env = env().await;
        drop(env.fetch("slow", "hub/gone").await.expect("fetch"));
        env.settled().await;
        assert_eq!(env.stored().await, Some(env.stub.blob.len() as u64));
        assert!(env.linked("hub/gone").await);
        assert_eq!(env.gets(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_declared_length_streams_too() {
        let env = env().await;
        let fetched = env.fetch("chunked", "hub/a").await.expect("fetch");
        assert_eq!(fetched.length, None);
        let (bytes, error) = read_all(fetched.body).await;
        assert!(error.is_none() && bytes == env.stub.blob);
        env.settled().await;
        assert_eq!(env.stored().await, Some(env.stub.blob.len() as u64));
        assert!(env.linked("hub/a").await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_before_the_body_reach_every_caller_and_nothing_stays() {
        let env = env().await;
        // A slow 404: the four joiners wait for the first one's answer.
        let answers = futures::future::join_all(
            (0..5).map(|i| env.fetch("missing", if i % 2 == 0 { "hub/a" } else { "hub/b" })),
        )
        .await;
        for answer in answers {
            let err = answer.expect_err("not found");
            assert!(matches!(err, UpstreamError::NotFound { .. }), "{err:?}");
        }
        assert_eq!(env.gets(), 1);
        assert!(lock(&env.flights.flights).is_empty());
        assert_eq!(env.spool_files(), 0);

        let err = env.fetch("denied", "hub/a").await.expect_err("401");
        assert!(matches!(err, UpstreamError::Unauthorized { .. }), "{err:?}");
        assert!(lock(&env.flights.flights).is_empty());

        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("address").port()
        };
        let closed = Arc::new(
            Upstream::new(&UpstreamSettings::new(&format!("http://127.0.0.1:{port}")))
                .expect("client"),
        );
        let err = env
            .flights
            .fetch(&closed, "slow", &env.digest, "hub/a")
            .await
            .expect_err("unreachable");
        assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
        assert!(lock(&env.flights.flights).is_empty());
        assert_eq!(env.stored().await, None);
        assert!(env.blobs.list_uploads().await.expect("uploads").is_empty());
    }

    /// The window between a flight's end and its leaving the map: a caller
    /// that joins then still gets the whole blob (from the spool handle,
    /// its file already unlinked) and its repository linked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_finished_flight_still_in_the_map_serves_and_links() {
        let env = env().await;
        let fetched = env.fetch("slow", "hub/first").await.expect("fetch");
        let flight = lock(&env.flights.flights)
            .get(&env.digest)
            .cloned()
            .expect("in flight");
        let (bytes, _) = read_all(fetched.body).await;
        assert!(bytes == env.stub.blob);
        env.settled().await;
        lock(&env.flights.flights).insert(env.digest.clone(), flight);

        let late = env.fetch("slow", "hub/window").await.expect("join");
        assert_eq!(late.length, Some(env.stub.blob.len() as u64));
        let (bytes, error) = read_all(late.body).await;
        assert!(error.is_none() && bytes == env.stub.blob);
        assert!(env.linked("hub/window").await);
        assert_eq!(env.gets(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blob_head_gives_the_size_through_redirects() {
        let env = env().await;
        let size = env.stub.blob.len() as u64;
        assert_eq!(
            env.upstream
                .blob_head("slow", &env.digest)
                .await
                .expect("HEAD"),
            size
        );
        assert_eq!(
            env.upstream
                .blob_head("redirected", &env.digest)
                .await
                .expect("HEAD, redirected"),
            size
        );
        let err = env
            .upstream
            .blob_head("missing", &env.digest)
            .await
            .expect_err("404");
        assert!(matches!(err, UpstreamError::NotFound { .. }), "{err:?}");
        assert_eq!(env.stub.heads.load(Ordering::SeqCst), 4);
        assert_eq!(env.gets(), 0);
    }

    #[test]
    fn pin_requests_never_meet_the_sandbox_requests() {
        let (a, b) = (pin_request(), pin_request());
        assert!(a & PIN_REQUEST_BIT != 0 && b & PIN_REQUEST_BIT != 0);
        assert_ne!(a, b);
    }
}
