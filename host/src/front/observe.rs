//! What every request leaves behind: registry:2's request metrics
//! (`registry_http_*`) and one access-log line (target `berth::access`).
//! Both are taken when the response body ends, or is dropped because the
//! client went away, so they count the bytes that left and the time that
//! took, not just the time to the first header.

use crate::front::client::{CallerName, ClientInfo};
use crate::metrics;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// What is taken of each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observe {
    pub metrics: bool,
    pub access_log: bool,
}

impl Observe {
    pub fn any(self) -> bool {
        self.metrics || self.access_log
    }
}

/// The middleware: measures the request and wraps the response body so the
/// measurement ends with it.
pub async fn measure(State(observe): State<Observe>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let caller = CallerName::default();
    req.extensions_mut().insert(caller.clone());
    let path = req.uri().path();
    let handler = handler_of(path);
    let finish = Finish {
        observe,
        started,
        handler,
        method: req.method().clone(),
        path: observe.access_log.then(|| path.to_owned()),
        client: req.extensions().get::<ClientInfo>().and_then(|c| c.addr),
        user_agent: observe
            .access_log
            .then(|| header_text(req.headers(), header::USER_AGENT)),
        request_bytes: content_length(req.headers()),
        caller,
        status: 0,
        bytes: 0,
        complete: false,
    };
    if observe.metrics {
        metrics::get()
            .http_in_flight
            .with_label_values(&[handler])
            .inc();
    }
    let resp = next.run(req).await;
    let (parts, body) = resp.into_parts();
    let mut finish = finish;
    finish.status = parts.status.as_u16();
    // hyper stops polling once it has sent `Content-Length` bytes, so a
    // body that long ended, whether or not its end was polled.
    let expected = if finish.method == Method::HEAD {
        Some(0)
    } else {
        parts
            .headers
            .contains_key(header::CONTENT_LENGTH)
            .then(|| content_length(&parts.headers))
            .or(body.size_hint().exact())
    };
    let body = Measured {
        inner: body,
        expected,
        finish: Some(finish),
    };
    Response::from_parts(parts, Body::new(body))
}

/// registry:2's handler names (its route names), and Berth's own for the
/// endpoints registry:2 does not have.
pub fn handler_of(path: &str) -> &'static str {
    use berth_oci::route::{Endpoint, parse};
    if path.starts_with("/v2") {
        return match parse(path).map(|route| route.endpoint()) {
            Ok(Endpoint::Base) => "base",
            Ok(Endpoint::Catalog) => "catalog",
            Ok(Endpoint::Tags) => "tags",
            Ok(Endpoint::Manifest) => "manifest",
            Ok(Endpoint::Blob) => "blob",
            Ok(Endpoint::UploadStart) => "blob_upload",
            Ok(Endpoint::Upload) => "blob_upload_chunk",
            Ok(Endpoint::Referrers) => "referrers",
            Err(_) => "unknown",
        };
    }
    match path {
        "/health" => "health",
        "/debug/health" => "debug_health",
        "/metrics" => "metrics",
        "/auth/token" => "token",
        _ if path.starts_with("/berth/") => "berth",
        _ if path == "/" || path.starts_with("/ui") => "ui",
        _ => "unknown",
    }
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A header as text for a log line, cut to a sane length.
fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    let text = headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    text.chars().take(256).collect()
}

/// The measurement of one request, closed when its body ends.
struct Finish {
    observe: Observe,
    started: Instant,
    handler: &'static str,
    method: Method,
    /// Kept only for the access log.
    path: Option<String>,
    client: Option<IpAddr>,
    user_agent: Option<String>,
    request_bytes: u64,
    caller: CallerName,
    status: u16,
    bytes: u64,
    /// The body reached its end (not dropped half-way).
    complete: bool,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let seconds = metrics::seconds_since(self.started);
        if self.observe.metrics {
            let m = metrics::get();
            let method = self.method.as_str().to_ascii_lowercase();
            let code = self.status.to_string();
            m.http_in_flight.with_label_values(&[self.handler]).dec();
            m.http_requests
                .with_label_values(&[self.handler, code.as_str(), method.as_str()])
                .inc();
            m.http_duration
                .with_label_values(&[self.handler, method.as_str()])
                .observe(seconds);
            m.http_request_size
                .with_label_values(&[self.handler])
                .observe(self.request_bytes as f64);
            m.http_response_size
                .with_label_values(&[self.handler])
                .observe(self.bytes as f64);
        }
        if self.observe.access_log {
            let caller = self.caller.get();
            tracing::info!(
                target: "berth::access",
                client = self.client.map(tracing::field::display),
                caller = caller.as_deref(),
                method = %self.method,
                // The path only: query strings may carry upload state.
                path = %self.path.as_deref().unwrap_or_default(),
                status = self.status,
                bytes_in = self.request_bytes,
                bytes_out = self.bytes,
                micros = (seconds * 1e6) as u64,
                user_agent = self.user_agent.as_deref().unwrap_or_default(),
                complete = self.complete,
                "request"
            );
        }
    }
}

/// A response body counting what passes through it.
struct Measured {
    inner: Body,
    /// The body's length, when the response said it.
    expected: Option<u64>,
    finish: Option<Finish>,
}

impl http_body::Body for Measured {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(finish)) = (frame.data_ref(), self.finish.as_mut()) {
                    finish.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(mut finish) = self.finish.take() {
                    finish.complete = true;
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Measured {
    fn drop(&mut self) {
        // An empty body is never polled, and hyper does not poll past the
        // length it announced: either way it ended, it was not cut short.
        let expected = self.expected;
        if let Some(finish) = self.finish.as_mut()
            && (self.inner.is_end_stream() || expected.is_some_and(|n| finish.bytes >= n))
        {
            finish.complete = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::handler_of;

    #[test]
    fn handlers_are_registry2s_route_names() {
        for (path, want) in [
            ("/v2/", "base"),
            ("/v2/_catalog", "catalog"),
            ("/v2/a/b/tags/list", "tags"),
            ("/v2/a/manifests/latest", "manifest"),
            (
                "/v2/a/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "blob",
            ),
            ("/v2/a/blobs/uploads/", "blob_upload"),
            ("/v2/a/blobs/uploads/abc", "blob_upload_chunk"),
            ("/metrics", "metrics"),
            ("/ui/repositories", "ui"),
            ("/nope", "unknown"),
        ] {
            assert_eq!(handler_of(path), want, "{path}");
        }
    }
}
