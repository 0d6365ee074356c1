//! The notifications outbox in SQLite (`outbox`, `outbox_cursors`; schema
//! version 6). The one writer connection makes commit order the order of
//! `AUTOINCREMENT` sequence numbers, which `sqlite_sequence` never hands
//! out twice, even once every row was trimmed.

use super::SqliteMetadata;
use crate::Result;
use crate::outbox::{Outbox, OutboxEntry};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

/// The newest sequence number ever assigned, trimmed or not.
fn head(tx: &Transaction<'_>) -> Result<u64> {
    let seq: Option<i64> = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(unsigned(seq.unwrap_or(0)))
}

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait]
impl Outbox for SqliteMetadata {
    async fn append(&self, payloads: &[String]) -> Result<u64> {
        let payloads = payloads.to_vec();
        self.write(move |tx| {
            let mut insert = tx.prepare_cached("INSERT INTO outbox (payload) VALUES (?1)")?;
            for payload in &payloads {
                insert.execute([payload])?;
            }
            head(tx)
        })
        .await
    }

    async fn read_after(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>> {
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, payload FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![signed(after), i64::from(limit)], |r| {
                Ok(OutboxEntry {
                    seq: unsigned(r.get(0)?),
                    payload: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn head(&self) -> Result<u64> {
        self.read(head).await
    }

    async fn cursor(&self, endpoint: &str) -> Result<Option<u64>> {
        let endpoint = endpoint.to_owned();
        self.read(move |tx| {
            let seq: Option<i64> = tx
                .query_row(
                    "SELECT seq FROM outbox_cursors WHERE endpoint = ?1",
                    [&endpoint],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(seq.map(unsigned))
        })
        .await
    }

    async fn save_cursor(&self, endpoint: &str, seq: u64) -> Result<()> {
        let endpoint = endpoint.to_owned();
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO outbox_cursors (endpoint, seq) VALUES (?1, ?2)
                 ON CONFLICT (endpoint) DO UPDATE SET seq = max(seq, excluded.seq)",
            )?
            .execute(params![endpoint, signed(seq)])?;
            Ok(())
        })
        .await
    }

    async fn trim(&self, upto: u64) -> Result<u64> {
        self.write(move |tx| {
            let gone = tx
                .prepare_cached("DELETE FROM outbox WHERE seq <= ?1")?
                .execute([signed(upto)])?;
            Ok(gone as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::SqliteMetadata;

    #[tokio::test]
    async fn outbox_sqlite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("metadata.db");
        let store = SqliteMetadata::open(&path).expect("open");
        crate::outbox::conformance::run(&store).await;
        drop(store);
        // Cursors, the head and what is left survive a reopen.
        let store = SqliteMetadata::open(&path).expect("reopen");
        crate::outbox::conformance::after_reopen(&store).await;
        crate::outbox::conformance::concurrent(std::sync::Arc::new(store)).await;
    }
}
