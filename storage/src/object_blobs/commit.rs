//! Committing a session: verify its digest, then make its bytes the blob.
//!
//! The digest comes from the running hash when this process wrote the
//! session, and otherwise from re-reading (streaming) the chunks it does not
//! cover. Only verified bytes are published: one part is copied server-side,
//! several are streamed into a multipart upload, which stays invisible until
//! it completes.

use super::Shared;
use super::chunks::{self, Chunk};
use super::layout::{SessionId, blob_path};
use super::sessions::HashState;
use super::writer::{PIECE, PIECES_IN_FLIGHT};
use crate::{Digest, Result, StorageError};
use futures::StreamExt as _;
use object_store::buffered::BufWriter;
use object_store::{ObjectStoreExt as _, PutPayload};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use tokio::io::AsyncWriteExt as _;

/// S3 copies objects up to 5 GiB server-side in one request.
pub(super) const COPY_MAX: u64 = 5 << 30;
/// Pieces of a concatenated blob, kept under S3's limit of 10,000.
const MAX_PIECES: u64 = 9_000;

/// Verifies the session against `expected`, publishes it and deletes the
/// session; the caller holds its lease.
pub(super) async fn commit(shared: &Shared, id: &SessionId, expected: &Digest) -> Result<u64> {
    let chunks = chunks::load(shared, id, chunks::Scope::All).await?;
    let size = chunks::size(&chunks);
    let actual = digest(shared, id, &chunks).await?;
    if &actual != expected {
        shared.sessions.forget(id.as_str());
        // The mismatch is what the client must hear; a failed clean-up
        // leaves garbage, not a usable session (`startedat` goes first).
        if let Err(e) = chunks::delete_session(shared, id).await {
            tracing::warn!(upload = %id, error = %e, "deleting a mismatched session");
        }
        return Err(StorageError::DigestMismatch {
            actual: actual.to_string(),
        });
    }
    let blob = blob_path(expected);
    match shared.store.head(&blob).await {
        // Identical bytes are already there (the digest says so): keep them.
        Ok(meta) if meta.size == size => {}
        Ok(meta) => {
            tracing::warn!(digest = %expected, stored = meta.size, size, "replacing a blob of the wrong size");
            publish(shared, id, &chunks, &blob).await?;
        }
        Err(object_store::Error::NotFound { .. }) => publish(shared, id, &chunks, &blob).await?,
        Err(e) => return Err(e.into()),
    }
    shared.sessions.forget(id.as_str());
    // The blob is durable and verified: leftovers are only garbage now.
    if let Err(e) = chunks::delete_session(shared, id).await {
        tracing::warn!(upload = %id, error = %e, "deleting a committed session");
    }
    tracing::debug!(digest = %expected, size, chunks = chunks.len(), "blob committed");
    Ok(size)
}

/// The digest of the session's bytes, re-reading what the running hash
/// does not cover.
async fn digest(shared: &Shared, id: &SessionId, chunks: &[Chunk]) -> Result<Digest> {
    let size = chunks::size(chunks);
    let (start, mut hasher) = match shared.sessions.hash(id.as_str()) {
        Some(state) if state.offset == size || chunks.iter().any(|c| c.offset == state.offset) => {
            (state.offset, state.hasher)
        }
        _ => (0, Sha256::new()),
    };
    let missing: Vec<&Chunk> = chunks.iter().filter(|c| c.offset >= start).collect();
    if !missing.is_empty() {
        tracing::debug!(upload = %id, from = start, chunks = missing.len(), "re-hashing chunks from the store");
    }
    for chunk in missing {
        let mut bytes = part_stream(shared, id, chunk).await?;
        while let Some(piece) = bytes.next().await {
            hasher.update(&piece?);
        }
    }
    // Keep the work if publishing fails and the client retries the commit.
    let state = HashState {
        offset: size,
        hasher: hasher.clone(),
    };
    shared.sessions.advance(id.as_str(), start, state);
    Ok(Digest::from_sha256(&hasher.finalize()))
}

/// A claimed part's bytes, failing if they are not as long as claimed.
async fn part_stream(
    shared: &Shared,
    id: &SessionId,
    chunk: &Chunk,
) -> Result<futures::stream::BoxStream<'static, Result<bytes::Bytes>>> {
    let missing = || {
        StorageError::Backend(format!(
            "upload {id}: part of chunk {} is missing",
            chunk.offset
        ))
    };
    let got = match shared.store.get(&id.part(&chunk.part)).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    if got.meta.size != chunk.len {
        return Err(StorageError::Backend(format!(
            "upload {id}: part of chunk {} has {} bytes, claimed {}",
            chunk.offset, got.meta.size, chunk.len
        )));
    }
    Ok(got.into_stream().map(|r| r.map_err(Into::into)).boxed())
}

async fn publish(
    shared: &Shared,
    id: &SessionId,
    chunks: &[Chunk],
    blob: &object_store::path::Path,
) -> Result<()> {
    match chunks {
        [] => {
            shared.store.put(blob, PutPayload::default()).await?;
        }
        [only] if only.len <= COPY_MAX => {
            shared.store.copy(&id.part(&only.part), blob).await?;
        }
        _ => concatenate(shared, id, chunks, blob).await?,
    }
    Ok(())
}

/// Streams the parts, in order, into one multipart upload of the blob.
async fn concatenate(
    shared: &Shared,
    id: &SessionId,
    chunks: &[Chunk],
    blob: &object_store::path::Path,
) -> Result<()> {
    let size = chunks::size(chunks);
    let piece = usize::try_from(size.div_ceil(MAX_PIECES))
        .unwrap_or(usize::MAX)
        .max(PIECE);
    let mut writer = BufWriter::with_capacity(Arc::clone(&shared.store), blob.clone(), piece)
        .with_max_concurrency(PIECES_IN_FLIGHT);
    let copied = async {
        for chunk in chunks {
            let mut bytes = part_stream(shared, id, chunk).await?;
            while let Some(piece) = bytes.next().await {
                writer.put(piece?).await?;
            }
        }
        Ok::<_, StorageError>(())
    }
    .await;
    if let Err(e) = copied {
        if let Err(abort) = writer.abort().await {
            tracing::warn!(digest = %blob, error = %abort, "aborting a failed concatenation");
        }
        return Err(e);
    }
    // On failure `BufWriter` aborts the multipart upload itself.
    writer.shutdown().await?;
    Ok(())
}
