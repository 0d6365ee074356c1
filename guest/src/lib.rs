//! Berth's registry guest: the OCI distribution protocol (spec v1.1) as a
//! `wasi:http/incoming-handler` component.
//!
//! The guest is stateless between requests: everything it knows lives behind
//! the host's `berth:registry/blobs` and `berth:registry/metadata` imports
//! (see `wit/registry.wit`). Each request is parsed once into a
//! [`berth_oci::route::Route`], dispatched to one handler, and the handler's
//! `Result<Response, ApiError>` is sent by [`http::send`].
//!
//! Nothing a request controls may trap: a trap aborts the request with a
//! bare 500 and no protocol headers, so handlers return typed errors.

mod error;
mod http;

mod admission;
mod blobs;
mod listing;
mod manifests;
mod referrers;
mod uploads;

/// Bindings for the storage imports. The `with` map makes the WIT
/// `wasi:io` types *be* the `wasip2` crate's, so a stream the store hands
/// us can be spliced straight into a wasi-http body and back.
#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "berth:registry/storage",
        with: {
            "wasi:io/streams@0.2.12": wasip2::io::streams,
            "wasi:io/error@0.2.12": wasip2::io::error,
            "wasi:io/poll@0.2.12": wasip2::io::poll,
        },
    });
}

/// The storage imports, under one name so handler modules (`blobs.rs`) and
/// storage interfaces (`storage::blobs`) never collide.
pub(crate) mod storage {
    pub use crate::bindings::berth::registry::{admission, blobs, metadata, types};
}

use berth_oci::ApiError;
use berth_oci::route::{self, Method, Query, Route};
use http::{Request, Response};

/// Routes one request to its handler.
fn dispatch(req: &Request) -> Result<Response, ApiError> {
    let (path, query) = route::split_target(&req.target);
    let route = route::parse(path).map_err(|e| match e {
        // A reference that is neither a tag nor a digest names no manifest:
        // reads answer 404 as registry:2 does; a push with it stays 400.
        ApiError::TagInvalid if matches!(req.method, Method::Get | Method::Head) => {
            ApiError::ManifestUnknown
        }
        other => other,
    })?;
    if !route.allows(req.method) {
        return Err(ApiError::MethodNotAllowed {
            allow: route.allow(),
        });
    }
    let query = Query::parse(query);
    let head = req.method == Method::Head;
    match route {
        Route::Base => Ok(Response::json(200, b"{}".to_vec())),
        Route::Catalog => listing::catalog(&query),
        Route::Tags { name } => listing::tags(&name, &query),
        Route::Manifest { name, reference } => match req.method {
            Method::Put => manifests::put(req, &name, &reference, &query),
            Method::Delete => manifests::delete(&name, &reference),
            _ => manifests::get(req, &name, &reference, head),
        },
        Route::Blob { name, digest } => match req.method {
            Method::Delete => blobs::delete(&name, &digest),
            _ => blobs::get(req, &name, &digest, head),
        },
        Route::UploadStart { name } => uploads::start(req, &name, &query),
        Route::Upload { name, id } => match req.method {
            Method::Patch => uploads::patch(req, &name, &id),
            Method::Put => uploads::put(req, &name, &id, &query),
            Method::Delete => uploads::cancel(&name, &id),
            _ => uploads::status(&name, &id),
        },
        Route::Referrers { name, digest } => referrers::list(&name, &digest, &query),
    }
}

/// The exported `wasi:http/incoming-handler`.
pub struct Registry;

impl wasip2::exports::http::incoming_handler::Guest for Registry {
    fn handle(
        request: wasip2::http::types::IncomingRequest,
        out: wasip2::http::types::ResponseOutparam,
    ) {
        let req = Request::new(request);
        let head = req.method == Method::Head;
        let response = dispatch(&req).unwrap_or_else(|e| Response::from_error(&e));
        http::send(response, out, head);
    }
}

// The export glue only means something inside a component; natively (unit
// tests) the crate is just its pure modules.
#[cfg(target_arch = "wasm32")]
wasip2::http::proxy::export!(Registry);
