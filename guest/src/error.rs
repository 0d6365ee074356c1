//! How the guest turns storage failures into the client's error: the
//! error table itself is `berth_oci::error`, shared with the host.

use crate::storage::types::StorageError;
use berth_oci::ApiError;

/// Logs `context` and `why` to stderr and returns [`ApiError::Internal`]:
/// backend text is for operators, never for clients.
pub fn internal(context: &str, why: impl std::fmt::Display) -> ApiError {
    eprintln!("berth-guest: {context}: {why}");
    ApiError::Internal
}

/// Maps a storage failure whose `not-found` has a meaning in context
/// (`not_found`). `digest-mismatch`, `invalid` and `conflict` are not
/// expected outside uploads and become 500s, logged.
pub fn from_storage(context: &str, err: StorageError, not_found: ApiError) -> ApiError {
    match err {
        StorageError::NotFound => not_found,
        other => unexpected(context, other),
    }
}

/// A failure with no meaning in context: `unavailable` stays a 503 the
/// client may retry (the host has logged its cause), anything else is a
/// 500, logged.
pub fn unexpected(context: &str, err: StorageError) -> ApiError {
    match err {
        StorageError::Unavailable(why) => ApiError::Unavailable(why),
        other => internal(context, describe(&other)),
    }
}

/// For upload-session calls: unknown and unacceptable ids are both "no
/// such upload", a second writer is "busy", a hash mismatch is the
/// client's wrong digest.
pub fn from_upload(context: &str, err: StorageError) -> ApiError {
    match err {
        StorageError::NotFound | StorageError::Invalid(_) => ApiError::BlobUploadUnknown,
        StorageError::Conflict(_) => ApiError::UploadBusy,
        StorageError::DigestMismatch(actual) => {
            ApiError::DigestInvalid(format!("content hashes to {actual}"))
        }
        other @ (StorageError::Backend(_) | StorageError::Unavailable(_)) => {
            unexpected(context, other)
        }
    }
}

/// A loggable rendering of a storage error.
pub fn describe(err: &StorageError) -> String {
    match err {
        StorageError::NotFound => "not found".to_owned(),
        StorageError::DigestMismatch(d) => format!("digest mismatch (content is {d})"),
        StorageError::Invalid(s) => format!("invalid argument: {s}"),
        StorageError::Conflict(s) => format!("conflict: {s}"),
        StorageError::Backend(s) => format!("backend: {s}"),
        StorageError::Unavailable(s) => format!("unavailable: {s}"),
    }
}

/// `?` on a storage call where `not-found` cannot happen or means a bug.
impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> ApiError {
        unexpected("storage", err)
    }
}
