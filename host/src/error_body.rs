//! The distribution spec's error body, `{"errors":[{"code","message",
//! "detail"}]}`, for what the host answers itself (the guest writes its
//! own): one writer, so every native error looks alike, and a module of its
//! own, so the HTTP front, auth, limits and the runtime all use it without
//! importing each other.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every response of the distribution API carries this, errors included.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
pub const API_VERSION: &str = "registry/2.0";

/// The JSON body of one error.
pub fn error_json(code: &str, message: &str) -> String {
    serde_json::json!({
        "errors": [{"code": code, "message": message, "detail": null}]
    })
    .to_string()
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

/// The spec's error body for a failure the guest could not report itself.
pub fn internal_error() -> Response {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "UNKNOWN",
        "internal server error",
    )
}
