//! The notifications outbox in PostgreSQL (`outbox`, `outbox_head`,
//! `outbox_cursors`; schema version 2).
//!
//! A sequence would hand out numbers in the order transactions start, not
//! the order they commit: a sender that read 6 before 5 committed would
//! skip 5 for good. So appends take their numbers from the one row of
//! `outbox_head`, whose row lock they hold until they commit: appends on
//! every host commit one at a time, in the order of their numbers.

use super::PostgresMetadata;
use super::errors::db;
use super::sql::{self, secs, unsigned};
use crate::Result;
use crate::outbox::{Outbox, OutboxEntry};
use async_trait::async_trait;

#[async_trait]
impl Outbox for PostgresMetadata {
    async fn append(&self, payloads: &[String]) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let count = i64::try_from(payloads.len()).unwrap_or(i64::MAX);
        let last: i64 = sql::one(
            &tx,
            "UPDATE outbox_head SET last = last + $1 RETURNING last",
            &[&count],
        )
        .await?
        .get(0);
        let mut seq = last - count;
        for payload in payloads {
            seq += 1;
            sql::exec(
                &tx,
                "INSERT INTO outbox (seq, payload) VALUES ($1, $2)",
                &[&seq, payload],
            )
            .await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(unsigned(last))
    }

    async fn read_after(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>> {
        let client = self.client().await?;
        let rows = sql::rows(
            &client,
            "SELECT seq, payload FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&secs(after), &i64::from(limit)],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| OutboxEntry {
                seq: unsigned(r.get(0)),
                payload: r.get(1),
            })
            .collect())
    }

    async fn head(&self) -> Result<u64> {
        let client = self.client().await?;
        let row = sql::one(&client, "SELECT last FROM outbox_head", &[]).await?;
        Ok(unsigned(row.get(0)))
    }

    async fn cursor(&self, endpoint: &str) -> Result<Option<u64>> {
        let client = self.client().await?;
        let row = sql::opt(
            &client,
            "SELECT seq FROM outbox_cursors WHERE endpoint = $1",
            &[&endpoint],
        )
        .await?;
        Ok(row.map(|r| unsigned(r.get(0))))
    }

    async fn save_cursor(&self, endpoint: &str, seq: u64) -> Result<()> {
        let client = self.client().await?;
        sql::exec(
            &client,
            "INSERT INTO outbox_cursors (endpoint, seq) VALUES ($1, $2)
             ON CONFLICT (endpoint) DO UPDATE
             SET seq = GREATEST(outbox_cursors.seq, excluded.seq)",
            &[&endpoint, &secs(seq)],
        )
        .await?;
        Ok(())
    }

    async fn trim(&self, upto: u64) -> Result<u64> {
        let client = self.client().await?;
        sql::exec(
            &client,
            "DELETE FROM outbox WHERE seq <= $1",
            &[&secs(upto)],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{server, settings};
    use crate::PostgresMetadata;
    use std::sync::Arc;

    #[tokio::test]
    async fn outbox_postgres() {
        let url = server().create_database("outbox");
        let first = PostgresMetadata::connect(&settings(url.clone()))
            .await
            .expect("connect");
        crate::outbox::conformance::run(&first).await;
        drop(first);
        // A second pool (a restart, or another host) sees the same outbox.
        let again = PostgresMetadata::connect(&settings(url))
            .await
            .expect("reconnect");
        crate::outbox::conformance::after_reopen(&again).await;
        crate::outbox::conformance::concurrent(Arc::new(again)).await;
    }
}
