//! The web UI at `/ui/`: server-rendered HTML over the metadata store, for
//! people who want to see what the registry holds. Usable without
//! JavaScript; one small script (served as a file, never inline) adds copy
//! buttons. docs/UI.md says how to use it and what keeps it safe.
//!
//! Every page reads through `GuestRuntime::backends()` and shows only the
//! repositories the caller may pull, decided by the same rule check the
//! registry's own endpoints use (`access.rs`). Deletes are HTML form POSTs
//! that carry a double-submit CSRF token (`csrf.rs`) and run through the
//! guest as a registry `DELETE` by that caller would. Every response
//! carries a strict `Content-Security-Policy` (`assets.rs`), and maud
//! escapes everything a page shows.

mod access;
mod assets;
mod csrf;
mod delete;
mod error;
mod layout;
mod manifest;
mod read;
mod repositories;
mod storage;
mod tags;

use crate::front::auth::Auth;
use crate::sandbox::runtime::GuestRuntime;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use std::sync::Arc;

/// What the UI may change, beyond what the caller's rights allow.
#[derive(Clone, Default)]
pub struct Writes {
    /// Deletes from the UI (`server.delete`, and not `server.read_only`).
    pub deletes: bool,
    /// Where deletes are reported (`[[notifications]]`), as the registry's
    /// own `DELETE`s are.
    pub notifier: crate::notify::Notifier,
}

/// The UI's routes: pages for what the caller may pull, deletes as far
/// as `writes` (the server's switches) and then the caller's rights allow.
pub fn router(auth: Option<Arc<Auth>>, writes: Writes) -> Router<GuestRuntime> {
    let ui = Ui {
        gate: access::Gate::new(auth),
        writes,
    };
    let pages = Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(repositories::page))
        .route("/ui/login", get(access::login))
        .route("/ui/repo/{*name}", get(tags::page))
        .route("/ui/manifest/{*name}", get(manifest::page))
        .route("/ui/storage", get(storage::page))
        .route("/ui/delete", post(delete::submit))
        .route("/ui/static/{file}", get(assets::serve))
        .route("/ui/{*rest}", any(error::not_found))
        .layer(middleware::map_response(assets::security_headers));
    // `/` is only the browser's way in: everything else there goes to the
    // guest as before, behind the same login the guest's routes ask for.
    pages
        .route("/", any(root))
        .layer(middleware::from_fn_with_state(ui, with_ui))
}

/// What every UI handler needs besides the guest.
#[derive(Clone)]
pub(crate) struct Ui {
    gate: access::Gate,
    writes: Writes,
}

/// Puts the UI's own state where handlers find it.
async fn with_ui(State(ui): State<Ui>, mut req: Request, next: middleware::Next) -> Response {
    req.extensions_mut().insert(ui);
    next.run(req).await
}

/// `/`: browsers go to the UI; registry clients get what the guest answers,
/// checked as any other guest request.
async fn root(
    State(guest): State<GuestRuntime>,
    axum::Extension(ui): axum::Extension<Ui>,
    req: Request,
) -> Response {
    if wants_html(req.headers()) && req.method() == axum::http::Method::GET {
        return Redirect::to("/ui/").into_response();
    }
    ui.gate.forward_to_guest(guest, req, None).await
}

/// Whether a request's `Accept` asks for HTML (a browser's navigation).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            item.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"))
        })
}

/// An HTML page response, not cached (pages show the caller's view).
fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_what_browsers_accept() {
        let mut headers = HeaderMap::new();
        assert!(!wants_html(&headers));
        headers.insert(
            header::ACCEPT,
            "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
                .parse()
                .expect("header"),
        );
        assert!(wants_html(&headers));
        headers.insert(header::ACCEPT, "application/json".parse().expect("header"));
        assert!(!wants_html(&headers));
    }
}
