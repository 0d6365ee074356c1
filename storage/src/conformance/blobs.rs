//! Conformance tests for [`BlobStore`] backends.

use super::{Pattern, Reopen, append_all, assert_not_found, digest_of, put, read_range};
use crate::{BlobStore, Digest, StorageError};
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

/// Put, commit, stat, full read and delete of a small blob.
pub async fn put_get_delete(store: &dyn BlobStore) {
    let data = b"hello, berth".to_vec();
    let d = digest_of(&data);
    assert_eq!(store.stat(&d).await.expect("stat"), None);
    assert_not_found(store.read(&d, 0, 1).await.map(|_| ()));
    put(store, &data).await;
    assert_eq!(store.stat(&d).await.expect("stat"), Some(data.len() as u64));
    assert_eq!(read_range(store, &d, 0, data.len() as u64).await, data);
    assert!(store.delete(&d).await.expect("delete"));
    assert!(!store.delete(&d).await.expect("delete again"));
    assert_eq!(store.stat(&d).await.expect("stat"), None);
}

/// The empty blob is a valid blob.
pub async fn empty_blob(store: &dyn BlobStore) {
    let id = store.create_upload().await.expect("create");
    assert_eq!(store.upload_size(&id).await.expect("size"), 0);
    let d = digest_of(b"");
    assert_eq!(store.commit(&id, &d).await.expect("commit"), 0);
    assert_eq!(store.stat(&d).await.expect("stat"), Some(0));
    assert!(read_range(store, &d, 0, 0).await.is_empty());
}

/// Ranged reads return exactly the requested bytes; ranges past the end fail.
pub async fn ranged_reads(store: &dyn BlobStore) {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let d = put(store, &data).await;
    for (off, len) in [
        (0u64, 1u64),
        (1, 9_999),
        (4_096, 4_096),
        (9_999, 1),
        (5_000, 0),
        (10_000, 0),
    ] {
        let got = read_range(store, &d, off, len).await;
        assert_eq!(
            got,
            &data[off as usize..(off + len) as usize],
            "range {off}+{len}"
        );
    }
    for (off, len) in [(0u64, 10_001u64), (10_001, 0), (9_999, 2), (1, u64::MAX)] {
        assert!(
            store.read(&d, off, len).await.is_err(),
            "range {off}+{len} should fail"
        );
    }
}

/// Streams `size` bytes in 1 MiB chunks without holding the blob in memory,
/// then streams it back and checks digest, size and a ranged tail read.
pub async fn large_streamed(store: &dyn BlobStore, size: u64) {
    const CHUNK: usize = 1 << 20;
    let id = store.create_upload().await.expect("create");
    let mut w = store.append(&id).await.expect("append");
    let (mut pattern, mut hasher, mut buf) = (Pattern::new(42), Sha256::new(), vec![0u8; CHUNK]);
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        pattern.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n]).await.expect("write chunk");
        left -= n as u64;
    }
    w.shutdown().await.expect("shutdown");
    drop(w);
    let d = Digest::from_sha256(&hasher.finalize());
    assert_eq!(store.upload_size(&id).await.expect("size"), size);
    assert_eq!(store.commit(&id, &d).await.expect("commit"), size);
    assert_eq!(store.stat(&d).await.expect("stat"), Some(size));

    let mut chunks = store.read(&d, 0, size).await.expect("read");
    let (mut hasher, mut total) = (Sha256::new(), 0u64);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("read chunk");
        hasher.update(&chunk);
        total += chunk.len() as u64;
    }
    assert_eq!(total, size);
    assert_eq!(Digest::from_sha256(&hasher.finalize()), d);
}

/// A session filled by several writers in turn, including one dropped after
/// a flush but without shutdown, commits to the digest of the concatenation.
pub async fn multi_append(store: &dyn BlobStore) {
    let parts: [&[u8]; 4] = [b"first part, ", b"second part, ", b"", b"last part"];
    let id = store.create_upload().await.expect("create");
    let mut total = 0u64;
    for part in parts {
        append_all(store, &id, part).await;
        total += part.len() as u64;
        assert_eq!(store.upload_size(&id).await.expect("size"), total);
    }
    let mut w = store.append(&id).await.expect("append");
    w.write_all(b" + flushed").await.expect("write");
    w.flush().await.expect("flush");
    drop(w);
    let all = [&parts.concat()[..], b" + flushed"].concat();
    assert_eq!(
        store.upload_size(&id).await.expect("size"),
        all.len() as u64
    );
    assert_eq!(
        store.commit(&id, &digest_of(&all)).await.expect("commit"),
        all.len() as u64
    );
    assert_eq!(
        read_range(store, &digest_of(&all), 0, all.len() as u64).await,
        all
    );
    assert_not_found(store.upload_size(&id).await);
}

/// A session survives its store being dropped and reopened (a host
/// restart), both for appending more and for committing directly.
pub async fn resume_after_restart(open: Reopen<'_, dyn BlobStore>) {
    let store = open();
    let (a, b) = (
        store.create_upload().await.expect("create"),
        store.create_upload().await.expect("create"),
    );
    append_all(&*store, &a, b"before restart, ").await;
    append_all(&*store, &b, b"committed after restart").await;
    drop(store);

    let store = open();
    assert_eq!(store.upload_size(&a).await.expect("size"), 16);
    append_all(&*store, &a, b"after restart").await;
    let data = b"before restart, after restart";
    assert_eq!(
        store.commit(&a, &digest_of(data)).await.expect("commit a"),
        data.len() as u64
    );
    assert_eq!(
        read_range(&*store, &digest_of(data), 0, data.len() as u64).await,
        data
    );
    let data = b"committed after restart";
    assert_eq!(
        store.commit(&b, &digest_of(data)).await.expect("commit b"),
        data.len() as u64
    );
}

/// Only one writer per session; the session is usable again once it closes.
pub async fn second_writer_conflicts(store: &dyn BlobStore) {
    let id = store.create_upload().await.expect("create");
    let mut w = store.append(&id).await.expect("append");
    let second = store.append(&id).await;
    assert!(
        matches!(second, Err(StorageError::Conflict(_))),
        "got {:?}",
        second.map(|_| ())
    );
    w.write_all(b"one").await.expect("write");
    w.shutdown().await.expect("shutdown");
    drop(w);
    append_all(store, &id, b" two").await;
    assert_eq!(
        store
            .commit(&id, &digest_of(b"one two"))
            .await
            .expect("commit"),
        7
    );
}

/// Two sessions committing the same bytes concurrently both succeed, as
/// does committing a blob the store already holds.
pub async fn concurrent_same_digest(store: &dyn BlobStore) {
    let data = vec![7u8; 3 << 20];
    let d = digest_of(&data);
    let (a, b) = (
        store.create_upload().await.expect("create"),
        store.create_upload().await.expect("create"),
    );
    tokio::join!(append_all(store, &a, &data), append_all(store, &b, &data));
    let (ra, rb) = tokio::join!(store.commit(&a, &d), store.commit(&b, &d));
    assert_eq!(ra.expect("commit a"), data.len() as u64);
    assert_eq!(rb.expect("commit b"), data.len() as u64);
    assert_eq!(store.stat(&d).await.expect("stat"), Some(data.len() as u64));
    assert_eq!(put(store, &data).await, d);
    assert_eq!(read_range(store, &d, 0, data.len() as u64).await, data);
}

/// A mismatching commit stores nothing, reports the actual digest and ends
/// the session.
pub async fn digest_mismatch(store: &dyn BlobStore) {
    let id = store.create_upload().await.expect("create");
    append_all(store, &id, b"actual bytes").await;
    let claimed = digest_of(b"claimed bytes");
    match store.commit(&id, &claimed).await {
        Err(StorageError::DigestMismatch { actual }) => {
            assert_eq!(actual, digest_of(b"actual bytes").to_string())
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_eq!(store.stat(&claimed).await.expect("stat"), None);
    assert_eq!(
        store.stat(&digest_of(b"actual bytes")).await.expect("stat"),
        None
    );
    assert_not_found(store.upload_size(&id).await);
    assert!(store.append(&id).await.is_err());
}

/// An aborted session is gone with its bytes.
pub async fn abort_discards(store: &dyn BlobStore) {
    let id = store.create_upload().await.expect("create");
    append_all(store, &id, b"never committed").await;
    store.abort(&id).await.expect("abort");
    assert_not_found(store.upload_size(&id).await);
    assert!(store.append(&id).await.is_err());
    assert!(
        store
            .commit(&id, &digest_of(b"never committed"))
            .await
            .is_err()
    );
    assert_eq!(
        store
            .stat(&digest_of(b"never committed"))
            .await
            .expect("stat"),
        None
    );
}

/// Unknown ids are `NotFound`; ids that are not ours are `Invalid`.
pub async fn bad_upload_ids(store: &dyn BlobStore) {
    let unknown = "00000000-0000-4000-8000-000000000000";
    assert_not_found(store.upload_size(unknown).await);
    assert_not_found(store.append(unknown).await.map(|_| ()));
    assert_not_found(store.abort(unknown).await);
    assert_not_found(store.commit(unknown, &digest_of(b"")).await);
    for bad in [
        "",
        "..",
        "../../etc/passwd",
        "00000000-0000-4000-8000-00000000000/",
        "ABCDEF00-0000-4000-8000-000000000000",
        "x",
    ] {
        let invalid = |r: crate::Result<()>| matches!(r, Err(StorageError::Invalid(_)));
        assert!(
            invalid(store.upload_size(bad).await.map(|_| ())),
            "upload_size({bad:?})"
        );
        assert!(
            invalid(store.append(bad).await.map(|_| ())),
            "append({bad:?})"
        );
        assert!(
            invalid(store.commit(bad, &digest_of(b"")).await.map(|_| ())),
            "commit({bad:?})"
        );
        assert!(invalid(store.abort(bad).await), "abort({bad:?})");
    }
    let id = store.create_upload().await.expect("create");
    assert!(
        id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "id {id:?} is not URL-safe"
    );
    store.abort(&id).await.expect("abort");
}

/// Runs every blob conformance test that needs only one store handle.
pub async fn all_blob_tests(store: &dyn BlobStore) {
    put_get_delete(store).await;
    empty_blob(store).await;
    ranged_reads(store).await;
    multi_append(store).await;
    second_writer_conflicts(store).await;
    concurrent_same_digest(store).await;
    digest_mismatch(store).await;
    abort_discards(store).await;
    bad_upload_ids(store).await;
}

/// A chunked upload whose chunks alternate between two handles on the same
/// storage (two hosts behind a load balancer) commits the concatenation,
/// whichever handle commits and whatever each one cached.
pub async fn hosts_alternate(open: Reopen<'_, dyn BlobStore>) {
    let (a, b) = (open(), open());
    let hosts = [&*a, &*b];
    let parts: [&[u8]; 5] = [b"one ", b"two ", b"three ", b"four ", b"five"];
    let id = a.create_upload().await.expect("create");
    let mut total = 0u64;
    for (i, part) in parts.iter().enumerate() {
        let host = hosts[i % 2];
        assert_eq!(host.upload_size(&id).await.expect("size"), total);
        append_all(host, &id, part).await;
        total += part.len() as u64;
        assert_eq!(
            hosts[(i + 1) % 2].upload_size(&id).await.expect("size"),
            total
        );
    }
    let data = parts.concat();
    // `a` wrote the first chunk and `b` the last: neither saw every byte.
    assert_eq!(
        b.commit(&id, &digest_of(&data)).await.expect("commit"),
        total
    );
    assert_eq!(read_range(&*a, &digest_of(&data), 0, total).await, data);
    assert_not_found(a.upload_size(&id).await);
    assert_not_found(a.commit(&id, &digest_of(&data)).await);
}

/// Aborting a session while a writer is still open: whatever the writer's
/// shutdown reports, the session stays gone and nothing becomes visible.
pub async fn abort_with_open_writer(store: &dyn BlobStore) {
    let data = b"written while aborted";
    let id = store.create_upload().await.expect("create");
    let mut w = store.append(&id).await.expect("append");
    w.write_all(data).await.expect("write");
    store.abort(&id).await.expect("abort with open writer");
    let _ = w.shutdown().await;
    drop(w);
    assert_not_found(store.upload_size(&id).await);
    assert!(store.append(&id).await.is_err());
    assert!(store.commit(&id, &digest_of(data)).await.is_err());
    assert_eq!(store.stat(&digest_of(data)).await.expect("stat"), None);
}

/// Several sessions upload the same bytes in several chunks each, all at
/// once, and commit at once: every commit succeeds and one blob remains.
pub async fn many_writers_same_digest(store: &dyn BlobStore) {
    const SESSIONS: usize = 4;
    let chunks: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; (1 << 20) + 17]).collect();
    let data = chunks.concat();
    let d = digest_of(&data);
    let upload = |_| async {
        let id = store.create_upload().await.expect("create");
        for chunk in &chunks {
            append_all(store, &id, chunk).await;
        }
        store.commit(&id, &d).await
    };
    let results = futures::future::join_all((0..SESSIONS).map(upload)).await;
    for result in results {
        assert_eq!(result.expect("commit"), data.len() as u64);
    }
    assert_eq!(store.stat(&d).await.expect("stat"), Some(data.len() as u64));
    assert_eq!(read_range(store, &d, 0, data.len() as u64).await, data);
}

/// Now in unix seconds, to check listed times against.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn assert_recent(what: &str, time: u64, now: u64) {
    assert!(
        time.abs_diff(now) <= 60,
        "{what}: time {time} is not within a minute of {now}"
    );
}

/// The whole `list_blobs` stream by digest; panics on an error or on a
/// digest listed twice.
pub async fn listed_blobs(
    store: &dyn BlobStore,
) -> std::collections::HashMap<Digest, crate::BlobEntry> {
    let mut listing = store.list_blobs().await.expect("list blobs");
    let mut listed = std::collections::HashMap::new();
    while let Some(entry) = listing.next().await {
        let entry = entry.expect("listed blob");
        if let Some(twice) = listed.insert(entry.digest.clone(), entry) {
            panic!("{} listed twice", twice.digest);
        }
    }
    listed
}

/// The whole `list_uploads` by id; panics on an id listed twice.
pub async fn listed_uploads(store: &dyn BlobStore) -> std::collections::HashMap<String, u64> {
    let mut listed = std::collections::HashMap::new();
    for entry in store.list_uploads().await.expect("list uploads") {
        assert!(
            listed.insert(entry.id.clone(), entry.started_at).is_none(),
            "upload {} listed twice",
            entry.id
        );
    }
    listed
}

/// `list_blobs` yields exactly the committed blobs, each once, with its
/// size and the time it was written; not uploads in progress, not deleted
/// blobs. Blobs other tests left in the store are tolerated.
pub async fn listing(store: &dyn BlobStore) {
    let blobs: Vec<Vec<u8>> = [1usize, 100, 4_096, 65_537, 300_000]
        .into_iter()
        .enumerate()
        .map(|(i, size)| {
            let mut data = vec![0u8; size];
            Pattern::new(0x6c69_7374 + i as u64).fill(&mut data);
            data
        })
        .collect();
    // Runnable twice on one store: start without our blobs.
    for data in &blobs {
        store.delete(&digest_of(data)).await.expect("delete");
    }
    let before = listed_blobs(store).await;
    let now = unix_now();
    let mut ours = std::collections::BTreeMap::new();
    for data in &blobs {
        ours.insert(put(store, data).await, data.len() as u64);
    }
    // Sessions in progress, with or without bytes, hold no blobs.
    let pending_data = b"listing: uploaded, never committed";
    let pending = store.create_upload().await.expect("create");
    append_all(store, &pending, pending_data).await;
    let empty = store.create_upload().await.expect("create");

    let after = listed_blobs(store).await;
    let new: std::collections::BTreeMap<Digest, u64> = after
        .values()
        .filter(|entry| !before.contains_key(&entry.digest))
        .map(|entry| (entry.digest.clone(), entry.size))
        .collect();
    assert_eq!(new, ours, "blobs listed after the puts, minus those before");
    assert!(
        before.keys().all(|d| after.contains_key(d)),
        "a blob listed before the puts is missing"
    );
    for d in ours.keys() {
        assert_recent(&format!("modified of {d}"), after[d].modified, now);
    }
    assert!(!after.contains_key(&digest_of(pending_data)));
    // Whatever is listed is served, at the listed size.
    for entry in after.values() {
        assert_eq!(
            store.stat(&entry.digest).await.expect("stat"),
            Some(entry.size),
            "listed {}",
            entry.digest
        );
    }

    let gone = digest_of(&blobs[2]);
    assert!(store.delete(&gone).await.expect("delete"));
    let after_delete = listed_blobs(store).await;
    assert!(
        !after_delete.contains_key(&gone),
        "deleted blob still listed"
    );
    assert_eq!(after_delete.len(), after.len() - 1);
    store.abort(&pending).await.expect("abort");
    store.abort(&empty).await.expect("abort");
}

/// `list_uploads` lists every open session once, with a start time of
/// about now, and none that was committed, aborted or failed its commit.
pub async fn uploads_listing(store: &dyn BlobStore) {
    let now = unix_now();
    let idle = store.create_upload().await.expect("create");
    let filled = store.create_upload().await.expect("create");
    append_all(store, &filled, b"uploads_listing: filled").await;
    let committed = store.create_upload().await.expect("create");
    append_all(store, &committed, b"uploads_listing: committed").await;
    store
        .commit(&committed, &digest_of(b"uploads_listing: committed"))
        .await
        .expect("commit");
    let aborted = store.create_upload().await.expect("create");
    append_all(store, &aborted, b"uploads_listing: aborted").await;
    store.abort(&aborted).await.expect("abort");
    let mismatched = store.create_upload().await.expect("create");
    append_all(store, &mismatched, b"uploads_listing: mismatched").await;
    assert!(matches!(
        store
            .commit(&mismatched, &digest_of(b"something else"))
            .await,
        Err(StorageError::DigestMismatch { .. })
    ));

    let listed = listed_uploads(store).await;
    for id in [&idle, &filled] {
        let started_at = *listed
            .get(id)
            .unwrap_or_else(|| panic!("open upload {id} not listed in {listed:?}"));
        assert_recent(&format!("start of upload {id}"), started_at, now);
    }
    for id in [&committed, &aborted, &mismatched] {
        assert!(!listed.contains_key(id), "finished upload {id} listed");
    }

    store.abort(&idle).await.expect("abort");
    store.abort(&filled).await.expect("abort");
    let listed = listed_uploads(store).await;
    for id in [&idle, &filled] {
        assert!(!listed.contains_key(id), "aborted upload {id} listed");
    }
}

/// A quarantined blob is neither served nor listed, and can be uploaded
/// again; quarantining a missing blob is `false`. Reads it whole first, so
/// a caching store must drop its copy too.
pub async fn quarantine_hides(store: &dyn BlobStore) {
    let data = b"quarantine_hides: suspect bytes".to_vec();
    let bystander = b"quarantine_hides: bystander".to_vec();
    let len = data.len() as u64;
    let d = put(store, &data).await;
    let kept = put(store, &bystander).await;
    assert_eq!(read_range(store, &d, 0, len).await, data);

    assert!(store.quarantine(&d).await.expect("quarantine"));
    assert_eq!(store.stat(&d).await.expect("stat"), None);
    assert_not_found(store.read(&d, 0, len).await.map(|_| ()));
    assert_not_found(store.read(&d, 1, 2).await.map(|_| ()));
    assert_eq!(store.redirect_url(&d).await.expect("redirect url"), None);
    let listed = listed_blobs(store).await;
    assert!(!listed.contains_key(&d), "quarantined blob listed");
    assert_eq!(
        listed.get(&kept).map(|e| e.size),
        Some(bystander.len() as u64)
    );
    assert_eq!(
        read_range(store, &kept, 0, bystander.len() as u64).await,
        bystander
    );

    assert!(!store.quarantine(&d).await.expect("quarantine again"));
    assert!(!store.delete(&d).await.expect("delete quarantined"));
    let never = digest_of(b"quarantine_hides: never stored");
    assert!(!store.quarantine(&never).await.expect("quarantine missing"));

    // fsck's repair: the blob is pushed again, and may be quarantined again.
    assert_eq!(put(store, &data).await, d);
    assert_eq!(store.stat(&d).await.expect("stat"), Some(len));
    assert_eq!(read_range(store, &d, 0, len).await, data);
    assert_eq!(listed_blobs(store).await.get(&d).map(|e| e.size), Some(len));
    assert!(store.quarantine(&d).await.expect("quarantine re-pushed"));
    assert_eq!(store.stat(&d).await.expect("stat"), None);
}

/// Runs every listing and quarantine test, in one store.
pub async fn all_listing_tests(store: &dyn BlobStore) {
    listing(store).await;
    uploads_listing(store).await;
    quarantine_hides(store).await;
}
