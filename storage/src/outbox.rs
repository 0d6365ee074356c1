//! The notifications outbox: events (push, mount, delete) written durably
//! before the client hears that its request succeeded, then read back by one
//! sender per webhook endpoint, each remembering how far it got.
//!
//! Sequence numbers are assigned by the store, start at 1, increase in the
//! order appends commit (a reader that has seen `n` never later finds an
//! entry below `n` appearing), and are never reused, not even after every
//! entry was trimmed: a cursor saved before a trim stays meaningful.
//! Payloads are opaque to the store (the host writes registry:2's event
//! JSON).

use crate::Result;
use async_trait::async_trait;

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Its place in the outbox; see the module documentation.
    pub seq: u64,
    /// The event as the host wrote it.
    pub payload: String,
}

/// A durable, ordered log of events with one cursor per reader.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Appends `payloads` in order, all or none, durably (committed or
    /// fsynced) before returning; returns the sequence number of the last
    /// one (the head when `payloads` is empty).
    async fn append(&self, payloads: &[String]) -> Result<u64>;

    /// At most `limit` entries with a sequence number above `after`, in
    /// order.
    async fn read_after(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>>;

    /// The sequence number of the newest entry ever appended (0 before the
    /// first), trimmed or not.
    async fn head(&self) -> Result<u64>;

    /// The last sequence number reader `endpoint` saved, if it ever did.
    async fn cursor(&self, endpoint: &str) -> Result<Option<u64>>;

    /// Saves reader `endpoint`'s position; a position below the saved one
    /// is ignored (two hosts delivering to one endpoint never move it back).
    async fn save_cursor(&self, endpoint: &str, seq: u64) -> Result<()>;

    /// Deletes the entries up to and including `upto` (those every reader
    /// has passed), or whole chunks of them: a store that keeps entries in
    /// files may keep a partly passed one until a later trim. Never touches
    /// an entry above `upto`. Returns how many went.
    async fn trim(&self, upto: u64) -> Result<u64>;
}

/// One test suite for every outbox, the way `crate::conformance` is for
/// metadata stores; each store's tests call it on a fresh store.
#[cfg(any(test, feature = "conformance"))]
pub mod conformance {
    use super::Outbox;

    fn texts(n: std::ops::RangeInclusive<u32>) -> Vec<String> {
        n.map(|i| format!("{{\"n\":{i}}}")).collect()
    }

    /// Appends, reads, cursors and trims on an empty outbox; leaves it
    /// holding entries 6..=10 with cursor `a` at 7 and `b` at 5.
    pub async fn run(outbox: &dyn Outbox) {
        assert_eq!(outbox.head().await.expect("head"), 0);
        assert!(outbox.read_after(0, 10).await.expect("read").is_empty());
        assert_eq!(outbox.append(&[]).await.expect("append none"), 0);
        assert_eq!(outbox.append(&texts(1..=3)).await.expect("append"), 3);
        assert_eq!(outbox.append(&texts(4..=4)).await.expect("append"), 4);
        assert_eq!(outbox.head().await.expect("head"), 4);
        let all = outbox.read_after(0, 10).await.expect("read");
        let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        let payloads: Vec<&str> = all.iter().map(|e| e.payload.as_str()).collect();
        assert_eq!(payloads, texts(1..=4));
        let page = outbox.read_after(1, 2).await.expect("read page");
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        assert!(outbox.read_after(4, 10).await.expect("read").is_empty());

        assert_eq!(outbox.cursor("a").await.expect("cursor"), None);
        outbox.save_cursor("a", 2).await.expect("save");
        outbox.save_cursor("b", 4).await.expect("save");
        assert_eq!(outbox.cursor("a").await.expect("cursor"), Some(2));
        // A cursor never moves back.
        outbox.save_cursor("b", 1).await.expect("save");
        assert_eq!(outbox.cursor("b").await.expect("cursor"), Some(4));

        // Trimming everything passed keeps the numbering going.
        assert_eq!(outbox.trim(4).await.expect("trim"), 4);
        assert!(outbox.read_after(0, 10).await.expect("read").is_empty());
        assert_eq!(outbox.head().await.expect("head"), 4);
        assert_eq!(outbox.append(&texts(5..=10)).await.expect("append"), 10);
        let rest = outbox.read_after(0, 100).await.expect("read");
        assert_eq!(rest.first().map(|e| e.seq), Some(5));
        assert_eq!(rest.len(), 6);
        // A partial trim may go by chunks, but never past its bound.
        let gone = outbox.trim(5).await.expect("trim");
        assert!(gone <= 1, "trim(5) deleted {gone} entries");
        let rest = outbox.read_after(5, 100).await.expect("read");
        assert_eq!(
            rest.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [6, 7, 8, 9, 10]
        );
        outbox.save_cursor("a", 7).await.expect("save");
        outbox.save_cursor("b", 5).await.expect("save");
    }

    /// What [`run`] left, seen again after the store was reopened.
    pub async fn after_reopen(outbox: &dyn Outbox) {
        assert_eq!(outbox.head().await.expect("head"), 10);
        assert_eq!(outbox.cursor("a").await.expect("cursor"), Some(7));
        assert_eq!(outbox.cursor("b").await.expect("cursor"), Some(5));
        let after = outbox.read_after(7, 100).await.expect("read");
        assert_eq!(
            after.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(),
            texts(8..=10)
        );
        assert_eq!(outbox.append(&texts(11..=11)).await.expect("append"), 11);
    }

    /// Appends from many tasks at once: every entry once, numbers without
    /// gaps, and each task's own entries in its order.
    pub async fn concurrent(outbox: std::sync::Arc<dyn Outbox>) {
        let start = outbox.head().await.expect("head");
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let outbox = outbox.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10u32 {
                    let text = format!("{t}:{i}");
                    outbox.append(&[text]).await.expect("append");
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let all = outbox.read_after(start, 1000).await.expect("read");
        assert_eq!(all.len(), 80);
        for (i, entry) in all.iter().enumerate() {
            assert_eq!(entry.seq, start + 1 + i as u64);
        }
        for t in 0..8u32 {
            let mine: Vec<u32> = all
                .iter()
                .filter_map(|e| e.payload.strip_prefix(&format!("{t}:")))
                .filter_map(|i| i.parse().ok())
                .collect();
            assert_eq!(mine, (0..10).collect::<Vec<_>>());
        }
    }
}
