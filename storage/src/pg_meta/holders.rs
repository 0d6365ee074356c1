//! Holders across hosts: a collection pass's lease, or a serving process's
//! holder of its requests' pins. A holder is alive while a connection of
//! its own (not from the pool) holds the session advisory lock
//! `(HOLDER_CLASS, hashtext(id))`; PostgreSQL drops that lock when the
//! session ends, however it ends (the process died, the host lost its
//! network and the server noticed, the holder was dropped). Another host
//! asks whether a holder lives by trying the lock: if it gets it, the
//! holder is gone for good (ids are never reused), it releases the lock at
//! once, and what the holder held may be taken over. A holder that is only
//! slow keeps its lock, so its tombstones and pins stay its own, as
//! sqlite_meta/holders.rs does with `flock`.
//!
//! Keys are 32-bit hashes of random ids: two live holders sharing a key
//! only make a dead one look alive until the other ends too (what it held
//! waits a little longer, nothing is taken early).

use super::errors::{UNREACHABLE, db};
use super::locks::HOLDER_CLASS;
use crate::{Result, StorageError};
use deadpool_postgres::GenericClient;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

/// Server-side TCP keepalives of a holder's session (seconds): idle,
/// interval, probes.
const KEEPALIVES: &str =
    " -c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3";
/// Client-side keepalive, so this host also notices a dead connection and
/// replaces its pin holder.
const CLIENT_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// A live holder: alive while this value is and its connection stands.
/// Dropping it closes the connection, which releases the lock.
pub struct Holder {
    id: String,
    client: Client,
    connection: JoinHandle<()>,
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holder").field("id", &self.id).finish()
    }
}

impl Holder {
    /// Opens a connection of its own and takes a new holder's lock on it.
    pub(super) async fn register(config: &tokio_postgres::Config) -> Result<Holder> {
        let mut config = config.clone();
        // A holder whose host vanished without closing its socket must not
        // hold its lock for the server's default two hours of TCP silence:
        // these make the server end the session after about a minute.
        let mut options = config.get_options().unwrap_or_default().to_owned();
        options.push_str(KEEPALIVES);
        config.options(options.trim());
        config.keepalives_idle(CLIENT_KEEPALIVE);
        let (client, connection) = config.connect(NoTls).await.map_err(|e| {
            tracing::warn!(error = %e, "connecting a postgres holder");
            StorageError::Unavailable(UNREACHABLE.into())
        })?;
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "postgres holder connection ended");
            }
        });
        let id = uuid::Uuid::new_v4().simple().to_string();
        let holder = Holder {
            id,
            client,
            connection,
        };
        holder
            .client
            .execute(
                "SELECT pg_advisory_lock($1, hashtext($2))",
                &[&HOLDER_CLASS, &holder.id],
            )
            .await
            .map_err(db)?;
        Ok(holder)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// False once the connection holding the lock is known to be closed
    /// (the server then released the lock, or will when it notices).
    pub(super) fn is_connected(&self) -> bool {
        !self.client.is_closed()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Dropping the client ends the session; aborting the task makes
        // sure the socket closes even if the server is slow to answer.
        self.connection.abort();
    }
}

/// False when holder `id` has ended (or is `None`: nothing to wait for).
/// Runs on a pooled connection, which never holds holder locks itself, so
/// getting the lock means nobody holds it; it is released at once.
pub(super) async fn is_alive(c: &impl GenericClient, id: Option<&str>) -> Result<bool> {
    let Some(id) = id else {
        return Ok(false);
    };
    let got: bool = c
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext($2))",
            &[&HOLDER_CLASS, &id],
        )
        .await
        .map_err(db)?
        .get(0);
    if got {
        c.execute(
            "SELECT pg_advisory_unlock($1, hashtext($2))",
            &[&HOLDER_CLASS, &id],
        )
        .await
        .map_err(db)?;
    }
    Ok(!got)
}
