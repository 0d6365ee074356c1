//! Storing a manifest: its exact bytes as a blob through an upload session,
//! then its metadata record and tags. Shared by pushes and by the
//! pull-through cache, which stores what an upstream sent the same way.

use crate::error::{self, describe};
use crate::http;
use crate::storage::blobs::Upload;
use crate::storage::metadata::{self, ManifestInfo};
use crate::storage::types::StorageError;
use berth_oci::ApiError;
use berth_oci::Digest;
use berth_oci::manifest::Parsed;

/// Stores manifest `bytes` (hashing to `digest`, parsed as `parsed`) in
/// repository `name` with `references` (what garbage collection keeps for
/// it), pointing each of `tags` at it, and returns its record.
pub fn record(
    name: &str,
    digest: &Digest,
    bytes: &[u8],
    parsed: &Parsed,
    references: &[String],
    tags: &[&str],
) -> Result<ManifestInfo, ApiError> {
    store_bytes(digest, bytes)?;
    let info = ManifestInfo {
        digest: digest.to_string(),
        media_type: parsed.media_type.to_owned(),
        size: bytes.len() as u64,
        artifact_type: parsed.artifact_type.clone(),
        subject: parsed.subject.clone(),
        annotations: parsed.annotations.clone(),
    };
    if tags.is_empty() {
        metadata::put_manifest(name, &info, references, None).map_err(not_stored)?;
    }
    // Storing a manifest that is already there only moves the tag, so one
    // call per tag is cheap and keeps each tag update atomic.
    for tag in tags {
        metadata::put_manifest(name, &info, references, Some(tag)).map_err(not_stored)?;
    }
    Ok(info)
}

/// Writes the manifest bytes to the blob store under `digest` (committing
/// bytes the store already holds is a no-op there).
fn store_bytes(digest: &Digest, bytes: &[u8]) -> Result<(), ApiError> {
    let upload = Upload::create()?;
    write_and_commit(&upload, digest, bytes).inspect_err(|_| {
        if let Err(e) = upload.abort() {
            eprintln!("berth-guest: aborting manifest upload: {}", describe(&e));
        }
    })
}

fn write_and_commit(upload: &Upload, digest: &Digest, bytes: &[u8]) -> Result<(), ApiError> {
    let failed = |e| error::unexpected("storing manifest", e);
    let sink = upload.sink().map_err(failed)?;
    http::write_all(&sink, bytes).map_err(|why| error::internal("storing manifest", why))?;
    // The store requires the sink gone before `commit`.
    drop(sink);
    upload.commit(digest.as_str()).map(|_| ()).map_err(failed)
}

/// Why the store refused a manifest: the checks above passed, but a
/// reference left the repository before the manifest was stored (garbage
/// collection took it), or collection condemned the manifest's own bytes.
/// Either way nothing was stored and the client may push again.
fn not_stored(err: StorageError) -> ApiError {
    match err {
        StorageError::Invalid(why) => ApiError::ManifestBlobUnknown(why),
        StorageError::Conflict(_) => ApiError::UploadBusy,
        other => other.into(),
    }
}
