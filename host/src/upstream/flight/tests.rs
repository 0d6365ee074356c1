//! The blob tee against a stub upstream on loopback and real stores in a
//! temporary directory.

use super::*;
use crate::upstream::UpstreamSettings;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_storage::{FsBlobStore, SqliteMetadata, StorageError};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How many chunks the stub sends a blob in, with a pause before each.
const CHUNKS: usize = 16;
const PAUSE: Duration = Duration::from_millis(15);

/// A registry on loopback serving one blob under
/// `/v2/<mode>/blobs/<digest>`, where `mode` says how, and counting
/// the GETs and HEADs of it.
struct Stub {
    blob: Bytes,
    gets: AtomicUsize,
    heads: AtomicUsize,
}

fn blob_bytes() -> Bytes {
    // 1 MiB and a bit, not a multiple of anything.
    (0..(1 << 20) + 4321u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// `blob` in `CHUNKS` slow chunks; `Err` after half when `cut`.
fn slow_body(blob: Bytes, cut: bool) -> Body {
    let size = blob.len().div_ceil(CHUNKS);
    let chunks = futures::stream::iter(0..CHUNKS).then(move |i| {
        let blob = blob.clone();
        async move {
            tokio::time::sleep(PAUSE).await;
            if cut && i == CHUNKS / 2 {
                return Err(std::io::Error::other("cut off"));
            }
            let start = (i * size).min(blob.len());
            Ok(blob.slice(start..((i + 1) * size).min(blob.len())))
        }
    });
    Body::from_stream(chunks)
}

async fn serve_blob(
    State(stub): State<Arc<Stub>>,
    method: Method,
    UrlPath(rest): UrlPath<String>,
) -> Response {
    let Some((mode, _)) = rest.split_once("/blobs/") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if method == Method::HEAD {
        stub.heads.fetch_add(1, Ordering::SeqCst);
    } else {
        stub.gets.fetch_add(1, Ordering::SeqCst);
    }
    let length = stub.blob.len().to_string();
    let blob = stub.blob.clone();
    let with_length = |body: Body| {
        Response::builder()
            .header(header::CONTENT_LENGTH, &length)
            .body(body)
            .expect("response")
    };
    match mode {
        "slow" => with_length(slow_body(blob, false)),
        "cutoff" => with_length(slow_body(blob, true)),
        "corrupt" => {
            let mut bad = blob.to_vec();
            bad[blob.len() / 2] ^= 0x55;
            with_length(slow_body(bad.into(), false))
        }
        // Chunked, no Content-Length.
        "chunked" => slow_body(blob, false).into_response(),
        "redirected" => (
            StatusCode::TEMPORARY_REDIRECT,
            [(
                header::LOCATION,
                format!("/v2/slow/blobs/{}", Digest::of(&blob)),
            )],
        )
            .into_response(),
        "denied" => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, r#"Basic realm="stub""#)],
        )
            .into_response(),
        _ => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

struct Env {
    dir: tempfile::TempDir,
    stub: Arc<Stub>,
    upstream: Arc<Upstream>,
    blobs: Arc<FsBlobStore>,
    metadata: Arc<SqliteMetadata>,
    flights: BlobFlights,
    digest: Digest,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let stub = Arc::new(Stub {
        blob: blob_bytes(),
        gets: AtomicUsize::new(0),
        heads: AtomicUsize::new(0),
    });
    let router = axum::Router::new()
        .route("/v2/{*rest}", axum::routing::get(serve_blob))
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the stub");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut settings = UpstreamSettings::new(&format!("http://127.0.0.1:{port}"));
    settings.read_timeout = Duration::from_secs(5);
    let upstream = Arc::new(Upstream::new(&settings).expect("client"));
    let blobs = Arc::new(FsBlobStore::open(&dir.path().join("blobs")).expect("blob store"));
    let metadata =
        Arc::new(SqliteMetadata::open(&dir.path().join("metadata.db")).expect("metadata"));
    let flights = BlobFlights::new(dir.path().join("spool"), blobs.clone(), metadata.clone());
    let digest = Digest::of(&stub.blob);
    Env {
        dir,
        stub,
        upstream,
        blobs,
        metadata,
        flights,
        digest,
    }
}

impl Env {
    async fn fetch(&self, mode: &str, repository: &str) -> Result<FetchedBlob, UpstreamError> {
        self.flights
            .fetch(&self.upstream, mode, &self.digest, repository)
            .await
    }

    fn gets(&self) -> usize {
        self.stub.gets.load(Ordering::SeqCst)
    }

    async fn stored(&self) -> Option<u64> {
        self.blobs.stat(&self.digest).await.expect("stat")
    }

    async fn linked(&self, repository: &str) -> bool {
        self.metadata
            .blob_linked(repository, self.digest.as_str())
            .await
            .expect("blob_linked")
    }

    fn spool_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("spool"))
            .expect("spool dir")
            .count()
    }

    /// Waits (up to 5 s) until the flight left the map and its spool
    /// file is gone: the task's last steps follow the readers' end.
    async fn settled(&self) {
        for _ in 0..500 {
            if lock(&self.flights.flights).is_empty() && self.spool_files() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the flight did not end");
    }
}

/// Everything a stream yields: the bytes, and its error if it ended in one.
async fn read_all(mut body: BlobReader) -> (Vec<u8>, Option<std::io::Error>) {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                assert!(chunk.len() as u64 <= READ_CHUNK);
                bytes.extend_from_slice(&chunk);
            }
            Err(e) => return (bytes, Some(e)),
        }
    }
    (bytes, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_fetches_make_one_upstream_request() {
    let env = env().await;
    let repositories: Vec<String> = (0..20).map(|i| format!("hub/repo{}", i % 5)).collect();
    let results = futures::future::join_all(repositories.iter().map(|repo| async {
        let fetched = env.fetch("slow", repo).await.expect("fetch");
        assert_eq!(fetched.length, Some(env.stub.blob.len() as u64));
        read_all(fetched.body).await
    }))
    .await;
    for (bytes, error) in results {
        assert!(error.is_none(), "{error:?}");
        assert!(bytes == env.stub.blob, "a reader got other bytes");
    }
    assert_eq!(env.gets(), 1, "one GET for 20 fetches");
    env.settled().await;
    assert_eq!(env.stored().await, Some(env.stub.blob.len() as u64));
    for repo in &repositories {
        assert!(env.linked(repo).await, "{repo} linked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_every_byte_from_the_spool() {
    let env = env().await;
    let mut first = env.fetch("slow", "hub/first").await.expect("fetch");
    let head = first.body.next().await.expect("a chunk").expect("bytes");
    assert!(!head.is_empty());
    // The flight is well under way (its task holds back the end).
    let late = env.fetch("slow", "hub/late").await.expect("join");
    let (late_bytes, late_error) = read_all(late.body).await;
    let (rest, first_error) = read_all(first.body).await;
    assert!(late_error.is_none() && first_error.is_none());
    assert!(
        late_bytes == env.stub.blob,
        "the late joiner got other bytes"
    );
    assert!([&head[..], &rest[..]].concat() == env.stub.blob);
    assert_eq!(env.gets(), 1);
    // Readers finish once the bytes verified; storing follows.
    env.settled().await;
    assert!(env.linked("hub/first").await && env.linked("hub/late").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_upstream_leaves_nothing_and_the_next_fetch_starts_over() {
    let env = env().await;
    let (a, b) = tokio::join!(env.fetch("cutoff", "hub/a"), env.fetch("cutoff", "hub/b"));
    for fetched in [a.expect("fetch"), b.expect("join")] {
        let (bytes, error) = read_all(fetched.body).await;
        let error = error.expect("the stream ends in an error, not short");
        assert!(bytes.len() < env.stub.blob.len());
        assert!(error.to_string().contains("127.0.0.1"), "{error}");
    }
    assert_eq!(env.gets(), 1);
    assert_eq!(env.stored().await, None, "nothing stored");
    assert!(!env.linked("hub/a").await);
    env.settled().await;
    assert!(env.blobs.list_uploads().await.expect("uploads").is_empty());

    let again = env.fetch("slow", "hub/a").await.expect("a new flight");
    let (bytes, error) = read_all(again.body).await;
    assert!(error.is_none() && bytes == env.stub.blob);
    assert_eq!(env.gets(), 2);
    env.settled().await;
    assert_eq!(env.stored().await, Some(env.stub.blob.len() as u64));
    assert!(env.linked("hub/a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_byte_is_an_error_before_the_whole_blob_and_nothing_is_stored() {
    let env = env().await;
    let fetched = env.fetch("corrupt", "hub/a").await.expect("fetch");
    let (bytes, error) = read_all(fetched.body).await;
    let error = error.expect("a mismatch ends in an error");
    assert!(error.to_string().contains("hash to"), "{error}");
    assert!(
        bytes.len() < env.stub.blob.len(),
        "the last byte was held back"
    );
    assert_eq!(env.stored().await, None);
    assert!(!env.linked("hub/a").await);
    env.settled().await;
    assert!(env.blobs.list_uploads().await.expect("uploads").is_empty());
}

/// A blob store whose commits fail, as an object store that went away
/// at the end of a blob would.
struct FailingCommits(Arc<FsBlobStore>);

#[async_trait::async_trait]
impl BlobStore for FailingCommits {
    async fn stat(&self, digest: &Digest) -> berth_storage::Result<Option<u64>> {
        self.0.stat(digest).await
    }
    async fn read(
        &self,
        digest: &Digest,
        offset: u64,
        length: u64,
    ) -> berth_storage::Result<BlobReader> {
        self.0.read(digest, offset, length).await
    }
    async fn delete(&self, digest: &Digest) -> berth_storage::Result<bool> {
        self.0.delete(digest).await
    }
    async fn create_upload(&self) -> berth_storage::Result<String> {
        self.0.create_upload().await
    }
    async fn upload_size(&self, id: &str) -> berth_storage::Result<u64> {
        self.0.upload_size(id).await
    }
    async fn append(&self, id: &str) -> berth_storage::Result<berth_storage::UploadWriter> {
        self.0.append(id).await
    }
    async fn commit(&self, _id: &str, _expected: &Digest) -> berth_storage::Result<u64> {
        Err(StorageError::Unavailable(
            "the test store fails commits".into(),
        ))
    }
    async fn abort(&self, id: &str) -> berth_storage::Result<()> {
        self.0.abort(id).await
    }
    async fn list_blobs(&self) -> berth_storage::Result<berth_storage::BlobListing> {
        self.0.list_blobs().await
    }
    async fn list_uploads(&self) -> berth_storage::Result<Vec<berth_storage::UploadEntry>> {
        self.0.list_uploads().await
    }
    async fn quarantine(&self, digest: &Digest) -> berth_storage::Result<bool> {
        self.0.quarantine(digest).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_after_verification_serves_the_bytes_and_stores_nothing() {
    let mut env = env().await;
    env.flights = BlobFlights::new(
        env.dir.path().join("spool"),
        Arc::new(FailingCommits(env.blobs.clone())),
        env.metadata.clone(),
    );
    let fetched = env.fetch("slow", "hub/a").await.expect("fetch");
    let (bytes, error) = read_all(fetched.body).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(bytes, env.stub.blob);
    assert_eq!(env.stored().await, None);
    assert!(!env.linked("hub/a").await);
    env.settled().await;
    assert!(env.blobs.list_uploads().await.expect("uploads").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fetch_completes_without_readers() {
    let env = env().await;
    drop(env.fetch("slow", "hub/gone").await.expect("fetch"));
    env.settled().await;
    assert_eq!(env.stored().await, Some(env.stub.blob.len() as u64));
    assert!(env.linked("hub/gone").await);
    assert_eq!(env.gets(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_declared_length_streams_too() {
    let env = env().await;
    let fetched = env.fetch("chunked", "hub/a").await.expect("fetch");
    assert_eq!(fetched.length, None);
    let (bytes, error) = read_all(fetched.body).await;
    assert!(error.is_none() && bytes == env.stub.blob);
    env.settled().await;
    assert_eq!(env.stored().await, Some(env.stub.blob.len() as u64));
    assert!(env.linked("hub/a").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_before_the_body_reach_every_caller_and_nothing_stays() {
    let env = env().await;
    // A slow 404: the four joiners wait for the first one's answer.
    let answers = futures::future::join_all(
        (0..5).map(|i| env.fetch("missing", if i % 2 == 0 { "hub/a" } else { "hub/b" })),
    )
    .await;
    for answer in answers {
        let err = answer.expect_err("not found");
        assert!(matches!(err, UpstreamError::NotFound { .. }), "{err:?}");
    }
    assert_eq!(env.gets(), 1);
    assert!(lock(&env.flights.flights).is_empty());
    assert_eq!(env.spool_files(), 0);

    let err = env.fetch("denied", "hub/a").await.expect_err("401");
    assert!(matches!(err, UpstreamError::Unauthorized { .. }), "{err:?}");
    assert!(lock(&env.flights.flights).is_empty());

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let closed = Arc::new(
        Upstream::new(&UpstreamSettings::new(&format!("http://127.0.0.1:{port}"))).expect("client"),
    );
    let err = env
        .flights
        .fetch(&closed, "slow", &env.digest, "hub/a")
        .await
        .expect_err("unreachable");
    assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
    assert!(lock(&env.flights.flights).is_empty());
    assert_eq!(env.stored().await, None);
    assert!(env.blobs.list_uploads().await.expect("uploads").is_empty());
}

/// The window between a flight's end and its leaving the map: a caller
/// that joins then still gets the whole blob (from the spool handle,
/// its file already unlinked) and its repository linked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_flight_still_in_the_map_serves_and_links() {
    let env = env().await;
    let fetched = env.fetch("slow", "hub/first").await.expect("fetch");
    let flight = lock(&env.flights.flights)
        .get(&env.digest)
        .cloned()
        .expect("in flight");
    let (bytes, _) = read_all(fetched.body).await;
    assert!(bytes == env.stub.blob);
    env.settled().await;
    lock(&env.flights.flights).insert(env.digest.clone(), flight);

    let late = env.fetch("slow", "hub/window").await.expect("join");
    assert_eq!(late.length, Some(env.stub.blob.len() as u64));
    let (bytes, error) = read_all(late.body).await;
    assert!(error.is_none() && bytes == env.stub.blob);
    assert!(env.linked("hub/window").await);
    assert_eq!(env.gets(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_head_gives_the_size_through_redirects() {
    let env = env().await;
    let size = env.stub.blob.len() as u64;
    assert_eq!(
        env.upstream
            .blob_head("slow", &env.digest)
            .await
            .expect("HEAD"),
        size
    );
    assert_eq!(
        env.upstream
            .blob_head("redirected", &env.digest)
            .await
            .expect("HEAD, redirected"),
        size
    );
    let err = env
        .upstream
        .blob_head("missing", &env.digest)
        .await
        .expect_err("404");
    assert!(matches!(err, UpstreamError::NotFound { .. }), "{err:?}");
    assert_eq!(env.stub.heads.load(Ordering::SeqCst), 4);
    assert_eq!(env.gets(), 0);
}

#[test]
fn pin_requests_never_meet_the_sandbox_requests() {
    let (a, b) = (pin_request(), pin_request());
    assert!(a & PIN_REQUEST_BIT != 0 && b & PIN_REQUEST_BIT != 0);
    assert_ne!(a, b);
}
