//! The request handlers, and the one table that says which of them serves
//! each endpoint and method. Dispatch reads the table, and so does the
//! `Allow` header of a 405, so the two cannot disagree: a new endpoint or
//! method is one row here (plus its shape in `berth_oci::route`).
//!
//! The table lists GET only: a HEAD runs the GET handler with
//! [`Call::head`] set, so HEAD is allowed wherever GET is (RFC 9110
//! §9.3.2).

mod admission;
mod blobs;
mod cache;
mod listing;
mod manifest_store;
mod manifests;
mod referrers;
mod uploads;

use crate::error;
use crate::http::{Request, Response};
use berth_oci::route::{self, Endpoint, Method, Query, Reference, Route};
use berth_oci::{ApiError, Digest};

/// One request, as every handler receives it.
pub struct Call<'a> {
    pub req: &'a Request,
    pub route: Route,
    pub query: Query,
    /// A HEAD served by a GET handler: same headers, no body.
    pub head: bool,
}

/// Serves one endpoint and method.
type Handler = fn(&Call) -> Result<Response, ApiError>;

/// Every endpoint and method the registry serves. An endpoint's rows, in
/// order, are its `Allow` header.
const HANDLERS: &[(Endpoint, Method, Handler)] = &[
    (Endpoint::Base, Method::Get, base),
    (Endpoint::Catalog, Method::Get, listing::catalog),
    (Endpoint::Tags, Method::Get, listing::tags),
    (Endpoint::Manifest, Method::Get, manifests::get),
    (Endpoint::Manifest, Method::Put, manifests::put),
    (Endpoint::Manifest, Method::Delete, manifests::delete),
    (Endpoint::Blob, Method::Get, blobs::get),
    (Endpoint::Blob, Method::Delete, blobs::delete),
    (Endpoint::UploadStart, Method::Post, uploads::start),
    (Endpoint::Upload, Method::Get, uploads::status),
    (Endpoint::Upload, Method::Patch, uploads::patch),
    (Endpoint::Upload, Method::Put, uploads::put),
    (Endpoint::Upload, Method::Delete, uploads::cancel),
    (Endpoint::Referrers, Method::Get, referrers::list),
];

/// Routes one request to its handler.
pub fn dispatch(req: &Request) -> Result<Response, ApiError> {
    let (path, query) = route::split_target(&req.target);
    let route = route::parse(path).map_err(|e| match e {
        // A reference that is neither a tag nor a digest names no manifest:
        // reads answer 404 as registry:2 does; a push with it stays 400.
        ApiError::TagInvalid if matches!(req.method, Method::Get | Method::Head) => {
            ApiError::ManifestUnknown
        }
        other => other,
    })?;
    let endpoint = route.endpoint();
    let head = req.method == Method::Head;
    let method = if head { Method::Get } else { req.method };
    let (_, _, handler) = HANDLERS
        .iter()
        .find(|(e, m, _)| *e == endpoint && *m == method)
        .ok_or_else(|| ApiError::MethodNotAllowed {
            allow: allow(endpoint),
        })?;
    handler(&Call {
        req,
        route,
        query: Query::parse(query),
        head,
    })
}

/// The `Allow` header value for `endpoint`: its methods in table order,
/// HEAD right after GET.
fn allow(endpoint: Endpoint) -> String {
    let mut names = Vec::new();
    for (_, method, _) in HANDLERS.iter().filter(|(e, _, _)| *e == endpoint) {
        names.extend(method.name());
        if *method == Method::Get {
            names.push("HEAD");
        }
    }
    names.join(", ")
}

/// `GET /v2/` (end-1): the registry speaks the v2 protocol.
fn base(_: &Call) -> Result<Response, ApiError> {
    Ok(Response::json(200, b"{}".to_vec()))
}

/// The parts of the route a handler reads. The table sends a call only to
/// its endpoint's handlers, so a missing part is a wrong row: a logged 500,
/// never a trap.
impl Call<'_> {
    /// The repository (every endpoint but `/v2/` and `_catalog`).
    pub fn name(&self) -> Result<&str, ApiError> {
        match &self.route {
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Ok(name),
            Route::Base | Route::Catalog => Err(self.misrouted("name")),
        }
    }

    /// The manifest's tag or digest.
    pub fn reference(&self) -> Result<&Reference, ApiError> {
        match &self.route {
            Route::Manifest { reference, .. } => Ok(reference),
            _ => Err(self.misrouted("reference")),
        }
    }

    /// The blob's digest, or the subject's for referrers.
    pub fn digest(&self) -> Result<&Digest, ApiError> {
        match &self.route {
            Route::Blob { digest, .. } | Route::Referrers { digest, .. } => Ok(digest),
            _ => Err(self.misrouted("digest")),
        }
    }

    /// The upload session's id.
    pub fn upload_id(&self) -> Result<&str, ApiError> {
        match &self.route {
            Route::Upload { id, .. } => Ok(id),
            _ => Err(self.misrouted("upload id")),
        }
    }

    fn misrouted(&self, part: &str) -> ApiError {
        let endpoint = self.route.endpoint();
        error::internal("dispatch", format!("{endpoint:?} has no {part}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Clients and tests compare these exactly, order included.
    #[test]
    fn allow_lists_each_endpoints_methods() {
        for (endpoint, expected) in [
            (Endpoint::Base, "GET, HEAD"),
            (Endpoint::Catalog, "GET, HEAD"),
            (Endpoint::Tags, "GET, HEAD"),
            (Endpoint::Manifest, "GET, HEAD, PUT, DELETE"),
            (Endpoint::Blob, "GET, HEAD, DELETE"),
            (Endpoint::UploadStart, "POST"),
            (Endpoint::Upload, "GET, HEAD, PATCH, PUT, DELETE"),
            (Endpoint::Referrers, "GET, HEAD"),
        ] {
            assert_eq!(allow(endpoint), expected, "{endpoint:?}");
        }
    }

    /// HEAD rides on GET, and dispatch takes the first matching row.
    #[test]
    fn rows_are_unique_and_name_real_methods() {
        for (i, (endpoint, method, _)) in HANDLERS.iter().enumerate() {
            assert!(
                !matches!(method, Method::Head | Method::Other),
                "{method:?}"
            );
            assert!(
                !HANDLERS[..i]
                    .iter()
                    .any(|(e, m, _)| e == endpoint && m == method),
                "{endpoint:?} {method:?} twice"
            );
        }
    }
}
