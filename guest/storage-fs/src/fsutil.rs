//! Crash-safe file primitives on std::fs (which wasm32-wasip2 maps onto
//! `wasi:filesystem`): a file is either absent or complete, because it is
//! written under `tmp/`, fsynced and renamed into place, and the directory
//! entries involved are fsynced too.

use crate::error::Result;
use std::fs;
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// 16 random bytes as 32 hex characters: temporary names.
pub fn random_hex() -> String {
    hex::encode(random_bytes())
}

/// A random (version 4) uuid, lowercase and hyphenated: upload ids, in the
/// form every Berth blob store hands out.
pub fn random_uuid() -> String {
    let mut b = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(target_arch = "wasm32")]
fn random_bytes() -> Vec<u8> {
    wasip2::random::random::get_random_bytes(16)
}

/// Natively (tests), std's randomly keyed hasher over a counter suffices.
#[cfg(not(target_arch = "wasm32"))]
fn random_bytes() -> Vec<u8> {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = RandomState::new();
    let mut out = state.hash_one(n).to_le_bytes().to_vec();
    out.extend_from_slice(&state.hash_one(!n).to_le_bytes());
    out
}

/// A fresh, unused path in `tmp_dir` (created if needed).
pub fn temp_path(tmp_dir: &Path) -> Result<PathBuf> {
    create_dirs(tmp_dir)?;
    Ok(tmp_dir.join(random_hex()))
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(tmp_dir)?;
    let written = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    let published = written
        .map_err(Into::into)
        .and_then(|()| publish(&tmp, path));
    if published.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    published
}

/// Renames the complete, synced file `from` to `to` and makes the new
/// entry durable, creating `to`'s directory if needed. On failure `from`
/// stays where it was (an upload session can then be committed again).
pub fn publish(from: &Path, to: &Path) -> Result<()> {
    let parent = parent(to);
    create_dirs(parent)?;
    fs::rename(from, to)?;
    sync_dir(parent)
}

/// Creates `path` as an empty file if it is not there, durably.
pub fn touch(path: &Path) -> Result<()> {
    let parent = parent(path);
    create_dirs(parent)?;
    if path.exists() {
        return Ok(());
    }
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    sync_dir(parent)
}

/// `create_dir_all`, fsyncing the parent of every directory it created.
pub fn create_dirs(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(up) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(up)?;
        }
    }
    Ok(())
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// The file's bytes, or None when it does not exist.
pub fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes a file durably; false when it was not there.
pub fn remove_opt(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            sync_dir(parent(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes a directory tree durably; false when it was not there.
pub fn remove_tree(dir: &Path) -> Result<bool> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {
            sync_dir(parent(dir))?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The names of the entries of `dir`; empty when it does not exist.
pub fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    for entry in entries {
        // Names we did not write (not UTF-8) are not ours: skip them.
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// True when `path` exists; errors other than "missing" are errors.
pub fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())).into()),
    }
}
