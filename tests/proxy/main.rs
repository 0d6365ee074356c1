//! The pull-through cache (docs/PROXY.md) and the client it fetches with,
//! against real upstreams on loopback: Berth with logins in token and
//! basic mode, Debian's registry:2 with htpasswd over TLS, and stubs for
//! what no real registry does on purpose (breaking off, corrupting bytes).
//! No internet.

#[path = "../common/mod.rs"]
mod common;

mod cache;
mod clients;
mod upstream_client;
