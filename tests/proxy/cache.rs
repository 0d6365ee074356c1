//! The cache over HTTP, against a Berth upstream (whose request log counts
//! what the cache asked for) and stubs that break off or corrupt a blob:
//! cold and warm pulls, tag freshness, a stopped upstream, single flight,
//! nothing stored from a bad transfer, writes refused.

use crate::common::content::bytes;
use crate::common::{Berth, push, sha256_digest};
use reqwest::blocking::Client;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A Berth upstream logging every request to a file, so tests can count
/// what reached it.
struct Upstream {
    berth: Berth,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Upstream {
    fn start() -> Upstream {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("upstream.log");
        let berth = Berth::builder().log(&log).start();
        Upstream {
            berth,
            log,
            _dir: dir,
        }
    }

    /// Pushes an image, returning (manifest digest, manifest bytes).
    fn push(&self, repo: &str, tag: &str, config: &[u8], layers: &[Vec<u8>]) -> (String, Vec<u8>) {
        let http = self.berth.client();
        let digest = push::image(&http, &self.berth.url(), repo, tag, config, layers)
            .expect("push into the upstream");
        let bytes = get(
            &http,
            &format!("{}/v2/{repo}/manifests/{digest}", self.berth.url()),
        );
        (digest, bytes)
    }

    /// How many `GET`s of `path` the upstream answered.
    fn gets(&self, path: &str) -> usize {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let needle = format!("path={path} ");
        log.lines()
            .filter(|l| l.contains("method=GET") && l.contains(&needle))
            .count()
    }
}

/// A caching Berth with `args` (e.g. `--proxy hub=URL`) and `toml`.
fn cache(args: &[&str], toml: Option<&str>) -> Berth {
    let mut builder = Berth::builder().args(args);
    if let Some(toml) = toml {
        builder = builder.config(toml);
    }
    builder.start()
}

fn get(http: &Client, url: &str) -> Vec<u8> {
    let resp = http
        .get(url)
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.bytes().expect("body").to_vec()
}

/// Status, `Docker-Content-Digest` and body of a manifest GET.
fn manifest(http: &Client, base: &str, repo: &str, reference: &str) -> (u16, String, Vec<u8>) {
    let resp = http
        .get(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("accept", OCI_MANIFEST)
        .send()
        .expect("manifest GET");
    let status = resp.status().as_u16();
    let digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, digest, resp.bytes().expect("body").to_vec())
}

fn image_parts(seed: &str, layer_len: usize) -> (Vec<u8>, Vec<u8>) {
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":"{seed}"}}"#
    )
    .into_bytes();
    (config, bytes(seed, layer_len))
}

/// Waits up to 5 s for `done`.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn blob_file(root: &Path, digest: &str) -> PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    root.join("blobs/sha256").join(&hex[..2]).join(hex)
}

#[test]
fn cold_then_warm_pulls_serve_the_upstreams_bytes_also_when_it_is_gone() {
    let mut upstream = Upstream::start();
    let (config, layer) = image_parts("cold-warm", 3 << 20);
    let (digest, manifest_bytes) =
        upstream.push("library/app", "v1", &config, std::slice::from_ref(&layer));
    let cache = cache(
        &["--proxy", &format!("hub=http://{}", upstream.berth.addr)],
        None,
    );
    let (http, base) = (cache.client(), cache.url());

    // Cold: everything comes through, byte for byte.
    let (status, served, body) = manifest(&http, &base, "hub/library/app", "v1");
    assert_eq!((status, served.as_str()), (200, digest.as_str()));
    assert_eq!(body, manifest_bytes);
    for blob in [&config, &layer] {
        let url = format!("{base}/v2/hub/library/app/blobs/{}", sha256_digest(blob));
        assert_eq!(&get(&http, &url), blob);
    }
    let catalog: serde_json::Value = http
        .get(format!("{base}/v2/_catalog"))
        .send()
        .and_then(|r| r.json())
        .expect("catalog");
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["hub/library/app"])
    );
    // Each blob was fetched once.
    let layer_path = format!("/v2/library/app/blobs/{}", sha256_digest(&layer));
    assert_eq!(upstream.gets(&layer_path), 1);

    // Warm, with the upstream gone: by tag (within tag_ttl) and by digest.
    eventually("the layer stored", || {
        blob_file(&cache.root, &sha256_digest(&layer)).exists()
    });
    upstream.berth.stop();
    let (status, served, body) = manifest(&http, &base, "hub/library/app", "v1");
    assert_eq!((status, served.as_str()), (200, digest.as_str()));
    assert_eq!(body, manifest_bytes);
    let (status, _, _) = manifest(&http, &base, "hub/library/app", &digest);
    assert_eq!(status, 200);
    let url = format!("{base}/v2/hub/library/app/blobs/{}", sha256_digest(&layer));
    assert_eq!(get(&http, &url), layer);

    // registry:2's proxy metrics: one cold manifest and two blobs fetched,
    // two warm manifest pulls served from the store.
    let proxy = proxy_metrics(&http, &base);
    assert_eq!(proxy[&("misses", "manifest")], 1.0, "{proxy:?}");
    assert_eq!(proxy[&("hits", "manifest")], 2.0, "{proxy:?}");
    assert_eq!(proxy[&("requests", "manifest")], 3.0, "{proxy:?}");
    assert_eq!(proxy[&("misses", "blob")], 2.0, "{proxy:?}");
    assert_eq!(
        proxy[&("pulled_bytes", "manifest")],
        manifest_bytes.len() as f64
    );
    assert_eq!(
        proxy[&("pulled_bytes", "blob")],
        (config.len() + layer.len()) as f64
    );
}

/// `registry_proxy_<what>_total{type}` from `/metrics`.
fn proxy_metrics(
    http: &Client,
    base: &str,
) -> std::collections::HashMap<(&'static str, &'static str), f64> {
    let scrape = crate::common::metrics::Scrape::of(http, &format!("{base}/metrics"));
    let mut out = std::collections::HashMap::new();
    for what in ["requests", "hits", "misses", "pulled_bytes"] {
        for kind in ["manifest", "blob"] {
            let name = format!("registry_proxy_{what}_total");
            out.insert((what, kind), scrape.value(&name, &[("type", kind)]));
        }
    }
    out
}

#[test]
fn a_moved_tag_is_seen_after_tag_ttl_and_served_stale_when_the_upstream_is_down() {
    let mut upstream = Upstream::start();
    let (config, layer) = image_parts("first", 4096);
    let (first, _) = upstream.push("library/app", "latest", &config, &[layer]);
    let toml = format!(
        "[[proxy]]\nprefix = \"hub\"\nurl = \"http://{}\"\ntag_ttl = \"3s\"\n",
        upstream.berth.addr
    );
    let cache = cache(&[], Some(&toml));
    let (http, base) = (cache.client(), cache.url());
    assert_eq!(manifest(&http, &base, "hub/library/app", "latest").1, first);
    let checked = Instant::now();

    let (config, layer) = image_parts("second", 4096);
    let (second, _) = upstream.push("library/app", "latest", &config, &[layer]);
    assert_ne!(first, second);
    // Within tag_ttl the cached tag stands, without asking.
    let heads_before = upstream_heads(&upstream);
    assert_eq!(manifest(&http, &base, "hub/library/app", "latest").1, first);
    assert_eq!(upstream_heads(&upstream), heads_before);
    assert!(
        checked.elapsed() < TTL,
        "the test was too slow to see the TTL hold"
    );
    std::thread::sleep(TTL.saturating_sub(checked.elapsed()) + Duration::from_millis(200));
    assert_eq!(
        manifest(&http, &base, "hub/library/app", "latest").1,
        second
    );

    // The upstream goes away: the cached tag is served stale, an uncached
    // tag or blob fails fast with a 503 that names the upstream.
    upstream.berth.stop();
    std::thread::sleep(TTL + Duration::from_millis(200));
    let (status, digest, _) = manifest(&http, &base, "hub/library/app", "latest");
    assert_eq!((status, digest.as_str()), (200, second.as_str()));
    let started = Instant::now();
    let (status, _, body) = manifest(&http, &base, "hub/library/app", "never-pulled");
    let took = started.elapsed();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("UNAVAILABLE") && body.contains(&upstream.berth.addr),
        "{body}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let resp = http
        .get(format!(
            "{base}/v2/hub/library/app/blobs/{}",
            sha256_digest(b"never pulled")
        ))
        .send()
        .expect("blob GET");
    assert_eq!(resp.status(), 503);
}

const TTL: Duration = Duration::from_secs(3);

fn upstream_heads(upstream: &Upstream) -> usize {
    let log = std::fs::read_to_string(&upstream.log).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("method=HEAD") && l.contains("/manifests/"))
        .count()
}

#[test]
fn twenty_concurrent_pulls_of_one_uncached_layer_make_one_upstream_get() {
    let upstream = Upstream::start();
    let (config, layer) = image_parts("big", 100 << 20);
    let digest = sha256_digest(&layer);
    upstream.push("library/big", "v1", &config, &[layer]);
    let cache = cache(
        &["--proxy", &format!("hub=http://{}", upstream.berth.addr)],
        None,
    );
    let url = format!("{}/v2/hub/library/big/blobs/{digest}", cache.url());
    let start = Arc::new(std::sync::Barrier::new(20));
    let pulls: Vec<_> = (0..20)
        .map(|_| {
            let (url, start, http) = (url.clone(), start.clone(), cache.client());
            std::thread::spawn(move || {
                use sha2::Digest as _;
                start.wait();
                let mut resp = http.get(&url).send().expect("blob GET");
                assert_eq!(resp.status(), 200);
                let mut hasher = sha2::Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = std::io::Read::read(&mut resp, &mut buf).expect("body");
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                }
                format!("sha256:{}", hex::encode(hasher.finalize()))
            })
        })
        .collect();
    for pull in pulls {
        assert_eq!(pull.join().expect("pull"), digest);
    }
    assert_eq!(upstream.gets(&format!("/v2/library/big/blobs/{digest}")), 1);
}

/// A stub upstream serving one blob: whole (mode 0), broken off half-way
/// (1), or with one byte flipped (2). Counts its blob GETs.
struct Stub {
    port: u16,
    mode: Arc<AtomicU8>,
    gets: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

fn stub(blob: Vec<u8>) -> Stub {
    use axum::body::Body;
    use axum::response::Response;
    use axum::routing::get;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mode = Arc::new(AtomicU8::new(0));
    let gets = Arc::new(AtomicUsize::new(0));
    let (m, g) = (mode.clone(), gets.clone());
    let blob = Arc::new(blob);
    let router = axum::Router::new()
        .route("/v2/", get(|| async { "{}" }))
        .route(
            "/v2/{*rest}",
            get(move || {
                let (mode, blob) = (m.load(Ordering::SeqCst), blob.clone());
                g.fetch_add(1, Ordering::SeqCst);
                async move {
                    let len = blob.len();
                    let mut body = blob.to_vec();
                    if mode == 2 {
                        body[len / 2] ^= 0xff;
                    }
                    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = if mode == 1 {
                        vec![
                            Ok(body[..len / 2].to_vec()),
                            Err(std::io::Error::other("upstream breaks off")),
                        ]
                    } else {
                        body.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect()
                    };
                    Response::builder()
                        .header("content-length", len)
                        .body(Body::from_stream(futures::stream::iter(chunks)))
                        .expect("response")
                }
            }),
        );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    runtime.spawn(async move { axum::serve(listener, router).await });
    Stub {
        port,
        mode,
        gets,
        _runtime: runtime,
    }
}

/// The body of a blob GET through the cache, or why it failed.
fn pull(http: &Client, url: &str) -> Result<Vec<u8>, String> {
    let resp = http.get(url).send().map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()));
    }
    resp.bytes().map(|b| b.to_vec()).map_err(|e| e.to_string())
}

#[test]
fn a_transfer_that_breaks_off_or_is_corrupt_stores_nothing_and_the_next_pull_is_good() {
    let blob = bytes("flaky", 2 << 20);
    let digest = sha256_digest(&blob);
    let stub = stub(blob.clone());
    let cache = cache(
        &["--proxy", &format!("hub=http://127.0.0.1:{}", stub.port)],
        None,
    );
    let http = cache.client();
    let url = format!("{}/v2/hub/library/flaky/blobs/{digest}", cache.url());
    for (mode, what) in [(1, "broken off"), (2, "corrupt")] {
        stub.mode.store(mode, Ordering::SeqCst);
        match pull(&http, &url) {
            Ok(body) => panic!(
                "{what}: the client got a whole-looking body of {} bytes",
                body.len()
            ),
            Err(e) => assert!(!e.is_empty(), "{what}"),
        }
        assert!(!blob_file(&cache.root, &digest).exists(), "{what}: stored");
    }
    stub.mode.store(0, Ordering::SeqCst);
    assert_eq!(pull(&http, &url).expect("a good transfer"), blob);
    assert_eq!(stub.gets.load(Ordering::SeqCst), 3);
    // The client has the last byte once the digest verified; the commit
    // follows at once.
    eventually("the blob stored", || {
        blob_file(&cache.root, &digest).exists()
    });
    // Stored now: served without asking again.
    assert_eq!(pull(&http, &url).expect("cached"), blob);
    assert_eq!(stub.gets.load(Ordering::SeqCst), 3);
}

#[test]
fn writes_into_a_cache_are_denied_and_local_repositories_work_beside_it() {
    let upstream = Upstream::start();
    let (config, layer) = image_parts("writes", 4096);
    let (digest, _) = upstream.push("library/app", "v1", &config, std::slice::from_ref(&layer));
    let url = format!("http://{}", upstream.berth.addr);
    let cache = cache(&["--proxy", &format!("hub={url}"), "--proxy", &url], None);
    let (http, base) = (cache.client(), cache.url());
    // Cached through both the prefix and the unprefixed mirror.
    assert_eq!(manifest(&http, &base, "hub/library/app", "v1").1, digest);
    assert_eq!(manifest(&http, &base, "library/app", "v1").1, digest);

    let denied = |resp: reqwest::blocking::Response, what: &str| {
        assert_eq!(resp.status(), 403, "{what}");
        let body = resp.text().unwrap_or_default();
        assert!(
            body.contains("DENIED") && body.contains(&url),
            "{what}: {body}"
        );
    };
    for repo in ["hub/library/app", "hub/library/new", "library/app"] {
        let post = http.post(format!("{base}/v2/{repo}/blobs/uploads/")).send();
        denied(post.expect("POST"), &format!("upload into {repo}"));
        let put = http
            .put(format!("{base}/v2/{repo}/manifests/v2"))
            .header("content-type", OCI_MANIFEST)
            .body(push::image_manifest(
                (&sha256_digest(&config), config.len()),
                &[(sha256_digest(&layer), layer.len())],
            ))
            .send();
        denied(put.expect("PUT"), &format!("manifest into {repo}"));
    }
    let delete = http
        .delete(format!("{base}/v2/hub/library/app/manifests/{digest}"))
        .send();
    denied(delete.expect("DELETE"), "delete in a cache");
    assert_eq!(manifest(&http, &base, "hub/library/app", "v1").0, 200);

    // A name pushed locally first stays local, and is never asked upstream.
    let (config, layer) = image_parts("local", 4096);
    let local = push::image(&http, &base, "team/app", "v1", &config, &[layer])
        .expect("push a local repository");
    assert_eq!(manifest(&http, &base, "team/app", "v1").1, local);
    assert_eq!(upstream.gets("/v2/team/app/manifests/v1"), 0);
    let heads = std::fs::read_to_string(&upstream.log).unwrap_or_default();
    assert!(
        !heads.contains("path=/v2/team/app/manifests"),
        "asked upstream"
    );
    // An unknown name is asked upstream, and is a 404 there.
    assert_eq!(manifest(&http, &base, "hub/library/nothing", "v1").0, 404);
}

#[test]
fn cached_repositories_nobody_pulls_are_forgotten_and_their_blobs_collected() {
    let upstream = Upstream::start();
    let (config_a, layer_a) = image_parts("unused", 64 << 10);
    upstream.push(
        "library/unused",
        "v1",
        &config_a,
        std::slice::from_ref(&layer_a),
    );
    let (config_b, layer_b) = image_parts("used", 64 << 10);
    upstream.push("library/used", "v1", &config_b, &[layer_b]);
    let toml = format!(
        "[gc]\ninterval = \"500ms\"\ngrace = \"0s\"\nupload_grace = \"0s\"\n\n\
         [[proxy]]\nprefix = \"hub\"\nurl = \"http://{}\"\nunused_after = \"3s\"\n",
        upstream.berth.addr
    );
    let cache = cache(&[], Some(&toml));
    let (http, base) = (cache.client(), cache.url());
    let pull = |repo: &str| {
        assert_eq!(manifest(&http, &base, repo, "v1").0, 200, "{repo}");
    };
    pull("hub/library/unused");
    let layer_url = format!(
        "{base}/v2/hub/library/unused/blobs/{}",
        sha256_digest(&layer_a)
    );
    assert_eq!(get(&http, &layer_url), layer_a);
    let layer_file = blob_file(&cache.root, &sha256_digest(&layer_a));
    eventually("the layer stored", || layer_file.exists());

    // One repository is pulled all along, the other never again.
    let catalog = || -> serde_json::Value {
        http.get(format!("{base}/v2/_catalog"))
            .send()
            .and_then(|r| r.json())
            .expect("catalog")
    };
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        pull("hub/library/used");
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(
        catalog()["repositories"],
        serde_json::json!(["hub/library/used"])
    );
    assert!(
        !layer_file.exists(),
        "the forgotten layer was not collected"
    );
    // Pulled again, it comes back from the upstream.
    pull("hub/library/unused");
    assert_eq!(get(&http, &layer_url), layer_a);
}
