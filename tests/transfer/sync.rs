//! `berth sync` against Berth upstreams on loopback: every platform and
//! the referrers arrive with identical digests, a second run fetches
//! nothing, a configured proxy's login and prefix are used, and failures
//! name what failed.

use super::support::{OCI_INDEX, OCI_MANIFEST, berth, image, path, put, sign};
use crate::common::content::{bytes, descriptor};
use crate::common::{Berth, push, sha256_digest};
use reqwest::blocking::Client;

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
                      application/vnd.oci.image.manifest.v1+json";

/// What the upstream holds: a two-platform index (its images share a
/// layer) with a signature naming it, tagged v1; a single image tagged v2.
pub struct Pushed {
    pub index: String,
    pub children: Vec<String>,
    pub signature: String,
    pub single: String,
    pub layers: Vec<(String, Vec<u8>)>,
}

/// Pushes [`Pushed`] into `repo` of `base`.
pub fn push_multi_arch(http: &Client, base: &str, repo: &str) -> Pushed {
    let shared = bytes("shared layer", 300_000);
    let mut layers = vec![(sha256_digest(&shared), shared.clone())];
    let mut children = Vec::new();
    let mut entries = Vec::new();
    for arch in ["amd64", "arm64"] {
        let own = bytes(format!("{arch} layer"), 200_000);
        // Tagged with its architecture, so the upstream lists 4 tags.
        let (digest, size) = image(http, base, repo, arch, arch, &[&shared, &own]);
        layers.push((sha256_digest(&own), own));
        let mut entry = descriptor(OCI_MANIFEST, &digest, size);
        entry["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        entries.push(entry);
        children.push(digest);
    }
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries,
    })
    .to_string()
    .into_bytes();
    put(http, base, repo, "v1", OCI_INDEX, &index);
    let index_digest = sha256_digest(&index);
    let (signature, payload) = sign(http, base, repo, &index_digest, index.len());
    layers.push((sha256_digest(&payload), payload));
    let v2_layer = bytes("v2 layer", 100_000);
    let (single, _) = image(http, base, repo, "v2", "amd64", &[&v2_layer]);
    layers.push((sha256_digest(&v2_layer), v2_layer));
    Pushed {
        index: index_digest,
        children,
        signature,
        single,
        layers,
    }
}

fn get(http: &Client, url: &str) -> Vec<u8> {
    let resp = http
        .get(url)
        .header("accept", ACCEPT)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.bytes().expect("body").to_vec()
}

/// Checks that `base` serves everything of [`Pushed`] in `repo`, bytes
/// and digests identical to the upstream's.
pub fn assert_serves(http: &Client, base: &str, repo: &str, pushed: &Pushed, upstream: &str) {
    let manifest = |reference: &str| get(http, &format!("{base}/v2/{repo}/manifests/{reference}"));
    let from_upstream =
        |reference: &str| get(http, &format!("{upstream}/v2/{repo}/manifests/{reference}"));
    assert_eq!(sha256_digest(&manifest("v1")), pushed.index);
    assert_eq!(manifest("v1"), from_upstream(&pushed.index));
    assert_eq!(sha256_digest(&manifest("v2")), pushed.single);
    for child in &pushed.children {
        assert_eq!(manifest(child), from_upstream(child));
    }
    for (digest, bytes) in &pushed.layers {
        let got = get(http, &format!("{base}/v2/{repo}/blobs/{digest}"));
        assert!(got == *bytes, "blob {digest} differs");
    }
    let referrers: serde_json::Value = serde_json::from_slice(&get(
        http,
        &format!("{base}/v2/{repo}/referrers/{}", pushed.index),
    ))
    .expect("referrers index");
    let listed: Vec<&str> = referrers["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| m["digest"].as_str())
        .collect();
    assert_eq!(listed, [pushed.signature.as_str()], "{referrers}");
}

/// Runs `berth ARGS`, returning (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = berth(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), out.stdout_str(), stderr)
}

#[test]
fn sync_copies_every_platform_and_referrer_then_fetches_nothing() {
    let upstream = Berth::start();
    let http = upstream.client();
    let pushed = push_multi_arch(&http, &upstream.url(), "team/app");
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("synced");
    let url = upstream.url();

    // NAME alone: every tag.
    let (ok, out, err) = run(&["sync", "--root", path(&root), "--from", &url, "team/app"]);
    assert!(ok, "sync failed: {out}{err}");
    // v1, v2, and the platform images' own tags (tagged with their architecture).
    assert!(out.contains("synced 4 images"), "{out}");
    for tag in ["v1", "v2", "amd64", "arm64"] {
        assert!(out.contains(&format!("team/app:{tag} ")), "{tag}: {out}");
    }

    let local = Berth::builder().root(&root).start();
    assert_serves(&http, &local.url(), "team/app", &pushed, &url);
    drop(local);

    // Everything is stored: a second run reads no blob from the upstream.
    let (ok, out, err) = run(&[
        "sync",
        "--root",
        path(&root),
        "--from",
        &url,
        "team/app:v1",
        "--quiet",
    ]);
    assert!(ok, "second sync failed: {out}{err}");
    assert!(out.contains("fetched 0 bytes"), "{out}");

    // Under another prefix, without referrers.
    let (ok, out, err) = run(&[
        "sync",
        "--root",
        path(&root),
        "--from",
        &url,
        "--repo-prefix",
        "copy",
        "--no-referrers",
        &format!("team/app@{}", pushed.index),
    ]);
    assert!(ok, "sync by digest failed: {out}{err}");
    let local = Berth::builder().root(&root).start();
    let index = get(
        &http,
        &format!(
            "{}/v2/copy/team/app/manifests/{}",
            local.url(),
            pushed.index
        ),
    );
    assert_eq!(sha256_digest(&index), pushed.index);
    let referrers: serde_json::Value = serde_json::from_slice(&get(
        &http,
        &format!(
            "{}/v2/copy/team/app/referrers/{}",
            local.url(),
            pushed.index
        ),
    ))
    .expect("referrers");
    assert_eq!(referrers["manifests"], serde_json::json!([]), "{referrers}");
}

#[test]
fn sync_from_a_configured_proxy_uses_its_login_and_prefix() {
    let dir = tempfile::tempdir().expect("tmp");
    // An upstream with logins in token mode (Docker Hub's flow).
    let up_root = dir.path().join("upstream");
    let mut open = Berth::builder().root(&up_root).start();
    let pushed = push::image(
        &open.client(),
        &open.url(),
        "lib/tool",
        "1",
        br#"{"architecture":"amd64","os":"linux"}"#,
        &[bytes("tool layer", 150_000)],
    )
    .expect("seed the upstream");
    open.stop();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash_with_result("s3cret", 5)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    std::fs::write(&htpasswd, format!("alice:{hash}\n")).expect("htpasswd");
    let mut upstream = Berth::builder()
        .root(&up_root)
        .config(&format!(
            "[auth]\nmode = \"token\"\nhtpasswd = {:?}\n",
            htpasswd.display().to_string()
        ))
        .start();

    let config = |password: &str| {
        let path = dir.path().join(format!("berth-{password}.toml"));
        std::fs::write(
            &path,
            format!(
                "[[proxy]]\nprefix = \"mirror\"\nurl = {:?}\nusername = \"alice\"\n\
                 password = {password:?}\n",
                upstream.url()
            ),
        )
        .expect("config");
        path.display().to_string()
    };
    let root = dir.path().join("synced");

    let wrong = config("wrong");
    let (ok, out, err) = run(&[
        "sync",
        "--config",
        &wrong,
        "--root",
        path(&root),
        "--from",
        "mirror",
        "lib/tool:1",
    ]);
    assert!(!ok, "a wrong password must fail: {out}");
    assert!(
        err.contains("lib/tool:1"),
        "the failure names the image: {err}"
    );

    let good = config("s3cret");
    let (ok, out, err) = run(&[
        "sync",
        "--config",
        &good,
        "--root",
        path(&root),
        "--from",
        "mirror",
        "lib/tool:1",
    ]);
    assert!(ok, "sync failed: {out}{err}");
    assert!(out.contains("mirror/lib/tool:1"), "{out}");

    // The synced image is the proxy's cached content: served with the
    // upstream gone, and closed to pushes.
    upstream.stop();
    let local = Berth::builder()
        .root(&root)
        .args(&["--config", &good])
        .start();
    let http = local.client();
    let got = get(
        &http,
        &format!("{}/v2/mirror/lib/tool/manifests/1", local.url()),
    );
    assert_eq!(sha256_digest(&got), pushed);
    let refused = push::blob(&http, &local.url(), "mirror/lib/tool", b"mine");
    assert!(
        refused.is_err(),
        "a push into the cached repository was taken"
    );
}

#[test]
fn sync_failures_name_what_failed() {
    let upstream = Berth::start();
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("synced");
    let root = path(&root);
    let url = upstream.url();

    let (ok, _, err) = run(&["sync", "--root", root, "--from", &url, "nothere:v1"]);
    assert!(!ok);
    assert!(err.contains("nothere:v1"), "{err}");

    let (ok, _, err) = run(&["sync", "--root", root, "--from", "hub", "library/busybox"]);
    assert!(!ok);
    assert!(err.contains("--from hub"), "{err}");
    assert!(err.contains("none configured"), "{err}");

    let (ok, _, err) = run(&["sync", "--root", root, "--from", &url, "Bad:Name"]);
    assert!(!ok);
    assert!(err.contains("not a repository name"), "{err}");
}

#[test]
fn the_air_gap_story_sync_export_import() {
    let upstream = Berth::start();
    let http = upstream.client();
    let pushed = push_multi_arch(&http, &upstream.url(), "team/app");
    let dir = tempfile::tempdir().expect("tmp");
    let connected = dir.path().join("connected");
    let connected = path(&connected);
    let isolated = dir.path().join("isolated");
    let archive = dir.path().join("transfer.tar.zst");
    let archive = archive.display().to_string();
    let url = upstream.url();

    let (ok, out, err) = run(&["sync", "--root", connected, "--from", &url, "team/app"]);
    assert!(ok, "sync: {out}{err}");
    let (ok, out, err) = run(&["export", "--root", connected, "-o", &archive, "--all"]);
    assert!(ok, "export: {out}{err}");
    // Imported while a server already serves that store, as `gc` may run.
    let local = Berth::builder().root(&isolated).start();
    let (ok, out, err) = run(&["import", "--root", path(&isolated), &archive]);
    assert!(ok, "import: {out}{err}");
    assert_serves(&http, &local.url(), "team/app", &pushed, &url);
    drop(local);
    let (ok, out, err) = run(&["fsck", "--root", path(&isolated)]);
    assert!(ok, "fsck: {out}{err}");
}
