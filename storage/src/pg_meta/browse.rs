//! What the web UI reads to browse the store, as sqlite_meta/browse.rs
//! answers it: one page of repositories at a glance, push times and who
//! else holds a digest. Reads only, from the indexes the registry
//! operations already keep; one round trip per repository on the page.

use super::sql;
use crate::{RepositorySummary, Result};
use deadpool_postgres::GenericClient;

/// Tag count, newest manifest and needed digests (each with whether
/// another repository needs it) for every name, in order; unknown names
/// get an empty summary.
pub(super) async fn summarize(
    c: &impl GenericClient,
    names: &[String],
) -> Result<Vec<RepositorySummary>> {
    let mut summaries = Vec::with_capacity(names.len());
    for name in names {
        let counts = sql::opt(
            c,
            "SELECT r.id,
                    (SELECT COUNT(*) FROM tags WHERE repo_id = r.id),
                    (SELECT MAX(created_at) FROM manifests WHERE repo_id = r.id)
             FROM repositories r WHERE r.name = $1",
            &[name],
        )
        .await?;
        let Some(counts) = counts else {
            summaries.push(RepositorySummary {
                name: name.clone(),
                digests: Some(Vec::new()),
                ..RepositorySummary::default()
            });
            continue;
        };
        let id: i64 = counts.get(0);
        // EXISTS stops at the first other holder: a layer a thousand
        // repositories share costs one index probe, not a thousand rows.
        let digests = sql::rows(
            c,
            "SELECT n.digest,
                    EXISTS (SELECT 1 FROM manifests WHERE digest = n.digest AND repo_id <> $1)
                 OR EXISTS (SELECT 1 FROM manifest_refs WHERE digest = n.digest AND repo_id <> $1)
                 OR EXISTS (SELECT 1 FROM blob_links WHERE digest = n.digest AND repo_id <> $1)
             FROM (SELECT digest FROM manifests WHERE repo_id = $1
                   UNION SELECT digest FROM manifest_refs WHERE repo_id = $1
                   UNION SELECT digest FROM blob_links WHERE repo_id = $1) n",
            &[&id],
        )
        .await?;
        summaries.push(RepositorySummary {
            name: name.clone(),
            tags: sql::unsigned(counts.get(1)),
            last_push: counts.get::<_, Option<i64>>(2).map(sql::unsigned),
            digests: Some(
                digests
                    .iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
                    .collect(),
            ),
        });
    }
    Ok(summaries)
}

/// When `repo` stored manifest `digest` (unix seconds).
pub(super) async fn pushed_at(
    c: &impl GenericClient,
    repo: &str,
    digest: &str,
) -> Result<Option<u64>> {
    let row = sql::opt(
        c,
        "SELECT m.created_at FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE r.name = $1 AND m.digest = $2",
        &[&repo, &digest],
    )
    .await?;
    Ok(row.map(|r| sql::unsigned(r.get(0))))
}

/// Up to `limit` repositories, by name, that hold, reference or link
/// `digest`.
pub(super) async fn holders(
    c: &impl GenericClient,
    digest: &str,
    limit: u32,
) -> Result<Vec<String>> {
    sql::strings(
        c,
        "SELECT name FROM repositories WHERE id IN (
             SELECT repo_id FROM manifests WHERE digest = $1
             UNION SELECT repo_id FROM manifest_refs WHERE digest = $1
             UNION SELECT repo_id FROM blob_links WHERE digest = $1)
         ORDER BY name LIMIT $2",
        &[&digest, &i64::from(limit)],
    )
    .await
}
