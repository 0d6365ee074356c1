//! Berth's registry guest: the OCI distribution protocol (spec v1.1) as a
//! `wasi:http/incoming-handler` component.
//!
//! The guest is stateless between requests: everything it knows lives behind
//! the host's `berth:registry/blobs` and `berth:registry/metadata` imports,
//! and it asks `admission` and `catalog` what it may change and show (world
//! `registry-guest` in `wit/registry.wit`). Each request is parsed once into a
//! [`berth_oci::route::Route`], dispatched by the table in [`handlers`] to
//! one handler, and the handler's `Result<Response, ApiError>` is sent by
//! [`http::send`].
//!
//! Nothing a request controls may trap: a trap aborts the request with a
//! bare 500 and no protocol headers, so handlers return typed errors.

mod error;
mod handlers;
mod http;

/// Bindings for the imports (world `storage-imports`). The `with` map makes the WIT
/// `wasi:io` types *be* the `wasip2` crate's, so a stream the store hands
/// us can be spliced straight into a wasi-http body and back.
#[allow(clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "berth:registry/storage-imports",
        with: {
            "wasi:io/streams@0.2.12": wasip2::io::streams,
            "wasi:io/error@0.2.12": wasip2::io::error,
            "wasi:io/poll@0.2.12": wasip2::io::poll,
        },
    });
}

/// The imports, under one name so handler modules (`handlers::blobs`)
/// and storage interfaces (`storage::blobs`) never collide.
pub(crate) mod storage {
    pub use crate::bindings::berth::registry::{
        admission, blobs, catalog, metadata, types, upstream,
    };
}

use berth_oci::route::Method;
use http::{Request, Response};

/// The exported `wasi:http/incoming-handler`.
pub struct Registry;

impl wasip2::exports::http::incoming_handler::Guest for Registry {
    fn handle(
        request: wasip2::http::types::IncomingRequest,
        out: wasip2::http::types::ResponseOutparam,
    ) {
        let req = Request::new(request);
        let head = req.method == Method::Head;
        let response = handlers::dispatch(&req).unwrap_or_else(|e| Response::from_error(&e));
        http::send(response, out, head);
    }
}

// The export glue only means something inside a component; natively (unit
// tests) the crate is just its pure modules.
#[cfg(target_arch = "wasm32")]
wasip2::http::proxy::export!(Registry);
