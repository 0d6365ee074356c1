//! The conformance suite on `InMemory`, plus what is particular to object
//! stores: several processes (stores) sharing one bucket, and what a
//! session leaves behind in it.

use super::{ObjectBlobStore, blob_path};
use crate::conformance::{self as c, append_all, digest_of, put, read_range};
use crate::{BlobStore, StorageError};
use futures::TryStreamExt as _;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::{Method, Signer, Url};
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;

fn bucket() -> Arc<InMemory> {
    Arc::new(InMemory::new())
}

/// One "host": a store of its own over the shared bucket.
fn host(bucket: &Arc<InMemory>) -> ObjectBlobStore {
    ObjectBlobStore::new(Arc::clone(bucket) as Arc<dyn ObjectStore>, None)
}

/// Every key in the bucket, sorted.
async fn keys(bucket: &InMemory) -> Vec<String> {
    let mut keys: Vec<String> = bucket
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list");
    keys.sort();
    keys
}

async fn upload_keys(bucket: &InMemory) -> Vec<String> {
    let mut keys = keys(bucket).await;
    keys.retain(|k| k.starts_with("berth/uploads/"));
    keys
}

/// The `StorageError` an upload writer reported through `io::Error`.
fn storage_error(e: &std::io::Error) -> Option<&StorageError> {
    e.get_ref()?.downcast_ref::<StorageError>()
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let bucket = bucket();
            c::$name(&host(&bucket)).await;
        }
    )*};
}

conformance!(
    put_get_delete,
    empty_blob,
    ranged_reads,
    multi_append,
    second_writer_conflicts,
    concurrent_same_digest,
    digest_mismatch,
    abort_discards,
    bad_upload_ids,
    all_blob_tests,
    abort_with_open_writer,
    many_writers_same_digest,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_64mib() {
    let bucket = bucket();
    c::large_streamed(&host(&bucket), 64 << 20).await;
    assert!(upload_keys(&bucket).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_odd_size() {
    let bucket = bucket();
    c::large_streamed(&host(&bucket), (3 << 20) + 12_345).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_restart() {
    let bucket = bucket();
    let open = || Box::new(host(&bucket)) as Box<dyn BlobStore>;
    c::resume_after_restart(&open).await;
    assert!(upload_keys(&bucket).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_alternate() {
    let bucket = bucket();
    let open = || Box::new(host(&bucket)) as Box<dyn BlobStore>;
    c::hosts_alternate(&open).await;
    assert!(upload_keys(&bucket).await.is_empty());
}

#[tokio::test]
async fn layout_of_sessions_and_blobs() {
    let bucket = bucket();
    let store = host(&bucket);
    let id = store.create_upload().await.expect("create");
    assert_eq!(
        keys(&bucket).await,
        [format!("berth/uploads/{id}/startedat")]
    );
    append_all(&store, &id, b"lay").await;
    append_all(&store, &id, b"out").await;
    let session = keys(&bucket).await;
    let chunks: Vec<_> = session.iter().filter(|k| k.contains("/chunks/")).collect();
    assert_eq!(
        chunks,
        [
            &format!("berth/uploads/{id}/chunks/00000000000000000000"),
            &format!("berth/uploads/{id}/chunks/00000000000000000003"),
        ]
    );
    assert_eq!(session.iter().filter(|k| k.contains("/parts/")).count(), 2);
    let d = digest_of(b"layout");
    store.commit(&id, &d).await.expect("commit");
    assert_eq!(keys(&bucket).await, [blob_path(&d).to_string()]);
    assert_eq!(
        blob_path(&d).to_string(),
        format!(
            "docker/registry/v2/blobs/sha256/{}/{}/data",
            &d.hex()[..2],
            d.hex()
        )
    );
}

/// Blobs written by registry:2 (or anyone using its layout) are served.
#[tokio::test]
async fn reads_blobs_in_registry2_layout() {
    let bucket = bucket();
    let data = b"written by registry:2";
    let d = digest_of(data);
    bucket
        .put(&blob_path(&d), PutPayload::from_static(data))
        .await
        .expect("put");
    let store = host(&bucket);
    assert_eq!(store.stat(&d).await.expect("stat"), Some(data.len() as u64));
    assert_eq!(read_range(&store, &d, 8, 8).await, &data[8..16]);
}

/// Host A opens a writer at offset 0, host B appends first: A's claim loses,
/// its shutdown reports `Conflict`, and the session holds B's bytes only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_hosts_conflict() {
    let bucket = bucket();
    let (a, b) = (host(&bucket), host(&bucket));
    let id = a.create_upload().await.expect("create");
    let mut late = a.append(&id).await.expect("append on a");
    late.write_all(b"from a").await.expect("write");
    append_all(&b, &id, b"from b").await;
    let err = late.shutdown().await.expect_err("a must lose");
    assert!(
        matches!(storage_error(&err), Some(StorageError::Conflict(_))),
        "got {err:?}"
    );
    assert!(late.write_all(b"more").await.is_err());
    drop(late);
    // A's part is gone; the session is B's chunk and is usable from A.
    let session = upload_keys(&bucket).await;
    assert_eq!(
        session.iter().filter(|k| k.contains("/parts/")).count(),
        1,
        "{session:?}"
    );
    assert_eq!(a.upload_size(&id).await.expect("size"), 6);
    append_all(&a, &id, b", then a").await;
    let data = b"from b, then a";
    assert_eq!(
        a.commit(&id, &digest_of(data)).await.expect("commit"),
        data.len() as u64
    );
    assert!(upload_keys(&bucket).await.is_empty());
}

/// Claims are per offset: a writer that lost at one offset does not keep
/// others from appending, and a flush is the point where bytes count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_claims_and_drop_discards() {
    let bucket = bucket();
    let store = host(&bucket);
    let id = store.create_upload().await.expect("create");
    let mut w = store.append(&id).await.expect("append");
    w.write_all(b"kept").await.expect("write");
    w.flush().await.expect("flush");
    assert_eq!(store.upload_size(&id).await.expect("size"), 4);
    // Big enough to start a multipart upload of the part.
    w.write_all(&vec![1u8; 9 << 20]).await.expect("write");
    drop(w);
    assert_eq!(store.upload_size(&id).await.expect("size"), 4);
    let chunks = upload_keys(&bucket)
        .await
        .into_iter()
        .filter(|k| k.contains("/chunks/"))
        .count();
    assert_eq!(chunks, 1);
    append_all(&store, &id, b" and more").await;
    assert_eq!(
        store
            .commit(&id, &digest_of(b"kept and more"))
            .await
            .expect("commit"),
        13
    );
    assert!(upload_keys(&bucket).await.is_empty());
}

#[tokio::test]
async fn commit_waits_for_open_writer() {
    let bucket = bucket();
    let store = host(&bucket);
    let id = store.create_upload().await.expect("create");
    let mut w = store.append(&id).await.expect("append");
    w.write_all(b"abc").await.expect("write");
    let busy = store.commit(&id, &digest_of(b"abc")).await;
    assert!(
        matches!(busy, Err(StorageError::Conflict(_))),
        "got {busy:?}"
    );
    w.shutdown().await.expect("shutdown");
    assert_eq!(
        store.commit(&id, &digest_of(b"abc")).await.expect("commit"),
        3
    );
    assert!(w.write_all(b"more").await.is_err());
}

/// The running hash is used while it covers the chunks: tampering with a
/// stored part goes unnoticed by the host that wrote it (no re-read) but
/// not by a fresh host, which re-hashes from the store.
#[tokio::test]
async fn commit_uses_running_hash_and_rehashes_without_it() {
    let bucket = bucket();
    let tamper = |id: String| {
        let bucket = Arc::clone(&bucket);
        async move {
            let parts: Vec<Path> = bucket
                .list(Some(&Path::from(format!("berth/uploads/{id}/parts"))))
                .map_ok(|meta| meta.location)
                .try_collect()
                .await
                .expect("list");
            for part in parts {
                bucket
                    .put(&part, PutPayload::from_static(b"ORIGINAL"))
                    .await
                    .expect("tamper");
            }
        }
    };
    let store = host(&bucket);
    let id = store.create_upload().await.expect("create");
    append_all(&store, &id, b"original").await;
    tamper(id.clone()).await;
    assert_eq!(
        store
            .commit(&id, &digest_of(b"original"))
            .await
            .expect("commit"),
        8
    );

    let id = store.create_upload().await.expect("create");
    append_all(&store, &id, b"original").await;
    tamper(id.clone()).await;
    match host(&bucket).commit(&id, &digest_of(b"original")).await {
        Err(StorageError::DigestMismatch { actual }) => {
            assert_eq!(actual, digest_of(b"ORIGINAL").to_string())
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(upload_keys(&bucket).await.is_empty());
}

/// More chunks than claims read at once, from two hosts, committed by a
/// third: the concatenation is streamed in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_chunks_concatenate_in_order() {
    let bucket = bucket();
    let hosts = [host(&bucket), host(&bucket)];
    let id = hosts[0].create_upload().await.expect("create");
    let mut data = Vec::new();
    for i in 0..20u32 {
        let chunk: Vec<u8> = (0..(1000 + i * 37)).map(|j| (i * 7 + j) as u8).collect();
        append_all(&hosts[i as usize % 2], &id, &chunk).await;
        data.extend_from_slice(&chunk);
    }
    let d = digest_of(&data);
    assert_eq!(
        host(&bucket).commit(&id, &d).await.expect("commit"),
        data.len() as u64
    );
    assert_eq!(read_range(&hosts[1], &d, 0, data.len() as u64).await, data);
    assert_eq!(
        read_range(&hosts[0], &d, 12_345, 1_000).await,
        &data[12_345..13_345]
    );
    assert_eq!(keys(&bucket).await, [blob_path(&d).to_string()]);
}

#[tokio::test]
async fn aborted_and_mismatched_sessions_leave_nothing() {
    let bucket = bucket();
    let store = host(&bucket);
    let kept = put(&store, b"kept").await;
    c::digest_mismatch(&store).await;
    c::abort_discards(&store).await;
    c::bad_upload_ids(&store).await;
    c::abort_with_open_writer(&store).await;
    assert_eq!(keys(&bucket).await, [blob_path(&kept).to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_after_abort_reports_not_found() {
    let bucket = bucket();
    let store = host(&bucket);
    let id = store.create_upload().await.expect("create");
    let mut w = store.append(&id).await.expect("append");
    w.write_all(b"late").await.expect("write");
    store.abort(&id).await.expect("abort");
    let err = w.shutdown().await.expect_err("session is gone");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err:?}");
    assert!(keys(&bucket).await.is_empty());
}

#[derive(Debug)]
struct FakeSigner;

#[async_trait::async_trait]
impl Signer for FakeSigner {
    async fn signed_url(
        &self,
        method: Method,
        path: &Path,
        expires_in: Duration,
    ) -> object_store::Result<Url> {
        let url = format!(
            "https://bucket.example/{path}?method={method}&ttl={}",
            expires_in.as_secs()
        );
        Ok(Url::parse(&url).expect("url"))
    }
}

#[tokio::test]
async fn redirect_urls_are_presigned_for_existing_blobs() {
    let bucket = bucket();
    assert_eq!(
        host(&bucket)
            .redirect_url(&digest_of(b"x"))
            .await
            .expect("no signer"),
        None
    );
    // The caller mounts a prefix by wrapping both the store and the signer.
    let signer = PrefixStore::new(FakeSigner, "mounted/here");
    let store = ObjectBlobStore::new(bucket.clone(), Some(Arc::new(signer)));
    let d = digest_of(b"signed");
    assert_eq!(store.redirect_url(&d).await.expect("missing"), None);
    put(&store, b"signed").await;
    let url = store.redirect_url(&d).await.expect("sign").expect("url");
    assert_eq!(
        url,
        format!(
            "https://bucket.example/mounted/here/{}?method=GET&ttl=1200",
            blob_path(&d)
        )
    );
}

#[tokio::test]
async fn unknown_blobs() {
    let store = host(&bucket());
    let d = digest_of(b"nothing");
    assert_eq!(store.stat(&d).await.expect("stat"), None);
    assert!(!store.delete(&d).await.expect("delete"));
    for (offset, len) in [(0, 0), (0, 10), (5, 1)] {
        assert!(
            matches!(
                store.read(&d, offset, len).await,
                Err(StorageError::NotFound)
            ),
            "read {offset}+{len}"
        );
    }
}
