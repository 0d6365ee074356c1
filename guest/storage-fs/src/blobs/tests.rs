//! Ported from `storage::conformance` (blobs) and `fs_blobs/tests.rs`.

use super::*;
use crate::paths::validate_upload_id;
use std::path::Path;

fn digest_of(data: &[u8]) -> String {
    Digest::from_sha256(&Sha256::digest(data)).to_string()
}

fn store(root: &Path) -> Blobs {
    Blobs::new(Layout::new(root))
}

/// Appends as the runtime's append stream would: to the end of the file.
fn append(blobs: &Blobs, id: &str, data: &[u8]) {
    let path = blobs.upload_data(id).expect("session");
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    file.write_all(data).expect("append");
}

fn put(blobs: &Blobs, data: &[u8]) -> String {
    let id = blobs.create_upload().expect("create");
    append(blobs, &id, data);
    let digest = digest_of(data);
    assert_eq!(
        blobs.commit(&id, &digest).expect("commit"),
        data.len() as u64
    );
    digest
}

/// What a reader of the range's stream gets.
fn read(blobs: &Blobs, digest: &str, offset: u64, length: u64) -> Vec<u8> {
    match blobs
        .open_range(digest, offset, length)
        .expect("open range")
    {
        RangeSource::Blob { path, offset } => {
            let mut file = fs::File::open(path).expect("blob");
            file.seek(SeekFrom::Start(offset)).expect("seek");
            let mut out = Vec::new();
            file.read_to_end(&mut out).expect("read");
            out
        }
        RangeSource::Copy { path } => {
            let out = fs::read(&path).expect("copy");
            fs::remove_file(path).expect("remove copy");
            out
        }
    }
}

/// Every file under `root`, relative, sorted: what a test left behind.
fn files(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .expect("inside")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn upload_commit_stat_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = blobs.create_upload().expect("create");
    validate_upload_id(&id).expect("URL-safe id");
    assert_eq!(blobs.upload_size(&id).expect("size"), 0);
    // Several appends, as several PATCH requests do.
    for chunk in data.chunks(30_000) {
        append(&blobs, &id, chunk);
    }
    assert_eq!(blobs.upload_size(&id).expect("size"), data.len() as u64);
    let digest = digest_of(&data);
    assert_eq!(blobs.stat(&digest).expect("stat"), None);
    assert_eq!(
        blobs.commit(&id, &digest).expect("commit"),
        data.len() as u64
    );
    assert_eq!(blobs.stat(&digest).expect("stat"), Some(data.len() as u64));
    // The session is gone after a commit.
    assert_eq!(blobs.upload_data(&id), Err(Error::NotFound));
    assert_eq!(blobs.upload_size(&id), Err(Error::NotFound));

    assert_eq!(read(&blobs, &digest, 0, data.len() as u64), data);
    // To the end: the blob file itself, no copy.
    assert!(matches!(
        blobs.open_range(&digest, 99_000, 1_000).expect("tail"),
        RangeSource::Blob { offset: 99_000, .. }
    ));
    assert_eq!(read(&blobs, &digest, 99_000, 1_000), &data[99_000..]);
    // Ending early: an exact copy.
    assert_eq!(read(&blobs, &digest, 10, 5), &data[10..15]);
    assert_eq!(read(&blobs, &digest, 0, 1), &data[..1]);
    assert_eq!(read(&blobs, &digest, 50_000, 0), b"");
    for (offset, length) in [(0, 100_001), (100_000, 1), (u64::MAX, 2)] {
        assert!(
            matches!(
                blobs.open_range(&digest, offset, length),
                Err(Error::Invalid(_))
            ),
            "{offset}+{length}"
        );
    }
    assert_eq!(
        files(dir.path()),
        [format!("blobs/sha256/{}/{}", &digest[7..9], &digest[7..])]
    );
}

#[test]
fn large_blob_is_hashed_in_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let data: Vec<u8> = (0..(3 * CHUNK + 123)).map(|i| (i % 253) as u8).collect();
    let digest = put(&blobs, &data);
    assert_eq!(blobs.stat(&digest).expect("stat"), Some(data.len() as u64));
    let (offset, length) = (CHUNK as u64 - 5, CHUNK as u64 + 10);
    assert_eq!(
        read(&blobs, &digest, offset, length),
        &data[offset as usize..(offset + length) as usize]
    );
}

#[test]
fn empty_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let digest = put(&blobs, b"");
    assert_eq!(blobs.stat(&digest).expect("stat"), Some(0));
    assert_eq!(read(&blobs, &digest, 0, 0), b"");
}

#[test]
fn digest_mismatch_discards_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let id = blobs.create_upload().expect("create");
    append(&blobs, &id, b"actual bytes");
    let claimed = digest_of(b"other bytes");
    assert_eq!(
        blobs.commit(&id, &claimed),
        Err(Error::DigestMismatch(digest_of(b"actual bytes")))
    );
    assert_eq!(blobs.stat(&claimed).expect("stat"), None);
    assert_eq!(blobs.stat(&digest_of(b"actual bytes")).expect("stat"), None);
    assert_eq!(blobs.upload_data(&id), Err(Error::NotFound));
    assert_eq!(blobs.commit(&id, &claimed), Err(Error::NotFound));
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
}

#[test]
fn commit_of_a_stored_blob_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let digest = put(&blobs, b"same");
    let (a, b) = (
        blobs.create_upload().expect("a"),
        blobs.create_upload().expect("b"),
    );
    assert_ne!(a, b);
    append(&blobs, &a, b"same");
    append(&blobs, &b, b"same");
    assert_eq!(blobs.commit(&a, &digest), Ok(4));
    assert_eq!(blobs.commit(&b, &digest), Ok(4));
    assert_eq!(read(&blobs, &digest, 0, 4), b"same");
    assert_eq!(files(dir.path()).len(), 1);
}

#[test]
fn abort_and_unknown_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let id = blobs.create_upload().expect("create");
    append(&blobs, &id, b"partial");
    blobs.abort(&id).expect("abort");
    assert_eq!(blobs.upload_data(&id), Err(Error::NotFound));
    assert_eq!(blobs.abort(&id), Err(Error::NotFound));
    assert!(files(dir.path()).is_empty());
    let unknown = "0".repeat(32);
    assert_eq!(blobs.upload_data(&unknown), Err(Error::NotFound));
    assert_eq!(blobs.upload_size(&unknown), Err(Error::NotFound));
    for bad in ["../../etc", "", "ABC"] {
        assert!(
            matches!(blobs.upload_data(bad), Err(Error::Invalid(_))),
            "{bad}"
        );
        assert!(matches!(
            blobs.commit(bad, &digest_of(b"")),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(blobs.abort(bad), Err(Error::Invalid(_))));
    }
}

#[test]
fn sessions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = {
        let blobs = store(dir.path());
        let id = blobs.create_upload().expect("create");
        append(&blobs, &id, b"first half, ");
        id
    };
    let blobs = store(dir.path());
    assert_eq!(blobs.upload_size(&id).expect("size"), 12);
    append(&blobs, &id, b"second half");
    let digest = digest_of(b"first half, second half");
    assert_eq!(blobs.commit(&id, &digest).expect("commit"), 23);
    let blobs = store(dir.path());
    assert_eq!(read(&blobs, &digest, 0, 23), b"first half, second half");
}

#[test]
fn delete_and_malformed_digests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = store(dir.path());
    let digest = put(&blobs, b"doomed");
    assert!(blobs.delete(&digest).expect("delete"));
    assert!(!blobs.delete(&digest).expect("delete again"));
    assert_eq!(blobs.stat(&digest).expect("stat"), None);
    assert_eq!(blobs.open_range(&digest, 0, 1), Err(Error::NotFound));
    for bad in ["sha256:short", "md5:00", "sha256:../../x"] {
        assert!(matches!(blobs.stat(bad), Err(Error::Invalid(_))), "{bad}");
        assert!(matches!(
            blobs.open_range(bad, 0, 0),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(blobs.delete(bad), Err(Error::Invalid(_))));
    }
    let id = blobs.create_upload().expect("create");
    assert!(matches!(
        blobs.commit(&id, "sha256:nope"),
        Err(Error::Invalid(_))
    ));
    // A malformed expectation is refused before anything happens.
    assert_eq!(blobs.upload_size(&id), Ok(0));
}
