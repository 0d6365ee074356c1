//! `berth fsck`: re-hashes every blob and checks that everything the
//! metadata names exists; `--repair` quarantines corrupt blobs and drops
//! dangling references.

use crate::backends::Backends;
use berth_storage::{BlobEntry, Digest, Reference, StorageError};
use futures::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct FsckReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    /// Blobs whose bytes do not hash to their name: (digest, actual).
    pub corrupt: Vec<(String, String)>,
    /// Metadata entries naming a blob the store does not hold.
    pub dangling: Vec<Reference>,
    /// Whether the problems above were repaired.
    pub repaired: bool,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.dangling.is_empty()
    }
}

/// Checks the whole store; progress goes to stderr when `progress` is set.
pub async fn run(
    backends: &Backends,
    repair: bool,
    progress: bool,
) -> Result<FsckReport, StorageError> {
    let entries: Vec<BlobEntry> = backends.blobs.list_blobs().await?.try_collect().await?;
    let total_bytes: u64 = entries.iter().map(|e| e.size).sum();
    let mut report = FsckReport {
        repaired: repair,
        ..FsckReport::default()
    };
    let mut present = HashSet::with_capacity(entries.len());
    let mut last_draw = Instant::now();
    for entry in &entries {
        // Deleted since the listing (a collector at work): nothing to check.
        let Some(actual) = hash_blob(backends, &entry.digest, entry.size).await? else {
            continue;
        };
        report.blobs_checked += 1;
        report.bytes_checked += entry.size;
        if actual == entry.digest.to_string() {
            present.insert(entry.digest.to_string());
        } else {
            tracing::warn!(digest = %entry.digest, %actual, "corrupt blob");
            if repair {
                backends.blobs.quarantine(&entry.digest).await?;
            }
            report.corrupt.push((entry.digest.to_string(), actual));
        }
        if progress && last_draw.elapsed() >= PROGRESS_EVERY {
            draw(&report, entries.len(), total_bytes);
            last_draw = Instant::now();
        }
    }
    if progress {
        draw(&report, entries.len(), total_bytes);
        eprintln!();
    }
    if let Some(gc) = backends.metadata.inventory() {
        for reference in gc.references().await? {
            if present.contains(reference.digest())
                || committed_since_listing(backends, reference.digest(), &report).await?
            {
                continue;
            }
            if repair {
                gc.drop_reference(&reference).await?;
            }
            report.dangling.push(reference);
        }
    } else {
        tracing::warn!("this metadata backend cannot list its references; checked blobs only");
    }
    Ok(report)
}

/// A push may have committed a blob (and referenced it) after the listing;
/// only a blob absent now is dangling. Corrupt ones count as absent.
async fn committed_since_listing(
    backends: &Backends,
    digest: &str,
    report: &FsckReport,
) -> Result<bool, StorageError> {
    if report.corrupt.iter().any(|(d, _)| d == digest) {
        return Ok(false);
    }
    let Ok(parsed) = digest.parse::<Digest>() else {
        return Ok(false);
    };
    Ok(backends.blobs.stat(&parsed).await?.is_some())
}

/// The digest the blob's bytes hash to, read as a stream; `None` when it
/// was deleted since the listing. A blob shorter than listed is
/// "unreadable".
async fn hash_blob(
    backends: &Backends,
    digest: &Digest,
    size: u64,
) -> Result<Option<String>, StorageError> {
    let mut hasher = Sha256::new();
    let mut chunks = match backends.blobs.read(digest, 0, size).await {
        Ok(chunks) => chunks,
        Err(StorageError::NotFound) => return Ok(None),
        Err(StorageError::Invalid(_)) => return Ok(Some("unreadable".to_owned())),
        Err(e) => return Err(e),
    };
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => hasher.update(&bytes),
            Err(e) => {
                tracing::warn!(%digest, error = %e, "blob read failed");
                return Ok(Some("unreadable".to_owned()));
            }
        }
    }
    Ok(Some(format!("sha256:{}", hex::encode(hasher.finalize()))))
}

fn draw(report: &FsckReport, total: usize, total_bytes: u64) {
    let percent = (report.bytes_checked * 100)
        .checked_div(total_bytes)
        .unwrap_or(100);
    let filled = (percent / 4) as usize;
    eprint!(
        "\rfsck [{}{}] {percent:>3}%  {}/{} blobs, {} MiB, {} corrupt",
        "#".repeat(filled),
        " ".repeat(25 - filled.min(25)),
        report.blobs_checked,
        total,
        report.bytes_checked >> 20,
        report.corrupt.len()
    );
    let _ = std::io::stderr().flush();
}
