//! Ranged reads of committed blobs: one GET, streamed.

use super::layout::blob_path;
use super::not_found;
use crate::{BlobReader, Digest, Result, StorageError};
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt as _};
use std::io;

/// Network reads arrive in small frames; whatever is already buffered is
/// merged into chunks of up to this size, so consumers handle fewer pieces
/// without waiting for more bytes than have arrived.
const MERGE: usize = 1 << 20;

fn outside(offset: u64, length: u64, size: u64) -> StorageError {
    // Refused rather than served short: the caller announced a length.
    StorageError::Invalid(format!(
        "range {offset}+{length} outside blob of {size} bytes"
    ))
}

/// Streams `length` bytes of `digest` from `offset`. The GET's response
/// carries the blob's size, so a valid range costs one round trip.
pub(super) async fn read(
    store: &dyn ObjectStore,
    digest: &Digest,
    offset: u64,
    length: u64,
) -> Result<BlobReader> {
    let path = blob_path(digest);
    let Some(end) = offset.checked_add(length) else {
        return Err(outside(offset, length, u64::MAX));
    };
    if length == 0 {
        // HTTP has no empty range: only check the blob and the offset.
        let meta = store.head(&path).await.map_err(not_found)?;
        if offset > meta.size {
            return Err(outside(offset, length, meta.size));
        }
        return Ok(crate::single_chunk(Bytes::new()));
    }
    let options = GetOptions {
        range: Some(GetRange::Bounded(offset..end)),
        ..GetOptions::default()
    };
    match store.get_opts(&path, options).await {
        Ok(got) if got.range == (offset..end) => Ok(merged(got.into_stream())),
        // Stores clip a range running past the end.
        Ok(got) => Err(outside(offset, length, got.meta.size)),
        Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
        // A range starting past the end fails in a store-specific way;
        // tell it apart from a real failure.
        Err(e) => match store.head(&path).await {
            Ok(meta) if end > meta.size => Err(outside(offset, length, meta.size)),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::NotFound),
            _ => Err(e.into()),
        },
    }
}

type Frames = BoxStream<'static, object_store::Result<Bytes>>;

/// Merges frames that are ready together (see [`MERGE`]); an error is
/// reported after the bytes that preceded it.
fn merged(frames: Frames) -> BlobReader {
    futures::stream::unfold(
        (Some(frames), None::<io::Error>),
        |(frames, held)| async move {
            if let Some(e) = held {
                return Some((Err(e), (None, None)));
            }
            let mut frames = frames?;
            let first = match frames.next().await? {
                Ok(bytes) => bytes,
                Err(e) => return Some((Err(to_io(e)), (None, None))),
            };
            let (mut batch, mut total) = (vec![first.clone()], first.len());
            let (mut rest, mut held) = (Some(frames), None);
            while total < MERGE {
                let Some(ready) = rest.as_mut().and_then(|f| f.next().now_or_never()) else {
                    break;
                };
                match ready {
                    Some(Ok(bytes)) => {
                        total += bytes.len();
                        batch.push(bytes);
                    }
                    Some(Err(e)) => (rest, held) = (None, Some(to_io(e))),
                    None => rest = None,
                }
            }
            let chunk = if batch.len() == 1 {
                first
            } else {
                let mut merged = BytesMut::with_capacity(total);
                batch.iter().for_each(|b| merged.extend_from_slice(b));
                merged.freeze()
            };
            Some((Ok(chunk), (rest, held)))
        },
    )
    .boxed()
}

fn to_io(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        e => io::Error::other(e),
    }
}
