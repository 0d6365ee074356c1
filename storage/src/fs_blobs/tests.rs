//! The conformance suite on the filesystem store, plus checks of its layout
//! and of what it leaves on disk.

use super::FsBlobStore;
use crate::conformance::{self as c, append_all, digest_of, put};
use crate::{BlobStore, StorageError};
use futures::StreamExt as _;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

fn store() -> (TempDir, FsBlobStore) {
    let dir = TempDir::new().expect("tempdir");
    let store = FsBlobStore::open(dir.path()).expect("open");
    (dir, store)
}

/// Every file (not directory) under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path: PathBuf = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .expect("prefix")
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn blob_file(d: &crate::Digest) -> String {
    format!("blobs/sha256/{}/{}", &d.hex()[..2], d.hex())
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_dir, store) = store();
            c::$name(&store).await;
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
    listing,
    uploads_listing,
    quarantine_hides,
    all_listing_tests,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_64mib() {
    let (_dir, store) = store();
    c::large_streamed(&store, 64 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_odd_size() {
    let (_dir, store) = store();
    c::large_streamed(&store, (3 << 20) + 12_345).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_restart() {
    let dir = TempDir::new().expect("tempdir");
    let open = || Box::new(FsBlobStore::open(dir.path()).expect("reopen")) as Box<dyn BlobStore>;
    c::resume_after_restart(&open).await;
    assert_eq!(
        files(dir.path())
            .iter()
            .filter(|f| f.starts_with("uploads/"))
            .count(),
        0
    );
}

#[tokio::test]
async fn layout_of_sessions_and_blobs() {
    let (dir, store) = store();
    let id = store.create_upload().await.expect("create");
    assert_eq!(
        files(dir.path()),
        [
            format!("uploads/{id}/data"),
            format!("uploads/{id}/startedat")
        ]
    );
    append_all(&store, &id, b"layout").await;
    let d = digest_of(b"layout");
    store.commit(&id, &d).await.expect("commit");
    assert_eq!(files(dir.path()), [blob_file(&d)]);
    assert_eq!(
        std::fs::read(dir.path().join(blob_file(&d))).expect("read blob"),
        b"layout"
    );
    assert!(
        std::fs::read_dir(dir.path().join("uploads"))
            .expect("uploads")
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn failed_and_aborted_sessions_leave_nothing() {
    let (dir, store) = store();
    let kept = put(&store, b"kept").await;
    c::digest_mismatch(&store).await;
    c::abort_discards(&store).await;
    c::bad_upload_ids(&store).await;
    // Abort while a writer is still open: dropping it later must not
    // resurrect anything.
    let id = store.create_upload().await.expect("create");
    let mut w = store.append(&id).await.expect("append");
    w.write_all(b"in flight").await.expect("write");
    store.abort(&id).await.expect("abort with open writer");
    w.shutdown().await.expect("shutdown");
    drop(w);
    assert!(matches!(
        store.upload_size(&id).await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(files(dir.path()), [blob_file(&kept)]);
}

#[tokio::test]
async fn concurrent_same_digest_keeps_one_file() {
    let (dir, store) = store();
    c::concurrent_same_digest(&store).await;
    assert_eq!(
        files(dir.path()),
        [blob_file(&digest_of(&vec![7u8; 3 << 20]))]
    );
}

#[tokio::test]
async fn commit_waits_for_open_writer() {
    let (_dir, store) = store();
    let id = store.create_upload().await.expect("create");
    let mut w = store.append(&id).await.expect("append");
    w.write_all(b"abc").await.expect("write");
    w.flush().await.expect("flush");
    let busy = store.commit(&id, &digest_of(b"abc")).await;
    assert!(
        matches!(busy, Err(StorageError::Conflict(_))),
        "got {busy:?}"
    );
    w.shutdown().await.expect("shutdown");
    // Shutdown alone releases the session; the writer is still alive here.
    assert_eq!(
        store.commit(&id, &digest_of(b"abc")).await.expect("commit"),
        3
    );
    assert!(
        w.write_all(b"more").await.is_err(),
        "writes after shutdown must fail"
    );
}

/// The running hash is used while it matches the file: an in-place edit on
/// disk (same length) goes unnoticed, proving commit did not re-read.
#[tokio::test]
async fn commit_uses_running_hash() {
    let (dir, store) = store();
    let id = store.create_upload().await.expect("create");
    append_all(&store, &id, b"original").await;
    std::fs::write(
        dir.path().join("uploads").join(&id).join("data"),
        b"ORIGINAL",
    )
    .expect("tamper");
    assert_eq!(
        store
            .commit(&id, &digest_of(b"original"))
            .await
            .expect("commit"),
        8
    );
}

/// When the file outgrew the running hash, commit re-hashes from disk.
#[tokio::test]
async fn commit_rehashes_when_state_is_stale() {
    let (dir, store) = store();
    let id = store.create_upload().await.expect("create");
    append_all(&store, &id, b"in memory").await;
    let data = dir.path().join("uploads").join(&id).join("data");
    let mut bytes = std::fs::read(&data).expect("read");
    bytes.extend_from_slice(b" + on disk");
    std::fs::write(&data, &bytes).expect("extend");
    assert_eq!(
        store
            .commit(&id, &digest_of(b"in memory + on disk"))
            .await
            .expect("commit"),
        19
    );
    // And appending after a stale state still commits the right digest.
    let id = store.create_upload().await.expect("create");
    append_all(&store, &id, b"ab").await;
    std::fs::write(dir.path().join("uploads").join(&id).join("data"), b"xyz").expect("replace");
    append_all(&store, &id, b"!").await;
    assert_eq!(
        store
            .commit(&id, &digest_of(b"xyz!"))
            .await
            .expect("commit"),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_layout_conformance() {
    let dir = TempDir::new().expect("tempdir");
    let store = FsBlobStore::open_distribution(dir.path()).expect("open");
    c::all_blob_tests(&store).await;
}

/// Committed blobs land where registry:2's filesystem driver keeps them;
/// sessions stay outside its tree; deleting leaves no `<hex>/` behind.
#[tokio::test]
async fn distribution_layout_of_blobs() {
    let dir = TempDir::new().expect("tempdir");
    let store = FsBlobStore::open_distribution(dir.path()).expect("open");
    let id = store.create_upload().await.expect("create");
    assert_eq!(
        files(dir.path()),
        [
            format!("uploads/{id}/data"),
            format!("uploads/{id}/startedat")
        ]
    );
    append_all(&store, &id, b"registry:2").await;
    let d = digest_of(b"registry:2");
    store.commit(&id, &d).await.expect("commit");
    let hex = d.hex();
    let data = format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]);
    assert_eq!(files(dir.path()), std::slice::from_ref(&data));
    assert_eq!(
        std::fs::read(dir.path().join(&data)).expect("read blob"),
        b"registry:2"
    );
    assert_eq!(store.stat(&d).await.expect("stat"), Some(10));
    assert!(store.delete(&d).await.expect("delete"));
    assert!(!dir.path().join(&data).parent().expect("dir").exists());
    assert_eq!(store.stat(&d).await.expect("stat"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_layout_listing_conformance() {
    let dir = TempDir::new().expect("tempdir");
    let store = FsBlobStore::open_distribution(dir.path()).expect("open");
    c::all_blob_tests(&store).await;
    c::all_listing_tests(&store).await;
}

/// Where a blob named `hex` sits in either layout.
fn planted_path(root: &Path, distribution: bool, fan_out: &str, name: &str) -> PathBuf {
    if distribution {
        root.join("docker/registry/v2/blobs/sha256")
            .join(fan_out)
            .join(name)
            .join("data")
    } else {
        root.join("blobs/sha256").join(fan_out).join(name)
    }
}

fn plant(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("plant");
}

/// 2,000 blobs, 1,500 of them in one fan-out directory (more than one
/// batch of the walk), are each listed once with their size, next to files
/// that are not blobs and must not be listed.
async fn listing_streams_many_blobs(distribution: bool) {
    let dir = TempDir::new().expect("tempdir");
    let root = dir.path();
    let store = if distribution {
        FsBlobStore::open_distribution(root)
    } else {
        FsBlobStore::open(root)
    }
    .expect("open");
    let mut expected = std::collections::BTreeMap::new();
    // Listing trusts names, not contents: the crowded directory holds
    // made-up digests.
    for i in 0..1_500u64 {
        let hex = format!("ab{i:062x}");
        let size = (i % 97) as usize;
        plant(
            &planted_path(root, distribution, "ab", &hex),
            &vec![7; size],
        );
        expected.insert(hex, size as u64);
    }
    for i in 0..499u64 {
        let data = format!("spread blob {i}").into_bytes();
        let hex = digest_of(&data).hex().to_owned();
        plant(&planted_path(root, distribution, &hex[..2], &hex), &data);
        expected.insert(hex, data.len() as u64);
    }
    let through_store = put(&store, b"committed through the store").await;
    expected.insert(through_store.hex().to_owned(), 27);
    assert_eq!(expected.len(), 2_000);

    let real = digest_of(b"not listed anywhere").hex().to_owned();
    let wrong_fan_out = if real.starts_with("ab") { "cd" } else { "ab" };
    let sha256 = if distribution {
        root.join("docker/registry/v2/blobs/sha256")
    } else {
        root.join("blobs/sha256")
    };
    let fan_out = &real[..2];
    for junk in [
        planted_path(root, distribution, fan_out, &format!("{real}.tmp")),
        planted_path(root, distribution, fan_out, &format!(".{real}")),
        planted_path(root, distribution, fan_out, &real[..63]),
        planted_path(root, distribution, fan_out, &real.to_uppercase()),
        planted_path(root, distribution, wrong_fan_out, &real),
        planted_path(root, distribution, "zz", &format!("zz{}", &real[2..])),
        planted_path(root, distribution, &real[..3], &real),
        sha256.join(&real),
    ] {
        plant(&junk, b"junk");
    }
    if distribution {
        // registry:2's per-blob directory without its `data`, and one with
        // `data` as a directory.
        let other = digest_of(b"no data").hex().to_owned();
        std::fs::create_dir_all(sha256.join(&other[..2]).join(&other)).expect("mkdir");
        let other = digest_of(b"data is a directory").hex().to_owned();
        std::fs::create_dir_all(sha256.join(&other[..2]).join(&other).join("data")).expect("mkdir");
    } else {
        let other = digest_of(b"a directory").hex().to_owned();
        std::fs::create_dir_all(sha256.join(&other[..2]).join(&other)).expect("mkdir");
    }
    // And an upload in progress.
    let id = store.create_upload().await.expect("create");
    append_all(&store, &id, b"in progress").await;

    let listed = c::listed_blobs(&store).await;
    let listed: std::collections::BTreeMap<String, u64> = listed
        .into_values()
        .map(|entry| (entry.digest.hex().to_owned(), entry.size))
        .collect();
    assert_eq!(listed.len(), expected.len());
    assert_eq!(listed, expected);

    // A listing dropped part-way stops cleanly; a new one starts afresh.
    let mut partial = store.list_blobs().await.expect("list");
    for _ in 0..10 {
        partial.next().await.expect("entry").expect("ok");
    }
    drop(partial);
    assert_eq!(c::listed_blobs(&store).await.len(), 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_streams_many_blobs_flat() {
    listing_streams_many_blobs(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_streams_many_blobs_distribution() {
    listing_streams_many_blobs(true).await;
}

#[tokio::test]
async fn listing_an_empty_store() {
    let (dir, store) = store();
    assert!(c::listed_blobs(&store).await.is_empty());
    assert!(store.list_uploads().await.expect("uploads").is_empty());
    // Even with its blob directory gone.
    std::fs::remove_dir_all(dir.path().join("blobs")).expect("remove");
    assert!(c::listed_blobs(&store).await.is_empty());
}

/// Quarantine moves the file under `quarantine/`, intact, leaving no empty
/// registry:2 directory behind.
async fn quarantine_moves_the_file(distribution: bool) {
    let dir = TempDir::new().expect("tempdir");
    let store = if distribution {
        FsBlobStore::open_distribution(dir.path())
    } else {
        FsBlobStore::open(dir.path())
    }
    .expect("open");
    let kept = put(&store, b"kept").await;
    let d = put(&store, b"corrupt, supposedly").await;
    let blob = planted_path(dir.path(), distribution, &d.hex()[..2], d.hex());
    assert!(blob.is_file());
    assert!(store.quarantine(&d).await.expect("quarantine"));
    let quarantined = format!("quarantine/sha256/{}", d.hex());
    let kept_path = planted_path(dir.path(), distribution, &kept.hex()[..2], kept.hex());
    let kept_file = kept_path
        .strip_prefix(dir.path())
        .expect("prefix")
        .to_string_lossy()
        .into_owned();
    let mut expected = vec![quarantined.clone(), kept_file];
    expected.sort();
    assert_eq!(files(dir.path()), expected);
    assert_eq!(
        std::fs::read(dir.path().join(&quarantined)).expect("read"),
        b"corrupt, supposedly"
    );
    assert!(!blob.exists());
    if distribution {
        assert!(!blob.parent().expect("dir").exists(), "empty <hex>/ left");
    }
}

#[tokio::test]
async fn quarantine_moves_the_file_flat() {
    quarantine_moves_the_file(false).await;
}

#[tokio::test]
async fn quarantine_moves_the_file_distribution() {
    quarantine_moves_the_file(true).await;
}

/// A session whose `startedat` is missing or unreadable is listed with its
/// directory's mtime; what is not a session directory is not listed.
#[tokio::test]
async fn uploads_listing_falls_back_to_directory_time() {
    let (dir, store) = store();
    let uploads = dir.path().join("uploads");
    let recorded = store.create_upload().await.expect("create");
    std::fs::write(uploads.join(&recorded).join("startedat"), "12345\n").expect("write");
    let garbled = store.create_upload().await.expect("create");
    std::fs::write(uploads.join(&garbled).join("startedat"), "soon").expect("write");
    let missing = store.create_upload().await.expect("create");
    std::fs::remove_file(uploads.join(&missing).join("startedat")).expect("remove");
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    for id in [&garbled, &missing] {
        std::fs::File::open(uploads.join(id))
            .expect("open dir")
            .set_modified(old)
            .expect("set mtime");
    }
    std::fs::create_dir(uploads.join("not-a-session")).expect("mkdir");
    std::fs::write(uploads.join("00000000-0000-4000-8000-000000000000"), b"").expect("file");

    let listed = c::listed_uploads(&store).await;
    let expected: std::collections::HashMap<String, u64> = [
        (recorded.clone(), 12_345),
        (garbled.clone(), 1_000_000),
        (missing.clone(), 1_000_000),
    ]
    .into_iter()
    .collect();
    assert_eq!(listed, expected);
    // Every listed session can be purged.
    for id in [&recorded, &garbled, &missing] {
        store.abort(id).await.expect("abort");
    }
    assert!(store.list_uploads().await.expect("list").is_empty());
}

/// The digest a session's bytes have, from the hash kept while they were
/// written, readable through `upload_file` as they are: what the
/// pull-through cache verifies before the commit makes them durable.
#[tokio::test]
async fn upload_digest_and_file_follow_the_writes() {
    let (_dir, store) = store();
    assert!(store.hashes_uploads());
    let id = store.create_upload().await.expect("create");
    let file = store.upload_file(&id).expect("a local file");
    let (first, second) = (b"hello ".to_vec(), b"world".to_vec());
    append_all(&store, &id, &first).await;
    assert_eq!(
        store.upload_digest(&id).await.expect("digest"),
        Some(digest_of(&first))
    );
    append_all(&store, &id, &second).await;
    let whole = [first, second].concat();
    assert_eq!(std::fs::read(&file).expect("read the upload's file"), whole);
    assert_eq!(
        store.upload_digest(&id).await.expect("digest"),
        Some(digest_of(&whole))
    );
    // The commit uses the same hash, and the blob is what was written.
    assert_eq!(
        store.commit(&id, &digest_of(&whole)).await.expect("commit"),
        whole.len() as u64
    );
    assert!(matches!(
        store.upload_digest(&id).await,
        Err(StorageError::NotFound)
    ));
}
