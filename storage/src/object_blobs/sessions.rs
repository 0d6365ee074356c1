//! What this process remembers about upload sessions. The store is the
//! truth; everything here is either a per-process lock or a cache that is
//! safe because what it caches never changes:
//! - a busy flag, so one process runs one writer (or commit) per session;
//! - known chunk claims (claims are immutable until the session is deleted);
//! - a running sha256 over the session's first `offset` bytes, valid because
//!   those bytes are claimed chunks, which are immutable too.
//!
//! Losing any of it (restart, eviction) only costs a re-read from the store.

use super::chunks::Chunk;
use crate::{Result, StorageError};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Sessions remembered at most; beyond it idle entries are dropped, since
/// sessions finished by other processes never tell us they are gone.
const MAX_ENTRIES: usize = 4096;

/// A running hash over a session's bytes `0..offset`.
#[derive(Clone, Default)]
pub(super) struct HashState {
    pub offset: u64,
    pub hasher: Sha256,
}

#[derive(Default)]
struct Entry {
    /// Token of the lease holding the session.
    busy: Option<u64>,
    hash: Option<HashState>,
    chunks: BTreeMap<u64, Chunk>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    next_token: u64,
}

/// Shared table of sessions; cheap to clone.
#[derive(Clone, Default)]
pub(super) struct Sessions {
    inner: Arc<Mutex<Inner>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update is a single insert or remove, so a panicking holder
        // cannot leave the table inconsistent.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn entry<'a>(inner: &'a mut Inner, id: &str) -> &'a mut Entry {
        if inner.entries.len() >= MAX_ENTRIES && !inner.entries.contains_key(id) {
            inner.entries.retain(|_, e| e.busy.is_some());
        }
        inner.entries.entry(id.to_owned()).or_default()
    }

    /// Takes this process's exclusive hold on a session; `Conflict` while
    /// a writer or commit of this process has it.
    pub fn acquire(&self, id: &str) -> Result<Lease> {
        let mut inner = self.lock();
        inner.next_token += 1;
        let token = inner.next_token;
        let entry = Self::entry(&mut inner, id);
        if entry.busy.is_some() {
            return Err(StorageError::Conflict(format!("upload {id} is in use")));
        }
        entry.busy = Some(token);
        Ok(Lease {
            sessions: self.clone(),
            id: id.to_owned(),
            token,
        })
    }

    /// The running hash if it covers exactly `0..offset` (a fresh one at 0).
    pub fn hash_at(&self, id: &str, offset: u64) -> Option<Sha256> {
        match self.lock().entries.get(id).and_then(|e| e.hash.as_ref()) {
            Some(state) if state.offset == offset => Some(state.hasher.clone()),
            _ if offset == 0 => Some(Sha256::default()),
            _ => None,
        }
    }

    /// The running hash, whatever it covers.
    pub fn hash(&self, id: &str) -> Option<HashState> {
        self.lock().entries.get(id).and_then(|e| e.hash.clone())
    }

    /// Moves the running hash from `from` to `state.offset` if it was at
    /// `from`: the caller hashed exactly the chunks in between.
    pub fn advance(&self, id: &str, from: u64, state: HashState) {
        let mut inner = self.lock();
        let entry = Self::entry(&mut inner, id);
        let at = entry.hash.as_ref().map_or(0, |h| h.offset);
        if at == from {
            entry.hash = Some(state);
        }
    }

    /// Known claims of a session.
    pub fn chunks(&self, id: &str) -> BTreeMap<u64, Chunk> {
        self.lock()
            .entries
            .get(id)
            .map(|e| e.chunks.clone())
            .unwrap_or_default()
    }

    /// Remembers a claim read from or written to the store.
    pub fn remember(&self, id: &str, chunk: Chunk) {
        let mut inner = self.lock();
        Self::entry(&mut inner, id)
            .chunks
            .insert(chunk.offset, chunk);
    }

    /// Forgets a session that was committed or discarded; a current
    /// holder's release becomes a no-op.
    pub fn forget(&self, id: &str) {
        self.lock().entries.remove(id);
    }
}

/// This process's exclusive hold on one session, released on drop.
pub(super) struct Lease {
    sessions: Sessions,
    id: String,
    token: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut inner = self.sessions.lock();
        // Only release our own hold: the session may have been forgotten
        // (and even re-acquired) since.
        if let Some(entry) = inner.entries.get_mut(&self.id)
            && entry.busy == Some(self.token)
        {
            entry.busy = None;
        }
    }
}
