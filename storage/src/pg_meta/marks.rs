//! What ordinary metadata writes do for garbage collection (as
//! sqlite_meta/gc_marks.rs): refusing a digest a pass condemned, and ending
//! the upload grace period of what a manifest now names. Every function
//! runs inside its caller's transaction, after the caller took the digest
//! locks (locks.rs).

use super::sql;
use crate::{Result, StorageError};
use deadpool_postgres::GenericClient;

/// `Conflict` when a collection pass has condemned `digest`.
pub(super) async fn refuse_tombstoned(c: &impl GenericClient, digest: &str) -> Result<()> {
    if sql::opt(
        c,
        "SELECT 1 FROM gc_tombstones WHERE digest = $1",
        &[&digest],
    )
    .await?
    .is_some()
    {
        return Err(StorageError::Conflict(format!(
            "blob {digest} is being garbage-collected"
        )));
    }
    Ok(())
}

/// The digests have reached a manifest: the upload grace period no longer
/// applies, and rows left with nothing to wait for leave the queue.
pub(super) async fn uploads_done(c: &impl GenericClient, digests: &[&str]) -> Result<()> {
    sql::exec(
        c,
        "UPDATE gc_queue SET uploaded_at = NULL
         WHERE digest = ANY($1) AND uploaded_at IS NOT NULL",
        &[&digests],
    )
    .await?;
    sql::exec(
        c,
        "DELETE FROM gc_queue
         WHERE digest = ANY($1) AND uploaded_at IS NULL AND unreferenced_at IS NULL",
        &[&digests],
    )
    .await?;
    Ok(())
}
