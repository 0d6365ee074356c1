//! Berth's storage interfaces (`berth:registry/blobs`, `metadata`,
//! `admission` and `catalog`, world `storage-exports` in `wit/registry.wit`) implemented
//! on `wasi:filesystem` alone, for a registry that is one component run by
//! `wasmtime serve` with its data directory preopened as `/data`.
//!
//! The storage logic ([`blobs`], [`metadata`]) works on a root directory
//! with std::fs, which wasm32-wasip2 maps onto `wasi:filesystem`, so it is
//! unit-tested natively against a temporary directory. The component glue
//! (`component`, wasm32 only) finds the preopened directory and turns files
//! into the `wasi:io` streams the interfaces hand out. Correctness over
//! speed: the native host's backends are the fast path.

pub mod blobs;
#[cfg(test)]
mod conformance_adapter;
pub mod error;
mod fsutil;
pub mod metadata;
pub mod paths;

#[cfg(target_arch = "wasm32")]
mod component;

pub use blobs::{Blobs, RangeSource};
pub use error::{Error, Result};
pub use metadata::{ManifestInfo, Metadata, Page};
pub use paths::Layout;
