//! The SQL of online garbage collection: a review queue in the spirit of
//! GitLab's container registry. Triggers (schema migration 2) queue a blob
//! whenever it is linked or something lets go of it; a collection pass asks
//! for the rows whose grace periods are over and condemns each one that is
//! still unreferenced, in the same transaction that checks it, so a
//! manifest push cannot slip a reference in between. A condemned blob is
//! tombstoned until its bytes are gone: linking or re-uploading it fails
//! meanwhile, and a manifest cannot name it because its links are gone.
//!
//! Several collectors may work on one database (the server's and `berth gc`
//! processes). A tombstone names the pass that wrote it, and only that pass
//! deletes the bytes and buries it while it lives; a pass takes over the
//! tombstones of passes that died (holders.rs). Without that, a second pass
//! finished and buried a tombstone the first was still working on, a push
//! re-uploaded the blob, and the first pass's late delete took the new bytes.
//!
//! A request that commits a blob pins it first and drops the pin in the
//! transaction that links it (or stores it as a manifest). A pinned blob is
//! never condemned, whatever the grace periods: at zero upload grace a pass
//! could otherwise condemn and delete the blob between commit and link, and
//! the link would then name bytes that are gone.
//!
//! Like `queries.rs`, every function runs inside its caller's transaction.

use super::gc_marks::refuse_tombstoned;
use super::queries;
use crate::{GracePeriods, Reference, RepositoryUsage, Result};
use rusqlite::{Connection, params};

/// Unix seconds as SQLite stores them; times past 2^63 cannot occur.
fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// The latest time a grace period of `grace` may have started and be over
/// at `now` (negative when none can be). Comparing stored times with it,
/// rather than adding the grace to them, cannot overflow.
fn cutoff(now: u64, grace: u64) -> i64 {
    secs(now).saturating_sub(secs(grace))
}

/// Pins `digest` for `request` of process `holder` and marks it uploaded
/// now, opening its upload grace period.
pub(super) fn pin(conn: &Connection, digest: &str, holder: &str, request: u64) -> Result<()> {
    refuse_tombstoned(conn, digest)?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO gc_pins (digest, holder, request) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![digest, holder, secs(request)])?;
    conn.prepare_cached(
        "INSERT INTO gc_queue (digest, uploaded_at) VALUES (?1, unixepoch())
         ON CONFLICT (digest) DO UPDATE SET uploaded_at = excluded.uploaded_at",
    )?
    .execute([digest])?;
    Ok(())
}

/// Drops the pins of `request`: one digest's, or with `None` all of them.
pub(super) fn unpin(
    conn: &Connection,
    holder: &str,
    request: u64,
    digest: Option<&str>,
) -> Result<()> {
    match digest {
        Some(digest) => conn
            .prepare_cached(
                "DELETE FROM gc_pins WHERE holder = ?1 AND request = ?2 AND digest = ?3",
            )?
            .execute(params![holder, secs(request), digest])?,
        None => conn
            .prepare_cached("DELETE FROM gc_pins WHERE holder = ?1 AND request = ?2")?
            .execute(params![holder, secs(request)])?,
    };
    Ok(())
}

/// Links a blob some repository or manifest already holds (a mount): false,
/// and nothing linked, when nothing holds it any more, so its bytes may be
/// gone. `Conflict` while a collector has condemned it.
pub(super) fn mount(conn: &Connection, repo: &str, digest: &str) -> Result<bool> {
    refuse_tombstoned(conn, digest)?;
    let held = is_referenced(conn, digest)?
        || conn
            .prepare_cached("SELECT 1 FROM blob_links WHERE digest = ?1")?
            .exists([digest])?;
    if held {
        queries::link_blob(conn, repo, digest)?;
    }
    Ok(held)
}

/// True when a manifest of any repository references `digest`, it is a
/// manifest itself, or a repository that caches an upstream links it.
/// Other blob links alone do not count: a blob only a link holds is what
/// the upload grace period is for. A cache stores its manifests without
/// references (their blobs arrive one pull at a time), so its links are
/// what hold its blobs, until the cached repository is deleted.
pub(super) fn is_referenced(conn: &Connection, digest: &str) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM manifest_refs WHERE digest = ?1)
             OR EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)
             OR EXISTS (SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repo_id
                        WHERE l.digest = ?1 AND r.origin IS NOT NULL)",
    )?;
    Ok(stmt.query_row([digest], |r| r.get(0))?)
}

/// The condition for a queue row `q` whose grace periods are over, with
/// the upload cutoff as `?1` and the unreferenced cutoff as `?2`.
const DUE: &str = "(q.uploaded_at IS NULL OR q.uploaded_at <= ?1)
    AND (q.unreferenced_at IS NULL OR q.unreferenced_at <= ?2)
    AND NOT EXISTS (SELECT 1 FROM gc_tombstones t WHERE t.digest = q.digest)
    AND NOT EXISTS (SELECT 1 FROM gc_pins p WHERE p.digest = q.digest)";

pub(super) fn due(
    conn: &Connection,
    now: u64,
    grace: GracePeriods,
    limit: u32,
) -> Result<Vec<String>> {
    let sql = format!("SELECT q.digest FROM gc_queue q WHERE {DUE} ORDER BY q.digest LIMIT ?3");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            cutoff(now, grace.uploaded),
            cutoff(now, grace.unreferenced),
            limit
        ],
        |r| r.get(0),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Queued, unreferenced blobs not yet due at `now`, with the time each
/// becomes due. Ends are computed here, not in SQL, where a huge grace
/// period would overflow.
pub(super) fn waiting(
    conn: &Connection,
    now: u64,
    grace: GracePeriods,
) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT q.digest, q.uploaded_at, q.unreferenced_at FROM gc_queue q
         WHERE NOT EXISTS (SELECT 1 FROM gc_tombstones t WHERE t.digest = q.digest)
           AND NOT EXISTS (SELECT 1 FROM gc_pins p WHERE p.digest = q.digest)
           AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.digest = q.digest)
           AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = q.digest)
           AND NOT EXISTS (SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repo_id
                           WHERE l.digest = q.digest AND r.origin IS NOT NULL)
         ORDER BY q.digest",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    let ends = |at: Option<i64>, grace: u64| {
        at.map_or(0, |t| u64::try_from(t).unwrap_or(0).saturating_add(grace))
    };
    let mut out = Vec::new();
    for row in rows {
        let (digest, uploaded, unreferenced) = row?;
        let due = ends(uploaded, grace.uploaded).max(ends(unreferenced, grace.unreferenced));
        if due > now {
            out.push((digest, due));
        }
    }
    Ok(out)
}

pub(super) fn condemn(
    conn: &Connection,
    digest: &str,
    now: u64,
    grace: GracePeriods,
    holder: &str,
) -> Result<bool> {
    if is_referenced(conn, digest)? {
        // A manifest holds it: nothing to review until that manifest goes,
        // and its deletion queues the blob again.
        conn.prepare_cached("DELETE FROM gc_queue WHERE digest = ?1")?
            .execute([digest])?;
        return Ok(false);
    }
    let sql = format!("SELECT 1 FROM gc_queue q WHERE q.digest = ?3 AND {DUE}");
    let is_due = conn.prepare_cached(&sql)?.exists(params![
        cutoff(now, grace.uploaded),
        cutoff(now, grace.unreferenced),
        digest
    ])?;
    if !is_due {
        return Ok(false);
    }
    // Without links no repository serves it and no manifest can be pushed
    // naming it (put_manifest checks links in its own transaction).
    conn.prepare_cached("DELETE FROM blob_links WHERE digest = ?1")?
        .execute([digest])?;
    conn.prepare_cached("INSERT INTO gc_tombstones (digest, since, holder) VALUES (?1, ?2, ?3)")?
        .execute(params![digest, secs(now), holder])?;
    // The unlink trigger queued it again; the tombstone now tracks it.
    conn.prepare_cached("DELETE FROM gc_queue WHERE digest = ?1")?
        .execute([digest])?;
    Ok(true)
}

/// Forgets a blob `holder` condemned. Any queue row it has is stale too:
/// nothing could touch the digest while it was tombstoned. Someone else's
/// tombstone stays: its pass may still be deleting.
pub(super) fn bury(conn: &Connection, digest: &str, holder: &str) -> Result<()> {
    let buried = conn
        .prepare_cached("DELETE FROM gc_tombstones WHERE digest = ?1 AND holder = ?2")?
        .execute([digest, holder])?;
    if buried > 0 {
        conn.prepare_cached("DELETE FROM gc_queue WHERE digest = ?1")?
            .execute([digest])?;
    }
    Ok(())
}

/// Every holder with pins or tombstones, but `except` (NULL: a tombstone
/// from before holders existed).
pub(super) fn holders(conn: &Connection, except: &str) -> Result<Vec<Option<String>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT holder FROM gc_tombstones WHERE holder IS NOT ?1
         UNION SELECT holder FROM gc_pins WHERE holder IS NOT ?1",
    )?;
    let rows = stmt.query_map([except], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Releases what the `dead` holders held: their pins go, their tombstones
/// become `heir`'s. Returns every digest `heir` has tombstoned.
pub(super) fn take_over(
    conn: &Connection,
    dead: &[Option<String>],
    heir: &str,
) -> Result<Vec<String>> {
    let mut unpin = conn.prepare_cached("DELETE FROM gc_pins WHERE holder IS ?1")?;
    let mut adopt =
        conn.prepare_cached("UPDATE gc_tombstones SET holder = ?2 WHERE holder IS ?1")?;
    for holder in dead {
        unpin.execute([holder])?;
        adopt.execute(params![holder, heir])?;
    }
    let mut stmt =
        conn.prepare_cached("SELECT digest FROM gc_tombstones WHERE holder = ?1 ORDER BY digest")?;
    let rows = stmt.query_map([heir], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn adopt(conn: &Connection, present: &[(String, u64)]) -> Result<u64> {
    // `WHERE` keeps SQLite from reading `ON CONFLICT` as a join constraint.
    let mut stmt = conn.prepare_cached(
        "INSERT INTO gc_queue (digest, uploaded_at) SELECT ?1, ?2
         WHERE NOT EXISTS (SELECT 1 FROM manifest_refs WHERE digest = ?1)
           AND NOT EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)
           AND NOT EXISTS (SELECT 1 FROM gc_tombstones WHERE digest = ?1)
         ON CONFLICT (digest) DO NOTHING",
    )?;
    let mut queued = 0;
    for (digest, written_at) in present {
        queued += stmt.execute(params![digest, secs(*written_at)])? as u64;
    }
    Ok(queued)
}

/// The condition for a manifest `m` that untagged-manifest collection may
/// delete: stored before `?1`, no tag, no manifest of its repository
/// referencing it, its subject (if any) gone, and not in a cache of an
/// upstream (whose manifests by digest, an index's children, are untagged
/// by nature; `unused_after` forgets those).
const UNTAGGED: &str = "m.created_at < ?1
    AND NOT EXISTS (SELECT 1 FROM repositories c WHERE c.id = m.repo_id AND c.origin IS NOT NULL)
    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
    AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                    WHERE f.repo_id = m.repo_id AND f.digest = m.digest)
    AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s
                                          WHERE s.repo_id = m.repo_id AND s.digest = m.subject))";

pub(super) fn untagged(conn: &Connection, before: u64) -> Result<Vec<(String, String)>> {
    let sql = format!(
        "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE {UNTAGGED} ORDER BY r.name, m.digest"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([secs(before)], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes one manifest `untagged` listed if it still qualifies: a push may
/// have tagged it since, and deleting it would take that tag along.
pub(super) fn delete_untagged(
    conn: &Connection,
    repo: &str,
    digest: &str,
    before: u64,
) -> Result<bool> {
    let sql = format!(
        "SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE r.name = ?2 AND m.digest = ?3 AND {UNTAGGED}"
    );
    if !conn
        .prepare_cached(&sql)?
        .exists(params![secs(before), repo, digest])?
    {
        return Ok(false);
    }
    queries::delete_manifest(conn, repo, digest)
}

pub(super) fn references(conn: &Connection) -> Result<Vec<Reference>> {
    let mut out = Vec::new();
    let mut links = conn.prepare_cached(
        "SELECT r.name, l.digest FROM blob_links l JOIN repositories r ON r.id = l.repo_id
         ORDER BY r.name, l.digest",
    )?;
    for row in links.query_map([], |r| {
        Ok(Reference::Link {
            repo: r.get(0)?,
            digest: r.get(1)?,
        })
    })? {
        out.push(row?);
    }
    let mut manifests = conn.prepare_cached(
        "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id
         ORDER BY r.name, m.digest",
    )?;
    for row in manifests.query_map([], |r| {
        Ok(Reference::Manifest {
            repo: r.get(0)?,
            digest: r.get(1)?,
        })
    })? {
        out.push(row?);
    }
    let mut refs = conn.prepare_cached(
        "SELECT r.name, f.manifest, f.digest FROM manifest_refs f
         JOIN repositories r ON r.id = f.repo_id ORDER BY r.name, f.manifest, f.digest",
    )?;
    for row in refs.query_map([], |r| {
        Ok(Reference::Ref {
            repo: r.get(0)?,
            manifest: r.get(1)?,
            digest: r.get(2)?,
        })
    })? {
        out.push(row?);
    }
    let mut tags = conn.prepare_cached(
        "SELECT r.name, t.name, t.digest FROM tags t
         JOIN repositories r ON r.id = t.repo_id ORDER BY r.name, t.name",
    )?;
    for row in tags.query_map([], |r| {
        Ok(Reference::Tag {
            repo: r.get(0)?,
            tag: r.get(1)?,
            digest: r.get(2)?,
        })
    })? {
        out.push(row?);
    }
    Ok(out)
}

pub(super) fn drop_reference(conn: &Connection, reference: &Reference) -> Result<()> {
    match reference {
        Reference::Link { repo, digest } => {
            queries::unlink_blob(conn, repo, digest)?;
        }
        Reference::Tag { repo, tag, .. } => {
            queries::delete_tag(conn, repo, tag)?;
        }
        // A manifest goes the way a client's delete takes it, referrers
        // included, so fsck leaves nothing a delete would not.
        Reference::Manifest { repo, digest }
        | Reference::Ref {
            repo,
            manifest: digest,
            ..
        } => {
            queries::delete_manifest(conn, repo, digest)?;
        }
    }
    Ok(())
}

pub(super) fn upload_ids(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM uploads ORDER BY id")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn usage(conn: &Connection) -> Result<Vec<RepositoryUsage>> {
    let mut repos = conn.prepare_cached("SELECT id, name FROM repositories ORDER BY name")?;
    let repos = repos
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut tags = conn.prepare_cached("SELECT name FROM tags WHERE repo_id = ?1 ORDER BY name")?;
    let mut manifests = conn.prepare_cached("SELECT count(*) FROM manifests WHERE repo_id = ?1")?;
    // UNION removes duplicates; ORDER BY sorts the union as a whole.
    let mut digests = conn.prepare_cached(
        "SELECT digest FROM manifests WHERE repo_id = ?1
         UNION SELECT digest FROM manifest_refs WHERE repo_id = ?1
         UNION SELECT digest FROM blob_links WHERE repo_id = ?1
         ORDER BY 1",
    )?;
    let mut out = Vec::with_capacity(repos.len());
    for (id, name) in repos {
        let count: i64 = manifests.query_row([id], |r| r.get(0))?;
        out.push(RepositoryUsage {
            name,
            tags: tags
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
            // count(*) is never negative.
            manifests: u64::try_from(count).unwrap_or_default(),
            digests: digests
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
        });
    }
    Ok(out)
}
