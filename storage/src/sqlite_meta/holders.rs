//! Who holds a pin or a tombstone, and whether it is still alive.
//!
//! A holder is a collection pass (its tombstones) or a serving process
//! (its requests' pins). Each one is a file under `<db>.holders/`, named by
//! a random id and kept under an exclusive `flock` for as long as the holder
//! lives. The kernel drops the lock when the process dies, however it dies,
//! and a stopped or slow process keeps it: so "the file is missing or can be
//! locked" means the holder is gone for good, and what it held may be taken
//! over. A time lease could not say that of a process that is merely paused.
//!
//! The file appears under its final name already locked (created under a
//! temporary name, locked, then renamed), so no one can see a live holder's
//! file unlocked. SQLite keeps its database on one machine, and so do these
//! files: the locks mean the same thing to every process that opens it.

use crate::{Result, StorageError};
use std::fs::{File, TryLockError};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The directory of holder files that belongs to one database.
#[derive(Clone, Debug)]
pub(super) struct Holders {
    dir: PathBuf,
}

/// A live holder: alive while this value is. Dropping it removes the file
/// and releases the lock (a crash releases only the lock, which is enough).
#[derive(Debug)]
pub struct Holder {
    id: String,
    path: PathBuf,
    _locked: File,
}

impl Holder {
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Removed while still locked: nobody can mistake the file for that
        // of a dead holder whose rows are not yet released.
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "removing holder file");
        }
    }
}

fn lock_error(path: &Path, e: TryLockError) -> StorageError {
    StorageError::Backend(format!("locking {}: {e}", path.display()))
}

/// Ids are ours (uuid, simple form); anything else names no file.
fn is_holder_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Holders {
    /// The holders of the database at `db`.
    pub(super) fn beside(db: &Path) -> Self {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".holders");
        Self {
            dir: db.with_file_name(name),
        }
    }

    /// A new live holder.
    pub(super) fn register(&self) -> Result<Holder> {
        std::fs::create_dir_all(&self.dir)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let temp = self.dir.join(format!(".{id}.new"));
        let path = self.dir.join(&id);
        let file = File::create(&temp)?;
        file.try_lock().map_err(|e| lock_error(&temp, e))?;
        std::fs::rename(&temp, &path)?;
        Ok(Holder {
            id,
            path,
            _locked: file,
        })
    }

    /// False once the holder `id` has ended (or never had a file: rows from
    /// before holders existed, or an id that is not ours). A dead holder's
    /// leftover file is removed on the way, while this check holds its lock:
    /// a missing file means dead as well, so what it held may be taken over
    /// before or after.
    pub(super) fn is_alive(&self, id: Option<&str>) -> Result<bool> {
        let Some(id) = id.filter(|id| is_holder_id(id)) else {
            return Ok(false);
        };
        let path = self.dir.join(id);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        match file.try_lock() {
            // Ours for a moment: its owner is gone. Closing unlocks it.
            Ok(()) => {
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e, "removing a dead holder's file");
                }
                Ok(false)
            }
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(e) => Err(lock_error(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_alive_until_dropped_and_unknown_ids_are_dead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let holders = Holders::beside(&dir.path().join("m.db"));
        let holder = holders.register().expect("register");
        let id = holder.id().to_owned();
        // Another open file description, as another process would have.
        assert!(holders.is_alive(Some(&id)).expect("check"));
        drop(holder);
        assert!(!holders.is_alive(Some(&id)).expect("check"));
        assert!(!holders.is_alive(None).expect("legacy"));
        assert!(!holders.is_alive(Some("../m.db")).expect("not an id"));
    }

    #[test]
    fn a_file_left_unlocked_by_a_dead_holder_is_dead_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let holders = Holders::beside(&dir.path().join("m.db"));
        // What a killed holder leaves: the file, without its lock.
        let id = "0123456789abcdef0123456789abcdef";
        let path = dir.path().join("m.db.holders").join(id);
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, b"").expect("write");
        assert!(!holders.is_alive(Some(id)).expect("check"));
        assert!(!path.exists(), "the dead holder's file is gone");
    }
}
