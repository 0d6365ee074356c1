//! Browsers and registry:2's `http.headers`: CORS for single-page registry
//! UIs (joxit/docker-registry-ui and the like), answered before any login
//! is asked for, since a browser's preflight carries no credentials; and
//! the operator's extra headers on every response.

use crate::config::{CorsConfig, ExtraHeaders};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// The headers to add, parsed once at start.
#[derive(Clone, Default)]
pub struct Browsers {
    cors: Option<Arc<Cors>>,
    extra: Arc<Vec<(HeaderName, HeaderValue)>>,
}

struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    methods: HeaderValue,
    headers: HeaderValue,
    exposed: HeaderValue,
    credentials: bool,
    max_age: HeaderValue,
}

/// A header name or value the configuration gives that HTTP refuses.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {what:?} is not a valid HTTP header {part}")]
pub struct BadHeader {
    pub key: String,
    pub what: String,
    pub part: &'static str,
}

fn value(key: &str, text: &str) -> Result<HeaderValue, BadHeader> {
    HeaderValue::from_str(text).map_err(|_| BadHeader {
        key: key.to_owned(),
        what: text.to_owned(),
        part: "value",
    })
}

impl Browsers {
    pub fn new(cors: &CorsConfig, extra: &ExtraHeaders) -> Result<Self, BadHeader> {
        let mut headers = Vec::new();
        for (name, values) in extra {
            let parsed = HeaderName::from_bytes(name.as_bytes()).map_err(|_| BadHeader {
                key: "server.headers".into(),
                what: name.clone(),
                part: "name",
            })?;
            for v in values {
                headers.push((parsed.clone(), value("server.headers", v)?));
            }
        }
        let cors = if cors.allowed_origins.is_empty() {
            None
        } else {
            let any_origin = cors.allowed_origins.iter().any(|o| o == "*");
            Some(Arc::new(Cors {
                any_origin,
                origins: cors
                    .allowed_origins
                    .iter()
                    .map(|o| o.trim_end_matches('/').to_owned())
                    .collect(),
                methods: value(
                    "server.cors.allowed_methods",
                    &cors.allowed_methods.join(", "),
                )?,
                headers: value(
                    "server.cors.allowed_headers",
                    &cors.allowed_headers.join(", "),
                )?,
                exposed: value(
                    "server.cors.exposed_headers",
                    &cors.exposed_headers.join(", "),
                )?,
                credentials: cors.allow_credentials,
                max_age: value("server.cors.max_age", &cors.max_age.0.as_secs().to_string())?,
            }))
        };
        Ok(Self {
            cors,
            extra: Arc::new(headers),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.cors.is_none() && self.extra.is_empty()
    }
}

impl Cors {
    /// The `Access-Control-Allow-Origin` for `origin`, if it may call.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let text = origin.to_str().ok()?;
        if self.any_origin && !self.credentials {
            return Some(HeaderValue::from_static("*"));
        }
        (self.any_origin || self.origins.iter().any(|o| o == text)).then(|| origin.clone())
    }

    fn decorate(&self, allowed: HeaderValue, headers: &mut HeaderMap) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

/// The middleware, outside the login checks.
pub async fn apply(State(browsers): State<Browsers>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed = browsers
        .cors
        .as_ref()
        .zip(origin.as_ref())
        .and_then(|(cors, origin)| Some((cors, cors.allow(origin)?)));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = match (&allowed, preflight) {
        (Some((cors, allow)), true) => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::OK;
            let headers = resp.headers_mut();
            cors.decorate(allow.clone(), headers);
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, cors.methods.clone());
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, cors.headers.clone());
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
            resp
        }
        (Some((cors, allow)), false) => {
            let mut resp = next.run(req).await;
            let headers = resp.headers_mut();
            cors.decorate(allow.clone(), headers);
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, cors.exposed.clone());
            resp
        }
        (None, _) => next.run(req).await,
    };
    // registry:2 sets them before its handlers run, so a handler's own
    // header of the same name wins.
    let headers = resp.headers_mut();
    let answered: Vec<&HeaderName> = browsers
        .extra
        .iter()
        .map(|(name, _)| name)
        .filter(|name| headers.contains_key(*name))
        .collect();
    for (name, value) in browsers.extra.iter() {
        if !answered.contains(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    resp
}
