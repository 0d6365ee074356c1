//! Listing what the filesystem store holds: committed blobs, streamed a
//! bounded batch of directory entries at a time, and upload sessions.
//!
//! Only names the store itself would read count: a fan-out directory of two
//! lowercase hex digits holding entries named by the 64 hex digits of a
//! sha256 that starts with them. Anything else (temporary or partial files
//! another tool left, a blob under the wrong fan-out directory, registry:2's
//! per-blob directory without its `data`) is not a blob the store serves,
//! so it is not listed.

use super::{Layout, blocking, validate_id};
use crate::{BlobEntry, BlobListing, Digest, Result, StorageError, UploadEntry};
use futures::{StreamExt as _, TryStreamExt as _};
use std::fs::{DirEntry, Metadata, ReadDir};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Directory entries examined per trip to the blocking pool: bounds both
/// the memory a listing holds and how long one trip keeps a thread.
const BATCH: usize = 1024;

/// Streams every committed blob under `root`. Directories are read lazily:
/// nothing is read until the stream is polled, and dropping it stops the
/// walk without holding a thread in between.
pub(super) fn list_blobs(layout: Layout, root: &Path) -> BlobListing {
    let walker = Walker {
        layout,
        sha256: layout.sha256_dir(root),
        fan_outs: None,
        current: None,
    };
    futures::stream::try_unfold(walker, |mut walker| async move {
        let (walker, batch) = blocking(move || {
            let batch = walker.next_batch()?;
            Ok((walker, batch))
        })
        .await?;
        Ok::<_, StorageError>(batch.map(|batch| (batch, walker)))
    })
    .map_ok(|batch| futures::stream::iter(batch.into_iter().map(Ok)))
    .try_flatten()
    .boxed()
}

/// A walk over `sha256/<2 hex>/<64 hex>`; its state moves between trips to
/// the blocking pool.
struct Walker {
    layout: Layout,
    sha256: PathBuf,
    /// Fan-out directory names still to read, once `sha256/` was read.
    fan_outs: Option<std::vec::IntoIter<String>>,
    /// The fan-out directory being read: its name and its open listing.
    current: Option<(String, ReadDir)>,
}

impl Walker {
    /// The next blobs, `None` once the walk is over. A batch may be empty
    /// when every entry examined was something other than a blob.
    fn next_batch(&mut self) -> Result<Option<Vec<BlobEntry>>> {
        let fan_outs = match &mut self.fan_outs {
            Some(fan_outs) => fan_outs,
            None => self
                .fan_outs
                .insert(fan_out_dirs(&self.sha256)?.into_iter()),
        };
        let mut batch = Vec::new();
        let mut examined = 0;
        while examined < BATCH {
            let Some((prefix, entries)) = &mut self.current else {
                let Some(prefix) = fan_outs.next() else {
                    return Ok((!batch.is_empty()).then_some(batch));
                };
                match std::fs::read_dir(self.sha256.join(&prefix)) {
                    Ok(entries) => self.current = Some((prefix, entries)),
                    // Removed since `sha256/` was read: nothing in it.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            };
            let Some(entry) = entries.next() else {
                self.current = None;
                continue;
            };
            examined += 1;
            if let Some(blob) = blob_entry(self.layout, prefix, &entry?)? {
                batch.push(blob);
            }
        }
        Ok(Some(batch))
    }
}

/// The two-hex-digit directories under `sha256/`, sorted.
fn fan_out_dirs(sha256: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(sha256) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(name) = name.to_str()
            && name.len() == 2
            && name.bytes().all(is_lower_hex)
        {
            names.push(name.to_owned());
        }
    }
    names.sort_unstable();
    Ok(names)
}

fn is_lower_hex(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'f')
}

/// The blob an entry of fan-out directory `prefix` holds, if it is one.
fn blob_entry(layout: Layout, prefix: &str, entry: &DirEntry) -> Result<Option<BlobEntry>> {
    let name = entry.file_name();
    let Some(hex) = name.to_str().filter(|hex| hex.starts_with(prefix)) else {
        return Ok(None);
    };
    let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
        return Ok(None);
    };
    // Follow symlinks, as `stat` and `read` do.
    let path = match layout {
        Layout::Flat => entry.path(),
        Layout::Distribution => entry.path().join("data"),
    };
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        // Deleted since the directory was read, or registry:2's directory
        // without its `data`: not a blob.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !meta.is_file() {
        return Ok(None);
    }
    Ok(Some(BlobEntry {
        digest,
        size: meta.len(),
        modified: mtime(&meta),
    }))
}

/// Modification time in unix seconds; 0 where the platform has none.
fn mtime(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Every session directory under `uploads/`; blocking. A session's start is
/// its `startedat`, or its directory's mtime when that file is missing or
/// unreadable (a crash between creating the directory and writing it).
pub(super) fn list_uploads(uploads: &Path) -> Result<Vec<UploadEntry>> {
    let entries = match std::fs::read_dir(uploads) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut sessions = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if validate_id(&id).is_err() {
            continue;
        }
        let dir = entry.path();
        let recorded = std::fs::read_to_string(dir.join("startedat"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let started_at = match recorded {
            Some(started_at) => started_at,
            None => match std::fs::metadata(&dir) {
                Ok(meta) if meta.is_dir() => mtime(&meta),
                Ok(_) => continue,
                // Committed or aborted while we looked.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            },
        };
        sessions.push(UploadEntry { id, started_at });
    }
    Ok(sessions)
}
