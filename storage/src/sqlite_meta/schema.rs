//! Schema migrations, applied in order at open and tracked in `user_version`.
//!
//! Repositories are rows keyed by an integer id so the per-repository tables
//! stay compact. A repository row is created by its first blob link,
//! manifest or upload session and is never removed by these operations (a
//! later garbage collector may drop empty repositories); that row is what
//! makes a repository "exist" for `list_tags` and `list_repositories`.
//!
//! Text columns use SQLite's default BINARY collation, i.e. byte order, which
//! is the lexical order the distribution spec asks listings to use.

use rusqlite::Connection;

use crate::{Result, StorageError};

/// Each entry migrates from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE repositories (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE          -- the unique index serves the catalog
);
CREATE TABLE blob_links (
    repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest  TEXT NOT NULL,
    PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX blob_links_by_digest ON blob_links(digest);
CREATE TABLE manifests (
    repo_id       INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    size          INTEGER NOT NULL,
    artifact_type TEXT,
    subject       TEXT,
    annotations   TEXT,
    PRIMARY KEY (repo_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repo_id, subject, digest)
    WHERE subject IS NOT NULL;
-- What each manifest references (config, layers, children): the garbage
-- collector's mark phase reads this instead of re-parsing manifests.
CREATE TABLE manifest_refs (
    repo_id  INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    digest   TEXT NOT NULL,
    PRIMARY KEY (repo_id, manifest, digest),
    FOREIGN KEY (repo_id, manifest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_refs_by_digest ON manifest_refs(digest);
CREATE TABLE tags (
    repo_id INTEGER NOT NULL,
    name    TEXT NOT NULL,
    digest  TEXT NOT NULL,
    PRIMARY KEY (repo_id, name),       -- serves tag listing in name order
    FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX tags_by_digest ON tags(repo_id, digest);
CREATE TABLE uploads (
    id         TEXT PRIMARY KEY,
    repo_id    INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    started_at INTEGER NOT NULL        -- unix seconds, for purging stale sessions
);
CREATE INDEX uploads_by_repo ON uploads(repo_id);
"#];

/// Brings the database to the latest schema version.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(StorageError::Backend(format!(
            "metadata schema version {version} is newer than this build supports ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tracing::info!(to = index + 1, "migrating metadata schema");
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
    }
    tx.commit()?;
    Ok(())
}
