//! Berth as the drop-in for registry:2: its configuration (`REGISTRY_*`
//! variables and `config.yml`), a root holding registry:2's tree, and the
//! container image `deploy/build-image.sh` builds.

#[path = "../common/mod.rs"]
mod common;

mod config;
mod image;
