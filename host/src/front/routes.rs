//! Berth's own HTTP endpoints, in one table: the router mounts each entry
//! and wraps it in the login its `Access` names, so adding an endpoint is
//! one entry here. Everything else goes to the guest.

use super::auth::{self, Auth};
use crate::backends::health::Status;
use crate::error_body::{error_response, internal_error, unavailable};
use crate::maintenance::usage;
use crate::sandbox::runtime::GuestRuntime;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use std::sync::Arc;

/// Who may call a native endpoint when logins are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, logged in or not (health checks, the token endpoint).
    Anyone,
    /// A named user (not anonymous), as for registry administration.
    NamedUser,
}

/// One native endpoint.
pub struct Native {
    pub path: &'static str,
    pub access: Access,
    /// Its handler, or `None` when this server does not offer it (the
    /// token endpoint exists only when Berth issues tokens).
    pub mount: fn(Option<&Arc<Auth>>) -> Option<MethodRouter<GuestRuntime>>,
}

pub const NATIVE: &[Native] = &[
    Native {
        path: "/health",
        access: Access::Anyone,
        mount: |_| Some(get(health)),
    },
    Native {
        path: "/auth/token",
        access: Access::Anyone,
        mount: |auth| {
            let auth = auth.filter(|a| a.issues_tokens())?;
            Some(get(auth::endpoint::token).with_state(auth.clone()))
        },
    },
    Native {
        path: "/berth/v1/usage",
        access: Access::NamedUser,
        mount: |_| Some(get(usage)),
    },
];

/// `GET /health`: `ok`, or 503 `UNAVAILABLE` saying what failed once the
/// background storage checks have failed a few times in a row. Answered
/// from their last result: no storage call here.
async fn health(State(guest): State<GuestRuntime>) -> Response {
    let health = &guest.backends().health;
    match health.status() {
        Status::Healthy => "ok".into_response(),
        Status::Unhealthy { failures, why } => unavailable(&format!(
            "{failures} storage checks failed in a row; last: {why}"
        )),
    }
}

/// `GET /berth/v1/usage`: per repository tags, manifests, size and the size
/// only it holds. Native: it reads the whole metadata, not one request's.
async fn usage(State(guest): State<GuestRuntime>) -> Response {
    match usage::compute(guest.backends()).await {
        Ok(usage) => axum::Json(usage).into_response(),
        Err(usage::UsageError::Unsupported) => error_response(
            StatusCode::NOT_IMPLEMENTED,
            "UNSUPPORTED",
            "usage needs a metadata store that can list what it holds",
        ),
        Err(e) => {
            let storage = match &e {
                usage::UsageError::Storage(storage) => Some(storage),
                _ => None,
            };
            let cause = storage.map_or_else(|| e.to_string(), |s| s.cause());
            match storage.and_then(|s| s.temporary()) {
                Some(why) => {
                    tracing::warn!(error = %cause, "usage: storage temporarily unavailable");
                    unavailable(&why)
                }
                None => {
                    tracing::error!(error = %cause, "usage failed");
                    internal_error()
                }
            }
        }
    }
}
