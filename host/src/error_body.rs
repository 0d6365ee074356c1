//! The distribution spec's error responses for what the host answers
//! itself (the guest writes its own): the body comes from
//! `berth_oci::error::body`, the one writer both use, and this module of
//! its own lets the HTTP front, auth, limits and the runtime all use it
//! without importing each other.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_oci::ApiError;

pub use berth_oci::error::{API_VERSION, API_VERSION_HEADER};

/// The JSON body of one error, from the writer the guest uses too.
pub fn error_json(code: &str, message: &str) -> Vec<u8> {
    berth_oci::error::body(code, message, None)
}

/// A response in the distribution spec's error format.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp = (status, error_json(code, message)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    resp
}

/// 503 `UNAVAILABLE` with `Retry-After`: the one answer for a temporary
/// failure (storage unreachable, overloaded or busy), `why` as the detail.
pub fn unavailable(why: &str) -> Response {
    let err = ApiError::Unavailable(why.to_owned());
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, err.body()).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    for (name, value) in err.headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    resp
}

/// The spec's error body for a failure the guest could not report itself.
pub fn internal_error() -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN",
        "internal server error",
    )
}
