//! Backend-independent conformance tests, in the spirit of object_store's
//! `integration.rs`: every backend's test suite calls these same functions,
//! so the fs, S3 or in-memory stores are held to one contract.
//!
//! They panic on failure. Each function leaves its objects behind, using
//! names of its own, so they can share one store; `catalog_pagination`
//! alone needs a store without repositories.

use crate::{BlobStore, Digest, ManifestInfo, MetadataStore, Page, StorageError};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Opens a (possibly new) handle on the same underlying storage.
pub type Reopen<'a, S> = &'a (dyn Fn() -> Box<S> + Sync);

/// The sha256 digest of `data`.
pub fn digest_of(data: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(data))
}

/// Appends `data` to session `id` through one writer and shuts it down.
pub async fn append_all(store: &dyn BlobStore, id: &str, data: &[u8]) {
    let mut w = store.append(id).await.expect("append");
    w.write_all(data).await.expect("write");
    w.shutdown().await.expect("shutdown");
}

/// Uploads `data` in one session and commits it; returns its digest.
pub async fn put(store: &dyn BlobStore, data: &[u8]) -> Digest {
    let id = store.create_upload().await.expect("create upload");
    append_all(store, &id, data).await;
    let digest = digest_of(data);
    assert_eq!(
        store.commit(&id, &digest).await.expect("commit"),
        data.len() as u64
    );
    digest
}

/// Reads a whole range into memory (for small ranges only).
pub async fn read_range(store: &dyn BlobStore, d: &Digest, offset: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = store.read(d, offset, len).await.expect("read");
    r.read_to_end(&mut out).await.expect("read to end");
    out
}

/// Deterministic pseudo-random bytes (xorshift), so tests need not keep copies.
pub struct Pattern(u64);

impl Pattern {
    /// A generator; equal seeds give equal streams.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

fn assert_not_found<T: std::fmt::Debug>(r: crate::Result<T>) {
    assert!(
        matches!(r, Err(StorageError::NotFound)),
        "expected NotFound, got {r:?}"
    );
}

// ---------------------------------------------------------------- blobs

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

    let mut r = store.read(&d, 0, size).await.expect("read");
    let (mut hasher, mut total) = (Sha256::new(), 0u64);
    loop {
        let n = r.read(&mut buf).await.expect("read chunk");
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
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

// ------------------------------------------------------------- metadata

/// A manifest record for tests; `n` makes a distinct digest.
pub fn manifest(n: u32, subject: Option<&str>, artifact_type: Option<&str>) -> ManifestInfo {
    ManifestInfo {
        digest: digest_of(format!("manifest {n}").as_bytes()).to_string(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 100 + u64::from(n),
        artifact_type: artifact_type.map(Into::into),
        subject: subject.map(Into::into),
        annotations: Some(format!("{{\"n\":\"{n}\"}}")),
    }
}

fn page(last: Option<&str>, n: Option<u32>) -> Page {
    Page {
        last: last.map(Into::into),
        n,
    }
}

/// Blob links per repository.
pub async fn blob_links(meta: &dyn MetadataStore) {
    let (repo, d) = ("conf/links", "sha256:aa");
    assert!(!meta.blob_linked(repo, d).await.expect("linked"));
    meta.link_blob(repo, d).await.expect("link");
    meta.link_blob(repo, d).await.expect("link twice");
    assert!(meta.blob_linked(repo, d).await.expect("linked"));
    assert!(
        !meta
            .blob_linked("conf/other", d)
            .await
            .expect("linked elsewhere")
    );
    assert!(meta.unlink_blob(repo, d).await.expect("unlink"));
    assert!(!meta.unlink_blob(repo, d).await.expect("unlink again"));
    assert!(!meta.blob_linked(repo, d).await.expect("linked"));
    assert!(
        !meta
            .unlink_blob("conf/nowhere", d)
            .await
            .expect("unlink unknown repo")
    );
}

/// Tags are listed in byte order, paginated strictly after `last`.
pub async fn tags_pagination(meta: &dyn MetadataStore) {
    let repo = "conf/tags";
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("list"),
        None
    );
    let m = manifest(1, None, None);
    // Inserted out of order; "B" < "a" < "a-b" < "a.b" < "b" < "v10" < "v2" in byte order.
    for tag in ["v2", "a.b", "B", "v10", "a", "b", "a-b"] {
        meta.put_manifest(repo, &m, &[], Some(tag))
            .await
            .expect("put");
    }
    let all = ["B", "a", "a-b", "a.b", "b", "v10", "v2"];
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("list"),
        Some(all.map(String::from).to_vec())
    );
    let cases: [(Option<&str>, Option<u32>, &[&str]); 7] = [
        (None, Some(2), &["B", "a"]),
        (Some("a"), Some(2), &["a-b", "a.b"]),
        (Some("a.b"), None, &["b", "v10", "v2"]),
        (Some("v2"), Some(5), &[]),
        (Some("c"), Some(1), &["v10"]),
        (None, Some(0), &[]),
        (Some(""), Some(100), &all),
    ];
    for (last, n, want) in cases {
        let got = meta
            .list_tags(repo, &page(last, n))
            .await
            .expect("list page");
        assert_eq!(
            got,
            Some(want.iter().map(|s| s.to_string()).collect()),
            "last={last:?} n={n:?}"
        );
    }
    // Walking page by page visits every tag once.
    let (mut seen, mut last) = (Vec::new(), None::<String>);
    loop {
        let got = meta
            .list_tags(repo, &page(last.as_deref(), Some(3)))
            .await
            .expect("list")
            .expect("repo");
        if got.is_empty() {
            break;
        }
        last = got.last().cloned();
        seen.extend(got);
    }
    assert_eq!(seen, all);
}

/// The catalog lists repositories in byte order with pagination. Needs a
/// store without repositories.
pub async fn catalog_pagination(meta: &dyn MetadataStore) {
    assert!(
        meta.list_repositories(&Page::default())
            .await
            .expect("list")
            .is_empty()
    );
    meta.link_blob("zeta/blobonly", "sha256:01")
        .await
        .expect("link");
    meta.put_manifest("alpha", &manifest(2, None, None), &[], None)
        .await
        .expect("put");
    meta.begin_upload("Mid/upload", "u-catalog")
        .await
        .expect("begin");
    meta.put_manifest("alpha/sub", &manifest(3, None, None), &[], Some("t"))
        .await
        .expect("put");
    let all = ["Mid/upload", "alpha", "alpha/sub", "zeta/blobonly"];
    assert_eq!(
        meta.list_repositories(&Page::default())
            .await
            .expect("list"),
        all
    );
    assert_eq!(
        meta.list_repositories(&page(None, Some(2)))
            .await
            .expect("list"),
        all[..2]
    );
    assert_eq!(
        meta.list_repositories(&page(Some("alpha"), Some(2)))
            .await
            .expect("list"),
        all[2..]
    );
    assert_eq!(
        meta.list_repositories(&page(Some("alpha/sub"), None))
            .await
            .expect("list"),
        all[3..]
    );
    assert!(
        meta.list_repositories(&page(Some("zz"), Some(9)))
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        meta.list_repositories(&page(None, Some(0)))
            .await
            .expect("list")
            .is_empty()
    );
}

/// Manifests with tags: put, get, resolve, move a tag, re-put, delete.
pub async fn manifests_and_tags(meta: &dyn MetadataStore) {
    let repo = "conf/manifests";
    let (m1, m2) = (
        manifest(10, None, Some("application/x-a")),
        manifest(11, None, None),
    );
    assert_eq!(
        meta.get_manifest(repo, &m1.digest).await.expect("get"),
        None
    );
    assert_eq!(
        meta.resolve_tag(repo, "latest").await.expect("resolve"),
        None
    );
    meta.put_manifest(
        repo,
        &m1,
        &["sha256:c1".into(), "sha256:l1".into()],
        Some("latest"),
    )
    .await
    .expect("put");
    meta.put_manifest(
        repo,
        &m1,
        &["sha256:c1".into(), "sha256:l1".into()],
        Some("v1"),
    )
    .await
    .expect("re-put");
    assert_eq!(
        meta.get_manifest(repo, &m1.digest).await.expect("get"),
        Some(m1.clone())
    );
    assert_eq!(
        meta.get_manifest("conf/elsewhere", &m1.digest)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        meta.resolve_tag(repo, "latest")
            .await
            .expect("resolve")
            .as_deref(),
        Some(&*m1.digest)
    );
    assert_eq!(
        meta.resolve_tag(repo, "v1")
            .await
            .expect("resolve")
            .as_deref(),
        Some(&*m1.digest)
    );

    // Moving a tag leaves the old manifest (and its other tags) in place.
    meta.put_manifest(repo, &m2, &[], Some("latest"))
        .await
        .expect("put m2");
    assert_eq!(
        meta.resolve_tag(repo, "latest")
            .await
            .expect("resolve")
            .as_deref(),
        Some(&*m2.digest)
    );
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("tags"),
        Some(vec!["latest".into(), "v1".into()])
    );

    // Deleting a manifest takes every tag pointing at it, and only those.
    meta.put_manifest(repo, &m1, &[], Some("stable"))
        .await
        .expect("tag m1 again");
    assert!(
        meta.delete_manifest(repo, &m1.digest)
            .await
            .expect("delete")
    );
    assert!(
        !meta
            .delete_manifest(repo, &m1.digest)
            .await
            .expect("delete again")
    );
    assert_eq!(
        meta.get_manifest(repo, &m1.digest).await.expect("get"),
        None
    );
    assert_eq!(meta.resolve_tag(repo, "v1").await.expect("resolve"), None);
    assert_eq!(
        meta.resolve_tag(repo, "stable").await.expect("resolve"),
        None
    );
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("tags"),
        Some(vec!["latest".into()])
    );
    assert!(
        !meta
            .delete_manifest("conf/unknown", &m1.digest)
            .await
            .expect("delete in unknown repo")
    );
    // A deleted manifest can be pushed again.
    meta.put_manifest(repo, &m1, &["sha256:c1".into()], None)
        .await
        .expect("put again");
    assert_eq!(
        meta.get_manifest(repo, &m1.digest).await.expect("get"),
        Some(m1)
    );
}

/// Deleting a tag keeps the manifest and the repository's other tags.
pub async fn delete_tag_keeps_manifest(meta: &dyn MetadataStore) {
    let repo = "conf/deltag";
    let m = manifest(20, None, None);
    meta.put_manifest(repo, &m, &[], Some("a"))
        .await
        .expect("put");
    meta.put_manifest(repo, &m, &[], Some("b"))
        .await
        .expect("put");
    assert!(meta.delete_tag(repo, "a").await.expect("delete tag"));
    assert!(!meta.delete_tag(repo, "a").await.expect("delete tag again"));
    assert!(
        !meta
            .delete_tag("conf/unknown", "a")
            .await
            .expect("delete tag in unknown repo")
    );
    assert_eq!(
        meta.get_manifest(repo, &m.digest).await.expect("get"),
        Some(m.clone())
    );
    assert_eq!(
        meta.resolve_tag(repo, "b")
            .await
            .expect("resolve")
            .as_deref(),
        Some(&*m.digest)
    );
    assert!(meta.delete_tag(repo, "b").await.expect("delete last tag"));
    // A repository without tags still exists: an empty list, not none.
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("tags"),
        Some(vec![])
    );
    assert!(
        meta.get_manifest(repo, &m.digest)
            .await
            .expect("get")
            .is_some()
    );
}

/// Referrers by subject, optionally filtered by artifact type, by digest.
pub async fn referrers(meta: &dyn MetadataStore) {
    let repo = "conf/referrers";
    let subject = manifest(30, None, None);
    meta.put_manifest(repo, &subject, &[], Some("img"))
        .await
        .expect("put subject");
    assert!(
        meta.list_referrers(repo, &subject.digest, None)
            .await
            .expect("none yet")
            .is_empty()
    );
    let sig = "application/vnd.example.signature";
    let mut refs: Vec<ManifestInfo> = (31..36)
        .map(|n| {
            manifest(
                n,
                Some(&subject.digest),
                Some(if n % 2 == 0 { sig } else { "application/sbom" }),
            )
        })
        .collect();
    refs.push(manifest(36, Some(&subject.digest), None));
    for m in &refs {
        meta.put_manifest(repo, m, std::slice::from_ref(&subject.digest), None)
            .await
            .expect("put referrer");
    }
    // Same subject digest in another repository does not leak in.
    meta.put_manifest(
        "conf/referrers2",
        &manifest(37, Some(&subject.digest), Some(sig)),
        &[],
        None,
    )
    .await
    .expect("put elsewhere");
    meta.put_manifest(
        repo,
        &manifest(38, Some("sha256:other"), Some(sig)),
        &[],
        None,
    )
    .await
    .expect("put");

    refs.sort_by(|a, b| a.digest.cmp(&b.digest));
    assert_eq!(
        meta.list_referrers(repo, &subject.digest, None)
            .await
            .expect("all"),
        refs
    );
    let sigs: Vec<_> = refs
        .iter()
        .filter(|m| m.artifact_type.as_deref() == Some(sig))
        .cloned()
        .collect();
    assert_eq!(sigs.len(), 2);
    assert_eq!(
        meta.list_referrers(repo, &subject.digest, Some(sig))
            .await
            .expect("filtered"),
        sigs
    );
    assert!(
        meta.list_referrers(repo, &subject.digest, Some("x/none"))
            .await
            .expect("no match")
            .is_empty()
    );
    assert!(
        meta.list_referrers("conf/unknown", &subject.digest, None)
            .await
            .expect("unknown repo")
            .is_empty()
    );

    assert!(
        meta.delete_manifest(repo, &sigs[0].digest)
            .await
            .expect("delete")
    );
    assert_eq!(
        meta.list_referrers(repo, &subject.digest, Some(sig))
            .await
            .expect("filtered"),
        sigs[1..]
    );
}

/// Upload sessions map to their repository until ended.
pub async fn uploads(meta: &dyn MetadataStore) {
    assert_eq!(
        meta.upload_repository("u-conf-1").await.expect("lookup"),
        None
    );
    meta.begin_upload("conf/uploads", "u-conf-1")
        .await
        .expect("begin");
    meta.begin_upload("conf/uploads", "u-conf-1")
        .await
        .expect("begin twice");
    meta.begin_upload("conf/uploads2", "u-conf-2")
        .await
        .expect("begin other");
    assert!(matches!(
        meta.begin_upload("conf/uploads2", "u-conf-1").await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        meta.upload_repository("u-conf-1")
            .await
            .expect("lookup")
            .as_deref(),
        Some("conf/uploads")
    );
    assert_eq!(
        meta.upload_repository("u-conf-2")
            .await
            .expect("lookup")
            .as_deref(),
        Some("conf/uploads2")
    );
    meta.end_upload("u-conf-1").await.expect("end");
    meta.end_upload("u-conf-1")
        .await
        .expect("end is idempotent");
    assert_eq!(
        meta.upload_repository("u-conf-1").await.expect("lookup"),
        None
    );
    assert_eq!(
        meta.upload_repository("u-conf-2")
            .await
            .expect("lookup")
            .as_deref(),
        Some("conf/uploads2")
    );
    // A repository exists from its first upload on.
    assert_eq!(
        meta.list_tags("conf/uploads", &Page::default())
            .await
            .expect("tags"),
        Some(vec![])
    );
}

/// Everything written survives dropping and reopening the store.
pub async fn metadata_persists(open: Reopen<'_, dyn MetadataStore>) {
    let m = manifest(40, Some("sha256:subj"), Some("a/b"));
    {
        let meta = open();
        meta.link_blob("conf/persist", "sha256:bb")
            .await
            .expect("link");
        meta.put_manifest("conf/persist", &m, &["sha256:bb".into()], Some("kept"))
            .await
            .expect("put");
        meta.begin_upload("conf/persist", "u-persist")
            .await
            .expect("begin");
    }
    let meta = open();
    assert!(
        meta.blob_linked("conf/persist", "sha256:bb")
            .await
            .expect("linked")
    );
    assert_eq!(
        meta.get_manifest("conf/persist", &m.digest)
            .await
            .expect("get"),
        Some(m.clone())
    );
    assert_eq!(
        meta.resolve_tag("conf/persist", "kept")
            .await
            .expect("resolve"),
        Some(m.digest.clone())
    );
    assert_eq!(
        meta.list_referrers("conf/persist", "sha256:subj", None)
            .await
            .expect("referrers"),
        vec![m]
    );
    assert_eq!(
        meta.upload_repository("u-persist")
            .await
            .expect("lookup")
            .as_deref(),
        Some("conf/persist")
    );
}

/// Runs every metadata conformance test that needs only one store handle;
/// the store must start without repositories.
pub async fn all_metadata_tests(meta: &dyn MetadataStore) {
    catalog_pagination(meta).await;
    blob_links(meta).await;
    tags_pagination(meta).await;
    manifests_and_tags(meta).await;
    delete_tag_keeps_manifest(meta).await;
    referrers(meta).await;
    uploads(meta).await;
}
