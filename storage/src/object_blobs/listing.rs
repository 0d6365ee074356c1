//! Listing what the bucket holds: committed blobs and upload sessions.
//!
//! Blobs come straight from one recursive LIST of registry:2's blob prefix,
//! streamed page by page (1,000 keys a request on S3); only keys the store
//! itself would read count, so foreign objects under the prefix are
//! skipped. Sessions are one delimited LIST of `berth/uploads/` plus a GET
//! of each session's `startedat`.

use super::Shared;
use super::layout::{SessionId, blobs_dir, listed_blob, uploads_dir};
use crate::{BlobEntry, BlobListing, Result, StorageError, UploadEntry};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt as _};

/// `startedat` objects fetched at once.
const STARTED_READS: usize = 16;

/// Streams every committed blob; size and time come from the listing.
pub(super) fn list_blobs(store: &dyn ObjectStore) -> BlobListing {
    store
        .list(Some(&blobs_dir()))
        .map_err(StorageError::from)
        .try_filter_map(|meta| async move { Ok(blob_entry(meta)) })
        .boxed()
}

fn blob_entry(meta: ObjectMeta) -> Option<BlobEntry> {
    let digest = listed_blob(&meta.location)?;
    Some(BlobEntry {
        digest,
        size: meta.size,
        modified: unix_seconds(&meta),
    })
}

fn unix_seconds(meta: &ObjectMeta) -> u64 {
    u64::try_from(meta.last_modified.timestamp()).unwrap_or(0)
}

/// Every session that still has its `startedat` (sessions being committed
/// or aborted lose it first, and are not sessions any more).
pub(super) async fn list_uploads(shared: &Shared) -> Result<Vec<UploadEntry>> {
    let listed = shared
        .store
        .list_with_delimiter(Some(&uploads_dir()))
        .await?;
    let ids: Vec<SessionId> = listed
        .common_prefixes
        .iter()
        .filter_map(|dir| SessionId::parse(dir.filename()?).ok())
        .collect();
    futures::stream::iter(ids)
        .map(|id| started(shared, id))
        .buffer_unordered(STARTED_READS)
        .try_filter_map(|entry| async move { Ok(entry) })
        .try_collect()
        .await
}

/// A session's start: what its `startedat` says, or when that object was
/// written if its content is not a number.
async fn started(shared: &Shared, id: SessionId) -> Result<Option<UploadEntry>> {
    let got = match shared.store.get(&id.started_at()).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let written = unix_seconds(&got.meta);
    let body = match got.bytes().await {
        Ok(body) => body,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let recorded = std::str::from_utf8(&body)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    Ok(Some(UploadEntry {
        id: id.as_str().to_owned(),
        started_at: recorded.unwrap_or(written),
    }))
}
