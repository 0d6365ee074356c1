//! The web UI at `/ui/`: server-rendered HTML over the metadata store.
//!
//! (Being built: see issue 17.)

use crate::front::auth::Auth;
use crate::sandbox::runtime::GuestRuntime;
use axum::Router;
use std::sync::Arc;

/// The UI's routes.
pub fn router(_auth: Option<Arc<Auth>>) -> Router<GuestRuntime> {
    Router::new()
}
