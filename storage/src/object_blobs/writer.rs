//! The upload writer. The `AsyncWrite` handed to the caller only queues
//! bytes on a bounded channel; a spawned task streams them into a part
//! object (multipart, through `BufWriter`), hashing as they go, and on each
//! flush completes the part and claims its offset (see `chunks.rs`).
//!
//! So a flush makes everything written so far durable, as `AsyncWrite`
//! promises, and a writer dropped without one leaves no trace: its task
//! aborts the open part and never claims it.

use super::Shared;
use super::chunks::{self, Chunk};
use super::layout::SessionId;
use super::sessions::{HashState, Lease};
use crate::{StorageError, UploadWriter};
use bytes::Bytes;
use object_store::buffered::BufWriter;
use sha2::{Digest as _, Sha256};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Part objects are uploaded in pieces of this size (S3 wants >= 5 MiB;
/// above 5 MiB so that a typical 5 MiB layer is still one plain PUT)...
pub(super) const PIECE: usize = 6 << 20;
/// ...at most this many at once: with the piece being filled and the
/// queue, a writer holds at most ~22 MiB.
pub(super) const PIECES_IN_FLIGHT: usize = 2;
/// Largest message on the queue, and messages queued.
const MESSAGE: usize = 1 << 20;
const QUEUE: usize = 4;
/// A writer claims its part and starts a new one past this size: parts
/// stay within S3's 10,000 pieces and its 5 GiB server-side copy limit.
const PART_MAX: u64 = 4 << 30;

enum Msg {
    Data(Bytes),
    /// Complete and claim the open part, then reply.
    Flush(oneshot::Sender<io::Result<()>>),
}

/// Starts a writer appending at `offset`, the session's current size.
pub(super) fn open(shared: Arc<Shared>, id: SessionId, lease: Lease, offset: u64) -> UploadWriter {
    let (tx, rx) = mpsc::channel(QUEUE);
    let failure = Arc::new(Mutex::new(None));
    let task = Task {
        hasher: shared.sessions.hash_at(id.as_str(), offset),
        shared,
        id,
        offset,
        part: None,
        failure: Arc::clone(&failure),
    };
    tokio::spawn(task.run(rx));
    Box::pin(Sink {
        tx: Some(tx),
        reserve: None,
        reply: None,
        failure,
        _lease: Some(lease),
    })
}

/// Reports a storage error through `io`, keeping it downcastable.
fn to_io(e: StorageError) -> io::Error {
    match e {
        StorageError::Io(e) => e,
        StorageError::NotFound => io::Error::new(io::ErrorKind::NotFound, e),
        e => io::Error::other(e),
    }
}

type Failure = Arc<Mutex<Option<io::Error>>>;
type Reserve = Pin<
    Box<dyn Future<Output = Result<mpsc::OwnedPermit<Msg>, mpsc::error::SendError<()>>> + Send>,
>;

/// The caller's end. It holds the session's lease, so the session is free
/// again as soon as it is shut down or dropped, while the task may still be
/// cleaning up a discarded part.
struct Sink {
    /// `None` once shut down.
    tx: Option<mpsc::Sender<Msg>>,
    reserve: Option<Reserve>,
    reply: Option<oneshot::Receiver<io::Result<()>>>,
    failure: Failure,
    _lease: Option<Lease>,
}

impl Sink {
    /// Why the task stopped: its error, reported once.
    fn stopped(&self) -> io::Error {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "upload writer stopped after an earlier error",
                )
            })
    }

    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<mpsc::OwnedPermit<Msg>>> {
        let Some(tx) = &self.tx else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "upload writer already shut down",
            )));
        };
        let reserve = self
            .reserve
            .get_or_insert_with(|| Box::pin(tx.clone().reserve_owned()));
        let permit = ready!(reserve.as_mut().poll(cx));
        self.reserve = None;
        Poll::Ready(permit.map_err(|_| self.stopped()))
    }
}

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() && this.tx.is_some() {
            return Poll::Ready(Ok(0));
        }
        let permit = ready!(this.poll_permit(cx))?;
        let n = buf.len().min(MESSAGE);
        permit.send(Msg::Data(Bytes::copy_from_slice(&buf[..n])));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(reply) = this.reply.as_mut() {
                let result = ready!(Pin::new(reply).poll(cx));
                this.reply = None;
                return Poll::Ready(result.unwrap_or_else(|_| Err(this.stopped())));
            }
            if this.tx.is_none() {
                return Poll::Ready(Ok(()));
            }
            let permit = ready!(this.poll_permit(cx))?;
            let (tx, rx) = oneshot::channel();
            permit.send(Msg::Flush(tx));
            this.reply = Some(rx);
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = ready!(self.as_mut().poll_flush(cx));
        // Done either way: the task ends once the channel closes, and the
        // session is released for the next writer or the commit.
        let this = self.get_mut();
        this.tx = None;
        this.reserve = None;
        this._lease = None;
        Poll::Ready(result)
    }
}

/// The part object a writer is filling.
struct Part {
    uuid: Uuid,
    writer: BufWriter,
    len: u64,
}

/// The writer's task: owns the open part and the running hash.
struct Task {
    shared: Arc<Shared>,
    id: SessionId,
    /// Where the next claim goes.
    offset: u64,
    /// sha256 of the session's bytes `0..offset` plus the open part, when
    /// the cached state covered `0..offset` at open; else commit re-hashes.
    hasher: Option<Sha256>,
    part: Option<Part>,
    failure: Failure,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                // Bytes still queued when the caller dropped its end are
                // discarded, not uploaded.
                Msg::Data(_) if rx.is_closed() => break,
                Msg::Data(bytes) => {
                    if let Err(e) = self.write(bytes).await {
                        *self
                            .failure
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(to_io(e));
                        break;
                    }
                }
                Msg::Flush(reply) => {
                    let result = self.flush().await;
                    let failed = result.is_err();
                    // The caller may have stopped waiting; the claim stands.
                    let _ = reply.send(result.map_err(to_io));
                    if failed {
                        break;
                    }
                }
            }
        }
        if let Some(part) = self.part.take() {
            discard(&self.id, part).await;
        }
    }

    async fn write(&mut self, bytes: Bytes) -> crate::Result<()> {
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(&bytes);
        }
        let part = self.part.get_or_insert_with(|| {
            let uuid = Uuid::new_v4();
            let path = self.id.part(&uuid);
            let writer = BufWriter::with_capacity(Arc::clone(&self.shared.store), path, PIECE)
                .with_max_concurrency(PIECES_IN_FLIGHT);
            Part {
                uuid,
                writer,
                len: 0,
            }
        });
        part.len += bytes.len() as u64;
        part.writer.put(bytes).await?;
        if part.len >= PART_MAX {
            self.flush().await?;
        }
        Ok(())
    }

    /// Completes the open part and claims it at `offset`.
    async fn flush(&mut self) -> crate::Result<()> {
        let Some(mut part) = self.part.take() else {
            return Ok(());
        };
        let chunk = Chunk {
            offset: self.offset,
            part: part.uuid,
            len: part.len,
        };
        // On failure `BufWriter` has already aborted its multipart upload.
        part.writer.shutdown().await?;
        chunks::claim(&self.shared, &self.id, &chunk).await?;
        self.offset = chunk.end();
        if let Some(hasher) = &self.hasher {
            let state = HashState {
                offset: self.offset,
                hasher: hasher.clone(),
            };
            self.shared
                .sessions
                .advance(self.id.as_str(), chunk.offset, state);
        }
        tracing::debug!(upload = %self.id, offset = chunk.offset, len = chunk.len, "chunk claimed");
        Ok(())
    }
}

/// Drops a part that will never be claimed.
async fn discard(id: &SessionId, mut part: Part) {
    if let Err(e) = part.writer.abort().await {
        tracing::warn!(upload = %id, error = %e, "aborting an unclaimed part");
    }
    tracing::debug!(upload = %id, bytes = part.len, "unflushed bytes discarded");
}
