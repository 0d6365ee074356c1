//! The upload writer: appends to a session file and hashes exactly the
//! bytes the file accepted, so the digest is ready at commit.

use super::IO_BUF;
use super::sessions::{HashState, Lease};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::AsyncWrite;

/// Appends to `uploads/<id>/data` while holding the session's lease.
pub(super) struct HashingWriter {
    file: tokio::fs::File,
    /// `None` once shut down: the lease (and hash) went back to the store.
    lease: Option<Lease>,
}

impl HashingWriter {
    /// Wraps a file opened for appending whose current length is `len`.
    pub fn new(mut file: tokio::fs::File, mut lease: Lease, len: u64) -> Self {
        file.set_max_buf_size(IO_BUF);
        // Keep hashing only if the cached state covers the whole file; an
        // empty file can start afresh. Otherwise commit re-hashes from disk.
        lease.state = match lease.take_state() {
            Some(state) if state.len == len => Some(state),
            _ if len == 0 => Some(HashState::default()),
            _ => None,
        };
        Self {
            file,
            lease: Some(lease),
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "upload writer already shut down")
}

impl AsyncWrite for HashingWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let Some(lease) = this.lease.as_mut() else {
            return Poll::Ready(Err(closed()));
        };
        let n = ready!(Pin::new(&mut this.file).poll_write(cx, buf))?;
        if let Some(state) = lease.state.as_mut() {
            sha2::Digest::update(&mut state.hasher, &buf[..n]);
            state.len += n as u64;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.file).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(Pin::new(&mut self.file).poll_shutdown(cx))?;
        // Every byte is in the file now: release the session right away so a
        // commit does not have to wait for the writer to be dropped.
        self.lease = None;
        Poll::Ready(Ok(()))
    }
}
