//! The SQL of online garbage collection on PostgreSQL, the same review
//! queue as sqlite_meta/gc.rs (read its module doc for the design): the
//! triggers queue a blob whenever it is linked or something lets go of it;
//! a pass condemns each due row that is still unreferenced in the same
//! transaction that checks it; a tombstone names the pass that wrote it;
//! pins keep a blob from being condemned between its commit and its link.
//!
//! What SQLite got from its single writer, this gets from the per-digest
//! transaction locks of locks.rs, taken by condemn and bury here and by
//! every write that adds a hold on a digest (link, mount, pin, manifest
//! put); condemn only tries it and skips a digest that is busy. Writes that
//! only let go of a digest (unlink, manifest or tag delete) do not take
//! them: their triggers upsert the queue row, and condemn locks that row
//! (`FOR UPDATE SKIP LOCKED`) before it reads anything else, so a
//! concurrent delete either committed first (condemn then sees its
//! effect), is still running (condemn skips the digest), or waits for
//! condemn and re-queues the digest afterwards.
//!
//! Like queries.rs, every function runs inside its caller's transaction.

use super::marks::refuse_tombstoned;
use super::{holders, locks, queries, sql};
use crate::{GracePeriods, Reference, RepositoryUsage, Result, StorageError};
use deadpool_postgres::GenericClient;

/// The latest time a grace period of `grace` may have started and be over
/// at `now`; comparing with it rather than adding cannot overflow.
fn cutoff(now: u64, grace: u64) -> i64 {
    sql::secs(now).saturating_sub(sql::secs(grace))
}

/// Pins `digest` for `request` of `holder` and opens its upload grace
/// period (from the database's clock, as the triggers do).
pub(super) async fn pin(
    c: &impl GenericClient,
    digest: &str,
    holder: &str,
    request: u64,
) -> Result<()> {
    locks::lock_digests(c, &[digest]).await?;
    refuse_tombstoned(c, digest).await?;
    sql::exec(
        c,
        "INSERT INTO gc_pins (digest, holder, request) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&digest, &holder, &sql::secs(request)],
    )
    .await?;
    sql::exec(
        c,
        "INSERT INTO gc_queue (digest, uploaded_at) VALUES ($1, floor(extract(epoch from now()))::bigint)
         ON CONFLICT (digest) DO UPDATE SET uploaded_at = excluded.uploaded_at",
        &[&digest],
    )
    .await?;
    Ok(())
}

/// Drops the pins of `request` under any of `holders` (this process's):
/// one digest's, or with `None` all of them.
pub(super) async fn unpin(
    c: &impl GenericClient,
    holders: &[String],
    request: u64,
    digest: Option<&str>,
) -> Result<()> {
    if holders.is_empty() {
        return Ok(());
    }
    sql::exec(
        c,
        "DELETE FROM gc_pins
         WHERE holder = ANY($1) AND request = $2 AND ($3::text IS NULL OR digest = $3)",
        &[&holders, &sql::secs(request), &digest],
    )
    .await?;
    Ok(())
}

/// Before a request links (or stores as a manifest) a blob it pinned:
/// `Conflict` when its pin is gone, unless the link (`manifest`: the
/// manifest) is already there (a retry after a commit whose answer was
/// lost). A pin disappears under a live request only when its holder's
/// connection was lost and a pass on some host took over: the blob may
/// have been condemned and its bytes deleted since, so linking it could
/// name bytes that are gone. Takes the digest's lock, so no pass
/// condemns the blob between this check and the caller's commit.
/// Nothing is checked for a process that never pinned.
pub(super) async fn require_pin(
    c: &impl GenericClient,
    holders: &[String],
    request: u64,
    digest: &str,
    repo: &str,
    manifest: bool,
) -> Result<()> {
    if holders.is_empty() {
        return Ok(());
    }
    locks::lock_digests(c, &[digest]).await?;
    let kept = sql::one(
        c,
        "SELECT EXISTS (SELECT 1 FROM gc_pins
                        WHERE holder = ANY($1) AND request = $2 AND digest = $3)
             OR ($5 AND EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
                                WHERE r.name = $4 AND m.digest = $3))
             OR (NOT $5 AND EXISTS (SELECT 1 FROM blob_links l
                                    JOIN repositories r ON r.id = l.repo_id
                                    WHERE r.name = $4 AND l.digest = $3))",
        &[&holders, &sql::secs(request), &digest, &repo, &manifest],
    )
    .await?
    .get::<_, bool>(0);
    if kept {
        Ok(())
    } else {
        tracing::warn!(
            digest,
            request,
            "a request's pin was dropped by a collector"
        );
        Err(StorageError::Conflict(format!(
            "the pin on blob {digest} was lost with the database connection; upload it again"
        )))
    }
}

/// Links a blob some repository or manifest already holds (a mount).
pub(super) async fn mount(c: &impl GenericClient, repo: &str, digest: &str) -> Result<bool> {
    locks::lock_digests(c, &[digest]).await?;
    refuse_tombstoned(c, digest).await?;
    let held = is_referenced(c, digest).await?
        || sql::opt(
            c,
            "SELECT 1 FROM blob_links WHERE digest = $1 LIMIT 1",
            &[&digest],
        )
        .await?
        .is_some();
    if held {
        // Takes the same lock again: advisory locks nest within a session.
        queries::link_blob(c, repo, digest).await?;
    }
    Ok(held)
}

/// True when a manifest references `digest`, it is a manifest itself, or a
/// repository that caches an upstream links it (see sqlite_meta/gc.rs).
pub(super) async fn is_referenced(c: &impl GenericClient, digest: &str) -> Result<bool> {
    Ok(sql::one(
        c,
        "SELECT EXISTS (SELECT 1 FROM manifest_refs WHERE digest = $1)
             OR EXISTS (SELECT 1 FROM manifests WHERE digest = $1)
             OR EXISTS (SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repo_id
                        WHERE l.digest = $1 AND r.origin IS NOT NULL)",
        &[&digest],
    )
    .await?
    .get(0))
}

/// The condition for a queue row `q` whose grace periods are over, with
/// the upload cutoff as `$1` and the unreferenced cutoff as `$2`.
const DUE: &str = "(q.uploaded_at IS NULL OR q.uploaded_at <= $1)
    AND (q.unreferenced_at IS NULL OR q.unreferenced_at <= $2)
    AND NOT EXISTS (SELECT 1 FROM gc_tombstones t WHERE t.digest = q.digest)
    AND NOT EXISTS (SELECT 1 FROM gc_pins p WHERE p.digest = q.digest)";

pub(super) async fn due(
    c: &impl GenericClient,
    now: u64,
    grace: GracePeriods,
    limit: u32,
) -> Result<Vec<String>> {
    let sql_text =
        format!("SELECT q.digest FROM gc_queue q WHERE {DUE} ORDER BY q.digest LIMIT $3");
    sql::strings(
        c,
        &sql_text,
        &[
            &cutoff(now, grace.uploaded),
            &cutoff(now, grace.unreferenced),
            &i64::from(limit),
        ],
    )
    .await
}

/// Queued, unreferenced blobs not yet due at `now`, with the time each
/// becomes due (computed here, where a huge grace cannot overflow SQL).
pub(super) async fn waiting(
    c: &impl GenericClient,
    now: u64,
    grace: GracePeriods,
) -> Result<Vec<(String, u64)>> {
    let rows = sql::rows(
        c,
        "SELECT q.digest, q.uploaded_at, q.unreferenced_at FROM gc_queue q
         WHERE NOT EXISTS (SELECT 1 FROM gc_tombstones t WHERE t.digest = q.digest)
           AND NOT EXISTS (SELECT 1 FROM gc_pins p WHERE p.digest = q.digest)
           AND NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.digest = q.digest)
           AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = q.digest)
           AND NOT EXISTS (SELECT 1 FROM blob_links l JOIN repositories r ON r.id = l.repo_id
                           WHERE l.digest = q.digest AND r.origin IS NOT NULL)
         ORDER BY q.digest",
        &[],
    )
    .await?;
    let ends =
        |at: Option<i64>, grace: u64| at.map_or(0, |t| sql::unsigned(t).saturating_add(grace));
    Ok(rows
        .iter()
        .filter_map(|r| {
            let due = ends(r.get(1), grace.uploaded).max(ends(r.get(2), grace.unreferenced));
            (due > now).then(|| (r.get::<_, String>(0), due))
        })
        .collect())
}

/// Condemns `digest` for live pass `holder` if it is still unreferenced,
/// unpinned and due. The caller checked the holder's lease lives.
pub(super) async fn condemn(
    c: &impl GenericClient,
    digest: &str,
    now: u64,
    grace: GracePeriods,
    holder: &str,
) -> Result<bool> {
    // Every host's passes take work the way GitLab's do with `FOR UPDATE
    // SKIP LOCKED`: a digest a push or another pass is working on right now
    // is skipped, and stays queued for a later pass.
    if !locks::try_lock_digest(c, digest).await? {
        return Ok(false);
    }
    // The queue row, locked: a concurrent delete's trigger waits for us, so
    // it re-queues the digest after we are done; a row such a delete holds
    // is skipped, as it will be due again only after its new grace period.
    let queued = sql::opt(
        c,
        "SELECT 1 FROM gc_queue WHERE digest = $1 FOR UPDATE SKIP LOCKED",
        &[&digest],
    )
    .await?;
    if queued.is_none() {
        return Ok(false);
    }
    if is_referenced(c, digest).await? {
        // A manifest holds it; its deletion will queue the blob again.
        sql::exec(c, "DELETE FROM gc_queue WHERE digest = $1", &[&digest]).await?;
        return Ok(false);
    }
    let sql_text = format!("SELECT 1 FROM gc_queue q WHERE q.digest = $3 AND {DUE}");
    let is_due = sql::opt(
        c,
        &sql_text,
        &[
            &cutoff(now, grace.uploaded),
            &cutoff(now, grace.unreferenced),
            &digest,
        ],
    )
    .await?
    .is_some();
    if !is_due {
        return Ok(false);
    }
    // Without links no repository serves it and no manifest can be pushed
    // naming it (put_manifest checks links under the same digest lock).
    sql::exec(c, "DELETE FROM blob_links WHERE digest = $1", &[&digest]).await?;
    sql::exec(
        c,
        "INSERT INTO gc_tombstones (digest, since, holder) VALUES ($1, $2, $3)",
        &[&digest, &sql::secs(now), &holder],
    )
    .await?;
    // The unlink trigger queued it again; the tombstone now tracks it.
    sql::exec(c, "DELETE FROM gc_queue WHERE digest = $1", &[&digest]).await?;
    Ok(true)
}

/// Forgets a blob `holder` condemned, and its stale queue row. Someone
/// else's tombstone stays: its pass may still be deleting.
pub(super) async fn bury(c: &impl GenericClient, digest: &str, holder: &str) -> Result<()> {
    // A burial need not wait for its WAL flush (half of a pass's fsyncs):
    // WAL is replayed in order, so a burial lost in a database crash takes
    // with it only what committed after it without waiting either, never a
    // push's link or manifest (those wait, and flush the burial first). A
    // lost burial leaves its tombstone, which the next pass resumes once
    // this pass's session is gone: it deletes bytes nothing acknowledged.
    sql::exec(c, "SET LOCAL synchronous_commit = off", &[]).await?;
    locks::lock_digests(c, &[digest]).await?;
    let buried = sql::exec(
        c,
        "DELETE FROM gc_tombstones WHERE digest = $1 AND holder = $2",
        &[&digest, &holder],
    )
    .await?;
    if buried > 0 {
        sql::exec(c, "DELETE FROM gc_queue WHERE digest = $1", &[&digest]).await?;
    }
    Ok(())
}

/// Every holder with pins or tombstones, but `except` (`None`: a tombstone
/// without holder, from an import).
pub(super) async fn holders(c: &impl GenericClient, except: &str) -> Result<Vec<Option<String>>> {
    Ok(sql::rows(
        c,
        "SELECT holder FROM gc_tombstones WHERE holder IS DISTINCT FROM $1
         UNION SELECT holder FROM gc_pins WHERE holder IS DISTINCT FROM $1",
        &[&except],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// The holders among `candidates` that are gone (holders.rs).
pub(super) async fn dead(
    c: &impl GenericClient,
    candidates: Vec<Option<String>>,
) -> Result<Vec<Option<String>>> {
    let mut dead = Vec::new();
    for holder in candidates {
        if !holders::is_alive(c, holder.as_deref()).await? {
            dead.push(holder);
        }
    }
    Ok(dead)
}

/// Releases what the `dead` holders held: their pins go, their tombstones
/// become `heir`'s. Returns every digest `heir` has tombstoned. A holder
/// found dead stays dead, so checking before this transaction is enough.
pub(super) async fn take_over(
    c: &impl GenericClient,
    dead: &[Option<String>],
    heir: &str,
) -> Result<Vec<String>> {
    for holder in dead {
        sql::exec(
            c,
            "DELETE FROM gc_pins WHERE holder IS NOT DISTINCT FROM $1",
            &[holder],
        )
        .await?;
        sql::exec(
            c,
            "UPDATE gc_tombstones SET holder = $2 WHERE holder IS NOT DISTINCT FROM $1",
            &[holder, &heir],
        )
        .await?;
    }
    sql::strings(
        c,
        "SELECT digest FROM gc_tombstones WHERE holder = $1 ORDER BY digest",
        &[&heir],
    )
    .await
}

pub(super) async fn adopt(c: &impl GenericClient, present: &[(String, u64)]) -> Result<u64> {
    let (digests, times): (Vec<&str>, Vec<i64>) = present
        .iter()
        .map(|(d, t)| (d.as_str(), sql::secs(*t)))
        .unzip();
    sql::exec(
        c,
        "INSERT INTO gc_queue (digest, uploaded_at)
         SELECT p.digest, p.at FROM unnest($1::text[], $2::bigint[]) AS p(digest, at)
         WHERE NOT EXISTS (SELECT 1 FROM manifest_refs f WHERE f.digest = p.digest)
           AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = p.digest)
           AND NOT EXISTS (SELECT 1 FROM gc_tombstones t WHERE t.digest = p.digest)
         ON CONFLICT (digest) DO NOTHING",
        &[&digests, &times],
    )
    .await
}

/// The condition for a manifest `m` untagged-manifest collection may
/// delete, with the cutoff as `$1` (see sqlite_meta/gc.rs).
const UNTAGGED: &str = "m.created_at < $1
    AND NOT EXISTS (SELECT 1 FROM repositories c WHERE c.id = m.repo_id AND c.origin IS NOT NULL)
    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest)
    AND NOT EXISTS (SELECT 1 FROM manifest_refs f
                    WHERE f.repo_id = m.repo_id AND f.digest = m.digest)
    AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s
                                          WHERE s.repo_id = m.repo_id AND s.digest = m.subject))";

pub(super) async fn untagged(c: &impl GenericClient, before: u64) -> Result<Vec<(String, String)>> {
    let sql_text = format!(
        "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE {UNTAGGED} ORDER BY r.name, m.digest"
    );
    Ok(sql::rows(c, &sql_text, &[&sql::secs(before)])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Deletes one manifest `untagged` listed if it still qualifies. The row is
/// locked first, then checked by a statement of its own: at READ COMMITTED
/// a check in the locking statement would see the snapshot from before
/// the wait, missing a tag a push committed meanwhile. Once the row is
/// locked no push can tag it (a tag's foreign key locks the row too) until
/// the delete commits; the push then stores the manifest anew.
pub(super) async fn delete_untagged(
    c: &impl GenericClient,
    repo: &str,
    digest: &str,
    before: u64,
) -> Result<bool> {
    let locked = sql::opt(
        c,
        "SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE r.name = $1 AND m.digest = $2 FOR UPDATE OF m",
        &[&repo, &digest],
    )
    .await?;
    if locked.is_none() {
        return Ok(false);
    }
    let sql_text = format!(
        "SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repo_id
         WHERE r.name = $2 AND m.digest = $3 AND {UNTAGGED}"
    );
    if sql::opt(c, &sql_text, &[&sql::secs(before), &repo, &digest])
        .await?
        .is_none()
    {
        return Ok(false);
    }
    queries::delete_manifest(c, repo, digest).await
}

pub(super) async fn references(c: &impl GenericClient) -> Result<Vec<Reference>> {
    let mut out = Vec::new();
    for r in sql::rows(
        c,
        "SELECT r.name, l.digest FROM blob_links l JOIN repositories r ON r.id = l.repo_id
         ORDER BY r.name, l.digest",
        &[],
    )
    .await?
    {
        out.push(Reference::Link {
            repo: r.get(0),
            digest: r.get(1),
        });
    }
    for r in sql::rows(
        c,
        "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id
         ORDER BY r.name, m.digest",
        &[],
    )
    .await?
    {
        out.push(Reference::Manifest {
            repo: r.get(0),
            digest: r.get(1),
        });
    }
    for r in sql::rows(
        c,
        "SELECT r.name, f.manifest, f.digest FROM manifest_refs f
         JOIN repositories r ON r.id = f.repo_id ORDER BY r.name, f.manifest, f.digest",
        &[],
    )
    .await?
    {
        out.push(Reference::Ref {
            repo: r.get(0),
            manifest: r.get(1),
            digest: r.get(2),
        });
    }
    for r in sql::rows(
        c,
        "SELECT r.name, t.name, t.digest FROM tags t
         JOIN repositories r ON r.id = t.repo_id ORDER BY r.name, t.name",
        &[],
    )
    .await?
    {
        out.push(Reference::Tag {
            repo: r.get(0),
            tag: r.get(1),
            digest: r.get(2),
        });
    }
    Ok(out)
}

pub(super) async fn drop_reference(c: &impl GenericClient, reference: &Reference) -> Result<()> {
    match reference {
        Reference::Link { repo, digest } => {
            queries::unlink_blob(c, repo, digest).await?;
        }
        Reference::Tag { repo, tag, .. } => {
            queries::delete_tag(c, repo, tag).await?;
        }
        // A manifest goes the way a client's delete takes it.
        Reference::Manifest { repo, digest }
        | Reference::Ref {
            repo,
            manifest: digest,
            ..
        } => {
            queries::delete_manifest(c, repo, digest).await?;
        }
    }
    Ok(())
}

pub(super) async fn upload_ids(c: &impl GenericClient) -> Result<Vec<String>> {
    sql::strings(c, "SELECT id FROM uploads ORDER BY id", &[]).await
}

/// Per repository, in one statement each for tags, counts and digests.
pub(super) async fn usage(c: &impl GenericClient) -> Result<Vec<RepositoryUsage>> {
    let rows = sql::rows(
        c,
        "SELECT r.name,
             ARRAY(SELECT t.name FROM tags t WHERE t.repo_id = r.id ORDER BY t.name),
             (SELECT count(*) FROM manifests m WHERE m.repo_id = r.id),
             ARRAY(SELECT digest FROM manifests WHERE repo_id = r.id
                   UNION SELECT digest FROM manifest_refs WHERE repo_id = r.id
                   UNION SELECT digest FROM blob_links WHERE repo_id = r.id
                   ORDER BY 1)
         FROM repositories r ORDER BY r.name",
        &[],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| RepositoryUsage {
            name: r.get(0),
            tags: r.get(1),
            manifests: sql::unsigned(r.get(2)),
            digests: r.get(3),
        })
        .collect())
}
