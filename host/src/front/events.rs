//! Events derived from the registry's answers: a manifest or blob pushed,
//! mounted, pulled or deleted, handed to `crate::notify`.

use crate::notify::Notifier;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Runs the request, then records what it changed.
pub async fn record(State(_notifier): State<Notifier>, req: Request, next: Next) -> Response {
    next.run(req).await
}
