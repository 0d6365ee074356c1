//! wasi:io streams over storage readers and writers. The guest splices these
//! into and out of HTTP bodies, so blob bytes stay on the host.

use berth_storage::{BlobReader, UploadWriter};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};

/// How much the guest may hand us before we ask it to wait.
const WRITE_BUDGET: usize = 1 << 20;

/// A blob being read: a task pulls the store's chunks ahead (two in flight)
/// while the previous chunk goes out on the wire.
pub struct BlobSource {
    chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    pending: Option<Bytes>,
    closed: bool,
    reader_task: JoinHandle<()>,
}

impl BlobSource {
    /// Streams the chunks of `reader`.
    pub fn new(mut reader: BlobReader) -> Self {
        let (tx, chunks) = mpsc::channel(2);
        let reader_task = tokio::spawn(async move {
            loop {
                let next = reader.next().await;
                let done = !matches!(next, Some(Ok(_)));
                // End of stream is an empty chunk, so `read` can report closed.
                let item = next.unwrap_or_else(|| Ok(Bytes::new()));
                if tx.send(item).await.is_err() || done {
                    return;
                }
            }
        });
        Self {
            chunks,
            pending: None,
            closed: false,
            reader_task,
        }
    }

    fn take_chunk(&mut self, result: std::io::Result<Bytes>) -> StreamResult<()> {
        match result {
            Ok(bytes) if bytes.is_empty() => {
                self.closed = true;
            }
            Ok(bytes) => self.pending = Some(bytes),
            Err(e) => {
                self.closed = true;
                return Err(StreamError::LastOperationFailed(e.into()));
            }
        }
        Ok(())
    }
}

impl Drop for BlobSource {
    fn drop(&mut self) {
        self.reader_task.abort();
    }
}

#[async_trait::async_trait]
impl InputStream for BlobSource {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if self.pending.is_none() && !self.closed {
            match self.chunks.try_recv() {
                Ok(result) => self.take_chunk(result)?,
                Err(mpsc::error::TryRecvError::Empty) => return Ok(Bytes::new()),
                Err(mpsc::error::TryRecvError::Disconnected) => self.closed = true,
            }
        }
        match self.pending.take() {
            Some(mut bytes) => {
                if bytes.len() > size {
                    self.pending = Some(bytes.split_off(size));
                }
                Ok(bytes)
            }
            None => Err(StreamError::Closed),
        }
    }
}

#[async_trait::async_trait]
impl Pollable for BlobSource {
    async fn ready(&mut self) {
        if self.pending.is_some() || self.closed {
            return;
        }
        match self.chunks.recv().await {
            Some(result) => {
                if let Err(e) = self.take_chunk(result) {
                    tracing::warn!(error = %e, "blob read failed");
                }
            }
            None => self.closed = true,
        }
    }
}

/// An upload session's append stream. Writes are driven from `ready`, so the
/// storage writer (and the hash state it carries) is released the moment the
/// guest drops the stream.
pub struct UploadSink {
    writer: UploadWriter,
    queued: Option<Bytes>,
    flush_requested: bool,
    failed: Option<std::io::Error>,
    /// The failure was reported: the stream stays closed after it, as
    /// wasi:io says, so the guest can tell a store that stopped taking
    /// bytes from a request body that ended early.
    broken: bool,
}

impl UploadSink {
    pub fn new(writer: UploadWriter) -> Self {
        Self {
            writer,
            queued: None,
            flush_requested: false,
            failed: None,
            broken: false,
        }
    }

    fn check_failed(&mut self) -> StreamResult<()> {
        if self.broken {
            return Err(StreamError::Closed);
        }
        match self.failed.take() {
            Some(e) => {
                self.broken = true;
                Err(StreamError::LastOperationFailed(e.into()))
            }
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl OutputStream for UploadSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.check_failed()?;
        if self.queued.is_some() {
            return Err(StreamError::trap("write without permit"));
        }
        if !bytes.is_empty() {
            self.queued = Some(bytes);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.check_failed()?;
        self.flush_requested = true;
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.check_failed()?;
        if self.queued.is_some() || self.flush_requested {
            Ok(0)
        } else {
            Ok(WRITE_BUDGET)
        }
    }
}

#[async_trait::async_trait]
impl Pollable for UploadSink {
    async fn ready(&mut self) {
        if self.failed.is_some() || self.broken {
            return;
        }
        if let Some(mut bytes) = self.queued.take()
            && let Err(e) = self.writer.write_all_buf(&mut bytes).await
        {
            self.failed = Some(e);
            return;
        }
        if self.flush_requested {
            // shutdown, not just flush: it completes the write and hands the
            // hash state back to the store for the next request or commit.
            if let Err(e) = self.writer.flush().await {
                self.failed = Some(e);
            }
            self.flush_requested = false;
        }
    }
}

impl Drop for UploadSink {
    fn drop(&mut self) {
        if self.queued.is_some() {
            tracing::warn!("upload sink dropped with unwritten bytes");
        }
    }
}
