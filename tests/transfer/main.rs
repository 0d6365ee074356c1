//! Moving images without a server: `berth export`, `berth import` and
//! `berth sync`, checked against what skopeo, docker and registry:2 read
//! and write.

#[path = "../common/mod.rs"]
mod common;

mod export_import;
mod support;
mod sync;
