//! `/metrics` and `/debug/health`: on the main listener, or on their own
//! (`server.observe.debug_addr`, registry:2's `http.debug.addr`).

use crate::backends::health::Status;
use crate::metrics;
use crate::sandbox::runtime::GuestRuntime;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What the debug routes show.
#[derive(Debug, Clone, Copy)]
pub struct DebugRoutes {
    pub metrics: bool,
    /// `berth_repository_stored_bytes`, labelled with repository names:
    /// only where no login decides who may see which names.
    pub repositories: bool,
}

/// `/metrics` (when on) and `/debug/health`.
pub fn router(routes: DebugRoutes) -> Router<GuestRuntime> {
    let mut router = Router::new().route("/debug/health", get(debug_health));
    if routes.metrics {
        let repositories = routes.repositories;
        router = router.route("/metrics", get(move || render(repositories)));
    }
    router
}

async fn render(repositories: bool) -> Response {
    let mut resp = metrics::get().render(repositories).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    resp
}

/// registry:2's health JSON: `{}` when every check passes, otherwise 503
/// with each failing check's name and why. Answered from the background
/// checks' last result, as `/health` is.
async fn debug_health(State(guest): State<GuestRuntime>) -> Response {
    let backends = guest.backends();
    let mut failing = serde_json::Map::new();
    if let Status::Unhealthy { failures, why } = backends.health.status() {
        // The probe's step says which store failed.
        let check = if why.contains("metadata") {
            format!("metadata_{}", backends.drivers.metadata)
        } else {
            format!("storagedriver_{}", backends.drivers.blobs)
        };
        failing.insert(
            check,
            format!("{failures} checks failed in a row; last: {why}").into(),
        );
    }
    let status = if failing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(serde_json::Value::Object(failing))).into_response()
}
