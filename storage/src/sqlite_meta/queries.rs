//! The SQL behind each metadata operation. Every function runs inside the
//! transaction its caller opened, so multi-statement operations are atomic.

use super::gc_marks;
use crate::{CachedRepository, ManifestInfo, Page, Result, StorageError};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::time::{SystemTime, UNIX_EPOCH};

fn repo_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?;
    Ok(stmt.query_row([name], |r| r.get(0)).optional()?)
}

/// The repository's id, creating the repository on first use.
fn ensure_repo(conn: &Connection, name: &str) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO repositories (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
    )?
    .execute([name])?;
    repo_id(conn, name)?.ok_or_else(|| StorageError::Backend(format!("repository {name} vanished")))
}

/// SQLite's LIMIT: a negative value means no limit.
fn limit(page: &Page) -> i64 {
    page.n.map_or(-1, i64::from)
}

/// Pagination marker; every stored name is non-empty, so `''` means "from the start".
fn after(page: &Page) -> &str {
    page.last.as_deref().unwrap_or("")
}

pub(super) fn link_blob(conn: &Connection, repo: &str, digest: &str) -> Result<()> {
    // A condemned blob's bytes are about to go; a mount falls back to an
    // upload, which waits for the collection pass to finish with it.
    gc_marks::refuse_tombstoned(conn, digest)?;
    let id = ensure_repo(conn, repo)?;
    conn.prepare_cached("INSERT OR IGNORE INTO blob_links (repo_id, digest) VALUES (?1, ?2)")?
        .execute(params![id, digest])?;
    Ok(())
}

/// The clock, in unix seconds as SQLite stores them.
fn unix_now() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(now).unwrap_or(i64::MAX)
}

/// Records `repo`'s upstream, creating the repository as a blob link would.
/// A repository that becomes a cache counts as pulled now; one that already
/// was keeps its pull time.
pub(super) fn set_origin(conn: &Connection, repo: &str, origin: &str) -> Result<()> {
    let id = ensure_repo(conn, repo)?;
    conn.prepare_cached(
        "UPDATE repositories SET origin = ?2,
             pulled = CASE WHEN origin IS NULL OR pulled IS NULL THEN ?3 ELSE pulled END
         WHERE id = ?1",
    )?
    .execute(params![id, origin, unix_now()])?;
    Ok(())
}

/// Records that cached `repo` was pulled at `now`; nothing for a repository
/// without an origin (or none).
pub(super) fn note_pulled(conn: &Connection, repo: &str, now: u64) -> Result<()> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "UPDATE repositories SET pulled = ?2 WHERE name = ?1 AND origin IS NOT NULL",
    )?
    .execute(params![repo, now])?;
    Ok(())
}

/// Every cached repository with its origin and pull time, by name.
pub(super) fn cached_repositories(conn: &Connection) -> Result<Vec<CachedRepository>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, origin, pulled FROM repositories WHERE origin IS NOT NULL ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        let pulled: Option<i64> = r.get(2)?;
        Ok(CachedRepository {
            name: r.get(0)?,
            origin: r.get(1)?,
            pulled: pulled.map_or(0, |t| u64::try_from(t).unwrap_or(0)),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Removes `repo` and everything it records, in the caller's transaction.
/// Manifests and links are deleted by the statements (and so through the
/// triggers) their own deletes use: every digest the repository held is
/// queued for review, as if each had been deleted by a client. Manifest
/// references and tags follow their manifests by ON DELETE CASCADE, whose
/// deletes fire the reference trigger too. Nested repositories are rows of
/// their own, matched by exact name, so `repo/x` is untouched.
pub(super) fn delete_repository(conn: &Connection, repo: &str) -> Result<bool> {
    let Some(id) = repo_id(conn, repo)? else {
        return Ok(false);
    };
    // Tags first: with their manifests gone they would cascade anyway, but
    // an explicit delete keeps the order independent of foreign keys.
    conn.prepare_cached("DELETE FROM tags WHERE repo_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM manifests WHERE repo_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM blob_links WHERE repo_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM uploads WHERE repo_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM repositories WHERE id = ?1")?
        .execute([id])?;
    Ok(true)
}

/// `repo`'s upstream; `None` for a repository of its own or an unknown one.
pub(super) fn origin(conn: &Connection, repo: &str) -> Result<Option<String>> {
    let mut stmt = conn.prepare_cached("SELECT origin FROM repositories WHERE name = ?1")?;
    let found: Option<Option<String>> = stmt.query_row([repo], |r| r.get(0)).optional()?;
    Ok(found.flatten())
}

pub(super) fn blob_linked(conn: &Connection, repo: &str, digest: &str) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repo_id
         WHERE r.name = ?1 AND l.digest = ?2",
    )?;
    Ok(stmt.exists(params![repo, digest])?)
}

pub(super) fn unlink_blob(conn: &Connection, repo: &str, digest: &str) -> Result<bool> {
    let Some(id) = repo_id(conn, repo)? else {
        return Ok(false);
    };
    let n = conn
        .prepare_cached("DELETE FROM blob_links WHERE repo_id = ?1 AND digest = ?2")?
        .execute(params![id, digest])?;
    Ok(n > 0)
}

pub(super) fn put_manifest(
    conn: &Connection,
    repo: &str,
    m: &ManifestInfo,
    references: &[String],
    tag: Option<&str>,
) -> Result<()> {
    let id = ensure_repo(conn, repo)?;
    let size = i64::try_from(m.size)
        .map_err(|_| StorageError::Invalid(format!("size {} too large", m.size)))?;
    gc_marks::refuse_tombstoned(conn, &m.digest)?;
    let stored = conn
        .prepare_cached("SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2")?
        .exists(params![id, m.digest])?;
    if !stored {
        require_present(conn, id, references)?;
    }
    // A manifest's row is derived from its bytes, which its digest fixes:
    // storing it again leaves the row as it is and only moves the tag.
    let inserted = conn
        .prepare_cached(
            "INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type, subject, annotations, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, unixepoch()) ON CONFLICT (repo_id, digest) DO NOTHING",
        )?
        .execute(params![id, m.digest, m.media_type, size, m.artifact_type, m.subject, m.annotations])?;
    if inserted > 0 {
        let mut stmt = conn.prepare_cached(
            "INSERT OR IGNORE INTO manifest_refs (repo_id, manifest, digest) VALUES (?1, ?2, ?3)",
        )?;
        for reference in references {
            stmt.execute(params![id, m.digest, reference])?;
        }
    }
    if let Some(tag) = tag {
        conn.prepare_cached(
            "INSERT INTO tags (repo_id, name, digest) VALUES (?1, ?2, ?3)
             ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest",
        )?
        .execute(params![id, tag, m.digest])?;
    }
    gc_marks::uploads_done(
        conn,
        references.iter().map(String::as_str).chain([&*m.digest]),
    )?;
    Ok(())
}

/// Fails unless every reference is linked in the repository or is one of
/// its manifests. The caller checked this before storing the manifest's
/// bytes; checking again in the transaction that stores the references
/// closes the window in which a collection pass could condemn one of them
/// (condemning removes the links, in a transaction of its own).
fn require_present(conn: &Connection, repo_id: i64, references: &[String]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM blob_links WHERE repo_id = ?1 AND digest = ?2)
             OR EXISTS (SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2)",
    )?;
    for digest in references {
        if !stmt.query_row(params![repo_id, digest], |r| r.get::<_, bool>(0))? {
            return Err(StorageError::Invalid(format!(
                "manifest references {digest}, which is not in the repository"
            )));
        }
    }
    Ok(())
}

const MANIFEST_COLUMNS: &str = "digest, media_type, size, artifact_type, subject, annotations";

fn manifest_row(r: &Row<'_>) -> rusqlite::Result<ManifestInfo> {
    let size: i64 = r.get(2)?;
    Ok(ManifestInfo {
        digest: r.get(0)?,
        media_type: r.get(1)?,
        // Sizes are stored from u64s checked to fit i64, so never negative.
        size: u64::try_from(size).unwrap_or_default(),
        artifact_type: r.get(3)?,
        subject: r.get(4)?,
        annotations: r.get(5)?,
    })
}

pub(super) fn get_manifest(
    conn: &Connection,
    repo: &str,
    digest: &str,
) -> Result<Option<ManifestInfo>> {
    let Some(id) = repo_id(conn, repo)? else {
        return Ok(None);
    };
    let sql =
        format!("SELECT {MANIFEST_COLUMNS} FROM manifests WHERE repo_id = ?1 AND digest = ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    Ok(stmt
        .query_row(params![id, digest], manifest_row)
        .optional()?)
}

pub(super) fn resolve_tag(conn: &Connection, repo: &str, tag: &str) -> Result<Option<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repo_id
         WHERE r.name = ?1 AND t.name = ?2",
    )?;
    Ok(stmt
        .query_row(params![repo, tag], |r| r.get(0))
        .optional()?)
}

pub(super) fn tags_of(conn: &Connection, repo: &str, digest: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repo_id
         WHERE r.name = ?1 AND t.digest = ?2 ORDER BY t.name",
    )?;
    let rows = stmt.query_map(params![repo, digest], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn delete_manifest(conn: &Connection, repo: &str, digest: &str) -> Result<bool> {
    let Some(id) = repo_id(conn, repo)? else {
        return Ok(false);
    };
    // Its tags and references go with it through ON DELETE CASCADE.
    let n = conn
        .prepare_cached("DELETE FROM manifests WHERE repo_id = ?1 AND digest = ?2")?
        .execute(params![id, digest])?;
    if n == 0 {
        return Ok(false);
    }
    // Referrers (signatures, SBOMs) describe their subject and are useless
    // without it, so they follow it, and theirs follow them. UNION stops at
    // a manifest already collected, so even a cycle of made-up records ends.
    conn.prepare_cached(
        "WITH RECURSIVE doomed(digest) AS (
             SELECT digest FROM manifests WHERE repo_id = ?1 AND subject = ?2
             UNION
             SELECT m.digest FROM manifests m JOIN doomed d ON m.subject = d.digest
             WHERE m.repo_id = ?1
         )
         DELETE FROM manifests WHERE repo_id = ?1 AND digest IN doomed",
    )?
    .execute(params![id, digest])?;
    Ok(true)
}

pub(super) fn delete_tag(conn: &Connection, repo: &str, tag: &str) -> Result<bool> {
    let Some(id) = repo_id(conn, repo)? else {
        return Ok(false);
    };
    let n = conn
        .prepare_cached("DELETE FROM tags WHERE repo_id = ?1 AND name = ?2")?
        .execute(params![id, tag])?;
    Ok(n > 0)
}

pub(super) fn list_tags(conn: &Connection, repo: &str, page: &Page) -> Result<Option<Vec<String>>> {
    let Some(id) = repo_id(conn, repo)? else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM tags WHERE repo_id = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![id, after(page), limit(page)], |r| r.get(0))?;
    Ok(Some(rows.collect::<rusqlite::Result<_>>()?))
}

/// Repositories that hold a manifest: an upload or a blob link alone does
/// not put a name in the catalog.
pub(super) fn list_repositories(conn: &Connection, page: &Page) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM repositories r
         WHERE name > ?1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
         ORDER BY name LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after(page), limit(page)], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn list_referrers(
    conn: &Connection,
    repo: &str,
    subject: &str,
    artifact_type: Option<&str>,
) -> Result<Vec<ManifestInfo>> {
    let Some(id) = repo_id(conn, repo)? else {
        return Ok(Vec::new());
    };
    let filter = if artifact_type.is_some() {
        "AND artifact_type = ?3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {MANIFEST_COLUMNS} FROM manifests
         WHERE repo_id = ?1 AND subject = ?2 {filter} ORDER BY digest"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = match artifact_type {
        Some(t) => stmt
            .query_map(params![id, subject, t], manifest_row)?
            .collect::<rusqlite::Result<_>>(),
        None => stmt
            .query_map(params![id, subject], manifest_row)?
            .collect::<rusqlite::Result<_>>(),
    };
    Ok(rows?)
}

pub(super) fn begin_upload(conn: &Connection, repo: &str, upload: &str) -> Result<()> {
    let id = ensure_repo(conn, repo)?;
    let now = unix_now();
    conn.prepare_cached(
        "INSERT INTO uploads (id, repo_id, started_at) VALUES (?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
    )?
    .execute(params![upload, id, now])?;
    // Beginning twice for the same repository is harmless; stealing another
    // repository's session is not.
    let owner: i64 = conn
        .prepare_cached("SELECT repo_id FROM uploads WHERE id = ?1")?
        .query_row([upload], |r| r.get(0))?;
    if owner != id {
        return Err(StorageError::Conflict(format!(
            "upload {upload} belongs to another repository"
        )));
    }
    Ok(())
}

pub(super) fn upload_repository(conn: &Connection, upload: &str) -> Result<Option<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.name FROM uploads u JOIN repositories r ON r.id = u.repo_id WHERE u.id = ?1",
    )?;
    Ok(stmt.query_row([upload], |r| r.get(0)).optional()?)
}

/// Idempotent: forgetting an unknown session is not an error.
pub(super) fn end_upload(conn: &Connection, upload: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM uploads WHERE id = ?1")?
        .execute([upload])?;
    Ok(())
}
