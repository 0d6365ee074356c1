//! Content-addressed blobs and upload sessions (WIT `berth:registry/blobs`)
//! on std::fs. Streams are the component glue's business: this module says
//! which file, from which offset, a stream must come from.
//!
//! Commit re-reads the session file to hash it: the sink is the runtime's
//! own file stream, which we never see bytes of. Only the file's complete,
//! verified and fsynced bytes are renamed under `blobs/`, so readers never
//! see partial content.

use crate::error::{Error, Result, not_found};
use crate::fsutil;
use crate::paths::{Layout, blob_digest};
use berth_oci::Digest;
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Copy and hashing granularity.
const CHUNK: usize = 1 << 20;

/// Where a blob range's bytes can be streamed from.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSource {
    /// The committed blob file itself, from `offset` to its end.
    Blob { path: PathBuf, offset: u64 },
    /// A temporary copy of the range, to stream whole and then remove:
    /// `wasi:filesystem` streams a file to its end and cannot stop short.
    Copy { path: PathBuf },
}

/// Blob operations on the data directory.
pub struct Blobs {
    layout: Layout,
}

impl Blobs {
    pub fn new(layout: Layout) -> Self {
        Self { layout }
    }

    /// Size of a committed blob, or None.
    pub fn stat(&self, digest: &str) -> Result<Option<u64>> {
        let path = self.layout.blob(&blob_digest(digest)?);
        match fs::metadata(path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Where to stream `length` bytes of blob `digest` from, starting at
    /// `offset`. A range ending before the blob does is copied (in chunks)
    /// to a temporary file first: slow, but the stream then ends exactly
    /// where the range does, which is what the guest splices until.
    pub fn open_range(&self, digest: &str, offset: u64, length: u64) -> Result<RangeSource> {
        let path = self.layout.blob(&blob_digest(digest)?);
        let mut file = fs::File::open(&path).map_err(not_found)?;
        let size = file.metadata()?.len();
        // A silently short stream would be served with a Content-Length it
        // cannot fill, so ranges past the end are refused, as natively.
        let end = offset
            .checked_add(length)
            .filter(|&end| end <= size)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "range {offset}+{length} outside blob of {size} bytes"
                ))
            })?;
        if end == size {
            return Ok(RangeSource::Blob { path, offset });
        }
        let tmp = fsutil::temp_path(&self.layout.tmp_dir())?;
        let copied = (|| -> std::io::Result<()> {
            file.seek(SeekFrom::Start(offset))?;
            let mut out = fs::File::create(&tmp)?;
            copy_exactly(&mut file, &mut out, length)
        })();
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        Ok(RangeSource::Copy { path: tmp })
    }

    /// Removes a committed blob; false when it was not there.
    pub fn delete(&self, digest: &str) -> Result<bool> {
        fsutil::remove_opt(&self.layout.blob(&blob_digest(digest)?))
    }

    /// Starts an empty session and returns its id.
    pub fn create_upload(&self) -> Result<String> {
        let id = fsutil::random_uuid();
        let dir = self.layout.upload_dir(&id)?;
        fsutil::create_dirs(&dir)?;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        fsutil::write_atomic(
            &self.layout.tmp_dir(),
            &dir.join("startedat"),
            started.to_string().as_bytes(),
        )?;
        fsutil::write_atomic(&self.layout.tmp_dir(), &dir.join("data"), b"")?;
        Ok(id)
    }

    /// The data file of an existing session: `NotFound` for an unknown id,
    /// `Invalid` for a malformed one.
    pub fn upload_data(&self, id: &str) -> Result<PathBuf> {
        let data = self.layout.upload_data(id)?;
        if !fsutil::exists(&data)? {
            return Err(Error::NotFound);
        }
        Ok(data)
    }

    /// Bytes the session holds.
    pub fn upload_size(&self, id: &str) -> Result<u64> {
        let data = self.layout.upload_data(id)?;
        Ok(fs::metadata(data).map_err(not_found)?.len())
    }

    /// Verifies the session hashes to `expected`, then publishes it as that
    /// blob (keeping the bytes already there, if any) and ends the session.
    /// On a mismatch the session is discarded.
    pub fn commit(&self, id: &str, expected: &str) -> Result<u64> {
        let expected = blob_digest(expected)?;
        let dir = self.layout.upload_dir(id)?;
        let data = dir.join("data");
        let mut file = fs::File::open(&data).map_err(not_found)?;
        let (actual, size) = hash(&mut file)?;
        if actual != expected {
            fsutil::remove_tree(&dir)?;
            return Err(Error::DigestMismatch(actual.to_string()));
        }
        let blob = self.layout.blob(&expected);
        if !fsutil::exists(&blob)? {
            file.sync_all()?;
            drop(file);
            fsutil::publish(&data, &blob)?;
        }
        fsutil::remove_tree(&dir)?;
        Ok(size)
    }

    /// Discards a session and its bytes.
    pub fn abort(&self, id: &str) -> Result<()> {
        if fsutil::remove_tree(&self.layout.upload_dir(id)?)? {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }
}

/// The sha256 of the rest of `file` and how many bytes that was, read
/// `CHUNK` bytes at a time.
fn hash(file: &mut fs::File) -> Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Digest::from_sha256(&hasher.finalize()), size))
}

/// Copies exactly `length` bytes, `CHUNK` at a time, and syncs nothing: the
/// copy is read once and removed.
fn copy_exactly(from: &mut fs::File, to: &mut fs::File, length: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(length).unwrap_or(CHUNK))];
    let mut left = length;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        from.read_exact(&mut buf[..want])?;
        to.write_all(&buf[..want])?;
        left -= want as u64;
    }
    to.flush()
}

#[cfg(test)]
mod tests;
