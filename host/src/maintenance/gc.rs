//! Online garbage collection: one pass over the review queue the metadata
//! keeps (see `berth_storage::GcMetadata`), safe to run while the registry
//! serves, from the server's background task or `berth gc`.
//!
//! A blob is deleted only after the metadata condemned it in one transaction
//! (unreferenced, unpinned, grace periods over, links removed, tombstone
//! written), so a concurrent push either keeps it (its commit pinned it, or
//! its manifest landed first) or fails cleanly and retries. A pass owns the
//! tombstones it writes through its lease; tombstones of a pass that died
//! after condemning are finished at the start of the next one, never while
//! their pass may still be deleting (docs/GC.md).
//!
//! Metadata without a review queue (registry:2's layout) gets the part of a
//! pass that needs none: abandoned upload sessions are purged, blobs stay.

use crate::backends::Backends;
use crate::config::GcConfig;
use berth_storage::{Digest, GcLease, GcMetadata, GracePeriods, StorageError};
use futures::TryStreamExt as _;
use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

/// Queue entries examined per batch.
const BATCH: u32 = 500;
/// Batches per pass: 10 million queue entries.
const MAX_BATCHES: usize = 20_000;
/// Digests handed to `gc_adopt` per transaction.
const ADOPT_BATCH: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What one pass did (or, dry, would do).
#[derive(Debug, Default)]
pub struct GcReport {
    /// Blobs removed, with their sizes.
    pub blobs: Vec<(String, u64)>,
    /// Untagged manifests deleted, as (repository, digest).
    pub manifests: Vec<(String, String)>,
    /// Abandoned upload sessions removed.
    pub uploads: Vec<String>,
    /// Upload owner records whose session was already gone, forgotten.
    pub stale_owners: u64,
    /// Blobs found in the store that the metadata did not know, now queued.
    pub adopted: u64,
    /// Deletions an interrupted pass had left, finished now.
    pub resumed: usize,
    /// Whether blobs were considered at all: `false` for metadata without a
    /// review queue, where a pass only purges uploads.
    pub collects_blobs: bool,
    /// Unreferenced blobs still inside their grace periods after the pass.
    pub waiting: Waiting,
}

/// Unreferenced blobs a later pass will take, once their grace periods
/// (`gc.grace`, `gc.upload_grace`) are over.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub blobs: u64,
    /// Their bytes, as far as the blob store still holds them.
    pub bytes: u64,
    /// When the first of them becomes collectable (unix seconds).
    pub next_due: Option<u64>,
}

impl GcReport {
    pub fn bytes_freed(&self) -> u64 {
        self.blobs.iter().map(|(_, size)| size).sum()
    }
}

/// The knobs of one pass.
#[derive(Debug, Clone, Copy)]
pub struct GcPass {
    pub grace: GracePeriods,
    pub untagged: bool,
    pub upload_max_age: u64,
    pub dry_run: bool,
}

impl GcPass {
    pub fn from_config(config: &GcConfig, dry_run: bool) -> Self {
        Self {
            grace: GracePeriods {
                unreferenced: config.grace.as_secs(),
                uploaded: config.upload_grace.as_secs(),
            },
            untagged: config.untagged,
            upload_max_age: config.upload_max_age.as_secs(),
            dry_run,
        }
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs one pass; `on_removed` sees each blob as it goes (for progress).
pub async fn run_pass(
    backends: &Backends,
    pass: GcPass,
    mut on_removed: impl FnMut(&str, u64),
) -> Result<GcReport, GcError> {
    let Some(gc) = backends.metadata.gc() else {
        let mut report = GcReport::default();
        purge_uploads(backends, pass, &mut report).await?;
        return Ok(report);
    };
    let mut report = GcReport {
        collects_blobs: true,
        ..GcReport::default()
    };
    // Held until the pass ends, however it ends. A dry run takes none: it
    // changes nothing, so it finishes nobody's deletions either.
    let lease = if pass.dry_run {
        None
    } else {
        let (lease, inherited) = gc.gc_begin().await?;
        report.resumed = inherited.len();
        for digest in &inherited {
            delete_bytes(backends, digest).await?;
            gc.gc_bury(&lease, digest).await?;
        }
        Some(lease)
    };
    if pass.untagged {
        collect_untagged(gc, pass, &mut report).await?;
    }
    let sizes = adopt_unknown(backends, gc, pass, &mut report).await?;
    match &lease {
        Some(lease) => {
            collect_due(
                backends,
                gc,
                lease,
                pass,
                &sizes,
                &mut report,
                &mut on_removed,
            )
            .await?
        }
        None => {
            for digest in gc.gc_due(now(), pass.grace, u32::MAX).await? {
                if !gc.gc_is_referenced(&digest).await? {
                    let size = sizes.get(&digest).copied().unwrap_or(0);
                    on_removed(&digest, size);
                    report.blobs.push((digest, size));
                }
            }
        }
    }
    report.waiting = waiting(gc, pass, &sizes).await?;
    purge_uploads(backends, pass, &mut report).await?;
    Ok(report)
}

/// What stays queued for later passes, in number, bytes and the first end
/// of a grace period.
async fn waiting(
    gc: &dyn GcMetadata,
    pass: GcPass,
    sizes: &HashMap<String, u64>,
) -> Result<Waiting, GcError> {
    let mut out = Waiting::default();
    for (digest, due) in gc.gc_waiting(now(), pass.grace).await? {
        out.blobs += 1;
        out.bytes += sizes.get(&digest).copied().unwrap_or(0);
        out.next_due = Some(out.next_due.map_or(due, |d| d.min(due)));
    }
    Ok(out)
}

async fn collect_untagged(
    gc: &dyn GcMetadata,
    pass: GcPass,
    report: &mut GcReport,
) -> Result<(), GcError> {
    let before = now().saturating_sub(pass.grace.unreferenced);
    for (repo, digest) in gc.gc_untagged(before).await? {
        // Deleting queues what it referenced (and its referrers follow it).
        if pass.dry_run || gc.gc_delete_untagged(&repo, &digest, before).await? {
            report.manifests.push((repo, digest));
        }
    }
    Ok(())
}

/// Lists the store, queues blobs the metadata never heard of, and returns
/// every blob's size.
async fn adopt_unknown(
    backends: &Backends,
    gc: &dyn GcMetadata,
    pass: GcPass,
    report: &mut GcReport,
) -> Result<HashMap<String, u64>, GcError> {
    let mut sizes = HashMap::new();
    let mut batch = Vec::with_capacity(ADOPT_BATCH);
    let mut listing = backends.blobs.list_blobs().await?;
    while let Some(entry) = listing.try_next().await? {
        let digest = entry.digest.to_string();
        sizes.insert(digest.clone(), entry.size);
        batch.push((digest, entry.modified));
        if batch.len() == ADOPT_BATCH && !pass.dry_run {
            report.adopted += gc.gc_adopt(&batch).await?;
            batch.clear();
        }
    }
    if !pass.dry_run && !batch.is_empty() {
        report.adopted += gc.gc_adopt(&batch).await?;
    }
    Ok(sizes)
}

async fn collect_due(
    backends: &Backends,
    gc: &dyn GcMetadata,
    lease: &GcLease,
    pass: GcPass,
    sizes: &HashMap<String, u64>,
    report: &mut GcReport,
    on_removed: &mut impl FnMut(&str, u64),
) -> Result<(), GcError> {
    // Every blob a batch returns leaves the due set: condemned, dequeued
    // (referenced after all) or protected again. A full batch means more may
    // be due; the bound only guards against a store that never settles.
    for _ in 0..MAX_BATCHES {
        let due = gc.gc_due(now(), pass.grace, BATCH).await?;
        for digest in &due {
            if !gc.gc_condemn(lease, digest, now(), pass.grace).await? {
                continue;
            }
            delete_bytes(backends, digest).await?;
            gc.gc_bury(lease, digest).await?;
            let size = sizes.get(digest).copied().unwrap_or(0);
            on_removed(digest, size);
            report.blobs.push((digest.clone(), size));
        }
        if due.len() < BATCH as usize {
            break;
        }
    }
    Ok(())
}

async fn delete_bytes(backends: &Backends, digest: &str) -> Result<(), GcError> {
    let parsed = Digest::parse(digest).map_err(StorageError::from)?;
    backends.blobs.delete(&parsed).await?;
    Ok(())
}

/// Removes upload sessions idle past the maximum age, with their data,
/// and owner records whose session is gone (a commit whose `end_upload`
/// failed, a session purged by hand).
async fn purge_uploads(
    backends: &Backends,
    pass: GcPass,
    report: &mut GcReport,
) -> Result<(), GcError> {
    // Owners first: a session exists before its owner is recorded, so an
    // owner listed now whose session the later listing lacks has ended.
    let owners = match backends.metadata.inventory() {
        Some(inventory) => inventory.upload_ids().await?,
        None => Vec::new(),
    };
    let sessions = backends.blobs.list_uploads().await?;
    let live: HashSet<&str> = sessions.iter().map(|u| u.id.as_str()).collect();
    for id in owners.iter().filter(|id| !live.contains(id.as_str())) {
        if !pass.dry_run {
            backends.metadata.end_upload(id).await?;
        }
        report.stale_owners += 1;
    }
    let cutoff = now().saturating_sub(pass.upload_max_age);
    for upload in sessions {
        if upload.started_at > cutoff {
            continue;
        }
        if !pass.dry_run {
            match backends.blobs.abort(&upload.id).await {
                Ok(()) | Err(StorageError::NotFound) => {}
                // In use right now: not abandoned after all.
                Err(StorageError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
            backends.metadata.end_upload(&upload.id).await?;
        }
        report.uploads.push(upload.id);
    }
    Ok(())
}
