//! Why a UI request failed, and the page that says so.

use super::{html, layout};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_storage::StorageError;
use maud::html;

#[derive(Debug, thiserror::Error)]
pub(crate) enum UiError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("you may not do that here")]
    Forbidden,
    #[error("log in first")]
    LoginRequired,
    #[error("deletes are switched off on this registry")]
    DeletesOff,
    #[error(
        "the form was not sent from this registry's own page ({0}); reload the page and try again"
    )]
    Csrf(&'static str),
    #[error("{0} is too large to show")]
    TooLarge(String),
    #[error("the registry answered {status}: {message}")]
    Registry { status: StatusCode, message: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot read {what}: {why}")]
    Read { what: String, why: String },
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = match &self {
            UiError::NotFound => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) | UiError::TooLarge(_) => StatusCode::BAD_REQUEST,
            UiError::Forbidden | UiError::Csrf(_) => StatusCode::FORBIDDEN,
            UiError::LoginRequired => return challenge(),
            UiError::DeletesOff => StatusCode::METHOD_NOT_ALLOWED,
            UiError::Registry { status, .. } => *status,
            UiError::Storage(e) if e.temporary().is_some() => StatusCode::SERVICE_UNAVAILABLE,
            UiError::Storage(_) | UiError::Read { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            UiError::Storage(e) => match e.temporary() {
                Some(why) => {
                    tracing::warn!(error = %e.cause(), "ui: storage temporarily unavailable");
                    format!("storage is unavailable for now: {why}")
                }
                None => {
                    tracing::error!(error = %e.cause(), "ui: storage failed");
                    "the storage failed; the server log says why".to_owned()
                }
            },
            UiError::Read { .. } => {
                tracing::error!(error = %self, "ui: reading content failed");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let page = layout::page(
            title,
            None,
            html! {
                h1 { (title) }
                p.error { (message) }
                p { a href="/ui/" { "Back to the repositories" } }
            },
        );
        html(status, page)
    }
}

/// Any other path under `/ui/`.
pub(super) async fn not_found() -> Response {
    UiError::NotFound.into_response()
}

const REALM: &str = "Basic realm=\"Berth registry\", charset=\"UTF-8\"";

/// 401 asking the browser for a user name and password.
pub(super) fn challenge() -> Response {
    let page = layout::page(
        "Log in",
        None,
        html! {
            h1 { "Log in" }
            p { "This registry needs a user name and password." }
            p { a href="/ui/" { "Back to the repositories" } }
        },
    );
    let mut resp = html(StatusCode::UNAUTHORIZED, page);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    resp
}
