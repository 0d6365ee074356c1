//! The one place PostgreSQL's and the pool's errors become
//! [`StorageError`]s. What a retry may cure (the server unreachable, a
//! dropped connection, a statement timeout, the pool exhausted, a deadlock
//! or serialization failure) becomes [`StorageError::Unavailable`], which
//! the host answers with 503; constraint violations become `Conflict`, data
//! PostgreSQL cannot store (a NUL byte in a name) `Invalid`; anything else
//! is a `Backend` error carrying the server's SQLSTATE and message.

use crate::StorageError;
use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// Words a client may see; details stay in the log.
pub(super) const UNREACHABLE: &str = "the metadata database cannot be reached";
const TIMED_OUT: &str = "the metadata database did not answer in time";
/// Deadlocks and serialization failures: the transaction macros retry
/// those before giving up with this.
pub(super) const CONTENDED: &str = "the metadata database is busy";

/// Maps a driver error.
pub(super) fn db(e: tokio_postgres::Error) -> StorageError {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or was closed under us.
        tracing::warn!(error = %e, "postgres connection error");
        return StorageError::Unavailable(UNREACHABLE.into());
    };
    let class = &code.code()[..2.min(code.code().len())];
    if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        return StorageError::Unavailable(CONTENDED.into());
    }
    if *code == SqlState::QUERY_CANCELED || *code == SqlState::LOCK_NOT_AVAILABLE {
        tracing::warn!(error = %e, "postgres statement timed out");
        return StorageError::Unavailable(TIMED_OUT.into());
    }
    match class {
        // Connection exceptions, insufficient resources (too many
        // connections), operator intervention (shutdown, restart).
        "08" | "53" | "57" => {
            tracing::warn!(error = %e, "postgres unavailable");
            StorageError::Unavailable(UNREACHABLE.into())
        }
        "23" => StorageError::Conflict(message(&e)),
        "22" => StorageError::Invalid(message(&e)),
        _ => StorageError::Backend(format!("postgres {}: {}", code.code(), message(&e))),
    }
}

/// The server's own message when it sent one.
fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

/// Maps a failure to get a pooled connection.
pub(super) fn pool(e: PoolError) -> StorageError {
    match e {
        PoolError::Backend(e) => db(e),
        PoolError::Timeout(kind) => {
            tracing::warn!(?kind, "timed out waiting for a postgres connection");
            StorageError::Unavailable(TIMED_OUT.into())
        }
        other => {
            tracing::warn!(error = %other, "postgres pool error");
            StorageError::Unavailable(UNREACHABLE.into())
        }
    }
}

/// Whether the failed transaction may simply run again.
pub(super) fn retryable(e: &StorageError) -> bool {
    matches!(e, StorageError::Unavailable(why) if why == CONTENDED)
}

/// An error and every `source()` below it, joined with `: ` (the driver's
/// own text stops at "error connecting to server").
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        let part = err.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = err.source();
    }
    text
}
