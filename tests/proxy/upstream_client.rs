//! The client for upstream registries (`berth::upstream`), against real
//! registries on loopback: a second Berth with htpasswd logins in token and
//! basic mode, over HTTP and HTTPS, plus small stub servers for what a
//! Berth never does (redirecting a blob to another host). No internet.

use crate::common::{Berth, free_port, push};
use berth::upstream::{MANIFEST_ACCEPT, Upstream, UpstreamError, UpstreamSettings};
use berth_oci::Digest;
use berth_oci::route::Reference;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ALICE: (&str, &str) = ("alice", "alice-Pa55word!");
const REPO: &str = "library/small";
const MAX: u64 = 4 << 20;

/// What was pushed into an upstream: its blobs and manifest.
struct Seeded {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Digest,
}

fn seeded_content() -> (Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    // Several hundred KiB, so the blob arrives in more than one chunk.
    let layer: Vec<u8> = (0..700_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    (config, layer)
}

/// Pushes the test image into a fresh root through an open Berth, so
/// that the authenticated upstream started on it later already holds it.
fn seed(root: &Path) -> Seeded {
    let (config, layer) = seeded_content();
    let mut open = Berth::builder().root(root).start();
    let http = open.client();
    let manifest = push::image(
        &http,
        &open.url(),
        REPO,
        "v1",
        &config,
        std::slice::from_ref(&layer),
    )
    .expect("push the test image");
    open.stop();
    Seeded {
        config,
        layer,
        manifest: Digest::parse(&manifest).expect("digest"),
    }
}

/// An upstream Berth with alice's login, in `mode`, on a seeded root.
struct AuthedUpstream {
    berth: Berth,
    seeded: Seeded,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn authed_upstream(mode: &str, tls: bool) -> AuthedUpstream {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("data");
    let seeded = seed(&root);
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash_with_result(ALICE.1, 5)
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    std::fs::write(&htpasswd, format!("{}:{hash}\n", ALICE.0)).expect("htpasswd");
    let log = dir.path().join("upstream.log");
    let mut builder = Berth::builder()
        .root(&root)
        .config(&format!(
            "[auth]\nmode = {mode:?}\nhtpasswd = {:?}\n",
            htpasswd.display().to_string()
        ))
        .log(&log);
    if tls {
        builder = builder.tls_self_signed("127.0.0.1");
    }
    AuthedUpstream {
        berth: builder.start(),
        seeded,
        log,
        _dir: dir,
    }
}

impl AuthedUpstream {
    fn settings(&self, login: bool) -> UpstreamSettings {
        let mut settings = UpstreamSettings::new(&self.berth.url());
        settings.connect_timeout = Duration::from_secs(2);
        settings.read_timeout = Duration::from_secs(10);
        if login {
            settings.username = Some(ALICE.0.into());
            settings.password = Some(ALICE.1.into());
        }
        settings
    }

    /// How many tokens the upstream has issued so far.
    fn tokens_issued(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("issued a registry token")
            .count()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn tag(t: &str) -> Reference {
    Reference::Tag(t.into())
}

async fn read_blob(upstream: &Upstream, digest: &Digest) -> (Option<u64>, Vec<u8>) {
    let mut blob = upstream.blob_get(REPO, digest).await.expect("blob_get");
    let mut bytes = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = blob.body.next().await {
        bytes.extend_from_slice(&chunk.expect("blob chunk"));
        chunks += 1;
    }
    assert!(chunks >= 1);
    (blob.length, bytes)
}

/// Everything a pull needs, through one client: tag, digest, HEAD, blobs.
async fn pull_everything(upstream: &Upstream, seeded: &Seeded) {
    let by_tag = upstream
        .manifest_get(REPO, &tag("v1"), MANIFEST_ACCEPT, MAX)
        .await
        .expect("manifest by tag");
    assert_eq!(by_tag.digest, seeded.manifest);
    assert_eq!(by_tag.media_type, berth_oci::media_types::OCI_MANIFEST);

    let by_digest = upstream
        .manifest_get(
            REPO,
            &Reference::Digest(seeded.manifest.clone()),
            MANIFEST_ACCEPT,
            MAX,
        )
        .await
        .expect("manifest by digest");
    assert_eq!(by_digest.bytes, by_tag.bytes);

    let head = upstream
        .manifest_head(REPO, &tag("v1"), MANIFEST_ACCEPT)
        .await
        .expect("HEAD")
        .expect("the tag exists");
    assert_eq!(head.digest, seeded.manifest);
    assert_eq!(head.size, by_tag.bytes.len() as u64);
    assert_eq!(head.media_type, by_tag.media_type);

    let missing = upstream
        .manifest_head(REPO, &tag("nope"), MANIFEST_ACCEPT)
        .await
        .expect("HEAD of a missing tag");
    assert_eq!(missing, None);

    let layer_digest = Digest::of(&seeded.layer);
    let (length, bytes) = read_blob(upstream, &layer_digest).await;
    assert_eq!(length, Some(seeded.layer.len() as u64));
    assert!(
        bytes == seeded.layer,
        "blob bytes differ from what was pushed"
    );
    let (_, config) = read_blob(upstream, &Digest::of(&seeded.config)).await;
    assert_eq!(config, seeded.config);

    let err = upstream
        .blob_get(REPO, &Digest::of(b"never pushed"))
        .await
        .expect_err("missing blob");
    assert!(matches!(err, UpstreamError::NotFound { .. }), "{err}");
}

/// The error pulling `v1` with `settings` ends in.
fn pull_error(rt: &tokio::runtime::Runtime, settings: &UpstreamSettings) -> UpstreamError {
    let upstream = Upstream::new(settings).expect("client");
    rt.block_on(upstream.manifest_get(REPO, &tag("v1"), MANIFEST_ACCEPT, MAX))
        .expect_err("the pull should fail")
}

#[test]
fn token_flow_with_cached_tokens() {
    let up = authed_upstream("token", false);
    let rt = runtime();

    // Anonymous: refused cleanly, naming the upstream.
    let err = pull_error(&rt, &up.settings(false));
    assert!(matches!(err, UpstreamError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains(&up.berth.url()), "{err}");

    // Wrong password: refused the same way.
    let mut wrong = up.settings(true);
    wrong.password = Some("not-it".into());
    let err = pull_error(&rt, &wrong);
    assert!(matches!(err, UpstreamError::Unauthorized { .. }), "{err:?}");

    // With the login: one token, then every request of the repository
    // reuses it.
    let upstream = Upstream::new(&up.settings(true)).expect("client");
    let before = up.tokens_issued();
    rt.block_on(pull_everything(&upstream, &up.seeded));
    assert_eq!(up.tokens_issued(), before + 1, "one token for one scope");
    rt.block_on(upstream.manifest_get(REPO, &tag("v1"), MANIFEST_ACCEPT, MAX))
        .expect("second pull");
    assert_eq!(up.tokens_issued(), before + 1, "the token is cached");

    // A manifest over the limit is refused.
    let err = rt
        .block_on(upstream.manifest_get(REPO, &tag("v1"), MANIFEST_ACCEPT, 100))
        .expect_err("too large");
    assert!(
        matches!(err, UpstreamError::TooLarge { limit: 100, .. }),
        "{err:?}"
    );

    // Names and tags outside the grammar never reach a URL.
    for (repo, reference) in [("../etc", "v1"), ("Library/x", "v1"), (REPO, "a/../b")] {
        let err = rt
            .block_on(upstream.manifest_head(repo, &tag(reference), MANIFEST_ACCEPT))
            .expect_err("invalid name or tag");
        assert!(matches!(err, UpstreamError::Invalid { .. }), "{err:?}");
    }
}

#[test]
fn basic_mode() {
    let up = authed_upstream("basic", false);
    let rt = runtime();
    let err = pull_error(&rt, &up.settings(false));
    assert!(matches!(err, UpstreamError::Unauthorized { .. }), "{err:?}");
    let upstream = Upstream::new(&up.settings(true)).expect("client");
    rt.block_on(pull_everything(&upstream, &up.seeded));
    assert_eq!(up.tokens_issued(), 0, "basic mode issues no tokens");
}

#[test]
fn https_with_ca_file_without_and_insecure() {
    let up = authed_upstream("token", true);
    let rt = runtime();

    // The system roots alone do not know Berth's self-signed CA.
    let err = pull_error(&rt, &up.settings(true));
    assert!(matches!(err, UpstreamError::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&up.berth.url()) && text.contains("ca_file"),
        "{text}"
    );

    let mut with_ca = up.settings(true);
    with_ca.ca_file = Some(up.berth.ca());
    let upstream = Upstream::new(&with_ca).expect("client");
    rt.block_on(pull_everything(&upstream, &up.seeded));

    let mut insecure = up.settings(true);
    insecure.insecure = true;
    let upstream = Upstream::new(&insecure).expect("client");
    rt.block_on(pull_everything(&upstream, &up.seeded));

    // A CA file that is not there fails when the client is built.
    let mut missing = up.settings(true);
    missing.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
    let err = Upstream::new(&missing).expect_err("missing CA file");
    assert!(matches!(err, UpstreamError::Config { .. }), "{err:?}");
}

/// A closed port (refused at once) and an address nothing answers
/// (TEST-NET-1: dropped, or unroutable here) both fail within the connect
/// timeout, naming the URL.
#[test]
fn unreachable_fails_within_the_connect_timeout() {
    let rt = runtime();
    for url in [
        format!("http://127.0.0.1:{}", free_port()),
        "http://192.0.2.1:5000".to_owned(),
    ] {
        let mut settings = UpstreamSettings::new(&url);
        settings.connect_timeout = Duration::from_secs(2);
        let upstream = Upstream::new(&settings).expect("client");
        let started = Instant::now();
        let err = rt
            .block_on(upstream.manifest_head(REPO, &tag("v1"), MANIFEST_ACCEPT))
            .expect_err("nothing answers");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{url}: took {took:?}");
        assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains(&url), "{err}");
        assert!(err.is_temporary());
    }
}

/// Serves `router` on a free loopback port from `rt`; returns the port.
fn serve_stub(rt: &tokio::runtime::Runtime, router: axum::Router) -> u16 {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind a stub");
    let port = listener.local_addr().expect("stub address").port();
    rt.spawn(async move { axum::serve(listener, router).await });
    port
}

/// An upstream that breaks the rules: a manifest streamed without a
/// length past the limit, bytes that do not match the digest asked for or
/// the one declared, and a blob that stalls half-way.
#[test]
fn misbehaving_upstream() {
    use axum::body::Body;
    use axum::extract::Path as UrlPath;
    use axum::response::{IntoResponse, Response};

    const GOOD: &[u8] =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    const OTHER: &[u8] = br#"{"schemaVersion":2}"#;
    let good = Digest::of(GOOD);
    let wanted = good.clone();
    let rt = runtime();
    let router = axum::Router::new().route(
        "/v2/{*rest}",
        axum::routing::get(move |UrlPath(rest): UrlPath<String>| {
            let wanted = wanted.clone();
            async move {
                let Some((_, last)) = rest.rsplit_once('/') else {
                    return axum::http::StatusCode::NOT_FOUND.into_response();
                };
                match last {
                    // 64 KiB in chunks with no Content-Length.
                    "chunked" => {
                        let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024]));
                        Body::from_stream(futures::stream::iter(chunks)).into_response()
                    }
                    // Declares the good digest, sends other bytes.
                    "lying" => Response::builder()
                        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                        .header("docker-content-digest", wanted.as_str())
                        .body(Body::from(OTHER))
                        .expect("response"),
                    // Asked by digest, answers other bytes.
                    d if d.starts_with("sha256:") && rest.contains("/manifests/") => {
                        Response::builder()
                            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                            .body(Body::from(OTHER))
                            .expect("response")
                    }
                    // A blob: some bytes, then nothing, forever.
                    _ => {
                        let first =
                            futures::stream::iter([Ok::<_, std::io::Error>(vec![1u8; 100])]);
                        let stall = futures::stream::pending();
                        Response::builder()
                            .header("content-length", "1000")
                            .body(Body::from_stream(first.chain(stall)))
                            .expect("response")
                    }
                }
            }
        }),
    );
    let port = serve_stub(&rt, router);
    let mut settings = UpstreamSettings::new(&format!("http://127.0.0.1:{port}"));
    settings.read_timeout = Duration::from_secs(1);
    let upstream = Upstream::new(&settings).expect("client");

    let err = rt
        .block_on(upstream.manifest_get(REPO, &tag("chunked"), MANIFEST_ACCEPT, 4096))
        .expect_err("streamed past the limit");
    assert!(
        matches!(err, UpstreamError::TooLarge { limit: 4096, .. }),
        "{err:?}"
    );

    let err = rt
        .block_on(upstream.manifest_get(REPO, &tag("lying"), MANIFEST_ACCEPT, MAX))
        .expect_err("declared digest differs");
    assert!(matches!(err, UpstreamError::Protocol { .. }), "{err:?}");

    let err = rt
        .block_on(upstream.manifest_get(REPO, &Reference::Digest(good), MANIFEST_ACCEPT, MAX))
        .expect_err("bytes differ from the digest asked for");
    assert!(matches!(err, UpstreamError::Protocol { .. }), "{err:?}");

    let started = Instant::now();
    let result: Result<usize, UpstreamError> = rt.block_on(async {
        let mut blob = upstream.blob_get(REPO, &Digest::of(b"stalls")).await?;
        assert_eq!(blob.length, Some(1000));
        let mut got = 0;
        while let Some(chunk) = blob.body.next().await {
            got += chunk?.len();
        }
        Ok(got)
    });
    let err = result.expect_err("a stalled blob ends in an error");
    assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A registry stub that wants basic credentials and redirects every blob
/// to a second server on another port (another host, to reqwest), which
/// records the `Authorization` it was sent.
#[test]
fn blob_redirect_drops_authorization() {
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use std::sync::{Arc, Mutex};

    const BODY: &[u8] = b"layer bytes from the CDN";
    let rt = runtime();
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();

    let cdn_seen = seen.clone();
    let cdn = Router::new().route(
        "/cdn/blob",
        get(move |headers: HeaderMap| {
            let seen = cdn_seen.clone();
            async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                seen.lock().expect("lock").push(auth);
                BODY
            }
        }),
    );
    let cdn_port = serve_stub(&rt, cdn);

    let registry = Router::new().route(
        "/v2/{*rest}",
        get(move |headers: HeaderMap| async move {
            let authorized = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Basic "));
            if !authorized {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(
                        header::WWW_AUTHENTICATE,
                        r#"Basic realm="stub""#.to_string(),
                    )],
                )
                    .into_response();
            }
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(
                    header::LOCATION,
                    format!("http://localhost:{cdn_port}/cdn/blob"),
                )],
            )
                .into_response()
        }),
    );
    let registry_port = serve_stub(&rt, registry);

    let mut settings = UpstreamSettings::new(&format!("http://127.0.0.1:{registry_port}"));
    settings.username = Some("u".into());
    settings.password = Some("p".into());
    let upstream = Upstream::new(&settings).expect("client");
    let digest = Digest::of(BODY);
    let (length, bytes) = rt.block_on(read_blob(&upstream, &digest));
    assert_eq!(bytes, BODY);
    assert_eq!(length, Some(BODY.len() as u64));
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![None],
        "no credentials to the CDN"
    );
}
