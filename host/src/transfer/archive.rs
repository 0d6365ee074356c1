//! The files `export` writes and `import` reads: OCI image layouts and
//! `docker save` archives, as directories or tars (plain, gzip, zstd).
//! No store access here; the commands move bytes between these and the
//! store.
//!
//! - `layout.rs`: the OCI image layout's `oci-layout` and `index.json`, blob
//!   paths, and image names in annotations (`repo:tag`);
//! - `docker.rs`: `docker save`'s `manifest.json`, and turning an image of
//!   the legacy format (config + `layer.tar` files) into an OCI manifest;
//! - `detect.rs`: plain, gzip or zstd by magic bytes; directory or tar by
//!   the output's name;
//! - `sink.rs`: writing files into a directory or a tar, on a blocking
//!   thread, fed in chunks through a bounded channel;
//! - `tar_in.rs`: reading a tar once, entry by entry, seeking past what is
//!   not read when the tar is plain.

pub mod detect;
pub mod docker;
pub mod layout;
pub mod sink;
pub mod tar_in;
