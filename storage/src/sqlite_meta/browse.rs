//! What the web UI reads to browse the store: one page of repositories at
//! a glance, push times and who else holds a digest. Reads only, each
//! answered from the indexes the registry operations already keep.

use crate::{RepositorySummary, Result};
use rusqlite::{Connection, OptionalExtension, params};

/// Tag count, newest manifest and needed digests (with whether another
/// repository needs each) for every name, in order; unknown names get an
/// empty summary.
pub(super) fn summarize(conn: &Connection, names: &[String]) -> Result<Vec<RepositorySummary>> {
    let mut id_of = conn.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?;
    let mut counts = conn.prepare_cached(
        "SELECT (SELECT COUNT(*) FROM tags WHERE repo_id = ?1),
                (SELECT MAX(created_at) FROM manifests WHERE repo_id = ?1)",
    )?;
    let mut needed = conn.prepare_cached(
        "SELECT digest FROM manifests WHERE repo_id = ?1
         UNION SELECT digest FROM manifest_refs WHERE repo_id = ?1
         UNION SELECT digest FROM blob_links WHERE repo_id = ?1",
    )?;
    // Stops at the first other holder: a layer a thousand repositories
    // share costs one probe per index, not a thousand rows.
    let mut shared = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM manifests WHERE digest = ?2 AND repo_id <> ?1)
             OR EXISTS (SELECT 1 FROM manifest_refs WHERE digest = ?2 AND repo_id <> ?1)
             OR EXISTS (SELECT 1 FROM blob_links WHERE digest = ?2 AND repo_id <> ?1)",
    )?;
    let mut summaries = Vec::with_capacity(names.len());
    for name in names {
        let Some(id) = id_of.query_row([name], |r| r.get::<_, i64>(0)).optional()? else {
            summaries.push(RepositorySummary {
                name: name.clone(),
                digests: Some(Vec::new()),
                ..RepositorySummary::default()
            });
            continue;
        };
        let (tags, last_push) = counts.query_row([id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
        })?;
        let digests: Vec<String> = needed
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut marked = Vec::with_capacity(digests.len());
        for digest in digests {
            let other = shared.query_row(params![id, digest], |r| r.get::<_, bool>(0))?;
            marked.push((digest, other));
        }
        summaries.push(RepositorySummary {
            name: name.clone(),
            tags: u64::try_from(tags).unwrap_or(0),
            last_push: last_push.and_then(|t| u64::try_from(t).ok()),
            digests: Some(marked),
        });
    }
    Ok(summaries)
}

/// When `repo` stored manifest `digest` (unix seconds).
pub(super) fn pushed_at(conn: &Connection, repo: &str, digest: &str) -> Result<Option<u64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.created_at FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE r.name = ?1 AND m.digest = ?2",
    )?;
    let at: Option<i64> = stmt.query_row([repo, digest], |r| r.get(0)).optional()?;
    Ok(at.and_then(|t| u64::try_from(t).ok()))
}

/// Up to `limit` repositories, by name, that hold, reference or link
/// `digest`.
pub(super) fn holders(conn: &Connection, digest: &str, limit: u32) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM repositories WHERE id IN (
             SELECT repo_id FROM manifests WHERE digest = ?1
             UNION SELECT repo_id FROM manifest_refs WHERE digest = ?1
             UNION SELECT repo_id FROM blob_links WHERE digest = ?1)
         ORDER BY name LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![digest, limit], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn summaries_push_times_and_holders() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let meta = crate::SqliteMetadata::open(&dir.path().join("metadata.db")).expect("open");
        crate::conformance::browse(&meta).await;
    }
}
