//! Admission policy plugins: the two shipped with Berth (immutable tags,
//! required annotations) refusing changes the docker CLI then reports, and
//! a plugin that spins forever cut off by its fuel budget while the rest of
//! the server keeps answering.

mod common;

use common::clients::{self, Dockerd, exec, run, skopeo};
use common::push::{self, MANIFEST};
use common::{Berth, images};
use reqwest::blocking::Client;
use serde_json::json;
use std::time::{Duration, Instant};

/// A server with `plugins` (TOML `[[plugins]]` tables) in its config file.
fn berth_with(plugins: &str) -> Berth {
    Berth::builder().config(plugins).start()
}

const POLICIES: &str = r#"
[[plugins]]
path = "builtin:immutable-tags"
[plugins.settings]
patterns = ["v*"]

[[plugins]]
path = "builtin:required-annotations"
[plugins.settings]
keys = ["org.opencontainers.image.source"]
repositories = ["strict/**"]
"#;

/// An image manifest over one uploaded config blob, with `annotations`.
fn manifest(
    http: &Client,
    base: &str,
    repo: &str,
    seed: &str,
    annotations: serde_json::Value,
) -> Vec<u8> {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let digest = push::blob(http, base, repo, config.as_bytes()).expect("config blob");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&push::image_manifest((&digest, config.len()), &[])).expect("json");
    if !annotations.is_null() {
        doc["annotations"] = annotations;
    }
    doc.to_string().into_bytes()
}

fn put(
    http: &Client,
    base: &str,
    repo: &str,
    reference: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let resp = http
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", MANIFEST)
        .body(body.to_vec())
        .send()
        .expect("PUT manifest");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(serde_json::Value::Null))
}

#[test]
fn shipped_policies_refuse_with_their_message() {
    let berth = berth_with(POLICIES);
    let http = Client::new();
    let base = berth.url();

    // Immutable tags: creating v1 is fine, so is pushing the same manifest
    // again; moving it is DENIED with the plugin's words. Other tags move.
    let first = manifest(&http, &base, "app", "one", json!(null));
    let second = manifest(&http, &base, "app", "two", json!(null));
    assert_eq!(put(&http, &base, "app", "v1", &first).0, 201);
    assert_eq!(
        put(&http, &base, "app", "v1", &first).0,
        201,
        "same manifest again"
    );
    let (status, body) = put(&http, &base, "app", "v1", &second);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("immutable"), "{message}");
    assert_eq!(put(&http, &base, "app", "latest", &first).0, 201);
    assert_eq!(
        put(&http, &base, "app", "latest", &second).0,
        201,
        "latest moves"
    );
    let v1 = http
        .get(format!("{base}/v2/app/manifests/v1"))
        .header("accept", MANIFEST)
        .send()
        .expect("GET v1");
    assert_eq!(
        v1.bytes().expect("body").to_vec(),
        first,
        "v1 still the first"
    );
    let delete = http
        .delete(format!("{base}/v2/app/manifests/v1"))
        .send()
        .expect("DELETE v1");
    assert_eq!(
        delete.status(),
        403,
        "a protected tag is not deleted either"
    );
    // Nor by deleting its manifest, which would take the tag with it; a
    // manifest carrying only unprotected tags goes.
    let digest = common::sha256_digest(&first);
    let delete = http
        .delete(format!("{base}/v2/app/manifests/{digest}"))
        .send()
        .expect("DELETE by digest");
    assert_eq!(delete.status(), 403, "v1 points at {digest}");
    let body: serde_json::Value = delete.json().expect("error JSON");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("tag \"v1\" is immutable"), "{message}");
    let latest = common::sha256_digest(&second);
    let delete = http
        .delete(format!("{base}/v2/app/manifests/{latest}"))
        .send()
        .expect("DELETE latest by digest");
    assert_eq!(delete.status(), 202, "only latest points at {latest}");

    // Required annotations, only under strict/.
    let bare = manifest(&http, &base, "strict/app", "three", json!(null));
    let (status, body) = put(&http, &base, "strict/app", "1", &bare);
    assert_eq!(status, 403, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("org.opencontainers.image.source"),
        "{message}"
    );
    let annotated = manifest(
        &http,
        &base,
        "strict/app",
        "four",
        json!({"org.opencontainers.image.source": "https://example.com/app"}),
    );
    assert_eq!(put(&http, &base, "strict/app", "1", &annotated).0, 201);
    assert_eq!(
        put(
            &http,
            &base,
            "loose/app",
            "1",
            &manifest(&http, &base, "loose/app", "five", json!(null))
        )
        .0,
        201
    );
}

/// The docker CLI shows the plugin's message when a push is refused.
#[test]
fn docker_sees_the_deny_message() {
    let _serial = clients::serial();
    let berth = berth_with(POLICIES);
    let dockerd = Dockerd::start();
    for (image, name) in [(images::small(), "small"), (images::multi(), "multi")] {
        let archive = dockerd.path().join(format!("{name}.tar"));
        run(skopeo([
            "copy".to_string(),
            image.oci_ref(),
            format!("docker-archive:{}:test/{name}:v1", archive.display()),
        ]));
        dockerd.docker(&["load", "-i", archive.to_str().expect("utf-8")]);
    }
    let target = format!("{}/app:v1", berth.addr);
    dockerd.docker(&["tag", "test/small:v1", &target]);
    dockerd.docker(&["push", &target]);
    dockerd.docker(&["tag", "test/multi:v1", &target]);
    let moved = exec(dockerd.cmd(["push", &target]), Duration::from_secs(300));
    assert!(!moved.status.success(), "moving an immutable tag must fail");
    let said = String::from_utf8_lossy(&moved.stderr);
    assert!(
        said.contains("tag \"v1\" is immutable"),
        "{}",
        moved.describe()
    );

    let strict = format!("{}/strict/app:1", berth.addr);
    dockerd.docker(&["tag", "test/small:v1", &strict]);
    let refused = exec(dockerd.cmd(["push", &strict]), Duration::from_secs(300));
    assert!(
        !refused.status.success(),
        "a manifest without the annotation"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("org.opencontainers.image.source"),
        "{}",
        refused.describe()
    );
}

/// A plugin that never returns is stopped by its fuel budget: the change
/// is refused (on_failure = "deny"), and meanwhile everything else works.
#[test]
fn endless_plugin_is_cut_off_and_the_server_keeps_serving() {
    let loop_plugin = common::components::loop_plugin();
    let berth = berth_with(&format!(
        "[[plugins]]\npath = {loop_plugin:?}\nfuel = 2000000000\n[plugins.settings]\nmode = \"loop\"\n"
    ));
    let http = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let base = berth.url();
    let body = manifest(&http, &base, "app", "loop", json!(null));
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let (http, base, body) = (http.clone(), base.clone(), body.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let (status, json) = put(&http, &base, "app", "1", &body);
                (status, json, started.elapsed())
            })
        })
        .collect();
    // While four plugin calls spin, reads and uploads are answered.
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(
            http.get(format!("{base}/v2/"))
                .send()
                .expect("GET")
                .status(),
            200
        );
        push::blob(&http, &base, "other", b"still serving").expect("upload");
    }
    let served_in = started.elapsed();
    for spinner in spinners {
        let (status, json, took) = spinner.join().expect("thread");
        assert_eq!(status, 403, "{json}");
        let message = json["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("failed"), "{message}");
        assert!(took < Duration::from_secs(30), "cut off after {took:?}");
    }
    assert!(
        served_in < Duration::from_secs(5),
        "others waited {served_in:?}"
    );
    assert!(
        http.get(format!("{base}/v2/app/manifests/1"))
            .header("accept", MANIFEST)
            .send()
            .expect("GET")
            .status()
            == 404,
        "nothing stored"
    );
}

/// `on_failure = "allow"`: a trapping plugin lets the change through.
#[test]
fn failing_plugin_can_be_configured_to_allow() {
    let loop_plugin = common::components::loop_plugin();
    let berth = berth_with(&format!(
        "[[plugins]]\npath = {loop_plugin:?}\non_failure = \"allow\"\n[plugins.settings]\nmode = \"trap\"\n"
    ));
    let http = Client::new();
    let base = berth.url();
    let body = manifest(&http, &base, "app", "trap", json!(null));
    assert_eq!(put(&http, &base, "app", "1", &body).0, 201);
}
