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
    listing,
    uploads_listing,
    quarantine_hides,
    all_listing_tests,
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

/// Only keys the store would read are blobs; blobs registry:2 wrote are.
#[tokio::test]
async fn listing_skips_foreign_keys() {
    let bucket = bucket();
    let store = host(&bucket);
    let ours = put(&store, b"ours").await;
    let theirs = digest_of(b"written by registry:2");
    bucket
        .put(
            &blob_path(&theirs),
            PutPayload::from_static(b"written by registry:2"),
        )
        .await
        .expect("put");
    let hex = digest_of(b"foreign").hex().to_owned();
    let wrong_fan_out = if hex.starts_with("00") { "01" } else { "00" };
    for foreign in [
        format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data.tmp",
            &hex[..2]
        ),
        format!("docker/registry/v2/blobs/sha256/{}/{hex}", &hex[..2]),
        format!("docker/registry/v2/blobs/sha256/{wrong_fan_out}/{hex}/data"),
        format!("docker/registry/v2/blobs/sha512/{}/{hex}/data", &hex[..2]),
        format!("docker/registry/v2/repositories/r/_layers/sha256/{hex}/link"),
        format!("docker/registry/v2/repositories/r/_uploads/{hex}/data"),
    ] {
        bucket
            .put(&Path::from(foreign.as_str()), PutPayload::from_static(b"x"))
            .await
            .expect("put");
    }
    let id = store.create_upload().await.expect("create");
    append_all(&store, &id, b"in progress").await;
    let mut listed: Vec<(String, u64)> = c::listed_blobs(&store)
        .await
        .into_values()
        .map(|e| (e.digest.to_string(), e.size))
        .collect();
    listed.sort();
    let mut expected = vec![(ours.to_string(), 4), (theirs.to_string(), 21)];
    expected.sort();
    assert_eq!(listed, expected);
}

/// More blobs than one listing page of S3 (1,000), through a mounted prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_many_blobs_under_a_prefix() {
    let bucket = bucket();
    let mounted = Arc::new(PrefixStore::new(Arc::clone(&bucket), "mounted/here"));
    let store = ObjectBlobStore::new(mounted.clone(), None);
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..1_500u32 {
        let data = format!("blob {i}").into_bytes();
        let d = digest_of(&data);
        mounted
            .put(&blob_path(&d), PutPayload::from(data.clone()))
            .await
            .expect("put");
        expected.insert(d, data.len() as u64);
    }
    let listed: std::collections::BTreeMap<_, _> = c::listed_blobs(&store)
        .await
        .into_values()
        .map(|e| (e.digest, e.size))
        .collect();
    assert_eq!(listed, expected);
}

/// The quarantined copy is kept in the bucket, outside registry:2's tree.
#[tokio::test]
async fn quarantine_keeps_a_copy() {
    let bucket = bucket();
    let store = host(&bucket);
    let d = put(&store, b"suspect").await;
    assert!(store.quarantine(&d).await.expect("quarantine"));
    let kept = format!("berth/quarantine/sha256/{}", d.hex());
    assert_eq!(keys(&bucket).await, std::slice::from_ref(&kept));
    let body = bucket
        .get(&Path::from(kept.as_str()))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&body[..], b"suspect");
    // Another host does not serve it either.
    assert_eq!(host(&bucket).stat(&d).await.expect("stat"), None);
}

/// Blobs too large for one server-side copy are streamed into a multipart
/// upload; exercised here on a blob larger than one piece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_stream_copy() {
    let bucket = bucket();
    let store = host(&bucket);
    let mut data = vec![0u8; (9 << 20) + 3];
    c::Pattern::new(9).fill(&mut data);
    let d = put(&store, &data).await;
    let to = Path::from("berth/quarantine/sha256/copy");
    super::quarantine::stream_copy(&store.shared, &blob_path(&d), &to)
        .await
        .expect("stream copy");
    let copied = bucket
        .get(&to)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(copied.len(), data.len());
    assert!(copied[..] == data[..], "copy differs");
    assert!(matches!(
        super::quarantine::stream_copy(&store.shared, &blob_path(&digest_of(b"none")), &to).await,
        Err(StorageError::NotFound)
    ));
}

/// Sessions are listed from any host; `startedat` that is not a number
/// falls back to the object's time; what is not a session is not listed.
#[tokio::test]
async fn uploads_listing_across_hosts_and_fallbacks() {
    let bucket = bucket();
    let (a, b) = (host(&bucket), host(&bucket));
    let recorded = a.create_upload().await.expect("create");
    bucket
        .put(
            &Path::from(format!("berth/uploads/{recorded}/startedat")),
            PutPayload::from_static(b"12345\n"),
        )
        .await
        .expect("put");
    let garbled = a.create_upload().await.expect("create");
    bucket
        .put(
            &Path::from(format!("berth/uploads/{garbled}/startedat")),
            PutPayload::from_static(b"soon"),
        )
        .await
        .expect("put");
    append_all(&a, &garbled, b"bytes").await;
    // Leftovers without `startedat` (a half-deleted session) and foreign keys.
    for key in [
        "berth/uploads/00000000-0000-4000-8000-000000000000/parts/x",
        "berth/uploads/not-a-session/startedat",
        "berth/uploads/stray",
    ] {
        bucket
            .put(&Path::from(key), PutPayload::from_static(b"1"))
            .await
            .expect("put");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let listed = c::listed_uploads(&b).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed.get(&recorded), Some(&12_345));
    let fallback = *listed.get(&garbled).expect("garbled listed");
    assert!(fallback.abs_diff(now) <= 60, "{fallback} vs {now}");
    for id in [&recorded, &garbled] {
        b.abort(id).await.expect("abort");
    }
    assert!(b.list_uploads().await.expect("list").is_empty());
}
