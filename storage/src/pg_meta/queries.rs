//! The SQL behind each metadata operation. Mutations run inside the
//! transaction their caller opened (pg_meta.rs); reads are one statement
//! each, so each sees one snapshot.

use super::{locks, marks, sql};
use crate::{CachedRepository, ManifestInfo, Page, Result, StorageError};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

async fn repo_id(c: &impl GenericClient, name: &str) -> Result<Option<i64>> {
    Ok(
        sql::opt(c, "SELECT id FROM repositories WHERE name = $1", &[&name])
            .await?
            .map(|r| r.get(0)),
    )
}

/// The repository's id, creating the repository on first use. DO NOTHING
/// rather than an update: an update would lock the row and serialize every
/// write to the repository until commit.
async fn ensure_repo(c: &impl GenericClient, name: &str) -> Result<i64> {
    let inserted = sql::opt(
        c,
        "INSERT INTO repositories (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id",
        &[&name],
    )
    .await?;
    if let Some(row) = inserted {
        return Ok(row.get(0));
    }
    repo_id(c, name)
        .await?
        .ok_or_else(|| StorageError::Conflict(format!("repository {name} was deleted meanwhile")))
}

fn limit(page: &Page) -> Option<i64> {
    page.n.map(i64::from)
}

/// Every stored name is non-empty, so `''` means "from the start".
fn after(page: &Page) -> &str {
    page.last.as_deref().unwrap_or("")
}

pub(super) async fn link_blob(c: &impl GenericClient, repo: &str, digest: &str) -> Result<()> {
    locks::lock_digests(c, &[digest]).await?;
    // A condemned blob's bytes are about to go.
    marks::refuse_tombstoned(c, digest).await?;
    let id = ensure_repo(c, repo).await?;
    sql::exec(
        c,
        "INSERT INTO blob_links (repo_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&id, &digest],
    )
    .await?;
    Ok(())
}

/// Records `repo`'s upstream; a repository that becomes a cache counts as
/// pulled now, one that already was keeps its pull time.
pub(super) async fn set_origin(c: &impl GenericClient, repo: &str, origin: &str) -> Result<()> {
    let id = ensure_repo(c, repo).await?;
    sql::exec(
        c,
        "UPDATE repositories SET origin = $2,
             pulled = CASE WHEN origin IS NULL OR pulled IS NULL
                           THEN floor(extract(epoch from now()))::bigint ELSE pulled END
         WHERE id = $1",
        &[&id, &origin],
    )
    .await?;
    Ok(())
}

pub(super) async fn note_pulled(c: &impl GenericClient, repo: &str, now: u64) -> Result<()> {
    sql::exec(
        c,
        "UPDATE repositories SET pulled = $2 WHERE name = $1 AND origin IS NOT NULL",
        &[&repo, &sql::secs(now)],
    )
    .await?;
    Ok(())
}

pub(super) async fn cached_repositories(c: &impl GenericClient) -> Result<Vec<CachedRepository>> {
    let rows = sql::rows(
        c,
        "SELECT name, origin, pulled FROM repositories WHERE origin IS NOT NULL ORDER BY name",
        &[],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| CachedRepository {
            name: r.get(0),
            origin: r.get(1),
            pulled: r.get::<_, Option<i64>>(2).map_or(0, sql::unsigned),
        })
        .collect())
}

/// Removes `repo` and everything it records. Manifests and links are
/// deleted by statements whose triggers queue every digest the repository
/// held; references and tags follow their manifests by ON DELETE CASCADE.
pub(super) async fn delete_repository(c: &impl GenericClient, repo: &str) -> Result<bool> {
    let Some(id) = repo_id(c, repo).await? else {
        return Ok(false);
    };
    for sql_text in [
        "DELETE FROM tags WHERE repo_id = $1",
        "DELETE FROM manifests WHERE repo_id = $1",
        "DELETE FROM blob_links WHERE repo_id = $1",
        "DELETE FROM uploads WHERE repo_id = $1",
        "DELETE FROM repositories WHERE id = $1",
    ] {
        sql::exec(c, sql_text, &[&id]).await?;
    }
    Ok(true)
}

pub(super) async fn origin(c: &impl GenericClient, repo: &str) -> Result<Option<String>> {
    Ok(sql::opt(
        c,
        "SELECT origin FROM repositories WHERE name = $1",
        &[&repo],
    )
    .await?
    .and_then(|r| r.get(0)))
}

pub(super) async fn blob_linked(c: &impl GenericClient, repo: &str, digest: &str) -> Result<bool> {
    Ok(sql::opt(
        c,
        "SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repo_id
         WHERE r.name = $1 AND l.digest = $2",
        &[&repo, &digest],
    )
    .await?
    .is_some())
}

pub(super) async fn unlink_blob(c: &impl GenericClient, repo: &str, digest: &str) -> Result<bool> {
    let n = sql::exec(
        c,
        "DELETE FROM blob_links l USING repositories r
         WHERE r.id = l.repo_id AND r.name = $1 AND l.digest = $2",
        &[&repo, &digest],
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn put_manifest(
    c: &impl GenericClient,
    repo: &str,
    m: &ManifestInfo,
    references: &[String],
    tag: Option<&str>,
) -> Result<()> {
    let size = i64::try_from(m.size)
        .map_err(|_| StorageError::Invalid(format!("size {} too large", m.size)))?;
    // The manifest's own digest and everything it names: a collector must
    // not condemn any of them between the checks below and the commit.
    let mut held: Vec<&str> = references.iter().map(String::as_str).collect();
    held.push(&m.digest);
    locks::lock_digests(c, &held).await?;
    let id = ensure_repo(c, repo).await?;
    marks::refuse_tombstoned(c, &m.digest).await?;
    // Locked while this transaction lasts: untagged-manifest collection on
    // another host (which locks the row to delete it) then either finished
    // first, and the manifest is stored anew, or waits and sees the tag.
    let stored = sql::opt(
        c,
        "SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2 FOR KEY SHARE",
        &[&id, &m.digest],
    )
    .await?
    .is_some();
    if !stored {
        require_present(c, id, references).await?;
    }
    // A manifest's row is derived from its bytes: storing it again leaves
    // the row as it is and only moves the tag.
    let inserted = sql::exec(
        c,
        "INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type, subject,
                                annotations, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, floor(extract(epoch from now()))::bigint)
         ON CONFLICT (repo_id, digest) DO NOTHING",
        &[
            &id,
            &m.digest,
            &m.media_type,
            &size,
            &m.artifact_type,
            &m.subject,
            &m.annotations,
        ],
    )
    .await?;
    if inserted > 0 && !references.is_empty() {
        sql::exec(
            c,
            "INSERT INTO manifest_refs (repo_id, manifest, digest)
             SELECT $1, $2, d FROM unnest($3::text[]) AS d ON CONFLICT DO NOTHING",
            &[&id, &m.digest, &references],
        )
        .await?;
    }
    if let Some(tag) = tag {
        sql::exec(
            c,
            "INSERT INTO tags (repo_id, name, digest) VALUES ($1, $2, $3)
             ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest",
            &[&id, &tag, &m.digest],
        )
        .await?;
    }
    marks::uploads_done(c, &held).await
}

/// Fails unless every reference is linked in the repository or is one of
/// its manifests, checked under the digest locks so that no collector can
/// condemn one of them (removing its links) before this commits.
async fn require_present(
    c: &impl GenericClient,
    repo_id: i64,
    references: &[String],
) -> Result<()> {
    if references.is_empty() {
        return Ok(());
    }
    let missing = sql::opt(
        c,
        "SELECT d FROM unnest($2::text[]) AS d
         WHERE NOT EXISTS (SELECT 1 FROM blob_links WHERE repo_id = $1 AND digest = d)
           AND NOT EXISTS (SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = d)
         LIMIT 1",
        &[&repo_id, &references],
    )
    .await?;
    match missing {
        Some(row) => Err(StorageError::Invalid(format!(
            "manifest references {}, which is not in the repository",
            row.get::<_, String>(0)
        ))),
        None => Ok(()),
    }
}

const MANIFEST_COLUMNS: &str =
    "m.digest, m.media_type, m.size, m.artifact_type, m.subject, m.annotations";

fn manifest_row(r: &Row) -> ManifestInfo {
    ManifestInfo {
        digest: r.get(0),
        media_type: r.get(1),
        // Sizes are stored from u64s checked to fit i64.
        size: sql::unsigned(r.get(2)),
        artifact_type: r.get(3),
        subject: r.get(4),
        annotations: r.get(5),
    }
}

pub(super) async fn get_manifest(
    c: &impl GenericClient,
    repo: &str,
    digest: &str,
) -> Result<Option<ManifestInfo>> {
    let sql_text = format!(
        "SELECT {MANIFEST_COLUMNS} FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE r.name = $1 AND m.digest = $2"
    );
    Ok(sql::opt(c, &sql_text, &[&repo, &digest])
        .await?
        .map(|r| manifest_row(&r)))
}

pub(super) async fn resolve_tag(
    c: &impl GenericClient,
    repo: &str,
    tag: &str,
) -> Result<Option<String>> {
    Ok(sql::opt(
        c,
        "SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repo_id
         WHERE r.name = $1 AND t.name = $2",
        &[&repo, &tag],
    )
    .await?
    .map(|r| r.get(0)))
}

pub(super) async fn tags_of(
    c: &impl GenericClient,
    repo: &str,
    digest: &str,
) -> Result<Vec<String>> {
    sql::strings(
        c,
        "SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repo_id
         WHERE r.name = $1 AND t.digest = $2 ORDER BY t.name",
        &[&repo, &digest],
    )
    .await
}

pub(super) async fn delete_manifest(
    c: &impl GenericClient,
    repo: &str,
    digest: &str,
) -> Result<bool> {
    let Some(id) = repo_id(c, repo).await? else {
        return Ok(false);
    };
    // Its tags and references go with it through ON DELETE CASCADE.
    let n = sql::exec(
        c,
        "DELETE FROM manifests WHERE repo_id = $1 AND digest = $2",
        &[&id, &digest],
    )
    .await?;
    if n == 0 {
        return Ok(false);
    }
    // Referrers follow their subject, and theirs follow them; UNION stops
    // at a manifest already collected, so even a cycle ends.
    sql::exec(
        c,
        "WITH RECURSIVE doomed(digest) AS (
             SELECT digest FROM manifests WHERE repo_id = $1 AND subject = $2
             UNION
             SELECT m.digest FROM manifests m JOIN doomed d ON m.subject = d.digest
             WHERE m.repo_id = $1
         )
         DELETE FROM manifests WHERE repo_id = $1 AND digest IN (SELECT digest FROM doomed)",
        &[&id, &digest],
    )
    .await?;
    Ok(true)
}

pub(super) async fn delete_tag(c: &impl GenericClient, repo: &str, tag: &str) -> Result<bool> {
    let n = sql::exec(
        c,
        "DELETE FROM tags t USING repositories r
         WHERE r.id = t.repo_id AND r.name = $1 AND t.name = $2",
        &[&repo, &tag],
    )
    .await?;
    Ok(n > 0)
}

/// One statement: no row for an unknown repository, one row with a NULL
/// name for a repository without (further) tags.
pub(super) async fn list_tags(
    c: &impl GenericClient,
    repo: &str,
    page: &Page,
) -> Result<Option<Vec<String>>> {
    let rows = sql::rows(
        c,
        "SELECT t.name FROM repositories r LEFT JOIN LATERAL (
             SELECT name FROM tags WHERE repo_id = r.id AND name > $2 ORDER BY name LIMIT $3
         ) t ON true
         WHERE r.name = $1 ORDER BY t.name",
        &[&repo, &after(page), &limit(page)],
    )
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.iter()
            .filter_map(|r| r.get::<_, Option<String>>(0))
            .collect(),
    ))
}

/// Repositories that hold a manifest: an upload or a blob link alone does
/// not put a name in the catalog.
pub(super) async fn list_repositories(c: &impl GenericClient, page: &Page) -> Result<Vec<String>> {
    sql::strings(
        c,
        "SELECT name FROM repositories r
         WHERE name > $1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
         ORDER BY name LIMIT $2",
        &[&after(page), &limit(page)],
    )
    .await
}

pub(super) async fn list_referrers(
    c: &impl GenericClient,
    repo: &str,
    subject: &str,
    artifact_type: Option<&str>,
) -> Result<Vec<ManifestInfo>> {
    let sql_text = format!(
        "SELECT {MANIFEST_COLUMNS} FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE r.name = $1 AND m.subject = $2 AND ($3::text IS NULL OR m.artifact_type = $3)
         ORDER BY m.digest"
    );
    Ok(sql::rows(c, &sql_text, &[&repo, &subject, &artifact_type])
        .await?
        .iter()
        .map(manifest_row)
        .collect())
}

pub(super) async fn begin_upload(c: &impl GenericClient, repo: &str, upload: &str) -> Result<()> {
    let id = ensure_repo(c, repo).await?;
    sql::exec(
        c,
        "INSERT INTO uploads (id, repo_id, started_at)
         VALUES ($1, $2, floor(extract(epoch from now()))::bigint) ON CONFLICT (id) DO NOTHING",
        &[&upload, &id],
    )
    .await?;
    // Beginning twice for the same repository is harmless; stealing another
    // repository's session is not.
    let owner: i64 = sql::one(c, "SELECT repo_id FROM uploads WHERE id = $1", &[&upload])
        .await?
        .get(0);
    if owner != id {
        return Err(StorageError::Conflict(format!(
            "upload {upload} belongs to another repository"
        )));
    }
    Ok(())
}

pub(super) async fn upload_repository(
    c: &impl GenericClient,
    upload: &str,
) -> Result<Option<String>> {
    Ok(sql::opt(
        c,
        "SELECT r.name FROM uploads u JOIN repositories r ON r.id = u.repo_id WHERE u.id = $1",
        &[&upload],
    )
    .await?
    .map(|r| r.get(0)))
}

/// Idempotent: forgetting an unknown session is not an error.
pub(super) async fn end_upload(c: &impl GenericClient, upload: &str) -> Result<()> {
    sql::exec(c, "DELETE FROM uploads WHERE id = $1", &[&upload]).await?;
    Ok(())
}
