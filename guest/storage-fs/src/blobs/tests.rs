//! The storage conformance suite (blobs) through the adapter, plus what is
//! particular to this file layout: where ranges are streamed from, hostile
//! digests, and what sessions leave on disk.
//!
//! Not run, because the WIT `blobs` interface this store implements has no
//! such thing: `second_writer_conflicts` (the sink is the runtime's own
//! append stream, whose drop the store cannot see, so a second sink is
//! never a `Conflict`) and with it `all_blob_tests`; `listing`,
//! `uploads_listing`, `quarantine_hides` and `all_listing_tests` (listing
//! and quarantine serve the host's gc and fsck, which do not run here).

use super::*;
use crate::conformance_adapter::BlobsAdapter;
use berth_storage::BlobStore;
use berth_storage::conformance::{self as c, digest_of, put};
use std::path::Path;

fn store(root: &Path) -> BlobsAdapter {
    BlobsAdapter(Blobs::new(Layout::new(root)))
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().expect("tempdir");
            c::$name(&store(dir.path())).await;
        }
    )*};
}

conformance!(
    put_get_delete,
    empty_blob,
    ranged_reads,
    multi_append,
    concurrent_same_digest,
    digest_mismatch,
    abort_discards,
    bad_upload_ids,
    abort_with_open_writer,
    many_writers_same_digest,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_64mib() {
    let dir = tempfile::tempdir().expect("tempdir");
    c::large_streamed(&store(dir.path()), 64 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_odd_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    c::large_streamed(&store(dir.path()), (3 << 20) + 12_345).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || Box::new(store(dir.path())) as Box<dyn BlobStore>;
    c::resume_after_restart(&open).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_alternate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || Box::new(store(dir.path())) as Box<dyn BlobStore>;
    c::hosts_alternate(&open).await;
}

/// Every file under `root`, relative, sorted: what a test left behind.
fn files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let relative = path.strip_prefix(root).expect("inside");
                out.push(relative.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn blob_file(d: &Digest) -> String {
    format!("blobs/sha256/{}/{}", &d.hex()[..2], d.hex())
}

/// A range running to the blob's end streams the blob file itself; one
/// ending early streams a copy of exactly the range (`wasi:filesystem`
/// streams run to the end of a file), copied a chunk at a time.
#[tokio::test]
async fn ranges_ending_early_are_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let mut data = vec![0u8; 3 * CHUNK + 123];
    c::Pattern::new(7).fill(&mut data);
    let d = put(&blobs, &data).await;
    let size = data.len() as u64;
    assert_eq!(
        blobs.0.open_range(d.as_str(), 99_000, size - 99_000),
        Ok(RangeSource::Blob {
            path: dir.path().join(blob_file(&d)),
            offset: 99_000
        })
    );
    let (offset, length) = (CHUNK as u64 - 5, CHUNK as u64 + 10);
    let RangeSource::Copy { path } = blobs
        .0
        .open_range(d.as_str(), offset, length)
        .expect("copy")
    else {
        panic!("a range ending early is copied");
    };
    assert!(path.starts_with(dir.path().join("tmp")), "{path:?}");
    assert_eq!(
        fs::read(&path).expect("copy"),
        &data[offset as usize..(offset + length) as usize]
    );
    fs::remove_file(path).expect("remove copy");
    assert_eq!(files(dir.path()), [blob_file(&d)]);
}

/// Digests arrive as strings through WIT: a malformed one names no file.
#[tokio::test]
async fn malformed_digests_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let id = blobs.0.create_upload().expect("create");
    c::append_all(&blobs, &id, b"kept").await;
    for bad in ["sha256:short", "md5:00", "sha256:../../x", "sha256:AB"] {
        let invalid = |r: Result<()>| matches!(r, Err(Error::Invalid(_)));
        assert!(invalid(blobs.0.stat(bad).map(drop)), "stat {bad}");
        assert!(invalid(blobs.0.open_range(bad, 0, 0).map(drop)), "{bad}");
        assert!(invalid(blobs.0.delete(bad).map(drop)), "delete {bad}");
        // Refused before the session is touched.
        assert!(invalid(blobs.0.commit(&id, bad).map(drop)), "commit {bad}");
        assert_eq!(blobs.0.upload_size(&id), Ok(4));
    }
    assert_eq!(
        files(dir.path()),
        [
            format!("uploads/{id}/data"),
            format!("uploads/{id}/startedat")
        ]
    );
}

/// A session is a directory of its own; committing leaves only the blob's
/// file, and a failed or aborted session leaves nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_leave_only_committed_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let id = blobs.create_upload().await.expect("create");
    assert_eq!(
        files(dir.path()),
        [
            format!("uploads/{id}/data"),
            format!("uploads/{id}/startedat")
        ]
    );
    c::append_all(&blobs, &id, b"layout").await;
    let d = digest_of(b"layout");
    blobs.commit(&id, &d).await.expect("commit");
    assert_eq!(files(dir.path()), [blob_file(&d)]);
    assert_eq!(
        fs::read(dir.path().join(blob_file(&d))).expect("blob"),
        b"layout"
    );
    // A second commit of the same bytes keeps the one file.
    assert_eq!(put(&blobs, b"layout").await, d);
    c::digest_mismatch(&blobs).await;
    c::abort_discards(&blobs).await;
    c::bad_upload_ids(&blobs).await;
    c::abort_with_open_writer(&blobs).await;
    assert_eq!(files(dir.path()), [blob_file(&d)]);
}
