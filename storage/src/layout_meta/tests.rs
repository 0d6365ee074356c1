//! The conformance suite on the layout over an in-memory store and a local
//! directory, and checks against a tree registry:2 itself wrote: Berth reads
//! it as registry:2 does, and the same pushes through Berth write the same
//! files.

use super::registry2_fixture as r2;
use super::{LayoutMetadata, paths};
use crate::conformance::{self as c, ManifestBytes};
use crate::{ManifestInfo, MetadataStore, Page, StorageError};
use berth_oci::manifest::describe;
use berth_oci::media_types::OCI_MANIFEST;
use futures::TryStreamExt as _;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};
use std::collections::BTreeMap;
use std::sync::Arc;
use tempfile::TempDir;

type Store = Arc<dyn ObjectStore>;

fn memory() -> (Option<TempDir>, Store) {
    (None, Arc::new(InMemory::new()))
}

/// A local directory as registry:2's filesystem driver would use it.
fn local() -> (Option<TempDir>, Store) {
    let dir = TempDir::new().expect("tempdir");
    let files = LocalFileSystem::new_with_prefix(dir.path())
        .expect("local store")
        .with_automatic_cleanup(true);
    (Some(dir), Arc::new(files))
}

/// A local directory without cleanup: deletes leave empty directories
/// behind, as SeaweedFS does in a bucket.
fn local_plain() -> (Option<TempDir>, Store) {
    let dir = TempDir::new().expect("tempdir");
    let files = LocalFileSystem::new_with_prefix(dir.path()).expect("local store");
    (Some(dir), Arc::new(files))
}

/// The layout on `store`, with documents behind the suite's fabricated
/// manifests.
fn suite_store(store: &Store) -> Box<dyn MetadataStore> {
    ManifestBytes::object_store(store.clone()).wrap(Box::new(LayoutMetadata::new(store.clone())))
}

macro_rules! conformance {
    ($($backend:ident),*) => {$(
        mod $backend {
            use super::*;

            crate::metadata_conformance_tests!(|_case| {
                let (dir, store) = super::$backend();
                let meta = suite_store(&store);
                (dir, meta)
            });

            mod inventory {
                crate::inventory_conformance_tests!(|_case| {
                    let (dir, store) = super::super::$backend();
                    let meta = super::super::suite_store(&store);
                    (dir, meta)
                });
            }

            mod origins {
                crate::origin_conformance_tests!(|_case| {
                    let (dir, store) = super::super::$backend();
                    let meta = super::super::suite_store(&store);
                    (dir, meta)
                });
            }

            #[tokio::test]
            async fn origin_persists() {
                let (_dir, store) = super::$backend();
                let open = || {
                    Box::new(LayoutMetadata::new(store.clone())) as Box<dyn MetadataStore>
                };
                c::origin_persists(&open).await;
            }

            #[tokio::test]
            async fn metadata_persists() {
                let (_dir, store) = super::$backend();
                let bytes = ManifestBytes::object_store(store.clone());
                let open = || bytes.wrap(Box::new(LayoutMetadata::new(store.clone())));
                c::metadata_persists(&open).await;
            }
        }
    )*};
}

conformance!(memory, local, local_plain);

/// A reopen is a new `LocalFileSystem` on the same directory, too.
#[tokio::test]
async fn metadata_persists_across_local_stores() {
    let dir = TempDir::new().expect("tempdir");
    let open_store = || -> Store {
        Arc::new(
            LocalFileSystem::new_with_prefix(dir.path())
                .expect("local")
                .with_automatic_cleanup(true),
        )
    };
    let bytes = ManifestBytes::object_store(open_store());
    let open = || bytes.wrap(Box::new(LayoutMetadata::new(open_store())));
    c::metadata_persists(&open).await;
}

/// A listing of `r2`: path → content (`[link]`, or `(n bytes)` zeros).
fn parse_listing(listing: &str) -> BTreeMap<String, Vec<u8>> {
    listing
        .lines()
        .map(|line| {
            let (path, rest) = line.split_once("  ").expect("two fields");
            let content = if let Some(link) = rest.strip_prefix('[') {
                link.trim_end_matches(']').as_bytes().to_vec()
            } else {
                let n = rest.trim_matches(['(', ')']).trim_end_matches(" bytes");
                vec![0; n.parse().expect("size")]
            };
            (path.to_owned(), content)
        })
        .collect()
}

fn v2(relative: &str) -> Path {
    Path::from(format!("docker/registry/v2/{relative}"))
}

/// Writes the listing's files and the fixture's manifest bytes.
async fn load(store: &dyn ObjectStore, listing: &str) {
    for (path, content) in parse_listing(listing) {
        store.put(&v2(&path), content.into()).await.expect("put");
    }
    for (digest, json) in r2::MANIFESTS {
        let path = super::blob_path(digest).expect("blob path");
        store
            .put(&path, json.as_bytes().to_vec().into())
            .await
            .expect("put manifest");
    }
}

/// Every file under `docker/registry/v2/repositories/`, as in a listing.
async fn repositories_tree(store: &dyn ObjectStore) -> BTreeMap<String, Vec<u8>> {
    let keys: Vec<Path> = store
        .list(Some(&paths::repositories_root()))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .expect("list");
    let mut tree = BTreeMap::new();
    for key in keys {
        let bytes = store
            .get(&key)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let relative = key
            .as_ref()
            .trim_start_matches("docker/registry/v2/")
            .to_owned();
        tree.insert(relative, bytes.to_vec());
    }
    tree
}

/// The record Berth's guest derives from a fixture manifest at push.
fn info(digest: &str) -> ManifestInfo {
    let (_, json) = r2::MANIFESTS
        .iter()
        .find(|(d, _)| *d == digest)
        .expect("fixture manifest");
    let described = describe(json.as_bytes()).expect("describe");
    ManifestInfo {
        digest: digest.to_owned(),
        media_type: described.media_type,
        size: json.len() as u64,
        artifact_type: described.artifact_type,
        subject: described.subject,
        annotations: described.annotations,
    }
}

const LAYER1: &str = "sha256:43eafadd9b30d044ca6f291e9b691f4a1f874878c3e0dc762e9efdf553cfbd52";
const CONFIG1: &str = "sha256:7d1a16468a45da75605d12ca43800fadefb8270e7d5b6ba2f11d52f3b92479c3";
const LAYER2: &str = "sha256:10c47a28b64502ae15a561bf687fe3ecc2b02c18c1f555e61d824f9a9efbb1ac";
const CONFIG2: &str = "sha256:130b678f9b0934d1560bfc891e8e1c3f1e665642608e36f4aac5b89a05fcba34";
const EMPTY: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Berth reads registry:2's tree as registry:2 answered over HTTP.
async fn reads_registry2_tree(store: Store) {
    load(store.as_ref(), r2::PUSHED).await;
    let meta = LayoutMetadata::new(store);
    let all = Page::default();
    // registry:2 answered {"repositories":["demo/app","other/mounted"]};
    // Berth lists a repository only once it holds a manifest, so not the
    // one that only received a mounted layer.
    assert_eq!(
        meta.list_repositories(&all).await.expect("catalog"),
        ["demo/app"]
    );
    // ... and {"name":"demo/app","tags":["latest","v1","v2"]}.
    assert_eq!(
        meta.list_tags("demo/app", &all).await.expect("tags"),
        Some(vec!["latest".into(), "v1".into(), "v2".into()])
    );
    // registry:2 says NAME_UNKNOWN here (no tags directory); Berth's
    // contract is that a repository holding blobs exists.
    assert_eq!(
        meta.list_tags("other/mounted", &all).await.expect("tags"),
        Some(vec![])
    );
    for (tag, digest) in [("latest", r2::IMG2), ("v1", r2::IMG1), ("v2", r2::IMG2)] {
        assert_eq!(
            meta.resolve_tag("demo/app", tag)
                .await
                .expect("resolve")
                .as_deref(),
            Some(digest),
            "{tag}"
        );
    }
    let img1 = meta
        .get_manifest("demo/app", r2::IMG1)
        .await
        .expect("get")
        .expect("img1");
    assert_eq!(
        img1,
        ManifestInfo {
            digest: r2::IMG1.into(),
            media_type: OCI_MANIFEST.into(),
            size: 437,
            artifact_type: Some("application/vnd.oci.image.config.v1+json".into()),
            subject: None,
            annotations: Some(r#"{"org.example":"one"}"#.into()),
        }
    );
    let sig = meta
        .get_manifest("demo/app", r2::SIGNATURE)
        .await
        .expect("get")
        .expect("signature");
    assert_eq!(sig.size, 588);
    assert_eq!(
        sig.artifact_type.as_deref(),
        Some("application/vnd.example.sig")
    );
    assert_eq!(sig.subject.as_deref(), Some(r2::IMG2));
    assert_eq!(sig.annotations, None);
    assert_eq!(
        meta.get_manifest("other/mounted", r2::IMG1)
            .await
            .expect("get"),
        None
    );
    for (repo, blob, linked) in [
        ("demo/app", LAYER1, true),
        ("demo/app", CONFIG2, true),
        ("demo/app", EMPTY, true),
        ("other/mounted", LAYER1, true),
        ("other/mounted", LAYER2, false),
        // registry:2 does not link manifests as blobs.
        ("demo/app", r2::IMG1, false),
    ] {
        assert_eq!(
            meta.blob_linked(repo, blob).await.expect("linked"),
            linked,
            "{repo} {blob}"
        );
    }
    // registry:2 keeps no referrers index: its manifests with a subject are
    // not found until Berth indexes them (by pushing them again).
    assert!(
        meta.list_referrers("demo/app", r2::IMG2, None)
            .await
            .expect("referrers")
            .is_empty()
    );
    meta.put_manifest("demo/app", &info(r2::SIGNATURE), &[], None)
        .await
        .expect("re-push signature");
    assert_eq!(
        meta.list_referrers("demo/app", r2::IMG2, None)
            .await
            .expect("referrers"),
        [info(r2::SIGNATURE)]
    );
    // registry:2's own upload sessions are not Berth's.
    assert_eq!(
        meta.upload_repository("69cf1640-f23c-4cdf-a797-5dcd6f4039ae")
            .await
            .expect("owner"),
        None
    );
    // Deleting by digest as registry:2 does: the revision and the tags
    // pointing at it, nothing else.
    assert!(
        meta.delete_manifest("demo/app", r2::IMG1)
            .await
            .expect("delete")
    );
    assert_eq!(
        meta.list_tags("demo/app", &all).await.expect("tags"),
        Some(vec!["latest".into(), "v2".into()])
    );
}

#[tokio::test]
async fn reads_registry2_tree_in_memory() {
    reads_registry2_tree(memory().1).await;
}

#[tokio::test]
async fn reads_registry2_tree_on_disk() {
    let (_dir, store) = local();
    reads_registry2_tree(store).await;
}

/// The fixture's pushes, made through Berth's metadata the way the guest
/// makes them; manifest bytes go where the blob store would put them.
async fn push_like_registry2(store: &Store, meta: &LayoutMetadata) {
    for (digest, json) in r2::MANIFESTS {
        store
            .put(
                &super::blob_path(digest).expect("path"),
                json.as_bytes().to_vec().into(),
            )
            .await
            .expect("manifest bytes");
    }
    let upload = |n: u32| format!("00000000-0000-4000-8000-{n:012}");
    let blobs = |meta: &LayoutMetadata, n: u32, digests: [&'static str; 2]| {
        let meta = meta.clone();
        async move {
            for (i, digest) in digests.into_iter().enumerate() {
                let id = upload(n + i as u32);
                meta.begin_upload("demo/app", &id).await.expect("begin");
                meta.end_upload(&id).await.expect("end");
                meta.link_blob("demo/app", digest).await.expect("link");
            }
        }
    };
    blobs(meta, 1, [LAYER1, CONFIG1]).await;
    let img1 = info(r2::IMG1);
    let refs1 = [CONFIG1.to_owned(), LAYER1.to_owned()];
    meta.put_manifest("demo/app", &img1, &refs1, Some("v1"))
        .await
        .expect("v1");
    meta.put_manifest("demo/app", &img1, &refs1, Some("latest"))
        .await
        .expect("latest");
    blobs(meta, 3, [LAYER2, CONFIG2]).await;
    let img2 = info(r2::IMG2);
    let refs2 = [CONFIG2.to_owned(), LAYER2.to_owned()];
    meta.put_manifest("demo/app", &img2, &refs2, Some("v2"))
        .await
        .expect("v2");
    meta.put_manifest("demo/app", &img2, &refs2, Some("latest"))
        .await
        .expect("move latest");
    // The session registry:2 was left with; Berth's is outside its tree.
    meta.begin_upload("demo/app", &upload(5))
        .await
        .expect("left open");
    meta.link_blob("other/mounted", LAYER1)
        .await
        .expect("mount");
    let id = upload(6);
    meta.begin_upload("demo/app", &id).await.expect("begin");
    meta.end_upload(&id).await.expect("end");
    meta.link_blob("demo/app", EMPTY).await.expect("link {}");
    meta.put_manifest("demo/app", &info(r2::SIGNATURE), &[EMPTY.to_owned()], None)
        .await
        .expect("signature");
}

/// What registry:2 wrote, less its own upload sessions, plus Berth's
/// referrers entry for the signature.
fn expected_tree(listing: &str) -> BTreeMap<String, Vec<u8>> {
    let mut tree = parse_listing(listing);
    tree.retain(|path, _| !path.contains("/_uploads/"));
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    tree.insert(
        format!(
            "repositories/demo/app/_referrers/sha256/{}/sha256/{}/link",
            hex(r2::IMG2),
            hex(r2::SIGNATURE)
        ),
        r2::SIGNATURE.as_bytes().to_vec(),
    );
    tree
}

/// Same pushes, same files: registry:2 can serve what Berth wrote.
#[tokio::test]
async fn writes_what_registry2_writes() {
    let (dir, store) = local();
    let meta = LayoutMetadata::new(store.clone());
    push_like_registry2(&store, &meta).await;
    assert_eq!(
        repositories_tree(store.as_ref()).await,
        expected_tree(r2::PUSHED)
    );

    // Outside registry:2's tree: the marker of the repository the first
    // upload created, and the owner of the session left open.
    let mut berth: Vec<String> = store
        .list(Some(&Path::from("berth")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list");
    berth.sort();
    assert_eq!(
        berth,
        [
            "berth/repositories/demo/app/_created",
            "berth/upload-owners/00000000-0000-4000-8000-000000000005",
        ]
    );

    assert!(
        meta.delete_manifest("demo/app", r2::IMG1)
            .await
            .expect("delete")
    );
    assert_eq!(
        repositories_tree(store.as_ref()).await,
        expected_tree(r2::AFTER_DELETE)
    );
    // With automatic cleanup, no empty directory is left where the
    // revision and the tag were (registry:2 leaves the revision's).
    let app = dir
        .expect("dir")
        .path()
        .join("docker/registry/v2/repositories/demo/app");
    assert!(!app.join("_manifests/tags/v1").exists());
    assert!(
        !app.join("_manifests/revisions/sha256")
            .join(r2::IMG1.trim_start_matches("sha256:"))
            .exists()
    );
}

/// No caching: a second handle on the same store sees every change at once.
#[tokio::test]
async fn handles_share_nothing_but_the_store() {
    let store: Store = Arc::new(InMemory::new());
    let bytes = ManifestBytes::object_store(store.clone());
    let a = bytes.wrap(Box::new(LayoutMetadata::new(store.clone())));
    let b = bytes.wrap(Box::new(LayoutMetadata::new(store.clone())));
    let (m1, m2) = (c::manifest(1, None, None), c::manifest(2, None, None));
    a.put_manifest("r", &m1, &[], Some("t")).await.expect("put");
    assert_eq!(
        b.resolve_tag("r", "t").await.expect("resolve"),
        Some(m1.digest.clone())
    );
    b.put_manifest("r", &m2, &[], Some("t"))
        .await
        .expect("move");
    assert_eq!(
        a.resolve_tag("r", "t").await.expect("resolve"),
        Some(m2.digest.clone())
    );
    assert!(a.delete_tag("r", "t").await.expect("delete"));
    assert_eq!(b.resolve_tag("r", "t").await.expect("resolve"), None);
    a.begin_upload("r", "u1").await.expect("begin");
    assert!(matches!(
        b.begin_upload("s", "u1").await,
        Err(StorageError::Conflict(_))
    ));
}

/// The catalog walk against a plain sort, for every page size and start,
/// over names whose byte order differs from a depth-first walk's.
#[tokio::test]
async fn catalog_walk_matches_sorted_names() {
    let store: Store = Arc::new(InMemory::new());
    let meta = LayoutMetadata::new(store.clone());
    let names = [
        "a", "a-b", "a.b/c", "a/b", "a/b/c", "a/b-c", "a0", "b/x/y/z", "c", "z",
    ];
    for (i, name) in names.iter().enumerate() {
        let digest = format!("sha256:{i:02}");
        if i % 3 == 0 {
            meta.begin_upload(name, &format!("u{i}"))
                .await
                .expect("begin");
        } else {
            meta.link_blob(name, &digest).await.expect("link");
        }
        // What lists it: a manifest (its revision link is enough here).
        store
            .put(
                &v2(&format!(
                    "repositories/{name}/_manifests/revisions/sha256/aa/link"
                )),
                b"sha256:aa".to_vec().into(),
            )
            .await
            .expect("put");
    }
    // Exists, holds no manifest: not listed.
    meta.link_blob("b/blobs-only", "sha256:bb")
        .await
        .expect("link");
    // Not repositories: registry:2's upload leftovers, and anything below a
    // `_` directory.
    store
        .put(
            &v2("repositories/q/_uploads/x/startedat"),
            b"t".to_vec().into(),
        )
        .await
        .expect("put");
    store
        .put(
            &v2("repositories/c/_x/_layers/sha256/aa/link"),
            b"sha256:aa".to_vec().into(),
        )
        .await
        .expect("put");
    let mut want = names.to_vec();
    want.sort_unstable();
    let everything = meta
        .list_repositories(&Page::default())
        .await
        .expect("list");
    assert_eq!(everything, want);
    let starts = std::iter::once(None)
        .chain(want.iter().map(|n| Some(n.to_string())))
        .chain(["a/", "a/b/", "b", "zz", "0"].map(|s| Some(s.to_owned())));
    for last in starts {
        for n in 0..=want.len() as u32 + 1 {
            let page = Page {
                last: last.clone(),
                n: Some(n),
            };
            let expected: Vec<&str> = want
                .iter()
                .copied()
                .filter(|name| last.as_deref().is_none_or(|l| *name > l))
                .take(n as usize)
                .collect();
            assert_eq!(
                meta.list_repositories(&page).await.expect("page"),
                expected,
                "last={last:?} n={n}"
            );
        }
    }
}

/// Names that cannot be path segments: writes refuse them, reads find
/// nothing.
#[tokio::test]
async fn unstorable_names() {
    let store: Store = Arc::new(InMemory::new());
    let meta = LayoutMetadata::new(store.clone());
    let m = c::manifest(1, None, None);
    for repo in ["", "a/../b", "_manifests", "a//b", "a/_layers"] {
        assert!(
            matches!(
                meta.link_blob(repo, "sha256:aa").await,
                Err(StorageError::Invalid(_))
            ),
            "{repo:?}"
        );
        assert!(matches!(
            meta.put_manifest(repo, &m, &[], None).await,
            Err(StorageError::Invalid(_))
        ));
        assert!(matches!(
            meta.begin_upload(repo, "u").await,
            Err(StorageError::Invalid(_))
        ));
        assert!(!meta.blob_linked(repo, "sha256:aa").await.expect("linked"));
        assert_eq!(
            meta.list_tags(repo, &Page::default()).await.expect("tags"),
            None
        );
        assert_eq!(meta.get_manifest(repo, &m.digest).await.expect("get"), None);
    }
    for digest in ["", "sha256", "sha256:../x", "sha256:a/b", "../x:y"] {
        assert!(matches!(
            meta.link_blob("r", digest).await,
            Err(StorageError::Invalid(_))
        ));
        assert!(!meta.unlink_blob("r", digest).await.expect("unlink"));
        assert!(!meta.delete_manifest("r", digest).await.expect("delete"));
    }
    for tag in ["", ".", "..", "a/b", "-x"] {
        assert!(matches!(
            meta.put_manifest("r", &m, &[], Some(tag)).await,
            Err(StorageError::Invalid(_))
        ));
        assert_eq!(meta.resolve_tag("r", tag).await.expect("resolve"), None);
        assert!(!meta.delete_tag("r", tag).await.expect("delete"));
    }
    for id in ["", "..", "a/b"] {
        assert!(matches!(
            meta.begin_upload("r", id).await,
            Err(StorageError::Invalid(_))
        ));
        assert_eq!(meta.upload_repository(id).await.expect("owner"), None);
        meta.end_upload(id).await.expect("end");
    }
    let stored: Vec<_> = store.list(None).try_collect().await.expect("list");
    assert!(stored.is_empty(), "{stored:?}");
}

/// A marker only records what registry:2's layout cannot: a repository
/// created empty.
#[tokio::test]
async fn creation_marker_only_for_empty_repositories() {
    let store: Store = Arc::new(InMemory::new());
    let meta = LayoutMetadata::new(store.clone());
    meta.link_blob("full", "sha256:aa").await.expect("link");
    meta.begin_upload("full", "u1").await.expect("begin");
    meta.begin_upload("empty", "u2").await.expect("begin");
    let marker = |name: &str| Path::from(format!("berth/repositories/{name}/_created"));
    assert!(store.head(&marker("empty")).await.is_ok());
    assert!(store.head(&marker("full")).await.is_err());
    // Both exist; neither holds a manifest, so the catalog lists neither.
    for repo in ["empty", "full"] {
        assert!(
            meta.list_tags(repo, &Page::default())
                .await
                .expect("tags")
                .is_some()
        );
    }
    assert!(
        meta.list_repositories(&Page::default())
            .await
            .expect("list")
            .is_empty()
    );
}

/// Bytes behind a link that are not a manifest are an error, not a guess.
#[tokio::test]
async fn corrupt_manifest_bytes() {
    let store: Store = Arc::new(InMemory::new());
    let meta = LayoutMetadata::new(store.clone());
    let digest = "sha256:0badc0de";
    meta.put_manifest(
        "r",
        &ManifestInfo {
            digest: digest.into(),
            media_type: OCI_MANIFEST.into(),
            size: 3,
            artifact_type: None,
            subject: Some("sha256:5ub".into()),
            annotations: None,
        },
        &[],
        Some("t"),
    )
    .await
    .expect("put");
    // Linked, but the blob store never wrote the bytes.
    assert_eq!(meta.get_manifest("r", digest).await.expect("get"), None);
    store
        .put(
            &super::blob_path(digest).expect("path"),
            b"\x00\x01\x02".to_vec().into(),
        )
        .await
        .expect("put bytes");
    assert!(matches!(
        meta.get_manifest("r", digest).await,
        Err(StorageError::Backend(_))
    ));
    // A listing skips what it cannot read; deleting still works.
    assert!(
        meta.list_referrers("r", "sha256:5ub", None)
            .await
            .expect("referrers")
            .is_empty()
    );
    assert!(meta.delete_manifest("r", digest).await.expect("delete"));
    assert_eq!(meta.resolve_tag("r", "t").await.expect("resolve"), None);
}

/// registry:2 follows a link to the digest it names, which may differ from
/// the one in its path; so does Berth.
#[tokio::test]
async fn revision_link_is_followed() {
    let store: Store = Arc::new(InMemory::new());
    let meta = LayoutMetadata::new(store.clone());
    let (alias, target) = ("sha256:a11a5", r2::IMG1);
    let (_, json) = r2::MANIFESTS[0];
    store
        .put(
            &super::blob_path(target).expect("path"),
            json.as_bytes().to_vec().into(),
        )
        .await
        .expect("bytes");
    store
        .put(
            &v2("repositories/r/_manifests/revisions/sha256/a11a5/link"),
            target.as_bytes().to_vec().into(),
        )
        .await
        .expect("link");
    let got = meta
        .get_manifest("r", alias)
        .await
        .expect("get")
        .expect("found");
    assert_eq!((got.digest.as_str(), got.size), (alias, json.len() as u64));
}

/// The origin is one object under the repository's `_berth` directory,
/// which nothing else walks into: the catalog, fsck's and du's inventory
/// and the upload purge see the repository exactly as before.
#[tokio::test]
async fn origin_object_is_left_alone_by_the_walks() {
    let (_dir, store) = local_plain();
    let meta = suite_store(&store);
    let hub = "https://registry-1.docker.io";
    meta.put_manifest("demo/app", &c::manifest(1, None, None), &[], Some("v1"))
        .await
        .expect("put");
    meta.link_blob("demo/app", "sha256:0a").await.expect("link");
    let inventory = meta.inventory().expect("inventory");
    let references = inventory.references().await.expect("references");
    let usage = inventory.usage().await.expect("usage");
    meta.set_origin("demo/app", hub).await.expect("set");
    meta.set_origin("demo/app/nested", hub).await.expect("set");
    let key = Path::from("docker/registry/v2/repositories/demo/app/_berth/origin");
    let stored = store.get(&key).await.expect("origin object");
    assert_eq!(
        stored.bytes().await.expect("bytes").as_ref(),
        hub.as_bytes()
    );
    assert_eq!(
        inventory.references().await.expect("references"),
        references
    );
    let mut after = inventory.usage().await.expect("usage");
    // The nested repository exists (created empty, as by an upload), and
    // holds nothing.
    let nested = after.pop().expect("nested");
    assert_eq!(
        nested,
        crate::RepositoryUsage {
            name: "demo/app/nested".into(),
            ..Default::default()
        }
    );
    assert_eq!(after, usage);
    assert!(inventory.upload_ids().await.expect("uploads").is_empty());
    assert_eq!(
        meta.list_repositories(&Page::default())
            .await
            .expect("catalog"),
        ["demo/app"]
    );
}
