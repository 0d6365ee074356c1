//! Every error the registry puts on the wire, in one table.
//!
//! Handlers return [`ApiError`]; [`ApiError::descriptor`] is the only place a
//! variant becomes an HTTP status and an OCI error code, and [`body`] the
//! only place the `{"errors":[...]}` JSON is built (the host's own errors
//! use it too).
//!
//! Codes are limited to the distribution-spec table ("The `code` field MUST be
//! one of the following"), plus two for the server's side, which the table
//! has none for: `UNKNOWN` for faults, as registry:2 does, and `UNAVAILABLE`
//! (503, with `Retry-After`) for what may succeed if retried later. Where registry:2 uses a code outside the table
//! (`TAG_INVALID`, `PAGINATION_NUMBER_INVALID`, `RANGE_INVALID`), we use the
//! nearest spec code instead, noted on the variant.

use serde::Serialize;

/// A failed request, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 404 BLOB_UNKNOWN: the repository does not hold this blob.
    BlobUnknown(String),
    /// 416 BLOB_UPLOAD_INVALID: a chunk's `Content-Range` is malformed, does
    /// not start where the session ends, or disagrees with `Content-Length`.
    /// Carries what the client needs to resume: the session URL and its
    /// current size (registry:2 uses RANGE_INVALID, not in the spec table).
    UploadOutOfOrder { location: String, size: u64 },
    /// 404 BLOB_UPLOAD_UNKNOWN: no such session in this repository.
    BlobUploadUnknown,
    /// 409 BLOB_UPLOAD_INVALID: another request is writing to the session.
    UploadBusy,
    /// 400 DIGEST_INVALID: missing, malformed, unsupported or mismatched.
    DigestInvalid(String),
    /// 400 MANIFEST_BLOB_UNKNOWN: a descriptor names content this repository
    /// does not hold. Carries the digest.
    ManifestBlobUnknown(String),
    /// 400 MANIFEST_INVALID: unparsable, wrong schema, wrong media type.
    ManifestInvalid(String),
    /// 400 MANIFEST_INVALID: a tag outside `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    /// registry:2 says TAG_INVALID, which the spec lists only as a legacy code
    /// clients must not depend on.
    TagInvalid,
    /// 404 MANIFEST_UNKNOWN.
    ManifestUnknown,
    /// 413 SIZE_INVALID: manifest body over the limit (spec: "SHOULD respond
    /// ... with a response code 413"; SIZE_INVALID is the table's size code).
    ManifestTooLarge { limit: u64 },
    /// 400 SIZE_INVALID: `Content-Length` and `Content-Range` disagree.
    SizeInvalid(String),
    /// 400 NAME_INVALID.
    NameInvalid,
    /// 404 NAME_UNKNOWN: the repository does not exist.
    NameUnknown,
    /// 400 UNSUPPORTED: `n` is not a non-negative integer. registry:2 answers
    /// PAGINATION_NUMBER_INVALID, which is not in the spec's code table.
    PaginationInvalid,
    /// 416 with `Content-Range: bytes */<size>`: no byte of the requested range
    /// exists. RFC 9110 defines this response; the OCI table has no code for
    /// it, so the body says UNSUPPORTED with a "range not satisfiable" message.
    RangeNotSatisfiable { size: u64 },
    /// 404 UNSUPPORTED: no endpoint at this path.
    NotFound,
    /// 405 UNSUPPORTED with an `Allow` header.
    MethodNotAllowed { allow: String },
    /// 403 DENIED: an admission policy refused the change. Carries the
    /// policy's message, which becomes the error's `message` (what docker
    /// prints after "denied:").
    Denied(String),
    /// 500 UNKNOWN: storage or I/O failure. The detail goes to stderr only.
    Internal,
    /// 503 UNAVAILABLE with `Retry-After`: the registry's storage cannot be
    /// reached or is overloaded now, and the same request may succeed later.
    /// Carries the reason, shown as `detail` (no endpoint or bucket: those
    /// are for the log). Every 503 Berth sends is this one.
    Unavailable(String),
}

/// Seconds a client is asked to wait (`Retry-After`) before retrying an
/// [`ApiError::Unavailable`] request.
pub const RETRY_AFTER_SECS: u32 = 5;

/// The wire identity of an error: status, code, default message.
pub struct Descriptor {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

const fn d(status: u16, code: &'static str, message: &'static str) -> Descriptor {
    Descriptor {
        status,
        code,
        message,
    }
}

impl ApiError {
    /// The one table mapping errors to HTTP.
    pub fn descriptor(&self) -> Descriptor {
        use ApiError::*;
        match self {
            BlobUnknown(_) => d(404, "BLOB_UNKNOWN", "blob unknown to registry"),
            UploadOutOfOrder { .. } => d(416, "BLOB_UPLOAD_INVALID", "chunk out of order"),
            BlobUploadUnknown => d(
                404,
                "BLOB_UPLOAD_UNKNOWN",
                "blob upload unknown to registry",
            ),
            UploadBusy => d(409, "BLOB_UPLOAD_INVALID", "blob upload is busy; retry"),
            DigestInvalid(_) => d(
                400,
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
            ),
            ManifestBlobUnknown(_) => d(
                400,
                "MANIFEST_BLOB_UNKNOWN",
                "manifest references a manifest or blob unknown to registry",
            ),
            ManifestInvalid(_) => d(400, "MANIFEST_INVALID", "manifest invalid"),
            TagInvalid => d(400, "MANIFEST_INVALID", "invalid tag"),
            ManifestUnknown => d(404, "MANIFEST_UNKNOWN", "manifest unknown to registry"),
            ManifestTooLarge { .. } => d(413, "SIZE_INVALID", "manifest too large"),
            SizeInvalid(_) => d(
                400,
                "SIZE_INVALID",
                "provided length did not match content length",
            ),
            NameInvalid => d(400, "NAME_INVALID", "invalid repository name"),
            NameUnknown => d(404, "NAME_UNKNOWN", "repository name not known to registry"),
            PaginationInvalid => d(400, "UNSUPPORTED", "invalid number of results requested"),
            RangeNotSatisfiable { .. } => d(416, "UNSUPPORTED", "requested range not satisfiable"),
            NotFound => d(404, "UNSUPPORTED", "no such endpoint"),
            MethodNotAllowed { .. } => d(405, "UNSUPPORTED", "the operation is unsupported"),
            Denied(_) => d(403, "DENIED", "requested access to the resource is denied"),
            Internal => d(500, "UNKNOWN", "internal server error"),
            Unavailable(_) => d(
                503,
                "UNAVAILABLE",
                "the registry's storage is temporarily unavailable; retry later",
            ),
        }
    }

    /// Client-facing detail, when there is something specific to say.
    fn detail(&self) -> Option<String> {
        use ApiError::*;
        match self {
            BlobUnknown(s)
            | DigestInvalid(s)
            | ManifestBlobUnknown(s)
            | ManifestInvalid(s)
            | SizeInvalid(s)
            | Unavailable(s) => Some(s.clone()),
            ManifestTooLarge { limit } => Some(format!("limit is {limit} bytes")),
            _ => None,
        }
    }

    /// Headers the error response needs besides the common ones.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ApiError::UploadOutOfOrder { location, size } => vec![
                ("location", location.clone()),
                ("range", crate::range::upload_range(*size)),
            ],
            ApiError::RangeNotSatisfiable { size } => {
                vec![("content-range", format!("bytes */{size}"))]
            }
            ApiError::MethodNotAllowed { allow } => vec![("allow", allow.clone())],
            ApiError::Unavailable(_) => vec![("retry-after", RETRY_AFTER_SECS.to_string())],
            _ => Vec::new(),
        }
    }

    /// The `{"errors":[{"code","message","detail"}]}` body.
    pub fn body(&self) -> Vec<u8> {
        let d = self.descriptor();
        let message = match self {
            ApiError::Denied(why) => why.as_str(),
            _ => d.message,
        };
        body(d.code, message, self.detail().as_deref())
    }
}

/// Every response of the distribution API carries this header, errors
/// included.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
pub const API_VERSION: &str = "registry/2.0";

/// The one writer of the spec's error body, for the guest's errors and
/// for what the host answers itself (auth, limits, a failed guest).
pub fn body(code: &str, message: &str, detail: Option<&str>) -> Vec<u8> {
    // `detail` is always present (null when there is nothing specific):
    // some clients index it unconditionally.
    #[derive(Serialize)]
    struct Entry<'a> {
        code: &'a str,
        message: &'a str,
        detail: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Errors<'a> {
        errors: [Entry<'a>; 1],
    }
    let body = Errors {
        errors: [Entry {
            code,
            message,
            detail,
        }],
    };
    // Serialising plain strings into a Vec cannot fail; fall back to a
    // fixed body rather than panic (or trap) if it somehow did.
    serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"errors":[]}"#.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        let body = ApiError::ManifestBlobUnknown("sha256:x".into()).body();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(v["errors"][0]["detail"], "sha256:x");
        assert!(v["errors"][0]["message"].is_string());
        let v: serde_json::Value = serde_json::from_slice(&ApiError::NameUnknown.body()).unwrap();
        assert_eq!(v["errors"][0].get("detail"), Some(&serde_json::Value::Null));
        let v: serde_json::Value =
            serde_json::from_slice(&ApiError::Denied("tag v1 is immutable".into()).body()).unwrap();
        assert_eq!(v["errors"][0]["code"], "DENIED");
        assert_eq!(v["errors"][0]["message"], "tag v1 is immutable");
    }

    #[test]
    fn codes_are_spec_codes() {
        // The spec's table; the 5xx codes are checked below.
        const TABLE: &[&str] = &[
            "BLOB_UNKNOWN",
            "BLOB_UPLOAD_INVALID",
            "BLOB_UPLOAD_UNKNOWN",
            "DIGEST_INVALID",
            "MANIFEST_BLOB_UNKNOWN",
            "MANIFEST_INVALID",
            "MANIFEST_UNKNOWN",
            "NAME_INVALID",
            "NAME_UNKNOWN",
            "SIZE_INVALID",
            "UNAUTHORIZED",
            "DENIED",
            "UNSUPPORTED",
            "TOOMANYREQUESTS",
        ];
        let all = [
            ApiError::BlobUnknown(String::new()),
            ApiError::UploadOutOfOrder {
                location: String::new(),
                size: 0,
            },
            ApiError::BlobUploadUnknown,
            ApiError::UploadBusy,
            ApiError::DigestInvalid(String::new()),
            ApiError::ManifestBlobUnknown(String::new()),
            ApiError::ManifestInvalid(String::new()),
            ApiError::TagInvalid,
            ApiError::ManifestUnknown,
            ApiError::ManifestTooLarge { limit: 1 },
            ApiError::SizeInvalid(String::new()),
            ApiError::NameInvalid,
            ApiError::NameUnknown,
            ApiError::PaginationInvalid,
            ApiError::RangeNotSatisfiable { size: 1 },
            ApiError::NotFound,
            ApiError::MethodNotAllowed {
                allow: "GET".into(),
            },
            ApiError::Denied(String::new()),
        ];
        for e in all {
            let d = e.descriptor();
            assert!(TABLE.contains(&d.code), "{e:?}");
            assert!((400..500).contains(&d.status), "{e:?}");
        }
        assert_eq!(ApiError::Internal.descriptor().status, 500);
        assert_eq!(ApiError::Internal.descriptor().code, "UNKNOWN");
        let unavailable = ApiError::Unavailable("the storage backend cannot be reached".into());
        assert_eq!(unavailable.descriptor().status, 503);
        assert_eq!(unavailable.descriptor().code, "UNAVAILABLE");
        assert_eq!(
            unavailable.headers(),
            vec![("retry-after", RETRY_AFTER_SECS.to_string())]
        );
        let v: serde_json::Value = serde_json::from_slice(&unavailable.body()).unwrap();
        assert_eq!(
            v["errors"][0]["detail"],
            "the storage backend cannot be reached"
        );
    }

    #[test]
    fn out_of_order_headers() {
        let e = ApiError::UploadOutOfOrder {
            location: "/v2/a/blobs/uploads/x".into(),
            size: 10,
        };
        assert_eq!(
            e.headers(),
            vec![
                ("location", "/v2/a/blobs/uploads/x".to_owned()),
                ("range", "0-9".to_owned())
            ]
        );
        let e = ApiError::RangeNotSatisfiable { size: 7 };
        assert_eq!(e.headers(), vec![("content-range", "bytes */7".to_owned())]);
    }
}
