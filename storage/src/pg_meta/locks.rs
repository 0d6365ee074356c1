//! Advisory lock keys. PostgreSQL's two-key form `(class, key)` keeps each
//! kind of lock in its own space, apart from the one-key form other
//! applications on the same database might use.

/// Held (transaction-level) by whoever migrates the schema.
pub(super) const MIGRATION_LOCK: (i32, i32) = (0x4265_7274, 0);
/// Class of a holder's session lock; the key is `hashtext(holder id)`.
pub(super) const HOLDER_CLASS: i32 = 0x4265_7275;
/// Class of a digest's transaction lock; the key is `hashtext(digest)`.
pub(super) const DIGEST_CLASS: i32 = 0x4265_7276;

/// Takes the transaction-level locks of `digests` (in key order, so two
/// transactions locking overlapping sets cannot deadlock on them).
///
/// Why: SQLite runs one writer at a time, so a collector's condemn (check
/// unreferenced, remove links, tombstone) never interleaves with a push
/// that links, pins or names the same blob. Here transactions run
/// concurrently at READ COMMITTED; a condemn and a manifest push could each
/// miss the other's uncommitted rows and both commit, leaving a manifest
/// naming bytes about to be deleted. Row locks cannot cover it (the rows
/// that would conflict may not exist yet), and SERIALIZABLE would make
/// every push retry under contention. So every transaction that adds a hold
/// on a digest (link, mount, pin, manifest put: its digest and each
/// reference) and every one that condemns or buries it first takes this
/// per-digest lock: they serialize per digest, as SQLite's single writer
/// serialized them, and each statement after the lock sees what the
/// previous holder committed (READ COMMITTED takes a snapshot per
/// statement). Hash collisions only serialize a little more.
pub(super) async fn lock_digests(
    c: &impl deadpool_postgres::GenericClient,
    digests: &[&str],
) -> crate::Result<()> {
    let digests: Vec<&str> = digests.to_vec();
    let stmt = c
        .prepare_cached(
            "SELECT pg_advisory_xact_lock($1, k) FROM (
                 SELECT DISTINCT hashtext(d) AS k FROM unnest($2::text[]) AS d ORDER BY k
             ) AS keys",
        )
        .await
        .map_err(super::errors::db)?;
    c.execute(&stmt, &[&DIGEST_CLASS, &digests])
        .await
        .map_err(super::errors::db)?;
    Ok(())
}

/// Takes `digest`'s transaction lock if nobody holds it: false when a push
/// or another pass is working on the digest right now. Collectors use it
/// to skip such a digest (it stays queued for a later pass) instead of
/// queuing behind the push, the advisory-lock form of `SKIP LOCKED`.
pub(super) async fn try_lock_digest(
    c: &impl deadpool_postgres::GenericClient,
    digest: &str,
) -> crate::Result<bool> {
    let stmt = c
        .prepare_cached("SELECT pg_try_advisory_xact_lock($1, hashtext($2))")
        .await
        .map_err(super::errors::db)?;
    Ok(c.query_one(&stmt, &[&DIGEST_CLASS, &digest])
        .await
        .map_err(super::errors::db)?
        .get(0))
}
