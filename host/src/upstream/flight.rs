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
use berth_storage::{BlobReader, BlobStore, MetadataStore};
use bytes::Bytes;
use futures::StreamExt as _;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

use task::Task;
#[cfg(test)]
use task::{PIN_REQUEST_BIT, pin_request};

/// The most one reader reads from the spool at a time.
const READ_CHUNK: u64 = 1 << 20;

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

mod task;

#[cfg(test)]
mod tests;
