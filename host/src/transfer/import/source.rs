//! Where an import takes blobs from: a tar already read once (its blobs
//! staged, see `stage.rs`) or an OCI layout directory, whose files are
//! opened only when the store lacks the blob.

use super::refusal::{At, Refusal};
use super::stage::{Got, Staged};
use crate::transfer::archive::layout;
use crate::transfer::progress::Progress;
use crate::transfer::store::StoreWriter;
use berth_oci::Digest;
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_storage::BlobStore;
use bytes::Bytes;
use futures::StreamExt as _;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// How much a layout's file is read at a time.
const COPY_CHUNK: usize = 1 << 20;

pub enum Source {
    Tar(Box<Staged>),
    Dir(PathBuf),
}

/// Blob checks already made, and what they gave.
#[derive(Default)]
pub struct Checked {
    sizes: HashMap<Digest, Result<u64, Refusal>>,
    /// Blobs stored by this run, and found already stored.
    pub stored: usize,
    pub skipped: usize,
}

/// What the blob side of an import needs: the source, the store (none for
/// `--verify-only`) and the progress.
pub struct Blobs {
    pub source: Source,
    pub writer: Option<StoreWriter>,
    /// The store, to read back manifests; none for `--verify-only`.
    pub store: Option<Arc<dyn BlobStore>>,
    pub progress: Progress,
    pub checked: Checked,
    /// Content made by the import (manifests of legacy `docker save`
    /// images, their configs), by digest.
    pub made: HashMap<Digest, Bytes>,
}

impl Blobs {
    /// Makes sure blob `digest`, which a manifest says has `size` bytes, is
    /// stored (or, verifying, is in the archive with the right bytes).
    pub async fn ensure(&mut self, digest: &Digest, size: u64) -> Result<(), Refusal> {
        let got = match self.checked.sizes.get(digest) {
            Some(got) => got.clone(),
            None => {
                let got = self.check(digest).await;
                self.checked.sizes.insert(digest.clone(), got.clone());
                got
            }
        }?;
        if got != size {
            return Err(Refusal::Size {
                at: At::blob(digest),
                expected: size,
                actual: got,
            });
        }
        Ok(())
    }

    /// What is wrong with the blobs no image asked for: every blob of a
    /// tar was read anyway; a directory's are hashed now.
    pub async fn unused(&mut self) -> Vec<Refusal> {
        let digests: Vec<Digest> = match &self.source {
            Source::Tar(staged) => staged.blobs.keys().cloned().collect(),
            Source::Dir(root) => std::fs::read_dir(root.join("blobs").join("sha256"))
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    layout::blob_digest(&format!("blobs/sha256/{}", e.ok()?.file_name().to_str()?))
                })
                .collect(),
        };
        let mut bad = Vec::new();
        for digest in digests {
            if self.checked.sizes.contains_key(&digest) {
                continue;
            }
            if let Err(why) = self.check(&digest).await {
                bad.push(why);
            }
        }
        bad
    }

    async fn check(&mut self, digest: &Digest) -> Result<u64, Refusal> {
        if let Some(bytes) = self.made.get(digest).cloned() {
            return self.put_made(digest, bytes).await;
        }
        match &self.source {
            Source::Tar(staged) => match staged.blobs.get(digest) {
                Some(Got::Stored(size) | Got::Verified(size)) => Ok(*size),
                Some(Got::Bad(why)) => Err(why.clone()),
                None => Err(Refusal::Missing {
                    at: At::blob(digest),
                    layout: false,
                    stopped: staged.stopped.clone(),
                }),
            },
            Source::Dir(root) => {
                let path = root.join(layout::blob_path(digest));
                self.file_blob(digest, path).await
            }
        }
    }

    /// Content the import made itself, stored from memory.
    async fn put_made(&mut self, digest: &Digest, bytes: Bytes) -> Result<u64, Refusal> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(bytes.len() as u64);
        };
        let failed = |e| Refusal::from_put(At::blob(digest), e);
        if let Some(size) = writer.hold_existing(digest).await.map_err(failed)? {
            return Ok(size);
        }
        writer
            .put_blob(digest, Some(bytes.len() as u64), &bytes[..])
            .await
            .map_err(failed)
    }

    /// A layout directory's blob: not opened when the store has it.
    async fn file_blob(&mut self, digest: &Digest, path: PathBuf) -> Result<u64, Refusal> {
        let at = At::blob(digest);
        if let Some(writer) = self.writer.as_mut()
            && let Some(size) = writer
                .hold_existing(digest)
                .await
                .map_err(|e| Refusal::from_put(at.clone(), e))?
        {
            self.checked.skipped += 1;
            self.progress.add(size);
            return Ok(size);
        }
        let read = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => Refusal::Missing {
                at: at.clone(),
                layout: true,
                stopped: None,
            },
            _ => Refusal::Read {
                at: at.clone(),
                why: format!("{}: {e}", path.display()),
            },
        };
        let mut file = tokio::fs::File::open(&path).await.map_err(read)?;
        file.set_max_buf_size(COPY_CHUNK);
        let size = file.metadata().await.map_err(read)?.len();
        let counted = Counted {
            inner: file,
            progress: self.progress.clone(),
        };
        match self.writer.as_mut() {
            Some(writer) => {
                let stored = writer.put_blob(digest, Some(size), counted).await;
                self.checked.stored += 1;
                stored.map_err(|e| Refusal::from_put(at.clone(), e))
            }
            None => {
                let actual = hash(counted).await.map_err(read)?;
                if actual != *digest {
                    return Err(Refusal::Digest {
                        at,
                        actual: actual.to_string(),
                    });
                }
                Ok(size)
            }
        }
    }

    /// The bytes of manifest `digest` (`size` bytes by its descriptor),
    /// checked against both.
    pub async fn manifest(&mut self, digest: &Digest, size: u64) -> Result<Bytes, Refusal> {
        let at = At::blob(digest);
        if size > MAX_MANIFEST_BYTES {
            return Err(Refusal::Invalid {
                at,
                why: "a manifest larger than 4 MiB".to_owned(),
            });
        }
        let bytes = match self.kept(digest) {
            Some(bytes) => bytes,
            None => {
                self.ensure(digest, size).await?;
                self.read_back(digest, size).await?
            }
        };
        if bytes.len() as u64 != size {
            return Err(Refusal::Size {
                at,
                expected: size,
                actual: bytes.len() as u64,
            });
        }
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Refusal::Digest {
                at,
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Bytes held in memory already.
    fn kept(&self, digest: &Digest) -> Option<Bytes> {
        if let Some(bytes) = self.made.get(digest) {
            return Some(bytes.clone());
        }
        match &self.source {
            Source::Tar(staged) => staged.json.get(digest).cloned(),
            Source::Dir(_) => None,
        }
    }

    /// A small blob read from the layout directory, or from the store.
    async fn read_back(&mut self, digest: &Digest, size: u64) -> Result<Bytes, Refusal> {
        let failed = |why: String| Refusal::Read {
            at: At::blob(digest),
            why,
        };
        if let Source::Dir(root) = &self.source {
            let path = root.join(layout::blob_path(digest));
            return tokio::fs::read(&path)
                .await
                .map(Bytes::from)
                .map_err(|e| failed(format!("{}: {e}", path.display())));
        }
        let Some(store) = &self.store else {
            return Err(failed(
                "too many manifests to keep in memory while verifying".to_owned(),
            ));
        };
        let mut reader = store
            .read(digest, 0, size)
            .await
            .map_err(|e| failed(format!("reading it back from the store: {e}")))?;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = reader.next().await {
            let chunk =
                chunk.map_err(|e| failed(format!("reading it back from the store: {e}")))?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(bytes))
    }
}

/// The sha256 of everything `reader` yields.
async fn hash(mut reader: impl AsyncRead + Unpin) -> io::Result<Digest> {
    use sha2::Digest as _;
    use tokio::io::AsyncReadExt as _;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(Digest::from_sha256(&hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// A file, counting what is read into the progress.
struct Counted {
    inner: tokio::fs::File,
    progress: Progress,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            self.progress.add((buf.filled().len() - before) as u64);
        }
        polled
    }
}
