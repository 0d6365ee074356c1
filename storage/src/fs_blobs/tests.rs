//! The conformance suite on the filesystem store, plus checks of its layout
//! and of what it leaves on disk.

use super::FsBlobStore;
use crate::conformance::{self as c, append_all, digest_of, put};
use crate::{BlobStore, StorageError};
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
