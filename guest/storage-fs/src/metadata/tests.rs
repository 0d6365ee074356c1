//! The storage conformance suite (metadata) through the adapter, plus what
//! is particular to this file layout: how names nest, references checked
//! on disk, crash leftovers, hostile names and what deleting leaves behind.

use super::*;
use crate::conformance_adapter::{MetadataAdapter, info_in};
use berth_storage::MetadataStore;
use berth_storage::conformance::{self as c, manifest};

/// A store on a fresh directory (kept alive by the returned guard).
fn fresh() -> (tempfile::TempDir, Metadata) {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = Metadata::new(Layout::new(dir.path()));
    (dir, meta)
}

berth_storage::metadata_conformance_tests!(|_case| {
    let (dir, meta) = fresh();
    (dir, Box::new(MetadataAdapter(meta)))
});

#[tokio::test]
async fn metadata_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        Box::new(MetadataAdapter(Metadata::new(Layout::new(dir.path())))) as Box<dyn MetadataStore>
    };
    c::metadata_persists(&open).await;
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The storage crate's test manifest, as this store takes it.
fn record(n: u32, subject: Option<&str>, artifact_type: Option<&str>) -> ManifestInfo {
    info_in(&manifest(n, subject, artifact_type))
}

#[test]
fn catalog_sorts_by_name_not_by_path() {
    let (_dir, meta) = fresh();
    // As paths, "a/b" nests under "a"; as names, "a-b" < "a.b" < "a/b" < "a0".
    for (n, repo) in (0..).zip(["a0", "a/b", "a.b", "a-b", "a", "a/b/c"]) {
        meta.put_manifest(repo, &record(n, None, None), &[], None)
            .expect("put");
    }
    assert_eq!(
        meta.list_repositories(&Page::default()).expect("list"),
        strings(&["a", "a-b", "a.b", "a/b", "a/b/c", "a0"])
    );
}

/// A new manifest's references must be linked blobs or manifests of the
/// repository (files under its directory), as SQLite metadata requires; a
/// manifest already stored only moves its tag.
#[test]
fn references_must_be_in_the_repository() {
    let (_dir, meta) = fresh();
    let repo = "conf/refs";
    let (image, index) = (record(50, None, None), record(51, None, None));
    let layers = strings(&["sha256:c1", "sha256:l1"]);
    assert!(matches!(
        meta.put_manifest(repo, &image, &layers, Some("latest")),
        Err(Error::Invalid(_))
    ));
    assert_eq!(meta.get_manifest(repo, &image.digest).expect("get"), None);
    assert_eq!(meta.resolve_tag(repo, "latest").expect("resolve"), None);
    for blob in &layers {
        meta.link_blob(repo, blob).expect("link");
    }
    meta.put_manifest(repo, &image, &layers, Some("latest"))
        .expect("put");
    // An index references the image, a manifest of the repository.
    meta.put_manifest(repo, &index, std::slice::from_ref(&image.digest), None)
        .expect("index");
    assert!(meta.unlink_blob(repo, "sha256:l1").expect("unlink"));
    meta.put_manifest(repo, &image, &layers, Some("stable"))
        .expect("re-put only moves the tag");
    assert!(meta.delete_manifest(repo, &image.digest).expect("delete"));
    assert!(matches!(
        meta.put_manifest(repo, &image, &layers, None),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn crash_leftovers_are_not_misread() {
    let (dir, meta) = fresh();
    let repo = "conf/crash";
    let m = record(70, Some("sha256:subj"), None);
    meta.put_manifest(repo, &m, &[], Some("t")).expect("put");
    let repo_dir = Layout::new(dir.path()).repo(repo).expect("name");
    // A delete interrupted after the record went: the tag and index entry
    // are left, pointing at nothing.
    std::fs::remove_file(Layout::manifest(&repo_dir, &m.digest).expect("path")).expect("rm");
    assert_eq!(meta.resolve_tag(repo, "t").expect("resolve"), None);
    assert!(
        meta.list_referrers(repo, "sha256:subj", None)
            .expect("list")
            .is_empty()
    );
    // A half-written temporary file is never read as data.
    std::fs::write(dir.path().join("tmp/0123"), b"{").expect("stray temp");
    // Pushing again repairs both.
    meta.put_manifest(repo, &m, &[], Some("t"))
        .expect("put again");
    assert_eq!(
        meta.resolve_tag(repo, "t").expect("resolve"),
        Some(m.digest.clone())
    );
    assert_eq!(
        meta.list_referrers(repo, "sha256:subj", None)
            .expect("list"),
        vec![m]
    );
}

#[test]
fn hostile_names_stay_inside_the_directory() {
    let (dir, meta) = fresh();
    let hostile = ["..", "../x", "a/../../b", "_repo", "a/_repo/b"];
    for (n, repo) in (0..).zip(hostile) {
        meta.link_blob(repo, "sha256:../../../../escape")
            .expect("link");
        assert!(
            meta.blob_linked(repo, "sha256:../../../../escape")
                .expect("linked")
        );
        meta.put_manifest(repo, &record(n, None, None), &[], None)
            .expect("put");
    }
    meta.put_manifest("ok", &record(80, None, None), &[], Some("../../tag"))
        .expect("put");
    let mut listed = strings(&hostile);
    listed.push("ok".into());
    listed.sort();
    assert_eq!(
        meta.list_repositories(&Page::default()).expect("list"),
        listed
    );
    assert_eq!(
        meta.list_tags("ok", &Page::default()).expect("tags"),
        Some(strings(&["../../tag"]))
    );
    let top: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    assert!(
        top.iter()
            .all(|n| ["repositories", "tmp"].contains(&n.as_str())),
        "{top:?}"
    );
    for bad in ["", "a//b", "/a"] {
        assert!(
            matches!(meta.link_blob(bad, "sha256:01"), Err(Error::Invalid(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(meta.delete_tag("ok", ""), Err(Error::Invalid(_))));
}

/// Deleting a subject takes its referrers (and theirs) and their tags, as
/// SQLite metadata does, and leaves no file of theirs behind: no record,
/// tag, or referrers index entry or directory.
#[test]
fn deleting_a_subject_leaves_nothing_of_it() {
    let (dir, meta) = fresh();
    let repo = "conf/cascade";
    let subject = record(60, None, None);
    let sig = record(61, Some(&subject.digest), Some("sig"));
    let sig_of_sig = record(62, Some(&sig.digest), Some("sig"));
    let kept = record(63, None, None);
    meta.put_manifest(repo, &kept, &[], Some("kept"))
        .expect("put");
    for m in [&subject, &sig, &sig_of_sig] {
        meta.put_manifest(repo, m, &[], Some(&format!("t{}", m.size)))
            .expect("put");
    }
    assert!(meta.delete_manifest(repo, &subject.digest).expect("delete"));
    for m in [&subject, &sig, &sig_of_sig] {
        assert_eq!(meta.get_manifest(repo, &m.digest).expect("get"), None);
    }
    let repo_dir = Layout::new(dir.path()).repo(repo).expect("name");
    let listed = |dir: PathBuf| {
        let mut names = fsutil::list_dir(&dir).expect("list");
        names.sort();
        names
    };
    let kept_record = Layout::manifest(&repo_dir, &kept.digest).expect("path");
    assert_eq!(
        listed(Layout::manifests(&repo_dir)),
        [kept_record
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")]
    );
    assert_eq!(listed(Layout::tags(&repo_dir)), ["kept"]);
    for m in [&subject, &sig] {
        let index = Layout::referrers_of(&repo_dir, &m.digest).expect("path");
        assert!(!index.exists(), "{index:?} left behind");
    }
}
