//! Garbage-collection bookkeeping on SQLite: the shared GC conformance
//! cases (conformance/gc.rs) through a probe into SQLite's tables, and the
//! migration that added the bookkeeping.

use super::{SqliteMetadata, schema};
use crate::conformance::gc::{GcProbe, QueueRow, recent};
use crate::conformance::manifest;
use crate::{GcMetadata, MetadataStore};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tempfile::TempDir;

fn store() -> (TempDir, SqliteMetadata) {
    let dir = TempDir::new().expect("tempdir");
    let meta = SqliteMetadata::open(&dir.path().join("metadata.db")).expect("open");
    (dir, meta)
}

crate::gc_conformance_tests!(|_case| {
    let (dir, meta) = store();
    (dir, Box::new(meta))
});

fn row(meta: &SqliteMetadata, digest: &str) -> Option<QueueRow> {
    let conn = super::lock(&meta.inner.writer);
    conn.query_row(
        "SELECT uploaded_at, unreferenced_at FROM gc_queue WHERE digest = ?1",
        [digest],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .expect("queue row")
}

fn strings(meta: &SqliteMetadata, sql: &str) -> Vec<String> {
    let conn = super::lock(&meta.inner.writer);
    let mut stmt = conn.prepare(sql).expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

fn queued(meta: &SqliteMetadata) -> Vec<String> {
    strings(meta, "SELECT digest FROM gc_queue ORDER BY digest")
}

#[async_trait]
impl GcProbe for SqliteMetadata {
    async fn queue_row(&self, digest: &str) -> Option<QueueRow> {
        row(self, digest)
    }

    async fn set_queue_row(&self, digest: &str, (uploaded, unreferenced): QueueRow) {
        super::lock(&self.inner.writer)
            .execute(
                "INSERT OR REPLACE INTO gc_queue (digest, uploaded_at, unreferenced_at)
                 VALUES (?1, ?2, ?3)",
                params![digest, uploaded, unreferenced],
            )
            .expect("set row");
    }

    async fn queued(&self) -> Vec<String> {
        queued(self)
    }

    async fn tombstones(&self) -> Vec<String> {
        strings(self, "SELECT digest FROM gc_tombstones ORDER BY digest")
    }

    async fn tombstone_since(&self, digest: &str) -> Option<i64> {
        super::lock(&self.inner.writer)
            .query_row(
                "SELECT since FROM gc_tombstones WHERE digest = ?1",
                [digest],
                |r| r.get(0),
            )
            .optional()
            .expect("since")
    }

    async fn add_tombstone(&self, digest: &str, since: i64) {
        super::lock(&self.inner.writer)
            .execute(
                "INSERT INTO gc_tombstones (digest, since) VALUES (?1, ?2)",
                params![digest, since],
            )
            .expect("tombstone");
    }

    async fn pin_count(&self) -> i64 {
        super::lock(&self.inner.writer)
            .query_row("SELECT count(*) FROM gc_pins", [], |r| r.get(0))
            .expect("count")
    }

    async fn manifest_times(&self) -> (i64, i64) {
        super::lock(&self.inner.writer)
            .query_row(
                "SELECT min(created_at), max(created_at) FROM manifests",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("created_at")
    }

    async fn second_process(&self) -> Self {
        SqliteMetadata::open(&self.inner.path).expect("open again")
    }
}

fn gc(meta: &SqliteMetadata) -> &dyn GcMetadata {
    meta.gc().expect("sqlite keeps gc bookkeeping")
}

#[tokio::test]
async fn migrates_a_version_1_database() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("metadata.db");
    let m = manifest(1, None, None);
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        conn.execute_batch(schema::MIGRATIONS[0])
            .expect("v1 schema");
        conn.pragma_update(None, "user_version", 1)
            .expect("version");
        conn.execute("INSERT INTO repositories (id, name) VALUES (1, 'old')", [])
            .expect("repo");
        conn.execute(
            "INSERT INTO blob_links (repo_id, digest) VALUES (1, 'sha256:layer'), (1, 'sha256:spare')",
            [],
        )
        .expect("links");
        conn.execute(
            "INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type, subject, annotations)
             VALUES (1, ?1, ?2, ?3, NULL, NULL, ?4)",
            params![m.digest, m.media_type, m.size, m.annotations],
        )
        .expect("manifest");
        conn.execute(
            "INSERT INTO manifest_refs (repo_id, manifest, digest) VALUES (1, ?1, 'sha256:layer')",
            [&m.digest],
        )
        .expect("ref");
        conn.execute(
            "INSERT INTO tags (repo_id, name, digest) VALUES (1, 'latest', ?1)",
            [&m.digest],
        )
        .expect("tag");
        conn.execute(
            "INSERT INTO uploads (id, repo_id, started_at) VALUES ('u1', 1, 7)",
            [],
        )
        .expect("upload");
    }
    let meta = SqliteMetadata::open(&path).expect("open migrates");
    let version: usize = super::lock(&meta.inner.writer)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, schema::MIGRATIONS.len());
    assert_eq!(
        meta.get_manifest("old", &m.digest).await.expect("get"),
        Some(m.clone())
    );
    assert_eq!(
        meta.resolve_tag("old", "latest").await.expect("resolve"),
        Some(m.digest.clone())
    );
    assert!(
        meta.blob_linked("old", "sha256:spare")
            .await
            .expect("linked")
    );
    assert_eq!(
        meta.upload_repository("u1")
            .await
            .expect("upload")
            .as_deref(),
        Some("old")
    );
    assert!(
        gc(&meta)
            .gc_is_referenced("sha256:layer")
            .await
            .expect("refd")
    );
    assert!(queued(&meta).is_empty(), "migrating queues nothing");
    // Old manifests start their untagged grace period at the migration.
    let created: i64 = super::lock(&meta.inner.writer)
        .query_row("SELECT created_at FROM manifests", [], |r| r.get(0))
        .expect("created_at");
    recent(Some(created));
    // The triggers work on the migrated tables.
    assert!(
        meta.delete_manifest("old", &m.digest)
            .await
            .expect("delete")
    );
    recent(row(&meta, "sha256:layer").expect("queued").1);
    // Opening again does not migrate twice.
    drop(meta);
    let meta = SqliteMetadata::open(&path).expect("reopen");
    assert!(
        meta.blob_linked("old", "sha256:spare")
            .await
            .expect("linked")
    );
}
