//! Switching between registry:2 and Berth without copying a byte: each
//! serves, in place, what the other wrote (Berth with `metadata.kind =
//! "layout"`), on a filesystem directory and on an S3 bucket.

mod common;

use common::clients::*;
use common::distribution::Registry2;
use common::images;
use common::seaweed;
use common::{Berth, Registry};
use serde_json::json;

fn berth_layout_fs(root: &std::path::Path) -> Berth {
    Berth::builder().root(root).metadata("layout").start()
}

/// What `image` pushed to `repo` by the other registry looks like here.
fn assert_serves(registry: &dyn Registry, image: &images::TestImage, repo: &str) {
    assert_eq!(
        tags(registry, repo),
        json!({"name": repo, "tags": [image.tag]})
    );
    assert!(
        catalog(registry)["repositories"]
            .as_array()
            .is_some_and(|r| r.contains(&json!(repo))),
        "catalog lists {repo}"
    );
    assert_registry_has(registry, image, repo);
    skopeo_pull_and_compare(registry, image, repo);
}

#[test]
fn berth_serves_a_registry2_directory() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let image = images::multi();
    {
        let registry = Registry2::filesystem(dir.path());
        skopeo_push(&registry, &image, "library/app");
        docker_like_push_of_second_tag(&registry, &image, "library/app");
    }
    let berth = berth_layout_fs(dir.path());
    let mut expected = vec!["second".to_string(), image.tag.clone()];
    expected.sort();
    assert_eq!(
        tags(&berth, "library/app"),
        json!({"name": "library/app", "tags": expected})
    );
    assert_registry_has(&berth, &image, "library/app");
    skopeo_pull_and_compare(&berth, &image, "library/app");
}

#[test]
fn registry2_serves_a_berth_directory() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("temp dir");
    let image = images::multi();
    {
        let berth = berth_layout_fs(dir.path());
        skopeo_push(&berth, &image, "library/app");
    }
    let registry = Registry2::filesystem(dir.path());
    assert_serves(&registry, &image, "library/app");
}

#[test]
fn berth_and_registry2_share_a_bucket() {
    let _serial = serial();
    let s3 = seaweed::shared();
    let image = images::small();
    let multi = images::multi();
    // registry:2 wrote it, Berth serves it.
    let prefix = seaweed::unique_prefix("interop-r2");
    {
        let registry = Registry2::s3(s3, &prefix);
        skopeo_push(&registry, &multi, "from/registry2");
    }
    let berth = Berth::builder()
        .envs(s3.berth_env(&prefix, "layout"))
        .start();
    assert_serves(&berth, &multi, "from/registry2");
    // Berth wrote it, registry:2 serves it.
    skopeo_push(&berth, &image, "from/berth");
    drop(berth);
    let registry = Registry2::s3(s3, &prefix);
    assert_serves(&registry, &image, "from/berth");
    assert_serves(&registry, &multi, "from/registry2");
}

/// Tags the pushed manifest again under `second`, as `docker tag` + push does.
fn docker_like_push_of_second_tag(registry: &dyn Registry, image: &images::TestImage, repo: &str) {
    let resp = reqwest::blocking::Client::new()
        .put(format!("{}/v2/{repo}/manifests/second", registry.url()))
        .header("content-type", images::MEDIA_TYPE_MANIFEST)
        .body(image.manifest_bytes())
        .send()
        .expect("PUT manifest");
    assert_eq!(resp.status(), 201);
}
