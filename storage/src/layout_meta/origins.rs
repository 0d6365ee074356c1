//! The upstream registry a repository caches (pull-through cache), so that
//! pushes into it can be refused later, after a restart or on another host.
//! One small object per repository, `_berth/origin`, holding the URL: inside
//! the repository's directory, so it goes wherever the repository goes, and
//! under a `_` directory, which registry:2's walk and Berth's catalog and
//! inventory never descend into.
//!
//! Beside it, `_berth/pulled` holds when the cache was last pulled (decimal
//! unix seconds), for evicting repositories nobody pulls. Caches marked
//! before pull times were kept have none; their origin object's
//! modification time stands in.

use super::names::{self, Repo};
use super::{catalog, objects, paths, uploads};
use crate::{CachedRepository, Result, StorageError};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};
use std::time::{SystemTime, UNIX_EPOCH};

/// Berth's own directory inside a repository's.
const BERTH_DIR: &str = "_berth";
/// Decimal seconds are far shorter.
const MAX_PULLED: u64 = 64;

/// An upstream URL is far shorter; anything longer is not ours.
const MAX_ORIGIN: usize = 4096;

/// Records `origin` as `repo`'s upstream, replacing any previous one, and
/// makes sure `repo` exists from now on (as a blob link would).
pub(super) async fn set(store: &dyn ObjectStore, repo: Repo<'_>, origin: &str) -> Result<()> {
    if origin.is_empty() || origin.len() > MAX_ORIGIN {
        return Err(StorageError::Invalid(format!(
            "invalid origin of {}: empty or over {MAX_ORIGIN} bytes",
            repo.as_str()
        )));
    }
    // The repository first: a crash between the two leaves an empty
    // repository of its own, which a retry completes.
    if !catalog::has_registry_content(store, repo).await? {
        objects::create(store, &paths::repo_marker(repo), Vec::new()).await?;
    }
    // A repository becoming a cache counts as pulled now; one that already
    // was keeps its time. Written before the origin: a crash between the
    // two leaves a pull time nothing lists, which the retry rewrites.
    let had_origin = objects::exists(store, &paths::origin(repo)).await?;
    if !had_origin || !objects::exists(store, &pulled_path(repo)).await? {
        write_pulled(store, repo, unix_now()).await?;
    }
    objects::write(store, &paths::origin(repo), origin.as_bytes().to_vec()).await
}

/// `repositories/<name>/_berth/pulled`.
fn pulled_path(repo: Repo<'_>) -> Path {
    paths::repo_dir(repo).join(BERTH_DIR).join("pulled")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn write_pulled(store: &dyn ObjectStore, repo: Repo<'_>, now: u64) -> Result<()> {
    objects::write(store, &pulled_path(repo), now.to_string().into_bytes()).await
}

/// Records that cached `repo` was pulled at `now`: a look at the origin and
/// one write. Nothing for a repository without an origin. Racing a
/// `delete_repository`, it may leave a lone pull time behind, which nothing
/// lists and the next `set_origin` overwrites.
pub(super) async fn note_pulled(store: &dyn ObjectStore, repo: Repo<'_>, now: u64) -> Result<()> {
    if objects::exists(store, &paths::origin(repo)).await? {
        write_pulled(store, repo, now).await?;
    }
    Ok(())
}

/// When cached `repo` was last pulled: its pull time, or (a cache marked
/// before pull times were kept, or an unreadable one) when its origin was
/// written.
async fn pulled(store: &dyn ObjectStore, repo: Repo<'_>) -> Result<u64> {
    let path = pulled_path(repo);
    if let Some(bytes) = objects::read(store, &path, MAX_PULLED).await? {
        match std::str::from_utf8(&bytes).map(|t| t.trim().parse::<u64>()) {
            Ok(Ok(secs)) => return Ok(secs),
            _ => tracing::warn!(%path, "pull time is not decimal seconds; using the origin's"),
        }
    }
    match store.head(&paths::origin(repo)).await {
        Ok(meta) => Ok(u64::try_from(meta.last_modified.timestamp()).unwrap_or(0)),
        Err(object_store::Error::NotFound { .. }) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Every repository with an origin, by name. The catalog's directory walk,
/// whole: one listing (by delimiter) per directory under
/// `repositories/` that is a repository or a namespace of one, plus, per
/// cached repository, a read of its origin and of its pull time. It lists
/// no link, so its cost follows the number of repositories, not their
/// contents.
pub(super) async fn cached(store: &dyn ObjectStore) -> Result<Vec<CachedRepository>> {
    let mut found = Vec::new();
    let mut pending: Vec<String> = objects::child_dirs(store, &paths::repositories_root())
        .await?
        .into_iter()
        .filter(|c| names::is_component(c))
        .collect();
    while let Some(name) = pending.pop() {
        let Some(repo) = Repo::parse(&name) else {
            continue;
        };
        let children = objects::child_dirs(store, &paths::repo_dir(repo)).await?;
        for child in children.iter().filter(|c| names::is_component(c)) {
            pending.push(format!("{name}/{child}"));
        }
        if !children.iter().any(|c| c == BERTH_DIR) {
            continue;
        }
        if let Some(origin) = get(store, repo).await? {
            let pulled = pulled(store, repo).await?;
            found.push(CachedRepository {
                name: name.clone(),
                origin,
                pulled,
            });
        }
    }
    found.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Removes every object of `repo`: everything under its directory's `_`
/// sub-directories (registry:2's `_layers`, `_manifests`, `_uploads`,
/// Berth's `_referrers` and `_berth`), never a nested repository's
/// directory; its creation marker; and the owner records of its upload
/// sessions. Blob bytes stay (registry:2's collector, or fsck, deals with
/// them). `false` when it had no object to remove. Directories cannot be
/// removed through the object-store API: a local directory cleans up after
/// itself (`open_local`), S3 has none, but on SeaweedFS (or a local
/// directory without cleanup) the emptied `_manifests` and `_layers` stay,
/// and registry:2's layout takes them for an empty repository, still
/// in the catalog.
///
/// Not atomic: tags go first, so a reader never follows a tag to a
/// manifest already gone, and the origin last, so a delete cut short is
/// still listed as a cache and a retry finishes it. A push into the
/// repository while it is deleted may keep what it wrote after the
/// listing. Costs one listing per `_` directory, one bulk delete each, a
/// listing of all upload owner records and a read per record.
pub(super) async fn delete_repository(store: &dyn ObjectStore, repo: Repo<'_>) -> Result<bool> {
    // Existence by objects, not directories: on stores that keep empty
    // directories a deleted repository's stay behind, and deleting it
    // again still finds nothing.
    let mut existed = false;
    let dir = paths::repo_dir(repo);
    let own: Vec<String> = objects::child_dirs(store, &dir)
        .await?
        .into_iter()
        .filter(|c| c.starts_with('_'))
        .collect();
    let tags = objects::keys_under(store, &paths::tags_dir(repo)).await?;
    existed |= !tags.is_empty();
    objects::delete_all(store, tags).await?;
    for child in own.iter().filter(|c| *c != BERTH_DIR) {
        let keys = objects::keys_under(store, &dir.clone().join(child.as_str())).await?;
        existed |= !keys.is_empty();
        objects::delete_all(store, keys).await?;
    }
    for id in uploads::ids(store).await? {
        if uploads::owner(store, &id).await?.as_deref() == Some(repo.as_str()) {
            existed = true;
            uploads::end(store, &id).await?;
        }
    }
    let marker = paths::repo_marker(repo);
    if objects::exists(store, &marker).await? {
        existed = true;
        objects::delete(store, &marker).await?;
    }
    let berth = objects::keys_under(store, &dir.clone().join(BERTH_DIR)).await?;
    existed |= !berth.is_empty();
    objects::delete_all(store, berth).await?;
    Ok(existed)
}

/// `repo`'s upstream, or `None` for a repository of its own (or none).
pub(super) async fn get(store: &dyn ObjectStore, repo: Repo<'_>) -> Result<Option<String>> {
    let path = paths::origin(repo);
    let Some(bytes) = objects::read(store, &path, MAX_ORIGIN as u64).await? else {
        return Ok(None);
    };
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| StorageError::Backend(format!("{path} is not text")))
}

#[cfg(test)]
mod tests {
    use super::super::LayoutMetadata;
    use crate::conformance::{ManifestBytes, manifest};
    use crate::{MetadataStore, Page};
    use object_store::local::LocalFileSystem;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt as _};
    use std::sync::Arc;

    /// Every key in the store, sorted.
    async fn keys(store: &dyn ObjectStore) -> Vec<String> {
        let mut keys: Vec<String> = super::objects::keys_under(store, &Path::from(""))
            .await
            .expect("keys")
            .iter()
            .map(|k| k.to_string())
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Where no empty directory stays behind (memory, S3, a local
    /// directory with cleanup), a deleted repository is gone for good, its
    /// objects and only its own with it; blob bytes stay for registry:2's
    /// collector.
    async fn deletes_every_object_of_the_repository(store: Arc<dyn ObjectStore>) {
        let meta = ManifestBytes::object_store(store.clone())
            .wrap(Box::new(LayoutMetadata::new(store.clone())));
        let hub = "https://registry-1.docker.io";
        let (m1, m2) = (manifest(1, None, None), manifest(2, None, None));
        for repo in ["a", "a/b", "ab"] {
            meta.link_blob(repo, "sha256:0a").await.expect("link");
            meta.put_manifest(repo, &m1, &["sha256:0a".into()], Some("v1"))
                .await
                .expect("put");
        }
        let before = keys(store.as_ref()).await;
        meta.set_origin("a", hub).await.expect("origin");
        meta.note_pulled("a", 7).await.expect("note");
        meta.put_manifest("a", &m2, &[], Some("v2"))
            .await
            .expect("put m2");
        meta.begin_upload("a", "u-a").await.expect("begin");
        let pulled = Path::from("docker/registry/v2/repositories/a/_berth/pulled");
        let stored = store.get(&pulled).await.expect("pull time").bytes().await;
        assert_eq!(stored.expect("bytes").as_ref(), b"7");

        assert!(meta.delete_repository("a").await.expect("delete"));
        let after = keys(store.as_ref()).await;
        let gone: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
        assert!(
            gone.iter()
                .all(|k| k.starts_with("docker/registry/v2/repositories/a/_")),
            "{gone:?}"
        );
        for key in &after {
            assert!(
                !key.starts_with("docker/registry/v2/repositories/a/_"),
                "{key} left behind"
            );
            assert!(!key.starts_with("berth/upload-owners/"), "{key}");
        }
        for repo in ["a/b", "ab"] {
            assert_eq!(
                meta.resolve_tag(repo, "v1").await.expect("resolve"),
                Some(m1.digest.clone()),
                "{repo} is kept"
            );
        }
        assert_eq!(
            meta.list_tags("a", &Page::default()).await.expect("tags"),
            None
        );
        assert_eq!(
            meta.list_repositories(&Page::default())
                .await
                .expect("catalog"),
            ["a/b", "ab"]
        );
        assert!(meta.cached_repositories().await.expect("cached").is_empty());
        assert!(!meta.delete_repository("a").await.expect("again"));
    }

    #[tokio::test]
    async fn deletes_in_memory() {
        deletes_every_object_of_the_repository(Arc::new(InMemory::new())).await;
    }

    #[tokio::test]
    async fn deletes_in_a_local_directory() {
        let dir = tempfile::TempDir::new().expect("tempdir");
        let files = LocalFileSystem::new_with_prefix(dir.path())
            .expect("local store")
            .with_automatic_cleanup(true);
        deletes_every_object_of_the_repository(Arc::new(files)).await;
    }

    /// A cache marked before pull times were kept counts as pulled when its
    /// origin was written.
    #[tokio::test]
    async fn a_cache_without_a_pull_time_uses_its_origins() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let meta = LayoutMetadata::new(store.clone());
        meta.set_origin("old", "https://quay.io")
            .await
            .expect("set");
        let pulled = Path::from("docker/registry/v2/repositories/old/_berth/pulled");
        store.delete(&pulled).await.expect("drop the pull time");
        let origin = Path::from("docker/registry/v2/repositories/old/_berth/origin");
        let written = store.head(&origin).await.expect("head").last_modified;
        let cached = meta.cached_repositories().await.expect("cached");
        assert_eq!(cached.len(), 1);
        assert_eq!(
            cached[0].pulled,
            u64::try_from(written.timestamp()).expect("time")
        );
        // set_origin again fills the pull time in.
        meta.set_origin("old", "https://quay.io")
            .await
            .expect("again");
        assert!(store.head(&pulled).await.is_ok());
    }
}
