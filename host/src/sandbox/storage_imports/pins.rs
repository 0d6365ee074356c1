//! The blobs one request pinned for garbage collection: from the commit of
//! their bytes until the request links them or stores them as a manifest,
//! no collector may condemn them (docs/GC.md). Pins the request did not
//! use up are dropped when the request ends.

use berth_storage::MetadataStore;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request numbers, unique within this process (the metadata store adds
/// which process).
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

pub struct Pins {
    request: u64,
    held: HashSet<String>,
    metadata: Arc<dyn MetadataStore>,
}

impl Pins {
    pub fn new(metadata: Arc<dyn MetadataStore>) -> Self {
        Self {
            request: NEXT_REQUEST.fetch_add(1, Ordering::Relaxed),
            held: HashSet::new(),
            metadata,
        }
    }

    /// The number the metadata store knows this request's pins by.
    pub fn request(&self) -> u64 {
        self.request
    }

    pub fn note_pinned(&mut self, digest: &str) {
        self.held.insert(digest.to_owned());
    }

    /// Whether this request pinned `digest` and has not used the pin yet.
    pub fn holds(&self, digest: &str) -> bool {
        self.held.contains(digest)
    }

    /// The pin on `digest` was used up (in the metadata's own transaction).
    pub fn note_released(&mut self, digest: &str) {
        self.held.remove(digest);
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        // A commit whose link or manifest never came (an error, a trap):
        // the blob goes back to its upload grace period.
        let (metadata, request) = (self.metadata.clone(), self.request);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = metadata.unpin(request).await {
                        tracing::warn!(request, error = %e, "dropping a request's pins");
                    }
                });
            }
            // Outside tokio the process is ending: its pins die with it.
            Err(_) => tracing::debug!(request, "pins left to the process's end"),
        }
    }
}
