//! `POST /ui/delete`: deleting a tag or a manifest from a page. The form
//! must carry the CSRF token; the delete then runs as the caller's own
//! `DELETE /v2/<name>/manifests/<reference>` would, through the login
//! check, the access rules and the guest (with its admission plugins).

use super::error::UiError;
use super::{Ui, csrf, layout};
use crate::front::client::ClientInfo;
use crate::sandbox::runtime::GuestRuntime;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct DeleteForm {
    repository: String,
    /// A tag, or a manifest's digest.
    reference: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn submit(
    State(guest): State<GuestRuntime>,
    Extension(ui): Extension<Ui>,
    parts: Parts,
    Form(form): Form<DeleteForm>,
) -> Result<Response, UiError> {
    let headers = &parts.headers;
    csrf::check(headers, &form.csrf, parts.extensions.get::<ClientInfo>())?;
    let viewer = ui.gate.viewer(headers).await?;
    let (name, reference) = (form.repository, form.reference);
    let valid_reference = berth_oci::grammar::is_valid_tag(&reference)
        || berth_oci::digest::is_digest_syntax(&reference);
    if !berth_oci::grammar::is_valid_name(&name) || !valid_reference {
        return Err(UiError::BadRequest(
            "not a repository name and a tag or digest".into(),
        ));
    }
    if !ui.writes.deletes {
        return Err(UiError::DeletesOff);
    }
    let resp = ui
        .gate
        .delete(
            guest,
            &viewer,
            (&name, &reference),
            &parts,
            &ui.writes.notifier,
        )
        .await?;
    let status = resp.status();
    if status.is_success() {
        tracing::info!(
            repository = %name,
            reference = %reference,
            user = viewer.user.as_deref().unwrap_or("-"),
            "ui: deleted"
        );
        let to = format!(
            "/ui/repo/{name}?deleted={}",
            layout::query_value(&reference)
        );
        return Ok(Redirect::to(&to).into_response());
    }
    Err(match status {
        StatusCode::UNAUTHORIZED if viewer.user.is_none() => UiError::LoginRequired,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => UiError::Forbidden,
        StatusCode::NOT_FOUND => UiError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => UiError::DeletesOff,
        _ => UiError::Registry {
            status,
            message: registry_message(resp).await,
        },
    })
}

/// The first error message of a registry error body.
async fn registry_message(resp: Response) -> String {
    let body = axum::body::to_bytes(resp.into_body(), 64 << 10)
        .await
        .unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "no reason given".to_owned())
}
