//! The HTTP front: axum on tokio. `/v2/...` goes to the guest; the host's own
//! endpoints (health now, admin later) are native axum routes.

use crate::runtime::GuestRuntime;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use std::sync::Arc;
use std::time::Instant;

use crate::auth::Auth;
use crate::error_body::{error_response, internal_error};
use crate::limits::UploadLimiter;
use crate::listener::ConnectionLimits;

/// What wraps the guest: who may call it, and what it may cost.
#[derive(Clone)]
pub struct Front {
    pub read_only: bool,
    pub auth: Option<Arc<Auth>>,
    pub uploads: UploadLimiter,
}

/// Builds the router: guest routes, native routes, one log line per request.
pub fn router(guest: GuestRuntime, front: Front) -> Router {
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/berth/v1/usage", get(usage))
        .route("/v2", any(to_guest))
        .route("/v2/", any(to_guest))
        .route("/v2/{*rest}", any(to_guest))
        // Unknown paths get the guest's spec-shaped 404 too.
        .fallback(to_guest)
        .with_state(guest);
    // Layers run outside-in from the last added: log, authenticate, refuse
    // writes when read-only, then limit uploads.
    app = app.layer(middleware::from_fn_with_state(
        front.uploads.clone(),
        crate::limits::limit_uploads,
    ));
    if front.read_only {
        app = app.layer(middleware::from_fn(refuse_writes));
    }
    if let Some(auth) = front.auth {
        if auth.issues_tokens() {
            app = app.route(
                "/auth/token",
                get(crate::auth::endpoint::token).with_state(auth.clone()),
            );
        }
        app = app.layer(middleware::from_fn_with_state(auth, crate::auth::authorize));
    }
    app.layer(middleware::from_fn(log_request))
}

/// Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    guest: GuestRuntime,
    front: Front,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnectionLimits,
) {
    let app = router(guest, front);
    crate::listener::serve(listener, app, tls, limits, shutdown_signal()).await;
}

async fn health() -> &'static str {
    "ok"
}

/// `GET /berth/v1/usage`: per repository tags, manifests, size and the size
/// only it holds. Native: it reads the whole metadata, not one request's.
async fn usage(State(guest): State<GuestRuntime>) -> Response {
    match crate::usage::compute(guest.backends()).await {
        Ok(usage) => axum::Json(usage).into_response(),
        Err(crate::usage::UsageError::Unsupported) => error_response(
            StatusCode::NOT_IMPLEMENTED,
            "UNSUPPORTED",
            "usage needs metadata.kind = \"sqlite\"",
        ),
        Err(e) => {
            tracing::error!(error = %e, "usage failed");
            internal_error()
        }
    }
}

/// Read-only mode: every method that could change the registry gets the
/// spec's UNSUPPORTED error, as registry:2's read-only mode answers.
async fn refuse_writes(req: Request, next: Next) -> Response {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let mut resp = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        "the registry is in read-only mode: pushes and deletes are refused, pulls work",
    );
    resp.headers_mut().insert(
        axum::http::header::ALLOW,
        HeaderValue::from_static("GET, HEAD"),
    );
    resp
}

async fn to_guest(State(guest): State<GuestRuntime>, req: Request) -> Response {
    let req = req.map(|body| http_body_util::BodyExt::map_err(body, client_body_error));
    match guest.handle(req).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => {
            tracing::error!(error = %e, "guest request failed");
            internal_error()
        }
    }
}

/// wasi-http wants hyper's error type for a broken request body.
fn client_body_error(err: axum::Error) -> wasmtime_wasi_http::Error {
    match err.into_inner().downcast::<hyper::Error>() {
        Ok(hyper_err) => wasmtime_wasi_http::Error::Hyper(*hyper_err),
        Err(_) => wasmtime_wasi_http::Error::ConnectionTerminated,
    }
}

async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: query strings may carry upload state, never log more.
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    tracing::info!(
        %method,
        %path,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
