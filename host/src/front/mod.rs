//! The HTTP front: the listener (TLS, connection limits), the router with
//! the host's own endpoints, and what wraps every request before it
//! reaches the sandbox (who the client is, authentication, read-only
//! mode, upload limits).

pub mod auth;
pub mod client;
pub mod cors;
pub mod debug;
pub mod events;
pub mod limits;
pub mod listener;
pub mod namespaces;
pub mod observe;
pub mod routes;
pub mod server;
pub mod tls;
pub mod ui;
