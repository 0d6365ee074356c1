//! Conformance tests for the upstream a repository caches
//! ([`MetadataStore::set_origin`], [`MetadataStore::origin`]): what lets a
//! pull-through cache refuse pushes into its repositories, also after a
//! restart.

use super::Reopen;
use super::metadata::manifest;
use crate::{MetadataStore, Page, StorageError};

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
