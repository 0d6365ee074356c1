//! What both transfer suites need: running `berth`, and pushing images,
//! indexes and signatures into a server over HTTP.

use crate::common::clients::{Output, exec};
use crate::common::content::descriptor;
use crate::common::{push, sha256_digest};
use reqwest::blocking::Client;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const SIGNATURE: &str = "application/vnd.example.signature.v1";

/// Runs `berth ARGS` to completion.
pub fn berth(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(args).env("RUST_LOG", "warn");
    exec(cmd, Duration::from_secs(600))
}

/// Runs `berth ARGS`, which must succeed.
pub fn berth_ok(args: &[&str]) -> Output {
    let out = berth(args);
    assert!(out.status.success(), "berth {args:?}: {}", out.describe());
    out
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

pub fn put(http: &Client, base: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let url = format!("{base}/v2/{repo}/manifests/{reference}");
    let resp = http
        .put(&url)
        .header("content-type", media_type)
        .body(body.to_vec())
        .send()
        .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    assert_eq!(resp.status(), 201, "PUT {url}: {:?}", resp.text());
}

/// Uploads a blob unless the repository has it; returns its digest.
pub fn blob(http: &Client, base: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha256_digest(data);
    if !push::blob_exists(http, base, repo, &digest) {
        push::blob(http, base, repo, data).expect("blob upload");
    }
    digest
}

/// An image of one config and `layers`, pushed under `reference`.
pub fn image(
    http: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    arch: &str,
    layers: &[&[u8]],
) -> (String, usize) {
    let config =
        json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
            .to_string()
            .into_bytes();
    let config_digest = blob(http, base, repo, &config);
    let descs: Vec<(String, usize)> = layers
        .iter()
        .map(|l| (blob(http, base, repo, l), l.len()))
        .collect();
    let manifest = push::image_manifest((&config_digest, config.len()), &descs);
    let digest = sha256_digest(&manifest);
    let reference = if reference.is_empty() {
        digest.as_str()
    } else {
        reference
    };
    put(http, base, repo, reference, OCI_MANIFEST, &manifest);
    (digest, manifest.len())
}

/// A signature of index `subject` (`size` bytes): an artifact with an
/// empty config and one layer, pushed by digest; returns its digest and
/// the layer's bytes.
pub fn sign(
    http: &Client,
    base: &str,
    repo: &str,
    subject: &str,
    size: usize,
) -> (String, Vec<u8>) {
    let empty = blob(http, base, repo, b"{}");
    let sig_bytes = format!("a signature of {subject}").into_bytes();
    let sig = blob(http, base, repo, &sig_bytes);
    let signature = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGNATURE,
        "config": descriptor(OCI_EMPTY, &empty, 2),
        "layers": [descriptor(SIGNATURE, &sig, sig_bytes.len())],
        "subject": descriptor(OCI_INDEX, subject, size),
    })
    .to_string()
    .into_bytes();
    let digest = sha256_digest(&signature);
    put(http, base, repo, &digest, OCI_MANIFEST, &signature);
    (digest, sig_bytes)
}
