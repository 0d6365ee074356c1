//! wasi-http glue: reading requests, building and sending responses, and
//! moving bytes between streams.
//!
//! Blob bytes only ever move by `splice` between host streams (request body
//! → upload sink, blob reader → response body); the guest never buffers them.
//! Only small bodies (manifests, JSON) are held in guest memory.

use crate::error;
use berth_oci::ApiError;
use berth_oci::route::Method;
use std::marker::PhantomData;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method as WasiMethod, OutgoingBody,
    OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Largest single splice. The host may move less per call.
const SPLICE_CHUNK: u64 = 1 << 20;

/// Read granularity for in-memory bodies (manifests).
const READ_CHUNK: u64 = 64 << 10;

/// Every response carries this (registry:2 and Docker clients use it to
/// detect a v2 registry, also on errors).
const API_VERSION: (&str, &str) = (
    berth_oci::error::API_VERSION_HEADER,
    berth_oci::error::API_VERSION,
);

/// An incoming request with its headers copied out: the `fields` resource is
/// dropped immediately so that it can never outlive the request or block
/// `consume`.
pub struct Request {
    pub method: Method,
    /// Path and query, as sent.
    pub target: String,
    headers: Vec<(String, Vec<u8>)>,
    incoming: IncomingRequest,
}

impl Request {
    pub fn new(incoming: IncomingRequest) -> Request {
        let method = match incoming.method() {
            WasiMethod::Get => Method::Get,
            WasiMethod::Head => Method::Head,
            WasiMethod::Post => Method::Post,
            WasiMethod::Put => Method::Put,
            WasiMethod::Patch => Method::Patch,
            WasiMethod::Delete => Method::Delete,
            _ => Method::Other,
        };
        let target = incoming.path_with_query().unwrap_or_default();
        let headers = incoming.headers().entries();
        Request {
            method,
            target,
            headers,
            incoming,
        }
    }

    /// Values of header `name` (case-insensitive) that are valid UTF-8.
    pub fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The first value of header `name`, trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// `Content-Length`, when present and numeric.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.parse().ok()
    }

    /// Takes the request body. Can succeed once per request.
    pub fn body(&self) -> Result<RequestBody<'_>, ApiError> {
        let body = self
            .incoming
            .consume()
            .map_err(|()| error::internal("request", "body already consumed"))?;
        let stream = body
            .stream()
            .map_err(|()| error::internal("request", "body stream unavailable"))?;
        Ok(RequestBody {
            stream,
            _body: body,
            _request: PhantomData,
        })
    }
}

/// A request body being read. Field order matters: the stream is a child of
/// the body resource and must be dropped first, and the borrow keeps the
/// request (their parent) alive until both are gone.
pub struct RequestBody<'a> {
    stream: InputStream,
    _body: IncomingBody,
    _request: PhantomData<&'a Request>,
}

impl RequestBody<'_> {
    pub fn stream(&self) -> &InputStream {
        &self.stream
    }
}

/// What follows the headers.
pub enum Body {
    /// No body; `content-length: 0` (except on 204).
    Empty,
    /// A small body held in memory (JSON, error documents).
    Bytes(Vec<u8>),
    /// `len` bytes spliced from a host stream (blob and manifest content).
    Stream { stream: InputStream, len: u64 },
    /// A HEAD response: `content-length: len`, no body.
    Head { len: u64 },
    /// Bytes spliced from a host stream whose length is not known up front
    /// (a blob on its way from an upstream that did not declare it): no
    /// `content-length`, so the response is chunked. None for a HEAD.
    Unsized(Option<InputStream>),
}

/// A response under construction.
pub struct Response {
    pub status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// A JSON body.
    pub fn json(status: u16, bytes: Vec<u8>) -> Response {
        Response::new(status)
            .header("content-type", "application/json")
            .body(Body::Bytes(bytes))
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    pub fn from_error(err: &ApiError) -> Response {
        let mut r = Response::json(err.descriptor().status, err.body());
        r.headers.extend(err.headers());
        r
    }
}

/// Sends `resp`. For HEAD requests the headers (content-length included) go
/// out but `outgoing-response.body` is never called: wasi-http checks the
/// bytes written against content-length when a body is finished, and the
/// host's HTTP server omits the body of HEAD responses itself.
pub fn send(resp: Response, out: ResponseOutparam, head: bool) {
    let Response {
        status,
        mut headers,
        body,
    } = resp;
    let content_length = match &body {
        Body::Empty => Some(0),
        Body::Bytes(b) => Some(b.len() as u64),
        Body::Stream { len, .. } | Body::Head { len } => Some(*len),
        Body::Unsized(_) => None,
    };
    // RFC 9110 §8.6: no Content-Length on 204.
    if status != 204
        && let Some(len) = content_length
    {
        headers.push(("content-length", len.to_string()));
    }
    headers.push((API_VERSION.0, API_VERSION.1.to_owned()));

    let list: Vec<(String, Vec<u8>)> = headers
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_bytes()))
        .collect();
    let fields = match Fields::from_list(&list) {
        Ok(f) => f,
        Err(e) => {
            // Only reachable if a header value we built is not a legal
            // field value; nothing sensible can be sent.
            eprintln!("berth-guest: building response headers: {e:?}");
            ResponseOutparam::set(
                out,
                Err(ErrorCode::InternalError(Some("bad header".into()))),
            );
            return;
        }
    };
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(status).is_err() {
        ResponseOutparam::set(
            out,
            Err(ErrorCode::InternalError(Some("bad status".into()))),
        );
        return;
    }

    let has_bytes = !head
        && content_length != Some(0)
        && !matches!(body, Body::Head { .. } | Body::Empty | Body::Unsized(None));
    if !has_bytes {
        ResponseOutparam::set(out, Ok(response));
        return;
    }
    let Ok(outgoing) = response.body() else {
        ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some("no body".into()))));
        return;
    };
    // From here on the status line is committed: failures can only truncate
    // the body, which the host reports to the client as an aborted response.
    ResponseOutparam::set(out, Ok(response));
    let written = match outgoing.write() {
        Ok(stream) => {
            let result = match &body {
                Body::Bytes(bytes) => write_all(&stream, bytes).map(|()| bytes.len() as u64),
                Body::Stream { stream: src, .. } | Body::Unsized(Some(src)) => {
                    splice_all(&stream, src)
                }
                Body::Empty | Body::Head { .. } | Body::Unsized(None) => Ok(0),
            };
            drop(stream);
            result
        }
        Err(()) => Err("response body stream unavailable".to_owned()),
    };
    // The source stream (if any) must go before anything else is finished.
    drop(body);
    match written {
        Ok(n) if content_length.is_none_or(|len| n == len) => {
            if let Err(e) = OutgoingBody::finish(outgoing, None) {
                eprintln!("berth-guest: finishing response body: {e:?}");
            }
        }
        // Dropping an unfinished body tells the host the response is broken.
        Ok(n) => eprintln!(
            "berth-guest: response body short: {n} of {} bytes",
            content_length.unwrap_or_default()
        ),
        Err(e) => eprintln!("berth-guest: writing response body: {e}"),
    }
}

/// Splices `src` into `dst` until `src` ends, returning the bytes moved. The
/// host moves the bytes; the guest only drives the loop.
///
/// Non-blocking `splice` after waiting for a write permit, rather than
/// `blocking-splice`: the latter flushes after every chunk, and a flush of
/// an upload sink is a durability point (an object-store part), which the
/// caller wants once, at the end.
pub fn splice_all(dst: &OutputStream, src: &InputStream) -> Result<u64, String> {
    let mut total = 0u64;
    loop {
        dst.subscribe().block();
        match dst.splice(src, SPLICE_CHUNK) {
            // The permit is there, so nothing moved means no input yet.
            Ok(0) => src.subscribe().block(),
            Ok(n) => total += n,
            Err(StreamError::Closed) => return Ok(total),
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
}

/// Writes `bytes` to `dst` with the check-write / write / flush protocol
/// (`blocking-write-and-flush` is limited to 4096 bytes per call).
pub fn write_all(dst: &OutputStream, mut bytes: &[u8]) -> Result<(), String> {
    let fail = |e: StreamError| match e {
        StreamError::Closed => "stream closed".to_owned(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    };
    while !bytes.is_empty() {
        let permit = dst.check_write().map_err(fail)?;
        if permit == 0 {
            dst.subscribe().block();
            continue;
        }
        let n = usize::try_from(permit)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        dst.write(&bytes[..n]).map_err(fail)?;
        bytes = &bytes[n..];
    }
    dst.blocking_flush().map_err(fail)
}

/// Why an in-memory read stopped.
#[derive(Debug)]
pub enum ReadError {
    /// More than the limit arrived; reading stopped there.
    TooLarge,
    Io(String),
}

/// Reads all of `src` into memory, refusing more than `limit` bytes (it
/// stops reading as soon as the limit is passed).
pub fn read_limited(src: &InputStream, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    loop {
        match src.blocking_read(READ_CHUNK) {
            Ok(chunk) => {
                buf.extend_from_slice(&chunk);
                if buf.len() as u64 > limit {
                    return Err(ReadError::TooLarge);
                }
            }
            Err(StreamError::Closed) => return Ok(buf),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(ReadError::Io(e.to_debug_string()));
            }
        }
    }
}
