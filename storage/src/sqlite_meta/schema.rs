//! Schema migrations, applied in order at open and tracked in `user_version`.
//!
//! Repositories are rows keyed by an integer id so the per-repository tables
//! stay compact. A repository row is created by its first blob link,
//! manifest or upload session and is never removed by these operations (a
//! later garbage collector may drop empty repositories); that row is what
//! makes a repository "exist" for `list_tags` and `list_repositories`.
//! A repository filled from an upstream registry records it in `origin`,
//! and when it was last pulled in `pulled`; `delete_repository` is the one
//! operation that removes a repository row.
//!
//! Text columns use SQLite's default BINARY collation, i.e. byte order, which
//! is the lexical order the distribution spec asks listings to use.

use rusqlite::Connection;

use crate::{Result, StorageError};

/// Each entry migrates from version `index` to `index + 1`. Never edit an
/// entry once released: databases in the field have already run it.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    // Online garbage collection: a review queue fed by triggers, so every
    // way a blob can lose its last reference is noticed without a full mark
    // phase. `uploaded_at` opens the upload grace period (a push in flight
    // has blobs no manifest names yet), `unreferenced_at` the grace period
    // after a link, reference or manifest went away. Neither means the blob
    // is garbage: the collector re-checks references when a row is due.
    r#"
ALTER TABLE manifests ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0;
-- Manifests stored before this version get the migration time, so
-- untagged-manifest collection gives them a full grace period too.
UPDATE manifests SET created_at = unixepoch();
-- "Is this digest a manifest anywhere?" for the collector.
CREATE INDEX manifests_by_digest ON manifests(digest);
CREATE TABLE gc_queue (
    digest          TEXT PRIMARY KEY,
    uploaded_at     INTEGER,           -- unix seconds; NULL once a manifest names it
    unreferenced_at INTEGER            -- unix seconds; NULL until something let go of it
) WITHOUT ROWID;
-- Blobs condemned by a collection pass whose bytes may still exist: they
-- cannot be linked or re-uploaded until the pass buries them.
CREATE TABLE gc_tombstones (
    digest TEXT PRIMARY KEY,
    since  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER gc_queue_on_link AFTER INSERT ON blob_links BEGIN
    INSERT INTO gc_queue (digest, uploaded_at) VALUES (NEW.digest, unixepoch())
    ON CONFLICT (digest) DO UPDATE SET uploaded_at = excluded.uploaded_at;
END;
CREATE TRIGGER gc_queue_on_unlink AFTER DELETE ON blob_links BEGIN
    INSERT INTO gc_queue (digest, unreferenced_at) VALUES (OLD.digest, unixepoch())
    ON CONFLICT (digest) DO UPDATE SET unreferenced_at = excluded.unreferenced_at;
END;
CREATE TRIGGER gc_queue_on_unreference AFTER DELETE ON manifest_refs BEGIN
    INSERT INTO gc_queue (digest, unreferenced_at) VALUES (OLD.digest, unixepoch())
    ON CONFLICT (digest) DO UPDATE SET unreferenced_at = excluded.unreferenced_at;
END;
CREATE TRIGGER gc_queue_on_manifest_delete AFTER DELETE ON manifests BEGIN
    INSERT INTO gc_queue (digest, unreferenced_at) VALUES (OLD.digest, unixepoch())
    ON CONFLICT (digest) DO UPDATE SET unreferenced_at = excluded.unreferenced_at;
END;
"#,
    // Collectors on several processes: a tombstone belongs to the pass that
    // wrote it (`holder`, alive while its lock file is locked, see
    // holders.rs), so no other pass finishes it while that one still may
    // delete the bytes. Pins keep a digest from being condemned while a
    // request commits and links it, at any grace period. NULL holders are
    // tombstones from before this version: their passes are long gone.
    r#"
ALTER TABLE gc_tombstones ADD COLUMN holder TEXT;
CREATE TABLE gc_pins (
    digest  TEXT NOT NULL,
    holder  TEXT NOT NULL,             -- the process that pinned it
    request INTEGER NOT NULL,          -- the request within that process
    PRIMARY KEY (digest, holder, request)
) WITHOUT ROWID;
CREATE INDEX gc_pins_by_holder ON gc_pins(holder, request);
"#,
    // Pull-through cache: the upstream registry (its URL) a repository
    // caches, so pushes into it can be refused after a restart too. NULL
    // for a repository of its own, which every repository before this
    // version is.
    r#"
ALTER TABLE repositories ADD COLUMN origin TEXT;
"#,
    // Evicting cached repositories nobody pulls: when a cached repository
    // was last pulled (unix seconds), or first marked as a cache. NULL for
    // a repository of its own. Caches from before this version count as
    // pulled at the migration, so none is evicted at once.
    r#"
ALTER TABLE repositories ADD COLUMN pulled INTEGER;
UPDATE repositories SET pulled = unixepoch() WHERE origin IS NOT NULL;
"#,
    // Notifications (outbox.rs): push, mount and delete events written
    // before the client's answer, and how far each webhook endpoint got.
    // AUTOINCREMENT: a sequence number is never reused, even after every
    // row was trimmed, so a saved cursor never skips a new event.
    r#"
CREATE TABLE outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL
);
CREATE TABLE outbox_cursors (
    endpoint TEXT PRIMARY KEY,
    seq      INTEGER NOT NULL
) WITHOUT ROWID;
"#,
];

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
