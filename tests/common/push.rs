//! Minimal HTTP pushes for tests that need many small images fast.

use super::sha256_digest;
use reqwest::blocking::Client;

use super::content::Manifest;
pub use super::content::OCI_MANIFEST as MANIFEST;

/// Monolithic upload; returns the digest, or the failing status.
pub fn blob(http: &Client, base: &str, repo: &str, data: &[u8]) -> Result<String, u16> {
    let digest = sha256_digest(data);
    let resp = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .map_err(|_| 0u16)?;
    match resp.status().as_u16() {
        201 => Ok(digest),
        status => Err(status),
    }
}

/// True when `repo` serves blob `digest` (what clients check before
/// skipping an upload).
pub fn blob_exists(http: &Client, base: &str, repo: &str, digest: &str) -> bool {
    http.head(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .is_ok_and(|r| r.status() == 200)
}

/// An OCI image manifest over a config and layers (each `(digest, size)`).
pub fn image_manifest(config: (&str, usize), layers: &[(String, usize)]) -> Vec<u8> {
    layers
        .iter()
        .fold(Manifest::image(config.0, config.1), |m, (d, s)| {
            m.layer(d, *s)
        })
        .bytes()
}

/// PUT a manifest; returns the status.
pub fn manifest(http: &Client, base: &str, repo: &str, reference: &str, bytes: &[u8]) -> u16 {
    manifest_answer(http, base, repo, reference, bytes).0
}

/// PUT a manifest; returns the status and the body (the error, if any).
pub fn manifest_answer(
    http: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    bytes: &[u8],
) -> (u16, String) {
    match http
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", MANIFEST)
        .body(bytes.to_vec())
        .send()
    {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// An image: a config and layers uploaded (skipping blobs the repository
/// already serves, as clients do), then its manifest under `tag`. Returns
/// the manifest digest, or the first failing status.
pub fn image(
    http: &Client,
    base: &str,
    repo: &str,
    tag: &str,
    config: &[u8],
    layers: &[Vec<u8>],
) -> Result<String, u16> {
    let upload = |data: &[u8]| -> Result<String, u16> {
        let digest = sha256_digest(data);
        if blob_exists(http, base, repo, &digest) {
            return Ok(digest);
        }
        blob(http, base, repo, data)
    };
    let config_digest = upload(config)?;
    let mut descs = Vec::new();
    for layer in layers {
        descs.push((upload(layer)?, layer.len()));
    }
    let bytes = image_manifest((&config_digest, config.len()), &descs);
    match manifest(http, base, repo, tag, &bytes) {
        201 => Ok(sha256_digest(&bytes)),
        status => Err(status),
    }
}

/// DELETE a manifest by digest; returns the status.
pub fn delete_manifest(http: &Client, base: &str, repo: &str, digest: &str) -> u16 {
    http.delete(format!("{base}/v2/{repo}/manifests/{digest}"))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// What [`deleted_image_sharing_a_layer`] left for a collector.
pub struct DeletedImage {
    /// The deleted manifest of `gc/a`.
    pub manifest: String,
    /// The layer `gc/b` still uses: must stay.
    pub shared: String,
    /// The layer only `gc/a` used: garbage, with the manifest and its config.
    pub own: String,
}

/// Image `gc/a` (pushed through `a`) with a shared layer and one of its
/// own, image `gc/b` (through `b`) with the shared layer, then `gc/a`'s
/// manifest deleted through `b`: a collection pass at zero grace must
/// remove 3 blobs (manifest, config, own layer) and keep the shared one.
pub fn deleted_image_sharing_a_layer(http: &Client, a: &str, b: &str) -> DeletedImage {
    let shared: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
    let own: Vec<u8> = (0..70_000u32).map(|i| (i % 239) as u8).collect();
    let layers = [shared.clone(), own.clone()];
    let manifest = image(http, a, "gc/a", "1", b"{\"a\":1}", &layers).expect("push gc/a");
    image(
        http,
        b,
        "gc/b",
        "1",
        b"{\"b\":1}",
        std::slice::from_ref(&shared),
    )
    .expect("push gc/b");
    assert_eq!(delete_manifest(http, b, "gc/a", &manifest), 202);
    DeletedImage {
        manifest,
        shared: sha256_digest(&shared),
        own: sha256_digest(&own),
    }
}
