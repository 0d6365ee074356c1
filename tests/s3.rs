//! Berth on a real S3-compatible server (SeaweedFS, started by the test):
//! the client flows of `tests/clients.rs` on the `s3` backend, several hosts
//! over one bucket, and blob redirects to presigned URLs.

mod common;

use common::Berth;
use common::clients::*;
use common::images;
use common::seaweed::{self, Seaweed};
use serde_json::json;
use std::sync::mpsc;

/// A Berth over its own prefix of the shared bucket.
fn berth_on_s3(name: &str, metadata: &str) -> (Berth, String) {
    let prefix = seaweed::unique_prefix(name);
    let berth = Berth::builder()
        .envs(seaweed::shared().berth_env(&prefix, metadata))
        .start();
    (berth, prefix)
}

/// A second host over the same bucket and prefix as `env`.
fn host(s3: &Seaweed, prefix: &str) -> Berth {
    Berth::builder()
        .envs(s3.berth_env(prefix, "layout"))
        .start()
}

#[test]
fn skopeo_small_roundtrip_s3_layout() {
    let _serial = serial();
    let (berth, _) = berth_on_s3("small", "layout");
    skopeo_roundtrip(&berth, images::small(), "skopeo/small");
}

#[test]
fn skopeo_small_roundtrip_s3_sqlite() {
    let _serial = serial();
    let (berth, _) = berth_on_s3("sqlite", "sqlite");
    skopeo_roundtrip(&berth, images::small(), "skopeo/small");
}

#[test]
fn skopeo_multi_layer_roundtrip_s3() {
    let _serial = serial();
    let (berth, _) = berth_on_s3("multi", "layout");
    skopeo_roundtrip(&berth, images::multi(), "skopeo/multi");
}

#[test]
fn skopeo_big_1gib_roundtrip_s3() {
    let _serial = serial();
    let (berth, _) = berth_on_s3("big", "layout");
    skopeo_roundtrip(&berth, images::big(), "skopeo/big");
}

#[test]
fn docker_seed_flow_s3() {
    let _serial = serial();
    let (berth, _) = berth_on_s3("docker", "layout");
    docker_seed_flow(&berth);
}

#[test]
fn restart_keeps_images_s3() {
    let _serial = serial();
    let image = images::small();
    let (mut berth, _) = berth_on_s3("restart", "layout");
    skopeo_push(&berth, &image, "persist");
    berth.restart();
    assert_eq!(
        tags(&berth, "persist"),
        json!({"name": "persist", "tags": [image.tag]})
    );
    skopeo_pull_and_compare(&berth, &image, "persist");
}

/// Push through host A, pull through host B.
#[test]
fn two_hosts_push_a_pull_b() {
    let _serial = serial();
    let s3 = seaweed::shared();
    let prefix = seaweed::unique_prefix("two-hosts");
    let (a, b) = (host(s3, &prefix), host(s3, &prefix));
    let image = images::multi();
    skopeo_push(&a, &image, "shared/app");
    assert_registry_has(&b, &image, "shared/app");
    skopeo_pull_and_compare(&b, &image, "shared/app");
    assert_eq!(catalog(&b), json!({"repositories": ["shared/app"]}));
}

/// One chunked upload whose requests alternate between two hosts.
#[test]
fn two_hosts_chunked_upload_alternating() {
    let s3 = seaweed::shared();
    let prefix = seaweed::unique_prefix("alternate");
    let hosts = [host(s3, &prefix), host(s3, &prefix)];
    let http = no_redirects();
    let chunks: Vec<Vec<u8>> = (0..5u8)
        .map(|i| {
            (0..(1 << 20) + 7 * i as usize)
                .map(|j| (j as u8) ^ i)
                .collect()
        })
        .collect();
    let whole: Vec<u8> = chunks.concat();
    let digest = common::sha256_digest(&whole);

    let resp = http
        .post(format!("{}/v2/alt/blobs/uploads/", hosts[0].url()))
        .send()
        .expect("POST");
    assert_eq!(resp.status(), 202);
    let mut location = location_header(&resp);
    let mut offset = 0usize;
    for (i, chunk) in chunks.iter().enumerate() {
        let host = &hosts[i % 2];
        let end = offset + chunk.len() - 1;
        let resp = http
            .patch(absolute(host, &location))
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{offset}-{end}"))
            .body(chunk.clone())
            .send()
            .expect("PATCH");
        assert_eq!(resp.status(), 202, "PATCH {i} on host {}", i % 2);
        assert_eq!(
            header(&resp, "range"),
            format!("0-{end}"),
            "range after {i}"
        );
        location = location_header(&resp);
        offset = end + 1;
    }
    // Status from the other host reflects every chunk.
    let status = http
        .get(absolute(&hosts[1], &location))
        .send()
        .expect("status");
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range"), format!("0-{}", whole.len() - 1));

    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = http
        .put(format!(
            "{}{sep}digest={digest}",
            absolute(&hosts[0], &location)
        ))
        .send()
        .expect("PUT");
    assert_eq!(resp.status(), 201);
    for host in &hosts {
        let got = http
            .get(format!("{}/v2/alt/blobs/{digest}", host.url()))
            .send()
            .expect("GET blob");
        assert_eq!(got.status(), 200);
        let body = got.bytes().expect("blob body");
        assert_eq!(body.len(), whole.len());
        assert_eq!(common::sha256_digest(&body), digest);
    }
}

/// A tag moved on host A is seen at once on host B.
#[test]
fn two_hosts_tag_move_seen_at_once() {
    let s3 = seaweed::shared();
    let prefix = seaweed::unique_prefix("tag-move");
    let (a, b) = (host(s3, &prefix), host(s3, &prefix));
    let http = no_redirects();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest =
        common::push::blob(&http, &a.url(), "moving", &config).expect("push config");
    let mut digests = Vec::new();
    for round in 0..3 {
        let manifest = common::content::Manifest::image(&config_digest, config.len())
            .field("annotations", json!({"round": round.to_string()}))
            .bytes();
        let resp = http
            .put(format!("{}/v2/moving/manifests/latest", a.url()))
            .header("content-type", images::MEDIA_TYPE_MANIFEST)
            .body(manifest.clone())
            .send()
            .expect("PUT manifest");
        assert_eq!(resp.status(), 201);
        let digest = common::sha256_digest(&manifest);
        let seen = http
            .head(format!("{}/v2/moving/manifests/latest", b.url()))
            .header("accept", images::MEDIA_TYPE_MANIFEST)
            .send()
            .expect("HEAD on B");
        assert_eq!(seen.status(), 200);
        assert_eq!(
            header(&seen, "docker-content-digest"),
            digest,
            "round {round}"
        );
        digests.push(digest);
    }
    // Old revisions stay reachable by digest from either host.
    let old = http
        .get(format!("{}/v2/moving/manifests/{}", b.url(), digests[0]))
        .header("accept", images::MEDIA_TYPE_MANIFEST)
        .send()
        .expect("GET old");
    assert_eq!(old.status(), 200);
    // A delete on B is seen on A.
    let del = http
        .delete(format!("{}/v2/moving/manifests/{}", b.url(), digests[2]))
        .send()
        .expect("DELETE on B");
    assert_eq!(del.status(), 202);
    let gone = http
        .get(format!("{}/v2/moving/manifests/latest", a.url()))
        .header("accept", images::MEDIA_TYPE_MANIFEST)
        .send()
        .expect("GET on A");
    assert_eq!(gone.status(), 404);
}

/// With `redirect = true`, blob GETs answer 307 to a presigned URL of the
/// bucket that serves the right bytes, HEAD stays local, and skopeo pulls.
#[test]
fn blob_get_redirects_to_presigned_url() {
    let _serial = serial();
    let s3 = seaweed::shared();
    let prefix = seaweed::unique_prefix("redirect");
    let mut env = s3.berth_env(&prefix, "layout");
    env.push(("BERTH_STORAGE_S3_REDIRECT".into(), "true".into()));
    let berth = Berth::builder().envs(env).start();
    let http = no_redirects();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let digest = common::push::blob(&http, &berth.url(), "redir", &data).expect("push blob");

    let url = format!("{}/v2/redir/blobs/{digest}", berth.url());
    let resp = http.get(&url).send().expect("GET");
    assert_eq!(resp.status(), 307);
    let target = header(&resp, "location");
    assert!(target.starts_with(&s3.endpoint), "{target}");
    assert!(target.contains("X-Amz-Signature="), "{target}");
    let fetched = http.get(&target).send().expect("presigned GET");
    assert_eq!(fetched.status(), 200);
    assert_eq!(
        common::sha256_digest(&fetched.bytes().expect("body")),
        digest
    );

    let head = http.head(&url).send().expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), data.len().to_string());
    // An unknown blob is still a 404, not a redirect.
    let missing = format!("sha256:{}", "0".repeat(64));
    let resp = http
        .get(format!("{}/v2/redir/blobs/{missing}", berth.url()))
        .send()
        .expect("GET missing");
    assert_eq!(resp.status(), 404);

    let image = images::multi();
    skopeo_push(&berth, &image, "redir/app");
    skopeo_pull_and_compare(&berth, &image, "redir/app");
}

/// A PATCH of `len` bytes over a plain socket that, after `halfway_at`
/// bytes, says so and waits until the test has stopped the store before
/// sending the rest. The server may answer before it has read the whole
/// body (its store failed): an HTTP client library then reports its broken
/// body instead of the answer, so this one writes what it can and reads the
/// answer anyway. Returns the status and the body.
fn patch_stopping_halfway(
    addr: &str,
    path: &str,
    len: usize,
    halfway_at: usize,
    halfway: mpsc::Sender<()>,
    stopped: mpsc::Receiver<()>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("read timeout");
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\n\
         content-length: {len}\r\nconnection: close\r\n\r\n"
    );
    let chunk = vec![0x5a; 64 << 10];
    let send = |conn: &mut std::net::TcpStream, mut n: usize| -> std::io::Result<()> {
        while n > 0 {
            let part = n.min(chunk.len());
            conn.write_all(&chunk[..part])?;
            n -= part;
        }
        Ok(())
    };
    let sent = conn
        .write_all(head.as_bytes())
        .and_then(|()| send(&mut conn, halfway_at));
    let _ = halfway.send(());
    let _ = stopped.recv();
    // A write error here is the server having answered already.
    let _ = sent.and_then(|()| send(&mut conn, len - halfway_at));
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn header(resp: &reqwest::blocking::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("missing {name} header"))
        .to_string()
}

fn location_header(resp: &reqwest::blocking::Response) -> String {
    header(resp, "location")
}

/// `location` (absolute or path-only) made relative to `host`.
fn absolute(host: &Berth, location: &str) -> String {
    match location.find("/v2/") {
        Some(i) => format!("{}{}", host.url(), &location[i..]),
        None => panic!("upload location without /v2/: {location}"),
    }
}

/// Garbage collection on S3 blobs (with SQLite metadata): `berth gc` with the
/// server's configuration deletes a deleted image's objects from the bucket
/// and keeps the layer another image shares.
#[test]
fn gc_collects_from_the_bucket() {
    let s3 = seaweed::shared();
    let prefix = seaweed::unique_prefix("gc");
    let env = s3.berth_env(&prefix, "sqlite");
    let berth = Berth::builder().envs(env.clone()).start();
    let http = no_redirects();
    let gone = common::push::deleted_image_sharing_a_layer(&http, &berth.url(), &berth.url());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["gc", "--grace", "0s", "--root"])
        .arg(&berth.root)
        .envs(env)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .expect("berth gc");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("removed 3 blobs"), "{text}");
    assert!(
        !s3.holds(&prefix, &gone.own),
        "own layer left in the bucket"
    );
    assert!(
        !s3.holds(&prefix, &gone.manifest),
        "manifest left in the bucket"
    );
    assert!(s3.holds(&prefix, &gone.shared), "shared layer removed");
}

/// `berth serve` over `env` that must refuse to start: its stderr, once it
/// has exited with a failure, and how long that took.
fn failed_start(env: Vec<(String, String)>) -> (String, std::time::Duration) {
    use std::time::{Duration, Instant};
    let root = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{}", common::free_port()),
        ])
        .arg("--root")
        .arg(root.path())
        .env_remove("AWS_CA_BUNDLE")
        .env("RUST_LOG", "warn")
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berth started on storage it cannot use");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("berth output");
    assert!(!out.status.success());
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

/// Storage `serve` cannot use stops it at once, with a message that names
/// the endpoint, the bucket and the cause, or the setting to change.
#[test]
fn unusable_s3_fails_the_start() {
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let mut env = Seaweed {
        endpoint: closed.clone(),
    }
    .berth_env("unreachable", "layout");
    let (err, took) = failed_start(env.clone());
    assert!(took.as_secs() < 8, "took {took:?}: {err}");
    assert!(err.contains(&closed), "{err}");
    assert!(err.contains(seaweed::BUCKET), "{err}");
    assert!(err.to_lowercase().contains("connect"), "{err}");

    env.retain(|(key, _)| key != "BERTH_STORAGE_S3_ALLOW_HTTP");
    let (err, _) = failed_start(env);
    assert!(err.contains("storage.s3.allow_http"), "{err}");
}

/// Storage that goes away and comes back: requests answer 503 UNAVAILABLE
/// with Retry-After (not 500 UNKNOWN), `/health` turns 503 after three
/// failed checks and 200 again after one success.
#[test]
fn health_follows_the_storage() {
    use std::time::{Duration, Instant};
    let mut s3 = seaweed::Private::start();
    let mut env = s3
        .server
        .berth_env(&seaweed::unique_prefix("health"), "layout");
    env.push(("BERTH_SERVER_HEALTH_INTERVAL".into(), "200ms".into()));
    let berth = Berth::builder().envs(env).start();
    let http = no_redirects();
    let digest = common::push::blob(&http, &berth.url(), "kept", b"still here").expect("push");
    let health = || {
        let resp = http
            .get(format!("{}/health", berth.url()))
            .send()
            .expect("health");
        (resp.status().as_u16(), resp.text().expect("health body"))
    };
    let wait_for = |status: u16| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (got, body) = health();
            if got == status {
                return body;
            }
            assert!(Instant::now() < deadline, "health stayed {got}: {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(health(), (200, "ok".to_owned()));
    // The store goes away in the middle of an upload's body: the client
    // gets a 503 it may retry, not a 500, although the guest only sees its
    // stream to the store fail.
    let session = http
        .post(format!("{}/v2/kept/blobs/uploads/", berth.url()))
        .send()
        .expect("POST upload");
    assert_eq!(session.status(), 202);
    let path = header(&session, "location");
    let addr = berth.url().trim_start_matches("http://").to_owned();
    let (halfway, stopped) = (mpsc::channel(), mpsc::channel());
    let patch = std::thread::spawn(move || {
        patch_stopping_halfway(&addr, &path, 26 << 20, 24 << 20, halfway.0, stopped.1)
    });
    halfway.1.recv().expect("the body reached halfway");
    s3.stop();
    stopped.0.send(()).expect("tell the body");
    let (status, body) = patch.join().expect("PATCH thread");
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("error body");
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");

    let resp = http
        .get(format!("{}/v2/kept/blobs/{digest}", berth.url()))
        .send()
        .expect("GET blob");
    assert_eq!(resp.status(), 503);
    assert_eq!(header(&resp, "retry-after"), "5");
    let body: serde_json::Value = resp.json().expect("error body");
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
    let body = wait_for(503);
    assert!(body.contains("UNAVAILABLE"), "{body}");
    assert!(body.contains("cannot be reached"), "{body}");
    // What failed, but not where: anyone may ask /health.
    assert!(!body.contains(&s3.server.endpoint), "{body}");

    s3.resume();
    wait_for(200);
    let resp = http
        .get(format!("{}/v2/kept/blobs/{digest}", berth.url()))
        .send()
        .expect("GET blob");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().expect("blob").as_ref(), b"still here");
}

/// The pull-through cache with its blobs on S3 (layout metadata): an
/// object store cannot be read before a commit, so concurrent first pulls
/// read the cache's spool; the blob lands in the bucket, and is served from
/// there once the upstream is gone.
#[test]
fn pull_through_cache_on_s3() {
    let mut upstream = Berth::start();
    let http = upstream.client();
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = common::content::bytes("s3-cache", 8 << 20);
    let digest = common::sha256_digest(&layer);
    common::push::image(
        &http,
        &upstream.url(),
        "library/app",
        "v1",
        config,
        std::slice::from_ref(&layer),
    )
    .expect("push into the upstream");
    let prefix = seaweed::unique_prefix("cache");
    let cache = Berth::builder()
        .envs(seaweed::shared().berth_env(&prefix, "layout"))
        .args(&["--proxy", &format!("hub=http://{}", upstream.addr)])
        .start();
    let url = format!("{}/v2/hub/library/app/blobs/{digest}", cache.url());
    let pulls: Vec<_> = (0..5)
        .map(|_| {
            let (url, http) = (url.clone(), cache.client());
            std::thread::spawn(move || http.get(&url).send().and_then(|r| r.bytes()))
        })
        .collect();
    for pull in pulls {
        let body = pull.join().expect("pull").expect("blob GET");
        assert!(body[..] == layer[..], "a client got other bytes");
    }
    let manifest = cache
        .client()
        .get(format!("{}/v2/hub/library/app/manifests/v1", cache.url()))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .expect("manifest GET");
    assert_eq!(manifest.status(), 200);
    // Stored in the bucket shortly after the clients have it.
    upstream.stop();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let resp = cache.client().get(&url).send().expect("blob GET");
        if resp.status() == 200 {
            assert!(resp.bytes().expect("body")[..] == layer[..]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not served from the bucket: {}",
            resp.status()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
