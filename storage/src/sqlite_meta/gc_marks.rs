//! What ordinary metadata writes do for garbage collection, kept apart from
//! the collector's own SQL (gc.rs) so that the writes (queries.rs) and the
//! collector each use it without using each other: refusing a digest a
//! pass condemned, and ending the upload grace period of what a manifest
//! now names. Like queries.rs, every function runs inside its caller's
//! transaction.

use crate::{Result, StorageError};
use rusqlite::Connection;

/// `Conflict` when a collection pass has condemned `digest`: its bytes are
/// about to be deleted, so nothing may start depending on it again.
pub(super) fn refuse_tombstoned(conn: &Connection, digest: &str) -> Result<()> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM gc_tombstones WHERE digest = ?1")?;
    if stmt.exists([digest])? {
        return Err(StorageError::Conflict(format!(
            "blob {digest} is being garbage-collected"
        )));
    }
    Ok(())
}

/// The digests have reached a manifest, so their uploads are over: the
/// upload grace period no longer applies. Rows left with nothing to wait
/// for leave the queue (a referenced blob needs no review).
pub(super) fn uploads_done<'a>(
    conn: &Connection,
    digests: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let mut clear = conn.prepare_cached(
        "UPDATE gc_queue SET uploaded_at = NULL WHERE digest = ?1 AND uploaded_at IS NOT NULL",
    )?;
    let mut drop_idle = conn.prepare_cached(
        "DELETE FROM gc_queue WHERE digest = ?1 AND uploaded_at IS NULL AND unreferenced_at IS NULL",
    )?;
    for digest in digests {
        clear.execute([digest])?;
        drop_idle.execute([digest])?;
    }
    Ok(())
}
