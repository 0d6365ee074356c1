//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>` (end-2, end-10).

use super::{Call, cache};
use crate::error;
use crate::http::{Body, Response};
use crate::storage::upstream::FetchedBlob;
use crate::storage::{blobs, metadata};
use berth_oci::range;
use berth_oci::{ApiError, Digest};

/// Serves a blob, or the part a `Range` header selects. The bytes are
/// spliced from the store's reader into the response by `http::send`.
pub fn get(call: &Call) -> Result<Response, ApiError> {
    let (req, name, digest, head) = (call.req, call.name()?, call.digest()?, call.head);
    let unknown = || ApiError::BlobUnknown(digest.to_string());
    // A blob is served only through a repository that links it: the store is
    // shared, but repositories are the unit of visibility.
    if !metadata::blob_linked(name, digest.as_str())? {
        return match cache::mirror_of(name)? {
            Some(mirror) => fetched(digest, head, cache::blob(name, digest, &mirror)?),
            None => Err(unknown()),
        };
    }
    // With redirects configured the client fetches the bytes straight from
    // the object store; HEAD is still answered here, it moves no bytes.
    if !head
        && let Some(url) = blobs::redirect(digest.as_str())
            .map_err(|e| error::from_storage("blob redirect", e, unknown()))?
    {
        return Ok(Response::new(307)
            .header("location", url)
            .header("docker-content-digest", digest.as_str()));
    }
    let size = blobs::stat(digest.as_str())
        .map_err(|e| error::from_storage("blob stat", e, unknown()))?
        .ok_or_else(unknown)?;

    // Ranges the header syntax does not allow are ignored (RFC 9110 §14.2),
    // well-formed ones that select nothing are a 416.
    let (status, offset, len) = match req.header("range").and_then(range::parse_range) {
        None => (200, 0, size),
        Some(r) => match range::resolve(r, size) {
            Some((offset, len)) => (206, offset, len),
            None => return Err(ApiError::RangeNotSatisfiable { size }),
        },
    };
    let mut resp = Response::new(status)
        .header("content-type", "application/octet-stream")
        .header("docker-content-digest", digest.as_str())
        .header("accept-ranges", "bytes");
    if status == 206 {
        resp = resp.header("content-range", range::content_range(offset, len, size));
    }
    let body = if head || len == 0 {
        Body::Head { len }
    } else {
        // Open the reader before anything is sent, so a failure here is
        // still a clean error response.
        let stream = blobs::read(digest.as_str(), offset, len)
            .map_err(|e| error::from_storage("blob read", e, unknown()))?;
        Body::Stream { stream, len }
    };
    Ok(resp.body(body))
}

/// A blob on its way from an upstream, whole (a `Range` is ignored, as
/// HTTP allows: the bytes are not stored yet).
fn fetched(digest: &Digest, head: bool, blob: FetchedBlob) -> Result<Response, ApiError> {
    let resp = Response::new(200)
        .header("content-type", "application/octet-stream")
        .header("docker-content-digest", digest.as_str());
    let body = match (blob.size, head) {
        (Some(len), true) => Body::Head { len },
        (Some(len), false) => Body::Stream {
            stream: blob.body,
            len,
        },
        (None, true) => Body::Unsized(None),
        (None, false) => Body::Unsized(Some(blob.body)),
    };
    Ok(resp.body(body))
}

/// Unlinks the blob from the repository. The bytes stay in the shared store
/// (other repositories may link them); reclaiming them is the store's job.
pub fn delete(call: &Call) -> Result<Response, ApiError> {
    let (name, digest) = (call.name()?, call.digest()?);
    cache::refuse_writes(name)?;
    if metadata::unlink_blob(name, digest.as_str())? {
        Ok(Response::new(202).header("docker-content-digest", digest.as_str()))
    } else {
        Err(ApiError::BlobUnknown(digest.to_string()))
    }
}
