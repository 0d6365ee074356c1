//! The HTTP front: axum on tokio. `/v2/...` goes to the guest; the host's own
//! endpoints are native axum routes (`front::routes`).

use crate::sandbox::runtime::GuestRuntime;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::any;
use std::sync::Arc;

use crate::error_body::{error_response, internal_error};
use crate::front::auth::Auth;
use crate::front::client::{self, Clients};
use crate::front::limits::UploadLimiter;
use crate::front::listener::ConnectionLimits;
use crate::front::namespaces::{self, Namespaces};
use crate::front::routes::{Access, NATIVE};

/// What wraps the guest: who may call it, and what it may cost.
#[derive(Clone)]
pub struct Front {
    /// Which peers' `X-Forwarded-*` to believe, and our own scheme.
    pub clients: Clients,
    pub read_only: bool,
    /// Off: every DELETE is refused (`server.delete`).
    pub deletes: bool,
    /// Off: every push (upload, mount, manifest PUT) is refused
    /// (`server.push`).
    pub pushes: bool,
    pub auth: Option<Arc<Auth>>,
    pub uploads: UploadLimiter,
    /// containerd's `?ns=` registries that name a prefixed upstream.
    pub namespaces: Namespaces,
    /// Where pushes, pulls and deletes are reported (`[[notifications]]`).
    pub notifier: crate::notify::Notifier,
    /// Serve the web UI at `/ui/`.
    pub ui: bool,
    /// Request metrics and access-log lines.
    pub observe: crate::front::observe::Observe,
    /// `/metrics` and `/debug/health` on this listener (`None`: they are
    /// on the debug listener).
    pub debug: Option<crate::front::debug::DebugRoutes>,
    /// CORS and registry:2's `http.headers`.
    pub browsers: crate::front::cors::Browsers,
}

/// Builds the router: the guest's routes behind the front's checks, the
/// native routes of `routes::NATIVE` each behind the login it needs, and
/// one log line per request; outermost, who the client is (`ClientInfo`),
/// which the limits, the challenge and the log line read.
pub fn router(guest: GuestRuntime, front: Front) -> Router {
    let mut to_guest_routes = Router::new()
        .route("/v2", any(to_guest))
        .route("/v2/", any(to_guest))
        .route("/v2/{*rest}", any(to_guest))
        // Unknown paths get the guest's spec-shaped 404 too.
        .fallback(to_guest);
    // Layers run outside-in from the last added: authenticate, refuse
    // writes when read-only, limit uploads, then (innermost, seeing the
    // caller and the guest's answer) record events.
    if front.notifier.is_enabled() {
        to_guest_routes = to_guest_routes.layer(middleware::from_fn_with_state(
            front.notifier.clone(),
            crate::front::events::record,
        ));
    }
    to_guest_routes = to_guest_routes.layer(middleware::from_fn_with_state(
        front.uploads.clone(),
        crate::front::limits::limit_uploads,
    ));
    if front.read_only {
        to_guest_routes = to_guest_routes.layer(middleware::from_fn(refuse_writes));
    } else {
        if !front.deletes {
            to_guest_routes = to_guest_routes.layer(middleware::from_fn(refuse_deletes));
        }
        if !front.pushes {
            to_guest_routes = to_guest_routes.layer(middleware::from_fn(refuse_pushes));
        }
    }
    let auth = front.auth.as_ref();
    if let Some(auth) = auth {
        to_guest_routes = to_guest_routes.layer(middleware::from_fn_with_state(
            auth.clone(),
            crate::front::auth::authorize,
        ));
    }
    // Outermost of all: a containerd mirror request's `ns` may change the
    // name the rules are checked against.
    if !front.namespaces.is_empty() {
        to_guest_routes = to_guest_routes.layer(middleware::from_fn_with_state(
            front.namespaces.clone(),
            namespaces::map,
        ));
    }
    let mut app = to_guest_routes;
    for native in NATIVE {
        let Some(handler) = (native.mount)(auth) else {
            continue;
        };
        let mut route = Router::new().route(native.path, handler);
        if let (Some(auth), Access::NamedUser) = (auth, native.access) {
            route = route.layer(middleware::from_fn_with_state(
                auth.clone(),
                crate::front::auth::authorize_named_user,
            ));
        }
        app = app.merge(route);
    }
    if let Some(routes) = front.debug {
        let mut debug = crate::front::debug::router(routes);
        if let Some(auth) = auth {
            debug = debug.layer(middleware::from_fn_with_state(
                auth.clone(),
                crate::front::auth::authorize_named_user,
            ));
        }
        app = app.merge(debug);
    }
    if front.ui {
        // Deletes from the UI follow the same switches as the registry's.
        let writes = crate::front::ui::Writes {
            deletes: front.deletes && !front.read_only,
            notifier: front.notifier.clone(),
        };
        app = app.merge(crate::front::ui::router(front.auth.clone(), writes));
    }
    let mut app = app.with_state(guest);
    if front.observe.any() {
        app = app.layer(middleware::from_fn_with_state(
            front.observe,
            crate::front::observe::measure,
        ));
    }
    // Outside the logins: a browser's CORS preflight carries none.
    if !front.browsers.is_empty() {
        app = app.layer(middleware::from_fn_with_state(
            front.browsers.clone(),
            crate::front::cors::apply,
        ));
    }
    app.layer(middleware::from_fn_with_state(
        front.clients.clone(),
        client::resolve,
    ))
}

/// The debug listener's router: `/metrics` and `/debug/health`, no logins
/// (registry:2's debug server has none either: bind it to an address only
/// operators reach).
pub fn debug_router(guest: GuestRuntime, routes: crate::front::debug::DebugRoutes) -> Router {
    crate::front::debug::router(routes).with_state(guest)
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
    crate::front::listener::serve(listener, app, tls, limits, shutdown_signal()).await;
}

/// Read-only mode: every method that could change the registry gets the
/// spec's UNSUPPORTED error, as registry:2's read-only mode answers.
async fn refuse_writes(req: Request, next: Next) -> Response {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    unsupported(
        "GET, HEAD",
        "the registry is in read-only mode: pushes and deletes are refused, pulls work",
    )
}

/// Deletes switched off (`server.delete = false`, registry:2 without
/// `storage.delete.enabled`): every DELETE gets registry:2's answer, the
/// spec's UNSUPPORTED error with 405.
async fn refuse_deletes(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if req.method() != axum::http::Method::DELETE || !path.starts_with("/v2/") {
        return next.run(req).await;
    }
    let allow = if path.contains("/manifests/") {
        "GET, HEAD, PUT"
    } else if path.contains("/blobs/uploads/") {
        "GET, PATCH, PUT"
    } else {
        "GET, HEAD"
    };
    unsupported(
        allow,
        "deletes are switched off on this registry (server.delete, or registry:2's \
         storage.delete.enabled)",
    )
}

/// Pushes switched off (`server.push = false`; registry:2's proxy mode,
/// which takes no pushes): every upload, mount and manifest PUT gets
/// registry:2's answer there, the spec's UNSUPPORTED error with 405.
async fn refuse_pushes(req: Request, next: Next) -> Response {
    use axum::http::Method;
    let path = req.uri().path();
    let push = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    if !push || !path.starts_with("/v2/") {
        return next.run(req).await;
    }
    let allow = if path.contains("/manifests/") {
        "GET, HEAD, DELETE"
    } else {
        "GET, HEAD"
    };
    unsupported(
        allow,
        "pushes are switched off on this registry (server.push; a registry:2 proxy \
         configuration switches them off, as registry:2 takes no pushes as a cache)",
    )
}

/// 405 with the spec's UNSUPPORTED error, and the methods the resource
/// still takes in `Allow`, as a 405 must say.
fn unsupported(allow: &'static str, message: &str) -> Response {
    let mut resp = error_response(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message);
    resp.headers_mut()
        .insert(axum::http::header::ALLOW, HeaderValue::from_static(allow));
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
