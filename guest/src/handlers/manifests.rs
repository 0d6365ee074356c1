//! `PUT`/`GET`/`HEAD`/`DELETE /v2/<name>/manifests/<reference>` (end-3,
//! end-7, end-9).
//!
//! Manifests are small: a pushed one is read into guest memory (at most
//! [`MAX_MANIFEST_BYTES`]), hashed and validated here, then stored as a blob
//! through an upload session plus a metadata record. Pulls splice the stored
//! bytes back unchanged.
//!
//! The manifest's own digest is not linked as a blob of the repository:
//! registry:2 keeps manifests and layers apart too, so `/blobs/<digest>`
//! serves only uploaded or mounted blobs and deleting a "blob" can never
//! break a manifest.

use super::{Call, admission, cache, manifest_store};
use crate::error;
use crate::http::{self, Body, ReadError, Request, Response};
use crate::storage::blobs;
use crate::storage::metadata::{self, ManifestInfo};
use berth_oci::ApiError;
use berth_oci::Digest;
use berth_oci::grammar;
use berth_oci::manifest::{self, Kind, MAX_MANIFEST_BYTES};
use berth_oci::route::Reference;

/// `GET`/`HEAD`: by tag or digest, byte-for-byte as pushed.
pub fn get(call: &Call) -> Result<Response, ApiError> {
    let (req, name, reference) = (call.req, call.name()?, call.reference()?);
    let (info, fetched) = match cache::mirror_of(name)? {
        Some(mirror) => {
            let served = cache::manifest(name, reference, &mirror)?;
            cache::note_pull(name);
            served
        }
        None => (lookup(name, reference)?, None),
    };
    // A client that lists only types other than the stored one gets a 404,
    // as from registry:2 (no conversion between manifest formats here).
    if !manifest::accepts(req.headers("accept"), &info.media_type) {
        return Err(ApiError::ManifestUnknown);
    }
    let len = info.size;
    let body = if call.head || len == 0 {
        Body::Head { len }
    } else if let Some(bytes) = fetched {
        Body::Bytes(bytes)
    } else {
        let stream = blobs::read(&info.digest, 0, len)
            .map_err(|e| error::from_storage("manifest read", e, ApiError::ManifestUnknown))?;
        Body::Stream { stream, len }
    };
    Ok(Response::new(200)
        .header("content-type", info.media_type)
        .header("docker-content-digest", info.digest)
        .body(body))
}

/// `PUT`: validate, store bytes, record metadata, tag.
pub fn put(call: &Call) -> Result<Response, ApiError> {
    let (req, name, reference) = (call.req, call.name()?, call.reference()?);
    cache::refuse_writes(name)?;
    // Tags to point at the manifest: the path's tag, or (end-7b, by digest
    // only) any `?tag=` parameters. All are checked before reading the body.
    let query_tags: Vec<&str> = match reference {
        Reference::Digest(_) => call.query.all("tag").collect(),
        Reference::Tag(_) => Vec::new(),
    };
    if !query_tags.iter().all(|t| grammar::is_valid_tag(t)) {
        return Err(ApiError::TagInvalid);
    }
    let mut tags: Vec<&str> = query_tags.clone();
    if let Reference::Tag(t) = reference {
        tags.push(t);
    }
    tags.sort_unstable();
    tags.dedup();

    let bytes = read_manifest(req)?;
    let digest = Digest::of(&bytes);
    if let Reference::Digest(expected) = reference
        && *expected != digest
    {
        return Err(ApiError::DigestInvalid(format!(
            "manifest content hashes to {digest}"
        )));
    }
    let parsed = manifest::parse(req.header("content-type"), &bytes)?;

    // Everything the manifest points at (except its subject) must already
    // be in this repository: blobs for an image, manifests for an index.
    for required in &parsed.required {
        let present = match parsed.kind {
            Kind::Image => metadata::blob_linked(name, required.as_str())?,
            Kind::Index => metadata::get_manifest(name, required.as_str())?.is_some(),
        };
        if !present {
            return Err(ApiError::ManifestBlobUnknown(required.to_string()));
        }
    }

    admission::check_put(
        &admission::Put {
            repository: name,
            digest: digest.as_str(),
            media_type: parsed.media_type,
            annotations: parsed.annotations.as_ref(),
        },
        &tags,
    )?;

    let references: Vec<String> = parsed.required.iter().map(|d| d.to_string()).collect();
    manifest_store::record(name, &digest, &bytes, &parsed, &references, &tags)?;

    let mut resp = Response::new(201)
        .header("location", format!("/v2/{name}/manifests/{digest}"))
        .header("docker-content-digest", digest.as_str());
    if let Some(subject) = &parsed.subject {
        // Tells the client the referrers API has indexed the subject, so it
        // need not maintain a fallback referrers tag.
        resp = resp.header("oci-subject", subject.as_str());
    }
    for tag in query_tags {
        resp = resp.header("oci-tag", tag);
    }
    Ok(resp)
}

/// `DELETE`: by digest removes the manifest and its tags; by tag only the tag.
pub fn delete(call: &Call) -> Result<Response, ApiError> {
    let (name, reference) = (call.name()?, call.reference()?);
    cache::refuse_writes(name)?;
    admission::check_delete(name, reference)?;
    let deleted = match reference {
        Reference::Digest(d) => metadata::delete_manifest(name, d.as_str())?,
        Reference::Tag(t) => metadata::delete_tag(name, t)?,
    };
    if deleted {
        Ok(Response::new(202))
    } else {
        Err(unknown(name))
    }
}

/// Resolves a reference to the stored manifest record.
fn lookup(name: &str, reference: &Reference) -> Result<ManifestInfo, ApiError> {
    let digest = match reference {
        Reference::Digest(d) => d.to_string(),
        Reference::Tag(t) => metadata::resolve_tag(name, t)?.ok_or_else(|| unknown(name))?,
    };
    metadata::get_manifest(name, &digest)?.ok_or_else(|| unknown(name))
}

/// MANIFEST_UNKNOWN, or NAME_UNKNOWN when the repository does not exist at
/// all (`list-tags` answers none only for unknown repositories).
fn unknown(name: &str) -> ApiError {
    match cache::exists(name) {
        Ok(false) => ApiError::NameUnknown,
        Ok(true) => ApiError::ManifestUnknown,
        Err(e) => e,
    }
}

/// Reads the request body, refusing more than [`MAX_MANIFEST_BYTES`]: a
/// declared `Content-Length` over the limit is refused before reading, and
/// an undeclared one stops being read as soon as it passes it.
fn read_manifest(req: &Request) -> Result<Vec<u8>, ApiError> {
    let too_large = ApiError::ManifestTooLarge {
        limit: MAX_MANIFEST_BYTES,
    };
    if req.content_length().is_some_and(|n| n > MAX_MANIFEST_BYTES) {
        return Err(too_large);
    }
    let body = req.body()?;
    http::read_limited(body.stream(), MAX_MANIFEST_BYTES).map_err(|e| match e {
        ReadError::TooLarge => too_large,
        ReadError::Io(why) => {
            eprintln!("berth-guest: reading manifest body: {why}");
            ApiError::ManifestInvalid("could not read request body".into())
        }
    })
}
