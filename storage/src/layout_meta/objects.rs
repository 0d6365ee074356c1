//! The handful of object-store operations the layout is made of, with
//! object_store's `NotFound` turned into absence where absence is an answer.

use crate::{Digest, Result, StorageError};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutPayload};

/// A link holds one digest; anything longer is not a link.
const MAX_LINK: u64 = 1024;

/// The whole object at `path`, or `None` when absent. An object over
/// `limit` bytes is refused before its body is read.
pub(super) async fn read(
    store: &dyn ObjectStore,
    path: &Path,
    limit: u64,
) -> Result<Option<Bytes>> {
    let found = match store.get(path).await {
        Ok(found) => found,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if found.meta.size > limit {
        return Err(StorageError::Backend(format!(
            "{path} is {} bytes, over the {limit}-byte limit",
            found.meta.size
        )));
    }
    Ok(Some(found.bytes().await?))
}

/// The digest a link names, or `None` when there is no link.
pub(super) async fn read_link(store: &dyn ObjectStore, path: &Path) -> Result<Option<String>> {
    let Some(bytes) = read(store, path, MAX_LINK).await? else {
        return Ok(None);
    };
    // registry:2 writes the bare digest; tolerate a trailing newline from
    // hand-edited trees.
    let text = std::str::from_utf8(&bytes).map(str::trim).unwrap_or("");
    if Digest::parse_any(text).ok().is_none() {
        return Err(StorageError::Backend(format!(
            "{path} does not hold a digest"
        )));
    }
    Ok(Some(text.to_owned()))
}

/// Writes a link naming `digest`, replacing any previous one (links are
/// idempotent, and a tag's `current` link is last-writer-wins as in
/// registry:2).
pub(super) async fn write_link(store: &dyn ObjectStore, path: &Path, digest: &str) -> Result<()> {
    store
        .put(path, PutPayload::from(digest.as_bytes().to_vec()))
        .await?;
    Ok(())
}

/// Writes `bytes` at `path`, replacing whatever was there.
pub(super) async fn write(store: &dyn ObjectStore, path: &Path, bytes: Vec<u8>) -> Result<()> {
    store.put(path, PutPayload::from(bytes)).await?;
    Ok(())
}

/// Creates `path` holding `bytes` unless something is there already;
/// `false` when it was. Atomic across hosts on stores with conditional puts.
pub(super) async fn create(store: &dyn ObjectStore, path: &Path, bytes: Vec<u8>) -> Result<bool> {
    let put = store
        .put_opts(path, PutPayload::from(bytes), PutMode::Create.into())
        .await;
    match put {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether an object exists at `path`.
pub(super) async fn exists(store: &dyn ObjectStore, path: &Path) -> Result<bool> {
    match store.head(path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Deletes `path`. Absence is not an error: S3 does not report it, the
/// local filesystem does, and another host may have deleted it first.
pub(super) async fn delete(store: &dyn ObjectStore, path: &Path) -> Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes every path given, in bulk requests where the store has them.
pub(super) async fn delete_all(store: &dyn ObjectStore, paths: Vec<Path>) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let mut deleted = store.delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed());
    while let Some(result) = deleted.next().await {
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The names of the directories directly under `dir` (one listing request
/// on S3, whatever lies deeper).
pub(super) async fn child_dirs(store: &dyn ObjectStore, dir: &Path) -> Result<Vec<String>> {
    let listing = match store.list_with_delimiter(Some(dir)).await {
        Ok(listing) => listing,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_owned))
        .collect())
}

/// Every object key under `dir`, at any depth.
pub(super) async fn keys_under(store: &dyn ObjectStore, dir: &Path) -> Result<Vec<Path>> {
    let listed = store
        .list(Some(dir))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await;
    match listed {
        Ok(keys) => Ok(keys),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}
