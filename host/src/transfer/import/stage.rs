//! Reading a tar once, on a blocking thread, committing each blob to the
//! store as it comes by (the archive's `index.json` may come after its
//! blobs): what the images are is decided afterwards, from what was
//! staged. A blob already stored is not read (a plain tar seeks past it),
//! which is what makes a second run after an interruption cheap. With
//! `--verify-only` blobs are hashed instead of stored.
//!
//! Bytes go from the reading thread to the store in chunks through a
//! bounded channel, so decompressing and storing overlap and at most a
//! few chunks are in memory. Small JSON blobs (manifests, configs; never
//! layers, which are tars) are also kept in memory, within a budget, so
//! that they need not be read back.

use super::refusal::{At, Refusal};
use crate::transfer::archive::docker::MANIFEST_JSON;
use crate::transfer::archive::layout::{self, INDEX_JSON};
use crate::transfer::archive::tar_in::{self, Kind, Stop};
use crate::transfer::progress::Progress;
use crate::transfer::store::{PutError, StoreWriter};
use berth_oci::Digest;
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use bytes::Bytes;
use sha2::Digest as _;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

const CHUNK: u64 = 1 << 20;
const IN_FLIGHT: usize = 4;
/// How much small JSON is kept in memory at most; beyond it manifests are
/// read back from the store.
const JSON_BUDGET: usize = 64 << 20;

/// What became of a blob of the archive.
#[derive(Debug, Clone)]
pub enum Got {
    /// In the store (committed now, or found there), pinned; its size.
    Stored(u64),
    /// Hashed and found right (`--verify-only`); its size.
    Verified(u64),
    /// Refused: why, naming the entry.
    Bad(Refusal),
}

/// A file of a legacy `docker save` archive (not under `blobs/`).
#[derive(Debug, Clone)]
pub enum LegacyFile {
    /// A layer file, stored (or hashed) under the digest its bytes have.
    Layer {
        digest: Digest,
        size: u64,
    },
    /// A small JSON file (a config), kept.
    Json(Bytes),
    Link(String),
    Bad(Refusal),
}

/// What one pass over a tar found.
#[derive(Default)]
pub struct Staged {
    pub blobs: HashMap<Digest, Got>,
    pub json: HashMap<Digest, Bytes>,
    pub legacy: HashMap<String, LegacyFile>,
    pub index: Option<Bytes>,
    pub docker_manifest: Option<Bytes>,
    /// Why reading stopped before the end, naming where.
    pub stopped: Option<String>,
    /// Blobs stored now / found already stored (not read).
    pub stored: usize,
    pub skipped: usize,
    json_kept: usize,
}

/// Reads the tar at `path` once. `writer` is `None` for `--verify-only`.
/// Returns the writer (unless the runtime failed it) and what was staged.
pub fn stage(
    path: &Path,
    handle: Handle,
    writer: Option<StoreWriter>,
    progress: &Progress,
) -> (Option<StoreWriter>, Staged) {
    let verify = writer.is_none();
    let mut state = Stager {
        handle,
        writer,
        verify,
        staged: Staged::default(),
    };
    let result = tar_in::read(path, progress, |entry, reader| state.entry(entry, reader));
    if let Err(stop) = result {
        let why = match stop {
            Stop::Archive { .. } => stop.to_string(),
            Stop::Visitor(why) => why.to_string(),
        };
        // Each image it cuts off says so; this is for the log.
        tracing::debug!(archive = %path.display(), %why, "reading stopped early");
        state.staged.stopped = Some(why);
    }
    (state.writer, state.staged)
}

struct Stager {
    handle: Handle,
    writer: Option<StoreWriter>,
    verify: bool,
    staged: Staged,
}

/// What reading one entry's bytes gave.
struct Pumped {
    read: u64,
    /// The entry ended before its size: the archive is cut short.
    short: bool,
    error: Option<io::Error>,
    json: Option<Vec<u8>>,
    sha256: Option<Digest>,
}

impl Stager {
    /// One entry. An `Err` stops the pass (the archive cannot be read on).
    fn entry(&mut self, entry: &tar_in::Entry, reader: &mut dyn Read) -> Result<(), Refusal> {
        let path = entry.path.as_str();
        match &entry.kind {
            Kind::Other => return Ok(()),
            Kind::Link(target) => {
                self.staged
                    .legacy
                    .insert(path.to_owned(), LegacyFile::Link(target.clone()));
                return Ok(());
            }
            Kind::File => {}
        }
        if path == INDEX_JSON {
            self.staged.index = Some(self.small(entry, reader)?);
            return Ok(());
        }
        if path == MANIFEST_JSON {
            self.staged.docker_manifest = Some(self.small(entry, reader)?);
            return Ok(());
        }
        if let Some(digest) = layout::blob_digest(path) {
            return self.blob(entry, digest, reader);
        }
        if path.ends_with(".json") && entry.size <= MAX_MANIFEST_BYTES {
            let bytes = self.small(entry, reader)?;
            self.staged
                .legacy
                .insert(path.to_owned(), LegacyFile::Json(bytes));
        } else if path.ends_with(".tar") {
            self.legacy_layer(entry, reader)?;
        }
        Ok(())
    }

    /// A small file read whole.
    fn small(&mut self, entry: &tar_in::Entry, reader: &mut dyn Read) -> Result<Bytes, Refusal> {
        let at = || At::path(entry.path.clone());
        if entry.size > MAX_MANIFEST_BYTES {
            return Err(Refusal::Invalid {
                at: at(),
                why: "larger than 4 MiB".to_owned(),
            });
        }
        let mut bytes = Vec::with_capacity(entry.size as usize);
        reader
            .take(entry.size)
            .read_to_end(&mut bytes)
            .map_err(|e| Refusal::Read {
                at: at(),
                why: e.to_string(),
            })?;
        if bytes.len() as u64 != entry.size {
            return Err(Refusal::Truncated {
                at: at(),
                read: bytes.len() as u64,
                size: entry.size,
            });
        }
        Ok(Bytes::from(bytes))
    }

    /// A blob named by its digest.
    fn blob(
        &mut self,
        entry: &tar_in::Entry,
        digest: Digest,
        reader: &mut dyn Read,
    ) -> Result<(), Refusal> {
        let at = At {
            path: entry.path.clone(),
            digest: Some(digest.clone()),
        };
        if self.verify {
            let pumped = self.hash(entry, reader);
            let checked = match &pumped.sha256 {
                Some(actual) if *actual != digest => Err(Refusal::Digest {
                    at: at.clone(),
                    actual: actual.to_string(),
                }),
                _ => Ok(Got::Verified(entry.size)),
            };
            let got = read_outcome(&at, entry.size, &pumped).and(checked);
            return self.settle(digest, got, pumped);
        }
        let Some(mut writer) = self.writer.take() else {
            return Err(writer_gone(at));
        };
        let held = self.handle.block_on(writer.hold_existing(&digest));
        self.writer = Some(writer);
        match held {
            Ok(Some(size)) if size == entry.size => {
                self.staged.skipped += 1;
                self.staged.blobs.insert(digest, Got::Stored(size));
                return Ok(());
            }
            Ok(Some(size)) => {
                let wrong = Refusal::Size {
                    at,
                    expected: size,
                    actual: entry.size,
                };
                self.staged.blobs.insert(digest, Got::Bad(wrong));
                return Ok(());
            }
            Ok(None) => {}
            Err(e) => return Err(Refusal::from_put(at, e)),
        }
        let (result, pumped) = self.store(entry, reader, Some(digest.clone()));
        let stored = result
            .map(|(_, size)| Got::Stored(size))
            .map_err(|e| Refusal::from_put(at.clone(), e));
        let got = read_outcome(&at, entry.size, &pumped).and(stored);
        if got.is_ok() {
            self.staged.stored += 1;
        }
        self.settle(digest, got, pumped)
    }

    /// Records a blob's fate; a read error or a short entry stops the pass.
    fn settle(
        &mut self,
        digest: Digest,
        got: Result<Got, Refusal>,
        pumped: Pumped,
    ) -> Result<(), Refusal> {
        let got = got.unwrap_or_else(Got::Bad);
        let stop = match &got {
            Got::Bad(why) if why.stops_reading() => Some(why.clone()),
            _ => None,
        };
        if let (Got::Stored(_) | Got::Verified(_), Some(json)) = (&got, pumped.json) {
            self.staged.json_kept += json.len();
            self.staged.json.insert(digest.clone(), Bytes::from(json));
        }
        self.staged.blobs.insert(digest, got);
        match stop {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// A legacy layer file, whose digest its bytes decide.
    fn legacy_layer(
        &mut self,
        entry: &tar_in::Entry,
        reader: &mut dyn Read,
    ) -> Result<(), Refusal> {
        let at = At::path(entry.path.clone());
        let (result, pumped) = if self.verify {
            let pumped = self.hash(entry, reader);
            let result = match &pumped.sha256 {
                Some(digest) => Ok((digest.clone(), pumped.read)),
                None => Err(writer_gone(at.clone())),
            };
            (result, pumped)
        } else {
            let (result, pumped) = self.store(entry, reader, None);
            (result.map_err(|e| Refusal::from_put(at.clone(), e)), pumped)
        };
        let file = match read_outcome(&at, entry.size, &pumped).and(result) {
            Ok((digest, size)) => {
                if !self.verify {
                    self.staged.stored += 1;
                }
                LegacyFile::Layer { digest, size }
            }
            Err(why) => LegacyFile::Bad(why),
        };
        let stop = match &file {
            LegacyFile::Bad(why) if why.stops_reading() => Some(why.clone()),
            _ => None,
        };
        self.staged.legacy.insert(entry.path.clone(), file);
        match stop {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Reads the entry, hashing it (`--verify-only`).
    fn hash(&mut self, entry: &tar_in::Entry, reader: &mut dyn Read) -> Pumped {
        let mut hasher = sha2::Sha256::new();
        let mut pumped = self.pump(entry, reader, |chunk| {
            hasher.update(&chunk);
            true
        });
        pumped.sha256 = Some(Digest::from_sha256(&hasher.finalize()));
        pumped
    }

    /// Reads the entry into the store: as blob `digest`, or, when `None`,
    /// as a blob whose digest its bytes decide.
    fn store(
        &mut self,
        entry: &tar_in::Entry,
        reader: &mut dyn Read,
        digest: Option<Digest>,
    ) -> (Result<(Digest, u64), PutError>, Pumped) {
        let Some(mut writer) = self.writer.take() else {
            let err = io::Error::other("the store writer is gone");
            return (
                Err(PutError::Read {
                    digest: Digest::of(b""),
                    source: io::Error::other("the store writer is gone"),
                }),
                Pumped {
                    read: 0,
                    short: false,
                    error: Some(err),
                    json: None,
                    sha256: None,
                },
            );
        };
        let (tx, rx) = mpsc::channel(IN_FLIGHT);
        let size = entry.size;
        let task = self.handle.spawn(async move {
            let reader = ChannelReader::new(rx);
            let result = match digest {
                Some(digest) => writer
                    .put_blob(&digest, Some(size), reader)
                    .await
                    .map(|size| (digest, size)),
                None => writer.put_unnamed_blob(reader).await,
            };
            (writer, result)
        });
        let mut pumped = self.pump(entry, reader, |chunk| tx.blocking_send(Ok(chunk)).is_ok());
        if let Some(e) = &pumped.error {
            // The upload fails with it, and is aborted.
            let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        drop(tx);
        match self.handle.block_on(task) {
            Ok((writer, result)) => {
                self.writer = Some(writer);
                (result, pumped)
            }
            Err(e) => {
                pumped.error = Some(io::Error::other(format!("the store task failed: {e}")));
                let source = io::Error::other("the store task failed");
                (
                    Err(PutError::Read {
                        digest: Digest::of(b""),
                        source,
                    }),
                    pumped,
                )
            }
        }
    }

    /// Reads the entry's bytes in chunks, handing each to `take` (which
    /// says whether to go on), keeping a copy of small JSON.
    fn pump(
        &mut self,
        entry: &tar_in::Entry,
        reader: &mut dyn Read,
        mut take: impl FnMut(Bytes) -> bool,
    ) -> Pumped {
        let mut json = (entry.size <= MAX_MANIFEST_BYTES
            && self.staged.json_kept + entry.size as usize <= JSON_BUDGET)
            .then(Vec::new);
        let mut pumped = Pumped {
            read: 0,
            short: false,
            error: None,
            json: None,
            sha256: None,
        };
        let mut first = true;
        while pumped.read < entry.size {
            let want = (entry.size - pumped.read).min(CHUNK);
            let mut chunk = Vec::with_capacity(want as usize);
            match (&mut *reader).take(want).read_to_end(&mut chunk) {
                Ok(0) => {
                    pumped.short = true;
                    break;
                }
                Ok(n) => pumped.read += n as u64,
                Err(e) => {
                    pumped.error = Some(e);
                    break;
                }
            }
            if first {
                first = false;
                // Layers are tars (or compressed); manifests and configs
                // are JSON objects.
                let looks_json = chunk
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|&b| b == b'{');
                if !looks_json {
                    json = None;
                }
            }
            if let Some(json) = json.as_mut() {
                json.extend_from_slice(&chunk);
            }
            if !take(Bytes::from(chunk)) {
                break;
            }
        }
        pumped.json = json.filter(|j| j.len() as u64 == entry.size);
        pumped
    }
}

/// A read error or a cut entry, which outweigh whatever the store said.
fn read_outcome(at: &At, size: u64, pumped: &Pumped) -> Result<(), Refusal> {
    match &pumped.error {
        Some(e) => Err(Refusal::Read {
            at: at.clone(),
            why: e.to_string(),
        }),
        None if pumped.short => Err(Refusal::Truncated {
            at: at.clone(),
            read: pumped.read,
            size,
        }),
        None => Ok(()),
    }
}

fn writer_gone(at: At) -> Refusal {
    Refusal::Store {
        at,
        why: "the store writer is gone".to_owned(),
    }
}

/// The chunks the reading thread sends, as an `AsyncRead` for the store
/// writer.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.current.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // The end of the entry.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(bytes))) => self.current = bytes,
            }
        }
        let n = self.current.len().min(buf.remaining());
        let chunk = self.current.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}
