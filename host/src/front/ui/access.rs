//! Who is looking, and what they may see and change. The UI asks the very
//! middleware that guards the registry's endpoints (`auth::authorize`),
//! with synthetic requests carrying the browser's credentials: the
//! catalog's filter decides which repositories a page names, and a
//! `DELETE` of the manifest decides whether a delete button works. So the
//! UI can never show or do more than the same caller could through `/v2/`.

use super::error::UiError;
use super::{Ui, html, layout};
use crate::front::auth::{self, Auth};
use crate::front::client::ClientInfo;
use crate::notify::Notifier;
use crate::sandbox::context::RequestContext;
use crate::sandbox::runtime::GuestRuntime;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::any;
use maud::html;
use std::sync::Arc;
use tower::ServiceExt as _;

/// The login check shared by every UI request.
#[derive(Clone)]
pub(crate) struct Gate {
    auth: Option<Arc<Auth>>,
    /// `/v2/...` behind `auth::authorize`, answering 204 with the
    /// `RequestContext` the middleware left when it lets a request in.
    probe: Router,
}

/// How far the caller's view reaches.
#[derive(Clone)]
enum Scope {
    /// No logins: everything.
    All,
    /// The catalog's own filter for this caller.
    Catalog(RequestContext),
    /// Anonymous where the catalog is closed to them (token mode): each
    /// repository is asked about as a pull would be.
    Probe,
}

/// The caller of one UI request.
#[derive(Clone)]
pub(crate) struct Viewer {
    /// The named user, when logged in.
    pub user: Option<String>,
    scope: Scope,
    credentials: Option<HeaderValue>,
    /// Whether logins are on at all.
    pub logins: bool,
}

impl Viewer {
    /// What the page frame shows of the caller.
    pub fn who(&self) -> layout::Who<'_> {
        layout::Who {
            user: self.user.as_deref(),
            logins: self.logins,
        }
    }
}

impl Gate {
    pub fn new(auth: Option<Arc<Auth>>) -> Self {
        let mut probe = Router::new()
            .route("/v2/", any(granted))
            .route("/v2/{*rest}", any(granted));
        if let Some(auth) = &auth {
            probe = probe.layer(middleware::from_fn_with_state(
                auth.clone(),
                auth::authorize,
            ));
        }
        Self { auth, probe }
    }

    /// Runs a synthetic request through the login check.
    async fn ask(&self, method: Method, path: &str, credentials: Option<&HeaderValue>) -> Response {
        let mut req = Request::new(Body::empty());
        *req.method_mut() = method;
        match path.parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
        if let Some(value) = credentials {
            req.headers_mut()
                .insert(header::AUTHORIZATION, value.clone());
        }
        match self.probe.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }

    /// Who sent `headers`: `LoginRequired` when they sent credentials that
    /// do not check out (the browser then asks again).
    pub async fn viewer(&self, headers: &HeaderMap) -> Result<Viewer, UiError> {
        if self.auth.is_none() {
            return Ok(Viewer {
                user: None,
                scope: Scope::All,
                credentials: None,
                logins: false,
            });
        }
        let credentials = headers.get(header::AUTHORIZATION).cloned();
        let resp = self
            .ask(Method::GET, "/v2/_catalog", credentials.as_ref())
            .await;
        if resp.status().is_success() {
            let context = resp
                .extensions()
                .get::<RequestContext>()
                .cloned()
                .unwrap_or_default();
            return Ok(Viewer {
                user: context.caller.clone(),
                scope: Scope::Catalog(context),
                credentials,
                logins: true,
            });
        }
        if credentials.is_some() {
            return Err(UiError::LoginRequired);
        }
        Ok(Viewer {
            user: None,
            scope: Scope::Probe,
            credentials: None,
            logins: true,
        })
    }

    /// Whether `viewer` may pull `repository`, hence see it.
    pub async fn may_pull(&self, viewer: &Viewer, repository: &str) -> bool {
        match &viewer.scope {
            Scope::All => true,
            Scope::Catalog(context) => context.may_list(repository),
            Scope::Probe => self
                .ask(Method::GET, &format!("/v2/{repository}/tags/list"), None)
                .await
                .status()
                .is_success(),
        }
    }

    /// The caller of a page about repository `name`, if they may pull it:
    /// what they may not pull does not exist, as far as they can see.
    pub async fn viewer_of(&self, headers: &HeaderMap, name: &str) -> Result<Viewer, UiError> {
        let viewer = self.viewer(headers).await?;
        if !berth_oci::grammar::is_valid_name(name) || !self.may_pull(&viewer, name).await {
            return Err(UiError::NotFound);
        }
        Ok(viewer)
    }

    /// Whether `viewer` may delete manifests and tags of `repository`.
    pub async fn may_delete(&self, viewer: &Viewer, repository: &str) -> bool {
        if self.auth.is_none() {
            return true;
        }
        self.ask(
            Method::DELETE,
            &format!("/v2/{repository}/manifests/latest"),
            viewer.credentials.as_ref(),
        )
        .await
        .status()
        .is_success()
    }

    /// Whether logins go only through an external token server: then the
    /// UI cannot ask for them and shows what anonymous callers may pull.
    async fn external_only(&self) -> bool {
        let Some(auth) = &self.auth else {
            return false;
        };
        if auth.issues_tokens() {
            return false;
        }
        let resp = self.ask(Method::GET, "/v2/", None).await;
        resp.headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer"))
    }

    /// Sends `req` to the guest as the registry's own routes would: behind
    /// the login check, with the `RequestContext` it leaves, and reported
    /// to `notifier` when it changes something.
    pub async fn forward_to_guest(
        &self,
        guest: GuestRuntime,
        req: Request,
        notifier: Option<&Notifier>,
    ) -> Response {
        let mut app = Router::new().fallback(to_guest).with_state(guest);
        // Innermost, as around the registry's own routes: it sees the
        // caller the login check found.
        if let Some(notifier) = notifier.filter(|n| n.is_enabled()) {
            app = app.layer(middleware::from_fn_with_state(
                notifier.clone(),
                crate::front::events::record,
            ));
        }
        if let Some(auth) = &self.auth {
            app = app.layer(middleware::from_fn_with_state(
                auth.clone(),
                auth::authorize,
            ));
        }
        match app.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }

    /// The `DELETE /v2/<repository>/manifests/<reference>` `viewer` would
    /// send, through the login check, the guest and the notifications;
    /// `from` is the browser's request (its host, user agent and client).
    pub async fn delete(
        &self,
        guest: GuestRuntime,
        viewer: &Viewer,
        target: (&str, &str),
        from: &axum::http::request::Parts,
        notifier: &Notifier,
    ) -> Result<Response, UiError> {
        let (repository, reference) = target;
        let mut req = Request::new(Body::empty());
        *req.method_mut() = Method::DELETE;
        *req.uri_mut() = format!("/v2/{repository}/manifests/{reference}")
            .parse()
            .map_err(|_| UiError::BadRequest("not a repository and reference".into()))?;
        if let Some(value) = &viewer.credentials {
            req.headers_mut()
                .insert(header::AUTHORIZATION, value.clone());
        }
        // wasi-http wants an authority; the guest answers for any.
        let host = from
            .headers
            .get(header::HOST)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("localhost"));
        req.headers_mut().insert(header::HOST, host);
        if let Some(agent) = from.headers.get(header::USER_AGENT) {
            req.headers_mut().insert(header::USER_AGENT, agent.clone());
        }
        // Who the client is, for the login challenge and the event's
        // `request` record.
        if let Some(client) = from.extensions.get::<ClientInfo>() {
            req.extensions_mut().insert(client.clone());
        }
        if let Some(peer) = from
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        {
            req.extensions_mut().insert(*peer);
        }
        Ok(self.forward_to_guest(guest, req, Some(notifier)).await)
    }
}

/// The probe's answer: let in, with what the middleware learnt.
async fn granted(req: Request) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(context) = req.extensions().get::<RequestContext>() {
        resp.extensions_mut().insert(context.clone());
    }
    resp
}

/// As the server's own forward to the guest.
async fn to_guest(State(guest): State<GuestRuntime>, req: Request) -> Response {
    let req = req.map(|body| {
        http_body_util::BodyExt::map_err(body, |_| wasmtime_wasi_http::Error::ConnectionTerminated)
    });
    match guest.handle(req).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => {
            tracing::error!(error = %e, "guest request failed");
            crate::error_body::internal_error()
        }
    }
}

/// `GET /ui/login`: the browser's login dialog (HTTP basic auth, against
/// the local users), then back to the repositories.
pub(super) async fn login(
    axum::Extension(ui): axum::Extension<Ui>,
    headers: HeaderMap,
) -> Response {
    if ui.gate.auth.is_none() {
        return Redirect::to("/ui/").into_response();
    }
    if ui.gate.external_only().await {
        let page = layout::page(
            "Log in",
            None,
            html! {
                h1 { "Log in" }
                p { "Logins on this registry go through an external token server, which a \
                     browser cannot use. These pages show what anonymous callers may pull." }
                p { a href="/ui/" { "Back to the repositories" } }
            },
        );
        return html(StatusCode::OK, page);
    }
    match ui.gate.viewer(&headers).await {
        Ok(viewer) if viewer.user.is_some() => Redirect::to("/ui/").into_response(),
        _ => super::error::challenge(),
    }
}
