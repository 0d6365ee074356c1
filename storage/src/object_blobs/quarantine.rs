//! Taking a blob out of service: copy it to `berth/quarantine/`, then
//! delete it. Object stores cannot rename, so for a moment both exist; a
//! failure in between leaves the blob served, and retrying is safe.

use super::Shared;
use super::commit::COPY_MAX;
use super::layout::{blob_path, quarantine_path};
use super::not_found;
use super::writer::{PIECE, PIECES_IN_FLIGHT};
use crate::{Digest, Result, StorageError};
use futures::StreamExt as _;
use object_store::ObjectStoreExt as _;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt as _;

/// Moves the blob to its quarantine key; `false` when it was not there. An
/// earlier quarantined copy of the same digest is replaced.
pub(super) async fn quarantine(shared: &Shared, digest: &Digest) -> Result<bool> {
    let blob = blob_path(digest);
    let size = match shared.store.head(&blob).await {
        Ok(meta) => meta.size,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let target = quarantine_path(digest);
    let copied = if size <= COPY_MAX {
        shared.store.copy(&blob, &target).await.map_err(not_found)
    } else {
        stream_copy(shared, &blob, &target).await
    };
    match copied {
        Ok(()) => {}
        // Deleted (or quarantined) since the HEAD.
        Err(StorageError::NotFound) => return Ok(false),
        Err(e) => return Err(e),
    }
    match shared.store.delete(&blob).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(true)
}

/// Copies an object too large for one server-side copy (S3: 5 GiB) by
/// streaming it through a multipart upload.
pub(super) async fn stream_copy(shared: &Shared, from: &Path, to: &Path) -> Result<()> {
    let mut bytes = shared
        .store
        .get(from)
        .await
        .map_err(not_found)?
        .into_stream();
    let mut writer = BufWriter::with_capacity(Arc::clone(&shared.store), to.clone(), PIECE)
        .with_max_concurrency(PIECES_IN_FLIGHT);
    let copied = async {
        while let Some(piece) = bytes.next().await {
            writer.put(piece.map_err(not_found)?).await?;
        }
        Ok::<_, StorageError>(())
    }
    .await;
    if let Err(e) = copied {
        if let Err(abort) = writer.abort().await {
            tracing::warn!(key = %to, error = %abort, "aborting a failed quarantine copy");
        }
        return Err(e);
    }
    writer.shutdown().await?;
    Ok(())
}
