//! In-memory bookkeeping of upload sessions: the running hash of each idle
//! session and which sessions are busy (a writer or a commit in progress).
//!
//! Nothing here is durable: after a restart a session simply has no cached
//! hash and is re-hashed from disk at commit.

use crate::{Result, StorageError};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A session's running hash over its first `len` bytes.
#[derive(Clone, Default)]
pub(super) struct HashState {
    pub hasher: Sha256,
    pub len: u64,
}

enum Slot {
    Idle(HashState),
    /// Held by the lease carrying this token.
    Busy(u64),
}

#[derive(Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    next_token: u64,
}

/// Shared session table; cheap to clone.
#[derive(Clone, Default)]
pub(super) struct Sessions {
    inner: Arc<Mutex<Inner>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The table stays consistent even if a holder panicked: every update
        // is a single insert or remove.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the hash state of a session nobody holds.
    pub fn put_idle(&self, id: &str, state: HashState) {
        self.lock().slots.insert(id.to_owned(), Slot::Idle(state));
    }

    /// Takes exclusive hold of a session; `Conflict` while someone else has it.
    pub fn acquire(&self, id: &str) -> Result<Lease> {
        let mut inner = self.lock();
        inner.next_token += 1;
        let token = inner.next_token;
        let state = match inner.slots.insert(id.to_owned(), Slot::Busy(token)) {
            Some(Slot::Busy(other)) => {
                inner.slots.insert(id.to_owned(), Slot::Busy(other));
                return Err(StorageError::Conflict(format!("upload {id} is in use")));
            }
            Some(Slot::Idle(state)) => Some(state),
            None => None,
        };
        Ok(Lease {
            sessions: self.clone(),
            id: id.to_owned(),
            token,
            state,
            forgotten: false,
        })
    }

    /// Forgets a session whoever holds it; a current holder's release is ignored.
    pub fn remove(&self, id: &str) {
        self.lock().slots.remove(id);
    }
}

/// Exclusive hold on one session; releasing it hands the hash state back.
pub(super) struct Lease {
    sessions: Sessions,
    id: String,
    token: u64,
    /// The running hash, `None` when it does not cover the file any more.
    pub state: Option<HashState>,
    forgotten: bool,
}

impl Lease {
    /// Takes the cached hash state out of the lease.
    pub fn take_state(&mut self) -> Option<HashState> {
        self.state.take()
    }

    /// Releases the session for good: it has been committed or discarded.
    pub fn forget(mut self) {
        self.forgotten = true;
        let mut inner = self.sessions.lock();
        if matches!(inner.slots.get(&self.id), Some(Slot::Busy(t)) if *t == self.token) {
            inner.slots.remove(&self.id);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.forgotten {
            return;
        }
        let mut inner = self.sessions.lock();
        // Only hand back to our own slot: an abort may have removed it since.
        if !matches!(inner.slots.get(&self.id), Some(Slot::Busy(t)) if *t == self.token) {
            return;
        }
        match self.state.take() {
            Some(state) => inner.slots.insert(self.id.clone(), Slot::Idle(state)),
            None => inner.slots.remove(&self.id),
        };
    }
}
