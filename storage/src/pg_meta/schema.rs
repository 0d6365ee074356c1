//! Schema migrations, applied in order by `connect` and tracked in the
//! one-row table `schema_version`.
//!
//! The schema mirrors SQLite's final one (sqlite_meta/schema.rs), written
//! once as version 1: repositories keyed by an integer id, blob links,
//! manifests with the references they name, tags, upload sessions, and
//! garbage collection's review queue, tombstones and pins, the queue fed by
//! triggers exactly as SQLite's are.
//!
//! Text columns are `COLLATE "C"`, byte order, whatever the database's
//! default collation: the distribution spec asks listings to be in lexical
//! order, and pagination markers compare the same way. Times are unix
//! seconds (`bigint`) from the database's clock, so every host agrees on
//! them.
//!
//! Needs PostgreSQL 11 or later (identity columns, `EXECUTE FUNCTION`
//! triggers); tests run on the Debian package's version (15).
//!
//! Times are taken as `floor(extract(epoch from now()))`: a plain cast to
//! bigint would round, putting a time up to half a second in the future.
//!
//! Several hosts may start at once against an empty database: the whole
//! migration runs in one transaction that first takes a transaction-level
//! advisory lock, so one host migrates and the others, waiting on the lock,
//! then find the version it wrote.

use super::errors::db;
use super::locks::MIGRATION_LOCK;
use crate::{Result, StorageError};
use deadpool_postgres::GenericClient;

/// Each entry migrates from version `index` to `index + 1`. Never edit an
/// entry once released: databases in the field have already run it.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE repositories (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name   text COLLATE "C" NOT NULL UNIQUE,   -- the unique index serves the catalog
    origin text,                               -- upstream URL of a pull-through cache
    pulled bigint                              -- unix seconds; caches only
);
CREATE TABLE blob_links (
    repo_id bigint NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest  text COLLATE "C" NOT NULL,
    PRIMARY KEY (repo_id, digest)
);
CREATE INDEX blob_links_by_digest ON blob_links(digest);
CREATE TABLE manifests (
    repo_id       bigint NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        text COLLATE "C" NOT NULL,
    media_type    text NOT NULL,
    size          bigint NOT NULL,
    artifact_type text COLLATE "C",
    subject       text COLLATE "C",
    annotations   text,
    created_at    bigint NOT NULL,
    PRIMARY KEY (repo_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests(repo_id, subject, digest)
    WHERE subject IS NOT NULL;
-- "Is this digest a manifest anywhere?" for the collector.
CREATE INDEX manifests_by_digest ON manifests(digest);
-- What each manifest references (config, layers, children).
CREATE TABLE manifest_refs (
    repo_id  bigint NOT NULL,
    manifest text COLLATE "C" NOT NULL,
    digest   text COLLATE "C" NOT NULL,
    PRIMARY KEY (repo_id, manifest, digest),
    FOREIGN KEY (repo_id, manifest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_refs_by_digest ON manifest_refs(digest);
CREATE TABLE tags (
    repo_id bigint NOT NULL,
    name    text COLLATE "C" NOT NULL,
    digest  text COLLATE "C" NOT NULL,
    PRIMARY KEY (repo_id, name),       -- serves tag listing in name order
    FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_by_digest ON tags(repo_id, digest);
CREATE TABLE uploads (
    id         text COLLATE "C" PRIMARY KEY,
    repo_id    bigint NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    started_at bigint NOT NULL         -- unix seconds, for purging stale sessions
);
CREATE INDEX uploads_by_repo ON uploads(repo_id);

-- Online garbage collection (docs/GC.md): the review queue, fed by the
-- triggers below; `uploaded_at` opens the upload grace period,
-- `unreferenced_at` the grace period after something let go of the blob.
CREATE TABLE gc_queue (
    digest          text COLLATE "C" PRIMARY KEY,
    uploaded_at     bigint,
    unreferenced_at bigint
);
-- Blobs a pass condemned and whose bytes may still exist; `holder` is the
-- pass (alive while it holds its advisory lock, holders.rs).
CREATE TABLE gc_tombstones (
    digest text COLLATE "C" PRIMARY KEY,
    since  bigint NOT NULL,
    holder text COLLATE "C"
);
CREATE INDEX gc_tombstones_by_holder ON gc_tombstones(holder);
-- A request's pin on a blob from its commit until it is linked.
CREATE TABLE gc_pins (
    digest  text COLLATE "C" NOT NULL,
    holder  text COLLATE "C" NOT NULL,
    request bigint NOT NULL,
    PRIMARY KEY (digest, holder, request)
);
CREATE INDEX gc_pins_by_holder ON gc_pins(holder, request);

CREATE FUNCTION gc_queue_uploaded() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO gc_queue (digest, uploaded_at)
    VALUES (NEW.digest, floor(extract(epoch from now()))::bigint)
    ON CONFLICT (digest) DO UPDATE SET uploaded_at = excluded.uploaded_at;
    RETURN NULL;
END $$;
CREATE FUNCTION gc_queue_unreferenced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO gc_queue (digest, unreferenced_at)
    VALUES (OLD.digest, floor(extract(epoch from now()))::bigint)
    ON CONFLICT (digest) DO UPDATE SET unreferenced_at = excluded.unreferenced_at;
    RETURN NULL;
END $$;
CREATE TRIGGER gc_queue_on_link AFTER INSERT ON blob_links
    FOR EACH ROW EXECUTE FUNCTION gc_queue_uploaded();
CREATE TRIGGER gc_queue_on_unlink AFTER DELETE ON blob_links
    FOR EACH ROW EXECUTE FUNCTION gc_queue_unreferenced();
CREATE TRIGGER gc_queue_on_unreference AFTER DELETE ON manifest_refs
    FOR EACH ROW EXECUTE FUNCTION gc_queue_unreferenced();
CREATE TRIGGER gc_queue_on_manifest_delete AFTER DELETE ON manifests
    FOR EACH ROW EXECUTE FUNCTION gc_queue_unreferenced();
"#,
    // Notifications (outbox.rs): push, mount and delete events written
    // before the client's answer, numbered from the one row of
    // `outbox_head` so that numbers follow commit order, and how far each
    // webhook endpoint got.
    r#"
CREATE TABLE outbox (
    seq     bigint PRIMARY KEY,
    payload text NOT NULL
);
CREATE TABLE outbox_head (
    last bigint NOT NULL
);
INSERT INTO outbox_head (last) VALUES (0);
CREATE TABLE outbox_cursors (
    endpoint text COLLATE "C" PRIMARY KEY,
    seq      bigint NOT NULL
);
"#,
];

/// Brings the database to the latest schema version, in one transaction
/// serialized with every other host's by [`MIGRATION_LOCK`].
pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> Result<()> {
    let tx = client.transaction().await.map_err(db)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1],
    )
    .await
    .map_err(db)?;
    // Under the lock: whoever created the table first has committed it.
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        .await
        .map_err(db)?;
    let row = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await
        .map_err(db)?;
    let version = match row {
        Some(row) => usize::try_from(row.get::<_, i32>(0)).unwrap_or(0),
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
                .await
                .map_err(db)?;
            0
        }
    };
    if version > MIGRATIONS.len() {
        return Err(StorageError::Backend(format!(
            "metadata schema version {version} is newer than this build supports ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tracing::info!(to = index + 1, "migrating postgres metadata schema");
        tx.batch_execute(sql).await.map_err(db)?;
        let next = i32::try_from(index + 1).unwrap_or(i32::MAX);
        tx.execute("UPDATE schema_version SET version = $1", &[&next])
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}
