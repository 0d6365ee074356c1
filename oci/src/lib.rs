//! Berth's knowledge of the OCI distribution and image specs, with no I/O:
//! the digest, name, tag and reference grammars, route and query parsing,
//! `Range` and `Content-Range`, media types, the manifest parser, and the
//! error-code table with its one body writer.
//!
//! The registry guest (compiled to `wasm32-wasip2`), the native host, the
//! storage backends and the standalone storage component all use this one
//! crate, so each fact about the protocol is written down once.

pub mod digest;
pub mod error;
pub mod grammar;
pub mod manifest;
pub mod media_types;
pub mod range;
pub mod route;

pub use digest::{Digest, DigestError};
pub use error::ApiError;
