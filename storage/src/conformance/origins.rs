//! Conformance tests for the upstream a repository caches
//! ([`MetadataStore::set_origin`], [`MetadataStore::origin`]): what lets a
//! pull-through cache refuse pushes into its repositories, also after a
//! restart; and what lets it forget repositories nobody pulls
//! ([`MetadataStore::note_pulled`], [`MetadataStore::cached_repositories`],
//! [`MetadataStore::delete_repository`]).

use super::Reopen;
use super::metadata::manifest;
use crate::{CachedRepository, MetadataStore, Page, StorageError};
use std::time::{SystemTime, UNIX_EPOCH};

const HUB: &str = "https://registry-1.docker.io";
const QUAY: &str = "https://quay.io";

async fn origin(meta: &dyn MetadataStore, repo: &str) -> Option<String> {
    meta.origin(repo).await.expect("origin")
}

/// The catalog's names under `prefix`.
async fn listed(meta: &dyn MetadataStore, prefix: &str) -> Vec<String> {
    let all = meta
        .list_repositories(&Page::default())
        .await
        .expect("catalog");
    all.into_iter().filter(|r| r.starts_with(prefix)).collect()
}

/// Unknown repositories and repositories of their own have no origin.
pub async fn origin_none_by_default(meta: &dyn MetadataStore) {
    assert_eq!(origin(meta, "conf/origin/unknown").await, None);
    assert_eq!(origin(meta, "Not A Name").await, None);
    assert_eq!(origin(meta, "").await, None);
    let repo = "conf/origin/own";
    meta.link_blob(repo, "sha256:0a").await.expect("link");
    assert_eq!(origin(meta, repo).await, None);
    meta.put_manifest(repo, &manifest(60, None, None), &[], Some("v1"))
        .await
        .expect("put");
    assert_eq!(origin(meta, repo).await, None);
    meta.begin_upload("conf/origin/upload", "u-origin")
        .await
        .expect("begin");
    assert_eq!(origin(meta, "conf/origin/upload").await, None);
}

/// Set, read back, set again (idempotent), replace.
pub async fn origin_set_and_replace(meta: &dyn MetadataStore) {
    let repo = "conf/origin/cached";
    meta.set_origin(repo, HUB).await.expect("set");
    assert_eq!(origin(meta, repo).await.as_deref(), Some(HUB));
    meta.set_origin(repo, HUB).await.expect("set again");
    assert_eq!(origin(meta, repo).await.as_deref(), Some(HUB));
    meta.set_origin(repo, QUAY).await.expect("replace");
    assert_eq!(origin(meta, repo).await.as_deref(), Some(QUAY));
    // What cannot be stored is refused and changes nothing.
    assert!(matches!(
        meta.set_origin(repo, "").await,
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        meta.set_origin("", HUB).await,
        Err(StorageError::Invalid(_))
    ));
    assert_eq!(origin(meta, repo).await.as_deref(), Some(QUAY));
    assert_eq!(origin(meta, "").await, None);
}

/// `set_origin` creates the repository as a blob link does: it exists (an
/// empty tag list, not `None`) but is in the catalog only once it holds a
/// manifest; then it is listed like any other, under its own name only,
/// and keeps its origin. Content stored before the origin is kept.
pub async fn origin_and_catalog(meta: &dyn MetadataStore) {
    let prefix = "conf/origin-catalog/";
    let (cached, nested, filled) = (
        "conf/origin-catalog/a",
        "conf/origin-catalog/a/b",
        "conf/origin-catalog/filled",
    );
    assert_eq!(
        meta.list_tags(cached, &Page::default())
            .await
            .expect("tags"),
        None
    );
    meta.set_origin(cached, HUB).await.expect("set");
    assert_eq!(
        meta.list_tags(cached, &Page::default())
            .await
            .expect("tags"),
        Some(vec![]),
        "set_origin creates the repository"
    );
    assert!(
        listed(meta, prefix).await.is_empty(),
        "like a blob link, an origin alone does not list a repository"
    );
    let m = manifest(61, None, None);
    meta.put_manifest(cached, &m, &[], Some("latest"))
        .await
        .expect("put");
    meta.put_manifest(nested, &manifest(62, None, None), &[], Some("v1"))
        .await
        .expect("put nested");
    meta.set_origin(nested, QUAY).await.expect("set nested");
    assert_eq!(listed(meta, prefix).await, [cached, nested]);
    // A repository with content becomes a cache without losing it.
    meta.put_manifest(filled, &manifest(63, None, None), &[], Some("kept"))
        .await
        .expect("put");
    meta.set_origin(filled, HUB).await.expect("set on filled");
    assert_eq!(listed(meta, prefix).await, [cached, nested, filled]);
    assert_eq!(
        meta.list_tags(filled, &Page::default())
            .await
            .expect("tags"),
        Some(vec!["kept".to_string()])
    );
    assert_eq!(
        meta.resolve_tag(cached, "latest").await.expect("resolve"),
        Some(m.digest.clone())
    );
    assert_eq!(origin(meta, cached).await.as_deref(), Some(HUB));
    assert_eq!(origin(meta, nested).await.as_deref(), Some(QUAY));
    assert_eq!(origin(meta, filled).await.as_deref(), Some(HUB));
}

/// One repository's origin says nothing about another's, nested or not.
pub async fn origins_stay_apart(meta: &dyn MetadataStore) {
    let (a, ab) = ("conf/apart/a", "conf/apart/a/b");
    meta.set_origin(a, HUB).await.expect("set a");
    for other in [
        ab,
        "conf/apart",
        "conf/apart/ab",
        "conf/apart/a-b",
        "conf/apart/a/b/c",
    ] {
        assert_eq!(origin(meta, other).await, None, "{other}");
    }
    meta.link_blob(ab, "sha256:0b").await.expect("link a/b");
    assert_eq!(origin(meta, ab).await, None);
    meta.set_origin(ab, QUAY).await.expect("set a/b");
    assert_eq!(origin(meta, a).await.as_deref(), Some(HUB));
    assert_eq!(origin(meta, ab).await.as_deref(), Some(QUAY));
    // The other way round: the nested one first.
    let (c, cd) = ("conf/apart/c", "conf/apart/c/d");
    meta.set_origin(cd, HUB).await.expect("set c/d");
    assert_eq!(origin(meta, c).await, None);
    assert_eq!(
        meta.list_tags(c, &Page::default()).await.expect("tags"),
        None,
        "c/d's origin does not create c"
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// The cached repositories under `prefix`.
async fn cached_under(meta: &dyn MetadataStore, prefix: &str) -> Vec<CachedRepository> {
    let all = meta.cached_repositories().await.expect("cached");
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "cached repositories are sorted by name");
    all.into_iter()
        .filter(|c| c.name.starts_with(prefix))
        .collect()
}

fn cached(name: &str, origin: &str, pulled: u64) -> CachedRepository {
    CachedRepository {
        name: name.into(),
        origin: origin.into(),
        pulled,
    }
}

/// `set_origin` starts the pull time, `note_pulled` moves it, a later
/// `set_origin` keeps it; repositories of their own and unknown ones are
/// neither listed nor touched.
pub async fn pulls_and_cached_listing(meta: &dyn MetadataStore) {
    let prefix = "conf/pulls/";
    let (a, ab, own) = ("conf/pulls/a", "conf/pulls/a/b", "conf/pulls/own");
    meta.link_blob(own, "sha256:0d").await.expect("link own");
    meta.note_pulled(own, 5).await.expect("note own");
    meta.note_pulled("conf/pulls/unknown", 5)
        .await
        .expect("note unknown");
    meta.note_pulled("Not A Name", 5).await.expect("note bad");
    assert_eq!(
        origin(meta, own).await,
        None,
        "noting a pull sets no origin"
    );
    assert_eq!(
        meta.list_tags("conf/pulls/unknown", &Page::default())
            .await
            .expect("tags"),
        None,
        "noting a pull creates nothing"
    );
    assert!(cached_under(meta, prefix).await.is_empty());

    let before = unix_now();
    meta.set_origin(a, HUB).await.expect("set a");
    let after = unix_now();
    let listed = cached_under(meta, prefix).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].name.as_str(), listed[0].origin.as_str()),
        (a, HUB)
    );
    assert!(
        (before..=after).contains(&listed[0].pulled),
        "pulled {} is when set_origin marked it ({before}..={after})",
        listed[0].pulled
    );

    meta.note_pulled(a, 1000).await.expect("note a");
    assert_eq!(cached_under(meta, prefix).await, [cached(a, HUB, 1000)]);
    meta.set_origin(a, QUAY).await.expect("replace a");
    assert_eq!(
        cached_under(meta, prefix).await,
        [cached(a, QUAY, 1000)],
        "a later set_origin keeps the pull time"
    );
    meta.set_origin(ab, HUB).await.expect("set a/b");
    meta.note_pulled(ab, 2000).await.expect("note a/b");
    meta.note_pulled(a, 3000).await.expect("note a again");
    meta.note_pulled(own, 4000).await.expect("note own again");
    assert_eq!(
        cached_under(meta, prefix).await,
        [cached(a, QUAY, 3000), cached(ab, HUB, 2000)]
    );
    assert_eq!(origin(meta, own).await, None);
}

/// After `delete_repository(repo)`: no tag listing (`None`) and out of the
/// catalog, which under `prefix` is then `rest`. Stores that keep empty
/// directories (a local directory without cleanup; SeaweedFS) cannot drop
/// a repository's directories through the object-store API, and
/// registry:2's layout takes a repository's directory for the repository:
/// there a deleted one (`repo`, or one of `deleted` before it) may stay as
/// an empty shell, with no tag and no manifest. The stores without such
/// shells are held to the strict answer in their own tests.
async fn assert_gone(
    meta: &dyn MetadataStore,
    repo: &str,
    deleted: &[&str],
    prefix: &str,
    rest: &[&str],
) {
    let tags = meta.list_tags(repo, &Page::default()).await.expect("tags");
    assert!(
        tags.as_ref().is_none_or(Vec::is_empty),
        "{repo} keeps tags {tags:?}"
    );
    let mut catalog = Vec::new();
    for name in listed(meta, prefix).await {
        if !rest.contains(&name.as_str()) {
            let shell = meta
                .list_tags(&name, &Page::default())
                .await
                .expect("tags")
                .is_some_and(|t| t.is_empty());
            if shell && (name == repo || deleted.contains(&name.as_str())) {
                continue;
            }
        }
        catalog.push(name);
    }
    assert_eq!(catalog, rest);
}

/// `delete_repository` takes a repository's tags, manifests, links, origin,
/// pull time and upload sessions, answers false once it is gone, and
/// leaves `a/b` and `ab` alone when deleting `a`. The name can be used
/// afresh afterwards.
pub async fn delete_repository_whole(meta: &dyn MetadataStore) {
    let prefix = "conf/delrepo/";
    let (a, ab, sibling) = ("conf/delrepo/a", "conf/delrepo/a/b", "conf/delrepo/ab");
    let (layer, shared, other) = ("sha256:1a", "sha256:1b", "sha256:1c");
    let (m1, m3, m4) = (
        manifest(70, None, None),
        manifest(72, None, None),
        manifest(73, None, None),
    );
    let m2 = manifest(71, Some(&m1.digest), Some("application/x-sig"));

    meta.set_origin(a, HUB).await.expect("set a");
    for d in [layer, shared] {
        meta.link_blob(a, d).await.expect("link a");
    }
    meta.put_manifest(
        a,
        &m1,
        &[layer.to_string(), shared.to_string()],
        Some("latest"),
    )
    .await
    .expect("put m1");
    meta.put_manifest(a, &m1, &[layer.to_string(), shared.to_string()], Some("v1"))
        .await
        .expect("tag m1");
    meta.put_manifest(a, &m2, &[], None).await.expect("put m2");
    meta.begin_upload(a, "u-delrepo-a").await.expect("begin a");

    meta.set_origin(ab, QUAY).await.expect("set a/b");
    meta.link_blob(ab, shared).await.expect("link a/b");
    meta.put_manifest(ab, &m3, &[shared.to_string()], Some("v1"))
        .await
        .expect("put m3");
    meta.begin_upload(ab, "u-delrepo-ab")
        .await
        .expect("begin a/b");

    meta.link_blob(sibling, other).await.expect("link ab");
    meta.put_manifest(sibling, &m4, &[other.to_string()], Some("latest"))
        .await
        .expect("put m4");
    meta.note_pulled(a, 10).await.expect("note a");
    meta.note_pulled(ab, 20).await.expect("note a/b");

    assert!(meta.delete_repository(a).await.expect("delete a"));

    assert_gone(meta, a, &[], prefix, &[ab, sibling]).await;
    assert_eq!(meta.resolve_tag(a, "latest").await.expect("resolve"), None);
    for m in [&m1, &m2] {
        assert_eq!(
            meta.get_manifest(a, &m.digest).await.expect("get"),
            None,
            "{}",
            m.digest
        );
    }
    assert_eq!(
        meta.list_referrers(a, &m1.digest, None)
            .await
            .expect("referrers"),
        []
    );
    for d in [layer, shared] {
        assert!(!meta.blob_linked(a, d).await.expect("linked"), "{d}");
    }
    assert_eq!(origin(meta, a).await, None);
    assert_eq!(
        meta.upload_repository("u-delrepo-a")
            .await
            .expect("upload a"),
        None,
        "its upload sessions are forgotten"
    );
    assert_eq!(cached_under(meta, prefix).await, [cached(ab, QUAY, 20)]);

    // Its neighbours are whole.
    assert_eq!(
        meta.list_tags(ab, &Page::default()).await.expect("tags"),
        Some(vec!["v1".to_string()])
    );
    assert_eq!(
        meta.resolve_tag(ab, "v1").await.expect("resolve"),
        Some(m3.digest.clone())
    );
    assert!(
        meta.get_manifest(ab, &m3.digest)
            .await
            .expect("get")
            .is_some()
    );
    assert!(meta.blob_linked(ab, shared).await.expect("linked a/b"));
    assert_eq!(origin(meta, ab).await.as_deref(), Some(QUAY));
    assert_eq!(
        meta.upload_repository("u-delrepo-ab")
            .await
            .expect("upload a/b")
            .as_deref(),
        Some(ab)
    );
    assert_eq!(
        meta.resolve_tag(sibling, "latest").await.expect("resolve"),
        Some(m4.digest.clone())
    );
    assert!(meta.blob_linked(sibling, other).await.expect("linked ab"));

    assert!(
        !meta.delete_repository(a).await.expect("delete a again"),
        "nothing left to delete"
    );
    assert!(
        !meta
            .delete_repository("conf/delrepo/none")
            .await
            .expect("delete unknown")
    );
    assert!(!meta.delete_repository("").await.expect("delete empty"));
    assert!(
        !meta
            .delete_repository("Not A Name")
            .await
            .expect("delete bad")
    );

    // The name starts afresh: a new cache with a new pull time.
    let before = unix_now();
    meta.set_origin(a, QUAY).await.expect("set a again");
    assert_eq!(
        meta.list_tags(a, &Page::default()).await.expect("tags"),
        Some(vec![])
    );
    let caches = cached_under(meta, prefix).await;
    assert_eq!(caches.len(), 2, "{caches:?}");
    assert_eq!(
        (caches[0].name.as_str(), caches[0].origin.as_str()),
        (a, QUAY)
    );
    assert!(caches[0].pulled >= before, "{caches:?}");
    assert_eq!(caches[1], cached(ab, QUAY, 20));

    // A repository of its own is deleted the same way.
    assert!(meta.delete_repository(sibling).await.expect("delete ab"));
    assert!(!meta.blob_linked(sibling, other).await.expect("linked"));
    assert_eq!(
        meta.get_manifest(sibling, &m4.digest).await.expect("get"),
        None
    );
    assert_gone(meta, sibling, &[a], prefix, &[ab]).await;
}

/// Origins survive dropping and reopening the store.
pub async fn origin_persists(open: Reopen<'_, dyn MetadataStore>) {
    {
        let meta = open();
        meta.set_origin("conf/origin-persist", HUB)
            .await
            .expect("set");
        meta.link_blob("conf/origin-persist/own", "sha256:0c")
            .await
            .expect("link");
    }
    let meta = open();
    assert_eq!(
        origin(&*meta, "conf/origin-persist").await.as_deref(),
        Some(HUB)
    );
    assert_eq!(origin(&*meta, "conf/origin-persist/own").await, None);
}
