//! End-to-end tests of Berth's OCI distribution HTTP API (distribution-spec
//! v1.1): every endpoint, its success paths and its error paths, driven over
//! real HTTP against the `berth` binary.
//!
//! Every test starts its own server on a fresh root, so tests can run in
//! parallel and can make exact assertions (e.g. on the catalog).

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod basics;
mod blobs;
mod listing;
mod manifests;
mod persistence;
mod referrers;
mod uploads;
