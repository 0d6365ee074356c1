//! Blob upload sessions: `POST /v2/<name>/blobs/uploads/` (end-4, end-11) and
//! `PATCH`/`PUT`/`GET`/`DELETE /v2/<name>/blobs/uploads/<id>` (end-5, end-6,
//! end-13, end-14).
//!
//! The store owns sessions and their bytes (`blobs.upload`); the metadata
//! store records which repository each session belongs to, so that one
//! repository cannot touch another's uploads.

use super::{Call, cache};
use crate::error::{self, describe};
use crate::http::{self, Request, Response};
use crate::storage::blobs::Upload;
use crate::storage::types::StorageError;
use crate::storage::{blobs, metadata};
use berth_oci::ApiError;
use berth_oci::Digest;
use berth_oci::grammar;
use berth_oci::range;
use berth_oci::route;

fn session_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// The headers every response about a live session carries.
fn session_response(status: u16, name: &str, id: &str, size: u64) -> Response {
    Response::new(status)
        .header("location", session_location(name, id))
        .header("range", range::upload_range(size))
        .header("docker-upload-uuid", id)
}

/// 201 for a blob now present in `name`.
fn created(name: &str, digest: &Digest) -> Response {
    Response::new(201)
        .header("location", format!("/v2/{name}/blobs/{digest}"))
        .header("docker-content-digest", digest.as_str())
}

/// `POST /v2/<name>/blobs/uploads/`: mount, monolithic upload, or a new
/// session.
pub fn start(call: &Call) -> Result<Response, ApiError> {
    let (req, name, query) = (call.req, call.name()?, &call.query);
    cache::refuse_writes(name)?;
    // end-4c: only sha256 content can be stored here; say so up front rather
    // than after the client has sent the bytes.
    if let Some(algorithm) = query.get("digest-algorithm")
        && algorithm != "sha256"
    {
        return Err(ApiError::DigestInvalid(format!(
            "unsupported digest algorithm {algorithm:?}"
        )));
    }
    if let Some(mount) = query.get("mount") {
        let digest = route::digest_of(mount)?;
        // Mount only from a valid, named repository that links the blob.
        // Anything else falls through to a fresh session, which the spec
        // asks for ("SHOULD return a 202") when a mount is not possible.
        if let Some(from) = query.get("from").filter(|f| grammar::is_valid_name(f))
            && metadata::blob_linked(from, digest.as_str())?
            && blobs::stat(digest.as_str())?.is_some()
        {
            // A blob being garbage-collected cannot be mounted (`conflict`):
            // fall through to a fresh upload of it.
            match metadata::link_blob(name, digest.as_str()) {
                Ok(()) => return Ok(created(name, &digest)),
                Err(StorageError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    } else if let Some(d) = query.get("digest") {
        let digest = route::digest_of(d)?;
        return monolithic(req, name, &digest);
    }

    let upload = Upload::create()?;
    let id = upload.id();
    if let Err(e) = metadata::begin_upload(name, &id) {
        abort_quietly(&upload);
        return Err(e.into());
    }
    Ok(session_response(202, name, &id, 0))
}

/// `POST ...?digest=<d>` with the blob as body: one request, no session
/// visible to the client.
fn monolithic(req: &Request, name: &str, digest: &Digest) -> Result<Response, ApiError> {
    let upload = Upload::create()?;
    let committed = append_body(req, &upload).and_then(|_| commit(&upload, digest));
    if let Err(e) = committed {
        // A digest mismatch has already discarded the session.
        if !matches!(e, ApiError::DigestInvalid(_)) {
            abort_quietly(&upload);
        }
        return Err(e);
    }
    link_committed(name, digest)?;
    Ok(created(name, digest))
}

/// `PATCH <location>`: appends one chunk.
pub fn patch(call: &Call) -> Result<Response, ApiError> {
    let (req, name, id) = (call.req, call.name()?, call.upload_id()?);
    let upload = open_owned(name, id)?;
    check_chunk_range(req, &upload, name, id)?;
    append_body(req, &upload)?;
    let size = upload
        .size()
        .map_err(|e| error::from_upload("upload size", e))?;
    Ok(session_response(202, name, id, size))
}

/// `PUT <location>?digest=<d>`: optional final chunk, then commit.
pub fn put(call: &Call) -> Result<Response, ApiError> {
    let (req, name, id) = (call.req, call.name()?, call.upload_id()?);
    let digest = call
        .query
        .get("digest")
        .ok_or_else(|| ApiError::DigestInvalid("digest query parameter required".into()))?;
    let digest = route::digest_of(digest)?;
    let upload = open_owned(name, id)?;
    check_chunk_range(req, &upload, name, id)?;
    append_body(req, &upload)?;
    if let Err(e) = commit(&upload, &digest) {
        if matches!(e, ApiError::DigestInvalid(_)) {
            // The store discarded the session; forget its owner too.
            end_quietly(id);
        }
        return Err(e);
    }
    // The committed session no longer exists in the store, whatever happens
    // next: forget its owner first so a failed link leaves nothing stale.
    end_quietly(id);
    link_committed(name, &digest)?;
    Ok(created(name, &digest))
}

/// `GET <location>`: where the session stands.
pub fn status(call: &Call) -> Result<Response, ApiError> {
    let (name, id) = (call.name()?, call.upload_id()?);
    let upload = open_owned(name, id)?;
    let size = upload
        .size()
        .map_err(|e| error::from_upload("upload size", e))?;
    Ok(session_response(204, name, id, size))
}

/// `DELETE <location>`: discards the session.
pub fn cancel(call: &Call) -> Result<Response, ApiError> {
    let (name, id) = (call.name()?, call.upload_id()?);
    let upload = open_owned(name, id)?;
    upload
        .abort()
        .map_err(|e| error::from_upload("upload abort", e))?;
    end_quietly(id);
    Ok(Response::new(204))
}

/// Opens session `id` if it belongs to repository `name`. A session of
/// another repository is reported as unknown, not forbidden, so ids do not
/// leak across repositories.
fn open_owned(name: &str, id: &str) -> Result<Upload, ApiError> {
    match metadata::upload_repository(id)? {
        Some(owner) if owner == name => {}
        _ => return Err(ApiError::BlobUploadUnknown),
    }
    Upload::open(id).map_err(|e| {
        if matches!(e, StorageError::NotFound) {
            // The store lost the session (e.g. aborted elsewhere): drop the
            // stale ownership record as well.
            end_quietly(id);
        }
        error::from_upload("upload open", e)
    })
}

/// A chunk's optional `Content-Range` must start where the session ends and
/// agree with `Content-Length`. Violations are 416 (end-5/end-6 list 416,
/// not 400) with the session's location and current range, so the client
/// can resume.
fn check_chunk_range(req: &Request, upload: &Upload, name: &str, id: &str) -> Result<(), ApiError> {
    let Some(value) = req.header("content-range") else {
        return Ok(());
    };
    let size = upload
        .size()
        .map_err(|e| error::from_upload("upload size", e))?;
    if range::chunk_fits(value, size, req.content_length()) {
        Ok(())
    } else {
        Err(ApiError::UploadOutOfOrder {
            location: session_location(name, id),
            size,
        })
    }
}

/// Splices the request body into the session. The sink is flushed and
/// dropped before returning, as the store requires before `size`/`commit`.
fn append_body(req: &Request, upload: &Upload) -> Result<u64, ApiError> {
    let body = req.body()?;
    let sink = upload
        .sink()
        .map_err(|e| error::from_upload("upload sink", e))?;
    let moved = http::splice_all(&sink, body.stream()).map_err(|e| {
        // The store still takes writes, so it was the request body that
        // failed: the client sent less than it declared, or went away.
        if sink.check_write().is_ok() {
            ApiError::SizeInvalid("the request body ended before its declared length".into())
        } else {
            store_refused(upload, "upload append", e)
        }
    })?;
    sink.blocking_flush()
        .map_err(|e| store_refused(upload, "upload flush", format!("{e:?}")))?;
    drop(sink);
    drop(body);
    Ok(moved)
}

/// The store stopped taking the session's bytes; a stream error says only
/// that. Asking the session how it stands tells a store that is down for
/// now (`unavailable`: a 503 the client may retry, the host logged why)
/// from one that failed for good (a 500).
fn store_refused(upload: &Upload, context: &str, why: String) -> ApiError {
    match upload.size() {
        Err(err @ StorageError::Unavailable(_)) => error::unexpected(context, err),
        _ => error::internal(context, why),
    }
}

/// Commits the session as `digest`.
fn commit(upload: &Upload, digest: &Digest) -> Result<u64, ApiError> {
    upload
        .commit(digest.as_str())
        .map_err(|e| error::from_upload("upload commit", e))
}

/// Abort on an error path; the original error is what the client needs.
fn abort_quietly(upload: &Upload) {
    if let Err(e) = upload.abort() {
        eprintln!(
            "berth-guest: aborting upload {}: {}",
            upload.id(),
            describe(&e)
        );
    }
}

/// Forgets a finished session's owner. Failing leaves only a stale record,
/// which must not turn a completed upload into an error.
fn end_quietly(id: &str) {
    if let Err(e) = metadata::end_upload(id) {
        eprintln!("berth-guest: ending upload {id}: {}", describe(&e));
    }
}

/// Links a just-committed blob into the repository. `conflict` means garbage
/// collection condemned that digest meanwhile: the client retries the upload.
fn link_committed(name: &str, digest: &Digest) -> Result<(), ApiError> {
    metadata::link_blob(name, digest.as_str()).map_err(|e| match e {
        StorageError::Conflict(_) => ApiError::UploadBusy,
        other => other.into(),
    })
}
