//! The conformance suite on SQLite, plus checks of its durability settings
//! and of the manifest→blob references a garbage collector relies on.

use super::SqliteMetadata;
use crate::MetadataStore;
use crate::conformance::gc::{at, now};
use crate::conformance::{self as c, manifest};
use tempfile::TempDir;

fn store() -> (TempDir, SqliteMetadata) {
    let dir = TempDir::new().expect("tempdir");
    let meta = SqliteMetadata::open(&dir.path().join("metadata.db")).expect("open");
    (dir, meta)
}

crate::metadata_conformance_tests!(|_case| {
    let (dir, meta) = store();
    (dir, Box::new(meta))
});

mod inventory {
    crate::inventory_conformance_tests!(|_case| {
        let (dir, meta) = super::store();
        (dir, Box::new(meta))
    });
}

mod origins {
    crate::origin_conformance_tests!(|_case| {
        let (dir, meta) = super::store();
        (dir, Box::new(meta))
    });
}

#[tokio::test]
async fn origin_persists() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("metadata.db");
    let open = || Box::new(SqliteMetadata::open(&path).expect("reopen")) as Box<dyn MetadataStore>;
    c::origin_persists(&open).await;
}

/// A database of the version before origins were recorded upgrades in
/// place: everything in it is kept, its repositories are their own, and
/// origins can be recorded for them.
#[tokio::test]
async fn migrates_a_version_3_database() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("metadata.db");
    let m = manifest(1, Some("sha256:subj"), Some("a/b"));
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        for sql in &super::schema::MIGRATIONS[..3] {
            conn.execute_batch(sql).expect("schema up to v3");
        }
        conn.pragma_update(None, "user_version", 3)
            .expect("version");
        conn.execute_batch(
            "INSERT INTO repositories (id, name) VALUES (1, 'old'), (2, 'old/nested');
             INSERT INTO blob_links (repo_id, digest) VALUES (1, 'sha256:layer'), (2, 'sha256:spare');
             INSERT INTO uploads (id, repo_id, started_at) VALUES ('u1', 2, 7);",
        )
        .expect("rows");
        conn.execute(
            "INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type, subject, annotations, created_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, 5)",
            rusqlite::params![m.digest, m.media_type, m.size, m.artifact_type, m.subject, m.annotations],
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
    }
    let meta = SqliteMetadata::open(&path).expect("open migrates");
    let version: usize = super::lock(&meta.inner.writer)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, super::schema::MIGRATIONS.len());
    assert_eq!(
        meta.get_manifest("old", &m.digest).await.expect("get"),
        Some(m.clone())
    );
    assert_eq!(
        meta.resolve_tag("old", "latest").await.expect("resolve"),
        Some(m.digest.clone())
    );
    assert_eq!(
        meta.list_referrers("old", "sha256:subj", None)
            .await
            .expect("referrers"),
        vec![m.clone()]
    );
    assert!(
        meta.blob_linked("old", "sha256:layer")
            .await
            .expect("linked")
    );
    assert!(
        meta.blob_linked("old/nested", "sha256:spare")
            .await
            .expect("linked")
    );
    assert_eq!(
        meta.upload_repository("u1")
            .await
            .expect("upload")
            .as_deref(),
        Some("old/nested")
    );
    assert_eq!(
        meta.list_repositories(&Default::default())
            .await
            .expect("catalog"),
        ["old"]
    );
    assert_eq!(meta.origin("old").await.expect("origin"), None);
    assert_eq!(meta.origin("old/nested").await.expect("origin"), None);
    meta.set_origin("old/nested", "https://quay.io")
        .await
        .expect("set");
    assert_eq!(
        meta.origin("old/nested").await.expect("origin").as_deref(),
        Some("https://quay.io")
    );
    assert_eq!(meta.origin("old").await.expect("origin"), None);
    // Opening again migrates nothing twice and keeps the origin.
    drop(meta);
    let meta = SqliteMetadata::open(&path).expect("reopen");
    assert_eq!(
        meta.origin("old/nested").await.expect("origin").as_deref(),
        Some("https://quay.io")
    );
    assert_eq!(
        meta.resolve_tag("old", "latest").await.expect("resolve"),
        Some(m.digest)
    );
}

/// A database of the version before pull times were kept upgrades in
/// place: its caches count as pulled at the migration (none is evicted at
/// once), its own repositories stay uncached, and pull times are kept
/// from then on.
#[tokio::test]
async fn migrates_a_version_4_database() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("metadata.db");
    let m = manifest(1, None, None);
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        for sql in &super::schema::MIGRATIONS[..4] {
            conn.execute_batch(sql).expect("schema up to v4");
        }
        conn.pragma_update(None, "user_version", 4)
            .expect("version");
        conn.execute_batch(
            "INSERT INTO repositories (id, name, origin) VALUES
                 (1, 'cached', 'https://registry-1.docker.io'), (2, 'own', NULL);
             INSERT INTO blob_links (repo_id, digest) VALUES (1, 'sha256:layer');",
        )
        .expect("rows");
        conn.execute(
            "INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type, subject, annotations, created_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, 5)",
            rusqlite::params![m.digest, m.media_type, m.size, m.artifact_type, m.subject, m.annotations],
        )
        .expect("manifest");
        conn.execute(
            "INSERT INTO tags (repo_id, name, digest) VALUES (1, 'latest', ?1)",
            [&m.digest],
        )
        .expect("tag");
    }
    let before = at(now());
    let meta = SqliteMetadata::open(&path).expect("open migrates");
    let after = at(now());
    let version: usize = super::lock(&meta.inner.writer)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, super::schema::MIGRATIONS.len());
    let cached = meta.cached_repositories().await.expect("cached");
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert_eq!(cached[0].name, "cached");
    assert_eq!(cached[0].origin, "https://registry-1.docker.io");
    assert!(
        (before..=after).contains(&cached[0].pulled),
        "{cached:?} pulled at the migration"
    );
    assert_eq!(
        meta.resolve_tag("cached", "latest").await.expect("resolve"),
        Some(m.digest.clone())
    );
    assert!(
        meta.blob_linked("cached", "sha256:layer")
            .await
            .expect("linked")
    );
    meta.note_pulled("cached", 42).await.expect("note");
    meta.note_pulled("own", 42).await.expect("note own");
    drop(meta);
    let meta = SqliteMetadata::open(&path).expect("reopen");
    let cached = meta.cached_repositories().await.expect("cached");
    assert_eq!(
        cached,
        [crate::CachedRepository {
            name: "cached".into(),
            origin: "https://registry-1.docker.io".into(),
            pulled: 42,
        }]
    );
    assert_eq!(meta.origin("own").await.expect("origin"), None);
}

#[tokio::test]
async fn metadata_persists() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("nested").join("metadata.db");
    let open = || Box::new(SqliteMetadata::open(&path).expect("reopen")) as Box<dyn MetadataStore>;
    c::metadata_persists(&open).await;
}

#[tokio::test]
async fn durability_pragmas_and_schema() {
    let (_dir, meta) = store();
    let conn = super::lock(&meta.inner.writer);
    use rusqlite::types::Value;
    let get = |p: &str| {
        conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, Value>(0))
            .expect(p)
    };
    assert_eq!(get("journal_mode"), Value::Text("wal".into()));
    assert_eq!(
        get("synchronous"),
        Value::Integer(2),
        "synchronous must be FULL"
    );
    assert_eq!(get("foreign_keys"), Value::Integer(1));
    let latest = i64::try_from(super::schema::MIGRATIONS.len()).expect("few migrations");
    assert_eq!(get("user_version"), Value::Integer(latest));
}

#[tokio::test]
async fn manifest_refs_follow_manifests() {
    let (_dir, meta) = store();
    let m = manifest(1, None, None);
    let refs = ["sha256:cfg".to_string(), "sha256:layer".to_string()];
    for blob in &refs {
        meta.link_blob("r", blob).await.expect("link");
    }
    meta.put_manifest("r", &m, &refs, Some("t"))
        .await
        .expect("put");
    let count = |meta: &SqliteMetadata| {
        let conn = super::lock(&meta.inner.writer);
        conn.query_row(
            "SELECT count(*) FROM manifest_refs WHERE manifest = ?1",
            [&m.digest],
            |r| r.get::<_, i64>(0),
        )
        .expect("count")
    };
    assert_eq!(count(&meta), 2);
    meta.put_manifest("r", &m, &refs, Some("t2"))
        .await
        .expect("re-put");
    assert_eq!(count(&meta), 2);
    assert!(meta.delete_manifest("r", &m.digest).await.expect("delete"));
    assert_eq!(count(&meta), 0);
}

#[tokio::test]
async fn failed_transaction_changes_nothing() {
    let (_dir, meta) = store();
    meta.begin_upload("a", "u1").await.expect("begin");
    // Conflict after the repository row was inserted: the insert must roll back.
    assert!(meta.begin_upload("b", "u1").await.is_err());
    let exists = |repo: &'static str| {
        let meta = &meta;
        async move {
            meta.list_tags(repo, &Default::default())
                .await
                .expect("tags")
                .is_some()
        }
    };
    assert!(exists("a").await);
    assert!(!exists("b").await, "the rolled-back repository row is gone");
    assert!(
        meta.link_blob("", "sha256:aa").await.is_err(),
        "empty repository name"
    );
    assert!(
        meta.put_manifest("a", &manifest(1, None, None), &[], Some(""))
            .await
            .is_err(),
        "empty tag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_and_reads() {
    let (_dir, meta) = store();
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let meta = meta.clone();
        tasks.push(tokio::spawn(async move {
            let m = manifest(i, None, None);
            meta.put_manifest("busy", &m, &[], Some(&format!("t{i:02}")))
                .await
                .expect("put");
            meta.list_tags("busy", &Default::default())
                .await
                .expect("list")
                .expect("repo exists");
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let tags = meta
        .list_tags("busy", &Default::default())
        .await
        .expect("list")
        .expect("repo");
    assert_eq!(
        tags,
        (0..16).map(|i| format!("t{i:02}")).collect::<Vec<_>>()
    );
}
