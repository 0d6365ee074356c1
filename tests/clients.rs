//! End-to-end tests with real registry clients: skopeo, docker (a private
//! dockerd) and podman, talking to the real `berth` binary over loopback with
//! its default storage (filesystem + SQLite). The flows live in
//! `common::clients`; `tests/s3.rs` runs them against S3.
//!
//! The tests serialise themselves (one heavy client flow at a time on a small
//! machine).

mod common;

use std::fs;
use std::io::Read;

use common::Berth;
use common::clients::*;
use common::images;
use serde_json::json;

#[test]
fn skopeo_small_roundtrip() {
    let _serial = serial();
    require("skopeo");
    skopeo_roundtrip(&Berth::start(), images::small(), "skopeo/small");
}

#[test]
fn skopeo_multi_layer_roundtrip() {
    let _serial = serial();
    require("skopeo");
    let image = images::multi();
    assert_eq!(image.layer_digests.len(), 20);
    skopeo_roundtrip(&Berth::start(), image, "skopeo/multi");
}

#[test]
fn skopeo_big_1gib_roundtrip() {
    let _serial = serial();
    require("skopeo");
    skopeo_roundtrip(&Berth::start(), images::big(), "skopeo/big");
}

#[test]
fn restart_keeps_pushed_images() {
    let _serial = serial();
    require("skopeo");
    let image = images::multi();
    let mut berth = Berth::start();
    skopeo_push(&berth, &image, "persist");
    assert_registry_has(&berth, &image, "persist");
    berth.restart();
    assert_eq!(
        tags(&berth, "persist"),
        json!({"name": "persist", "tags": ["v1"]}),
        "tags after restart"
    );
    let catalog = catalog(&berth);
    assert!(
        catalog["repositories"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("persist"))),
        "catalog after restart: {catalog}"
    );
    assert_registry_has(&berth, &image, "persist");
    skopeo_pull_and_compare(&berth, &image, "persist");
}

/// The seed flow: docker load, tag, push, catalog and tags list, rmi, pull,
/// same image ID.
#[test]
fn docker_push_pull_seed_flow() {
    let _serial = serial();
    docker_seed_flow(&Berth::start());
}

#[test]
fn podman_push_pull() {
    let _serial = serial();
    podman_flow(&Berth::start());
}

/// Image generation is deterministic and produces what the manifest says.
#[test]
fn generated_images_are_consistent() {
    let image = images::small();
    let (digest, bytes, manifest) = images::read_layout(&image.layout, &image.tag);
    assert_eq!(digest, image.manifest_digest);
    assert_eq!(common::sha256_digest(&bytes), digest);
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        images::MEDIA_TYPE_LAYER_GZIP
    );
    for d in std::iter::once(&image.config_digest).chain(&image.layer_digests) {
        assert_eq!(
            &images::sha256_file(&images::blob_path(&image.layout, d)),
            d
        );
    }
    // The gzip layer decompresses to the tar named by diff_ids.
    let gz = fs::File::open(images::blob_path(&image.layout, &image.layer_digests[0])).unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(common::sha256_digest(&tar), image.diff_ids[0]);
    assert_eq!(&tar[257..263], b"ustar\0");
    assert!(tar.len() > 1 << 20);
}
