//! Moving images in and out of a store without a server: `berth export`
//! (an OCI image layout or a `docker load` archive), `berth import` (the
//! reverse, verified), `berth sync` (from an upstream registry), `berth
//! metadata migrate` (a store's metadata into PostgreSQL). Like
//! `gc`, each works on the store directly, also while a server uses it.
//!
//! - `store.rs`: putting blobs and manifests into the store the way a push
//!   does (verified, pinned against garbage collection, visible last);
//! - `archive.rs`: reading and writing OCI image layouts and `docker save`
//!   archives, directories or tars, plain, gzip or zstd;
//! - `progress.rs`: the progress bar (plain lines when not a terminal);
//! - `export.rs`, `import.rs`, `sync.rs`, `migrate.rs`: the commands.

pub mod archive;
pub mod export;
pub mod import;
pub mod migrate;
pub mod progress;
pub mod store;
pub mod sync;
