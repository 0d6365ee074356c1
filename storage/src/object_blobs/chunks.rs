//! Chunk claims: how processes sharing a bucket agree on a session's bytes.
//!
//! A writer uploads its bytes to a part object of its own, then claims the
//! offset it started at by creating `chunks/<offset>` with `PutMode::Create`.
//! The store lets exactly one claim per offset succeed, so two processes
//! appending at once cannot both win: the loser gets `Conflict`. A session's
//! bytes are its claimed parts in offset order; claims never change until
//! the session is deleted, which is what lets `Sessions` cache them.

use super::Shared;
use super::layout::{SessionId, chunk_offset};
use super::not_found;
use crate::{Result, StorageError};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::{ObjectStoreExt as _, PutMode, PutPayload};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Claims fetched at once when a session's chunks are not cached.
const CLAIM_READS: usize = 8;

/// One claimed chunk: `len` bytes at `offset`, held in part object `part`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Chunk {
    pub offset: u64,
    pub part: Uuid,
    pub len: u64,
}

impl Chunk {
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A claim object's content. The part is named by its uuid, not its key,
/// so a claim stays valid whatever prefix the bucket is mounted under.
#[derive(Serialize, Deserialize)]
struct Claim {
    part: String,
    len: u64,
}

/// How much of a session `load` resolves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Only the last chunk: enough for the size.
    Last,
    /// Every chunk, checked to be contiguous from 0.
    All,
}

/// The session's chunks in offset order; `NotFound` for an unknown session.
pub(super) async fn load(shared: &Shared, id: &SessionId, scope: Scope) -> Result<Vec<Chunk>> {
    let started_at = id.started_at();
    let (started, offsets) = tokio::join!(shared.store.head(&started_at), list_offsets(shared, id));
    started.map_err(not_found)?;
    let offsets = offsets?;
    let wanted = match scope {
        Scope::Last => &offsets[offsets.len().saturating_sub(1)..],
        Scope::All => &offsets[..],
    };
    let known = shared.sessions.chunks(id.as_str());
    let chunks: Vec<Chunk> = futures::stream::iter(wanted.iter().copied())
        .map(|offset| {
            let cached = known.get(&offset).cloned();
            async move {
                match cached {
                    Some(chunk) => Ok::<_, StorageError>(chunk),
                    None => {
                        let chunk = read_claim(shared, id, offset).await?;
                        shared.sessions.remember(id.as_str(), chunk.clone());
                        Ok(chunk)
                    }
                }
            }
        })
        .buffered(CLAIM_READS)
        .try_collect()
        .await?;
    if scope == Scope::All {
        check_contiguous(id, &chunks)?;
    }
    Ok(chunks)
}

/// Bytes in the session: where its last chunk ends.
pub(super) fn size(chunks: &[Chunk]) -> u64 {
    chunks.last().map_or(0, Chunk::end)
}

async fn list_offsets(shared: &Shared, id: &SessionId) -> Result<Vec<u64>> {
    let mut offsets: Vec<u64> = shared
        .store
        .list(Some(&id.chunks_dir()))
        .try_filter_map(|meta| async move {
            let offset = chunk_offset(&meta.location);
            if offset.is_none() {
                tracing::warn!(key = %meta.location, "ignoring foreign object among chunk claims");
            }
            Ok(offset)
        })
        .try_collect()
        .await?;
    // Listing order is the store's business; offsets are ours.
    offsets.sort_unstable();
    Ok(offsets)
}

fn check_contiguous(id: &SessionId, chunks: &[Chunk]) -> Result<()> {
    let mut end = 0u64;
    for chunk in chunks {
        if chunk.offset != end {
            return Err(StorageError::Backend(format!(
                "upload {id}: chunk at {} but the bytes before it end at {end}",
                chunk.offset
            )));
        }
        end = chunk.offset.checked_add(chunk.len).ok_or_else(|| {
            StorageError::Backend(format!("upload {id}: chunk at {end} overflows"))
        })?;
    }
    Ok(())
}

async fn read_claim(shared: &Shared, id: &SessionId, offset: u64) -> Result<Chunk> {
    // A listed claim that vanished means the session is being deleted.
    let body = shared
        .store
        .get(&id.chunk(offset))
        .await
        .map_err(not_found)?
        .bytes()
        .await
        .map_err(not_found)?;
    let corrupt = |why: String| {
        StorageError::Backend(format!("upload {id}: corrupt claim at {offset}: {why}"))
    };
    let claim: Claim = serde_json::from_slice(&body).map_err(|e| corrupt(e.to_string()))?;
    let part = Uuid::try_parse(&claim.part).map_err(|e| corrupt(e.to_string()))?;
    Ok(Chunk {
        offset,
        part,
        len: claim.len,
    })
}

/// Claims `chunk.offset` for the part `chunk.part`, already uploaded.
///
/// On `Conflict` (another writer claimed the offset first) or `NotFound`
/// (the session was deleted meanwhile) the part is deleted; on other errors
/// it is kept, since the claim may have landed after all.
pub(super) async fn claim(shared: &Shared, id: &SessionId, chunk: &Chunk) -> Result<()> {
    let key = id.chunk(chunk.offset);
    let body = serde_json::to_vec(&Claim {
        part: chunk.part.hyphenated().to_string(),
        len: chunk.len,
    })
    .map_err(|e| StorageError::Backend(format!("encoding claim: {e}")))?;
    let put = shared
        .store
        .put_opts(&key, PutPayload::from(body), PutMode::Create.into())
        .await;
    if let Err(error) = put {
        // A retried request may have created our claim on its first try:
        // the claim is ours exactly when it names our part.
        match read_claim(shared, id, chunk.offset).await {
            Ok(existing) if existing.part == chunk.part => {}
            Ok(_) => {
                delete_part(shared, id, chunk).await;
                return Err(StorageError::Conflict(format!(
                    "upload {id}: another writer appended at offset {} first",
                    chunk.offset
                )));
            }
            Err(StorageError::NotFound)
                if matches!(error, object_store::Error::AlreadyExists { .. }) =>
            {
                // Claimed and gone again: the session was deleted.
                delete_part(shared, id, chunk).await;
                return Err(StorageError::NotFound);
            }
            Err(_) => return Err(error.into()),
        }
    }
    // Abort and commit delete `startedat` before listing what to delete, so
    // a claim made after that listing sees the session gone here and cleans
    // up after itself.
    match shared.store.head(&id.started_at()).await {
        Ok(_) => {}
        Err(object_store::Error::NotFound { .. }) => {
            if let Err(e) = shared.store.delete(&key).await {
                tracing::warn!(upload = %id, error = %e, "removing claim of a deleted session");
            }
            delete_part(shared, id, chunk).await;
            return Err(StorageError::NotFound);
        }
        // The claim stands; the check only guards against a racing abort.
        Err(e) => tracing::warn!(upload = %id, error = %e, "session check after claim failed"),
    }
    shared.sessions.remember(id.as_str(), chunk.clone());
    Ok(())
}

/// Removes an unclaimed part; failures only leave garbage in the session.
pub(super) async fn delete_part(shared: &Shared, id: &SessionId, chunk: &Chunk) {
    if let Err(e) = shared.store.delete(&id.part(&chunk.part)).await {
        tracing::warn!(upload = %id, error = %e, "removing unclaimed part");
    }
}

/// Deletes every object of a session, `startedat` first (see `claim`).
pub(super) async fn delete_session(shared: &Shared, id: &SessionId) -> Result<()> {
    match shared.store.delete(&id.started_at()).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let keys = shared
        .store
        .list(Some(&id.dir()))
        .map_ok(|meta| meta.location)
        .boxed();
    let mut deleted = shared.store.delete_stream(keys);
    while let Some(result) = deleted.next().await {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
