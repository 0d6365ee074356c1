//! `storage::conformance` (metadata), ported case by case, plus the
//! file-layout specifics: crash leftovers and what deleting leaves behind.

use super::*;
use sha2::{Digest as _, Sha256};

fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A manifest record for tests; `n` makes a distinct digest.
fn manifest(n: u32, subject: Option<&str>, artifact_type: Option<&str>) -> ManifestInfo {
    ManifestInfo {
        digest: digest_of(format!("manifest {n}").as_bytes()),
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

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A store on a fresh directory (kept alive by the returned guard).
fn fresh() -> (tempfile::TempDir, Metadata) {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = Metadata::new(Layout::new(dir.path()));
    (dir, meta)
}

#[test]
fn blob_links() {
    let (_dir, meta) = fresh();
    let (repo, d) = ("conf/links", "sha256:aa");
    assert!(!meta.blob_linked(repo, d).expect("linked"));
    meta.link_blob(repo, d).expect("link");
    meta.link_blob(repo, d).expect("link twice");
    assert!(meta.blob_linked(repo, d).expect("linked"));
    assert!(!meta.blob_linked("conf/other", d).expect("linked elsewhere"));
    assert!(meta.unlink_blob(repo, d).expect("unlink"));
    assert!(!meta.unlink_blob(repo, d).expect("unlink again"));
    assert!(!meta.blob_linked(repo, d).expect("linked"));
    assert!(
        !meta
            .unlink_blob("conf/nowhere", d)
            .expect("unlink unknown repo")
    );
    // Linking created the repository; unlinking does not remove it.
    assert_eq!(
        meta.list_repositories(&Page::default()).expect("list"),
        strings(&["conf/links"])
    );
}

#[test]
fn tags_pagination() {
    let (_dir, meta) = fresh();
    let repo = "conf/tags";
    assert_eq!(meta.list_tags(repo, &Page::default()).expect("list"), None);
    let m = manifest(1, None, None);
    // "B" < "a" < "a-b" < "a.b" < "b" < "v10" < "v2" in byte order.
    for tag in ["v2", "a.b", "B", "v10", "a", "b", "a-b"] {
        meta.put_manifest(repo, &m, &[], Some(tag)).expect("put");
    }
    let all = ["B", "a", "a-b", "a.b", "b", "v10", "v2"];
    assert_eq!(
        meta.list_tags(repo, &Page::default()).expect("list"),
        Some(strings(&all))
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
        assert_eq!(
            meta.list_tags(repo, &page(last, n)).expect("list page"),
            Some(strings(want)),
            "last={last:?} n={n:?}"
        );
    }
    let (mut seen, mut last) = (Vec::new(), None::<String>);
    loop {
        let got = meta
            .list_tags(repo, &page(last.as_deref(), Some(3)))
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

#[test]
fn catalog_pagination() {
    let (_dir, meta) = fresh();
    assert!(
        meta.list_repositories(&Page::default())
            .expect("list")
            .is_empty()
    );
    meta.link_blob("zeta/blobonly", "sha256:01").expect("link");
    meta.put_manifest("alpha", &manifest(2, None, None), &[], None)
        .expect("put");
    meta.begin_upload("Mid/upload", "u-catalog").expect("begin");
    meta.put_manifest("alpha/sub", &manifest(3, None, None), &[], Some("t"))
        .expect("put");
    let all = strings(&["Mid/upload", "alpha", "alpha/sub", "zeta/blobonly"]);
    assert_eq!(meta.list_repositories(&Page::default()).expect("list"), all);
    assert_eq!(
        meta.list_repositories(&page(None, Some(2))).expect("list"),
        all[..2]
    );
    assert_eq!(
        meta.list_repositories(&page(Some("alpha"), Some(2)))
            .expect("list"),
        all[2..]
    );
    assert_eq!(
        meta.list_repositories(&page(Some("alpha/sub"), None))
            .expect("list"),
        all[3..]
    );
    assert!(
        meta.list_repositories(&page(Some("zz"), Some(9)))
            .expect("list")
            .is_empty()
    );
    assert!(
        meta.list_repositories(&page(None, Some(0)))
            .expect("list")
            .is_empty()
    );
}

#[test]
fn catalog_sorts_by_name_not_by_path() {
    let (_dir, meta) = fresh();
    // As paths, "a/b" nests under "a"; as names, "a-b" < "a.b" < "a/b" < "a0".
    for repo in ["a0", "a/b", "a.b", "a-b", "a", "a/b/c"] {
        meta.link_blob(repo, "sha256:01").expect("link");
    }
    assert_eq!(
        meta.list_repositories(&Page::default()).expect("list"),
        strings(&["a", "a-b", "a.b", "a/b", "a/b/c", "a0"])
    );
}

#[test]
fn manifests_and_tags() {
    let (_dir, meta) = fresh();
    let repo = "conf/manifests";
    let (m1, m2) = (
        manifest(10, None, Some("application/x-a")),
        manifest(11, None, None),
    );
    assert_eq!(meta.get_manifest(repo, &m1.digest).expect("get"), None);
    assert_eq!(meta.resolve_tag(repo, "latest").expect("resolve"), None);
    let refs = strings(&["sha256:c1", "sha256:l1"]);
    // The store refuses a manifest whose blobs are not in the repository,
    // as SQLite metadata does (the guest maps `invalid` to MANIFEST_BLOB_UNKNOWN).
    assert!(matches!(
        meta.put_manifest(repo, &m1, &refs, Some("latest")),
        Err(Error::Invalid(_))
    ));
    assert_eq!(meta.get_manifest(repo, &m1.digest).expect("get"), None);
    assert_eq!(meta.resolve_tag(repo, "latest").expect("resolve"), None);
    for blob in &refs {
        meta.link_blob(repo, blob).expect("link");
    }
    meta.put_manifest(repo, &m1, &refs, Some("latest"))
        .expect("put");
    meta.put_manifest(repo, &m1, &refs, Some("v1"))
        .expect("re-put");
    assert_eq!(
        meta.get_manifest(repo, &m1.digest).expect("get"),
        Some(m1.clone())
    );
    assert_eq!(
        meta.get_manifest("conf/elsewhere", &m1.digest)
            .expect("get"),
        None
    );
    assert_eq!(
        meta.resolve_tag(repo, "latest").expect("resolve"),
        Some(m1.digest.clone())
    );
    assert_eq!(
        meta.resolve_tag(repo, "v1").expect("resolve"),
        Some(m1.digest.clone())
    );

    // Moving a tag leaves the old manifest (and its other tags) in place.
    meta.put_manifest(repo, &m2, &[], Some("latest"))
        .expect("put m2");
    assert_eq!(
        meta.resolve_tag(repo, "latest").expect("resolve"),
        Some(m2.digest.clone())
    );
    assert_eq!(
        meta.list_tags(repo, &Page::default()).expect("tags"),
        Some(strings(&["latest", "v1"]))
    );

    // Re-putting a stored manifest only moves the tag: its references are
    // not checked again.
    assert!(meta.unlink_blob(repo, "sha256:l1").expect("unlink"));
    meta.put_manifest(repo, &m1, &refs, Some("stable"))
        .expect("tag m1 again");
    assert!(meta.delete_manifest(repo, &m1.digest).expect("delete"));
    assert!(
        !meta
            .delete_manifest(repo, &m1.digest)
            .expect("delete again")
    );
    assert_eq!(meta.get_manifest(repo, &m1.digest).expect("get"), None);
    assert_eq!(meta.resolve_tag(repo, "v1").expect("resolve"), None);
    assert_eq!(meta.resolve_tag(repo, "stable").expect("resolve"), None);
    assert_eq!(
        meta.list_tags(repo, &Page::default()).expect("tags"),
        Some(strings(&["latest"]))
    );
    assert!(
        !meta
            .delete_manifest("conf/unknown", &m1.digest)
            .expect("delete in unknown repo")
    );
    // A deleted manifest can be pushed again; now its references count.
    assert!(matches!(
        meta.put_manifest(repo, &m1, &refs, None),
        Err(Error::Invalid(_))
    ));
    meta.put_manifest(repo, &m1, &strings(&["sha256:c1"]), None)
        .expect("put again");
    assert_eq!(meta.get_manifest(repo, &m1.digest).expect("get"), Some(m1));
}

#[test]
fn references_may_be_manifests_of_the_repository() {
    let (_dir, meta) = fresh();
    let repo = "conf/index";
    let child = manifest(50, None, None);
    let index = manifest(51, None, None);
    let refs = [child.digest.clone()];
    assert!(matches!(
        meta.put_manifest(repo, &index, &refs, Some("multi")),
        Err(Error::Invalid(_))
    ));
    meta.put_manifest(repo, &child, &[], None).expect("child");
    meta.put_manifest(repo, &index, &refs, Some("multi"))
        .expect("index");
    assert_eq!(
        meta.resolve_tag(repo, "multi").expect("resolve"),
        Some(index.digest)
    );
}

#[test]
fn delete_tag_keeps_manifest() {
    let (_dir, meta) = fresh();
    let repo = "conf/deltag";
    let m = manifest(20, None, None);
    meta.put_manifest(repo, &m, &[], Some("a")).expect("put");
    meta.put_manifest(repo, &m, &[], Some("b")).expect("put");
    assert!(meta.delete_tag(repo, "a").expect("delete tag"));
    assert!(!meta.delete_tag(repo, "a").expect("delete tag again"));
    assert!(
        !meta
            .delete_tag("conf/unknown", "a")
            .expect("delete tag in unknown repo")
    );
    assert_eq!(
        meta.get_manifest(repo, &m.digest).expect("get"),
        Some(m.clone())
    );
    assert_eq!(
        meta.resolve_tag(repo, "b").expect("resolve"),
        Some(m.digest.clone())
    );
    assert!(meta.delete_tag(repo, "b").expect("delete last tag"));
    assert_eq!(
        meta.list_tags(repo, &Page::default()).expect("tags"),
        Some(vec![])
    );
    assert!(meta.get_manifest(repo, &m.digest).expect("get").is_some());
}

#[test]
fn referrers() {
    let (_dir, meta) = fresh();
    let repo = "conf/referrers";
    let subject = manifest(30, None, None);
    meta.put_manifest(repo, &subject, &[], Some("img"))
        .expect("put subject");
    assert!(
        meta.list_referrers(repo, &subject.digest, None)
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
            .expect("put referrer");
    }
    meta.put_manifest(
        "conf/referrers2",
        &manifest(37, Some(&subject.digest), Some(sig)),
        &[],
        None,
    )
    .expect("put elsewhere");
    meta.put_manifest(
        repo,
        &manifest(38, Some("sha256:other"), Some(sig)),
        &[],
        None,
    )
    .expect("put");

    refs.sort_by(|a, b| a.digest.cmp(&b.digest));
    assert_eq!(
        meta.list_referrers(repo, &subject.digest, None)
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
            .expect("filtered"),
        sigs
    );
    assert!(
        meta.list_referrers(repo, &subject.digest, Some("x/none"))
            .expect("no match")
            .is_empty()
    );
    assert!(
        meta.list_referrers("conf/unknown", &subject.digest, None)
            .expect("unknown repo")
            .is_empty()
    );

    assert!(meta.delete_manifest(repo, &sigs[0].digest).expect("delete"));
    assert_eq!(
        meta.list_referrers(repo, &subject.digest, Some(sig))
            .expect("filtered"),
        sigs[1..]
    );
}

#[test]
fn deleting_a_subject_deletes_its_referrers() {
    let (_dir, meta) = fresh();
    let repo = "conf/cascade";
    let subject = manifest(60, None, None);
    let sig = manifest(61, Some(&subject.digest), Some("sig"));
    let sig_of_sig = manifest(62, Some(&sig.digest), Some("sig"));
    let unrelated = manifest(63, None, None);
    for m in [&subject, &sig, &sig_of_sig, &unrelated] {
        meta.put_manifest(repo, m, &[], Some(&format!("t{}", m.size)))
            .expect("put");
    }
    assert!(meta.delete_manifest(repo, &subject.digest).expect("delete"));
    for m in [&subject, &sig, &sig_of_sig] {
        assert_eq!(meta.get_manifest(repo, &m.digest).expect("get"), None);
    }
    assert!(
        meta.list_referrers(repo, &subject.digest, None)
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        meta.get_manifest(repo, &unrelated.digest).expect("get"),
        Some(unrelated)
    );
    assert_eq!(
        meta.list_tags(repo, &Page::default()).expect("tags"),
        Some(strings(&["t163"]))
    );
}

#[test]
fn uploads() {
    let (_dir, meta) = fresh();
    assert_eq!(meta.upload_repository("u-conf-1").expect("lookup"), None);
    meta.begin_upload("conf/uploads", "u-conf-1")
        .expect("begin");
    meta.begin_upload("conf/uploads", "u-conf-1")
        .expect("begin twice");
    meta.begin_upload("conf/uploads2", "u-conf-2")
        .expect("begin other");
    assert!(matches!(
        meta.begin_upload("conf/uploads2", "u-conf-1"),
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        meta.upload_repository("u-conf-1")
            .expect("lookup")
            .as_deref(),
        Some("conf/uploads")
    );
    assert_eq!(
        meta.upload_repository("u-conf-2")
            .expect("lookup")
            .as_deref(),
        Some("conf/uploads2")
    );
    meta.end_upload("u-conf-1").expect("end");
    meta.end_upload("u-conf-1").expect("end is idempotent");
    assert_eq!(meta.upload_repository("u-conf-1").expect("lookup"), None);
    assert_eq!(
        meta.upload_repository("u-conf-2")
            .expect("lookup")
            .as_deref(),
        Some("conf/uploads2")
    );
    assert_eq!(
        meta.list_tags("conf/uploads", &Page::default())
            .expect("tags"),
        Some(vec![])
    );
}

#[test]
fn metadata_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || Metadata::new(Layout::new(dir.path()));
    let m = manifest(40, Some("sha256:subj"), Some("a/b"));
    {
        let meta = open();
        meta.link_blob("conf/persist", "sha256:bb").expect("link");
        meta.put_manifest("conf/persist", &m, &strings(&["sha256:bb"]), Some("kept"))
            .expect("put");
        meta.begin_upload("conf/persist", "u-persist")
            .expect("begin");
    }
    let meta = open();
    assert!(
        meta.blob_linked("conf/persist", "sha256:bb")
            .expect("linked")
    );
    assert_eq!(
        meta.get_manifest("conf/persist", &m.digest).expect("get"),
        Some(m.clone())
    );
    assert_eq!(
        meta.resolve_tag("conf/persist", "kept").expect("resolve"),
        Some(m.digest.clone())
    );
    assert_eq!(
        meta.list_referrers("conf/persist", "sha256:subj", None)
            .expect("referrers"),
        vec![m]
    );
    assert_eq!(
        meta.upload_repository("u-persist")
            .expect("lookup")
            .as_deref(),
        Some("conf/persist")
    );
}

#[test]
fn crash_leftovers_are_not_misread() {
    let (dir, meta) = fresh();
    let repo = "conf/crash";
    let m = manifest(70, Some("sha256:subj"), None);
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
    for repo in ["..", "../x", "a/../../b", "_repo", "a/_repo/b"] {
        meta.link_blob(repo, "sha256:../../../../escape")
            .expect("link");
        assert!(
            meta.blob_linked(repo, "sha256:../../../../escape")
                .expect("linked")
        );
    }
    meta.put_manifest("ok", &manifest(80, None, None), &[], Some("../../tag"))
        .expect("put");
    assert_eq!(
        meta.list_repositories(&Page::default()).expect("list"),
        strings(&["..", "../x", "_repo", "a/../../b", "a/_repo/b"])
            .into_iter()
            .chain(["ok".to_string()])
            .collect::<Vec<_>>()
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
