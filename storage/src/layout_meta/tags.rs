//! Tags: `_manifests/tags/<tag>/current/link` is where a tag points, and
//! `index/` remembers every manifest it pointed at (registry:2's garbage
//! collector reads it; Berth only keeps it up to date).

use super::names::{Repo, Tag};
use super::{objects, paths};
use crate::Digest;
use crate::Result;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::ObjectStore;

/// Tags whose links are read at once when looking for those naming a
/// manifest: one request each, as registry:2's `Lookup` does.
const LOOKUP_CONCURRENCY: usize = 16;

/// Points `tag` at manifest `d` (spelled `digest`).
pub(super) async fn point(
    store: &dyn ObjectStore,
    repo: Repo<'_>,
    tag: Tag<'_>,
    d: &Digest,
) -> Result<()> {
    let digest = d.to_string();
    // registry:2's order: the index entry first, then the current link,
    // whose overwrite is the moment the tag moves.
    objects::write_link(store, &paths::tag_index_link(repo, tag, d), &digest).await?;
    objects::write_link(store, &paths::tag_current(repo, tag), &digest).await
}

/// The digest `tag` points at, or `None`.
pub(super) async fn resolve(
    store: &dyn ObjectStore,
    repo: Repo<'_>,
    tag: Tag<'_>,
) -> Result<Option<String>> {
    objects::read_link(store, &paths::tag_current(repo, tag)).await
}

/// The repository's tags in byte order: those with a current link.
///
/// registry:2 lists the directories under `_manifests/tags/` instead (one
/// request per thousand tags, where this also pages through the `index/`
/// entries), but some stores keep a directory after its last object is
/// deleted (SeaweedFS; a local directory without cleanup), so a deleted tag
/// would still be listed. The current links are the truth.
pub(super) async fn names(store: &dyn ObjectStore, repo: Repo<'_>) -> Result<Vec<String>> {
    let dir = paths::tags_dir(repo);
    let mut names: Vec<String> = objects::keys_under(store, &dir)
        .await?
        .iter()
        .filter_map(|key| paths::tag_of_current(&dir, key))
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// Deletes the tag's directory; `false` when the tag was not there (had no
/// current link). Leftover index entries are deleted either way.
pub(super) async fn remove(store: &dyn ObjectStore, repo: Repo<'_>, tag: Tag<'_>) -> Result<bool> {
    let current = paths::tag_current(repo, tag);
    let (currents, rest): (Vec<_>, Vec<_>) = objects::keys_under(store, &paths::tag_dir(repo, tag))
        .await?
        .into_iter()
        .partition(|key| *key == current);
    // The current link goes last: until then the tag still resolves, so a
    // crash midway leaves a working tag for a retry to delete, never one
    // listed but unresolvable.
    objects::delete_all(store, rest).await?;
    let existed = !currents.is_empty();
    if existed {
        objects::delete(store, &current).await?;
        tracing::debug!(
            repository = repo.as_str(),
            tag = tag.as_str(),
            "tag deleted"
        );
    }
    Ok(existed)
}

/// The tags whose current link names `digest`.
pub(super) async fn pointing_at(
    store: &dyn ObjectStore,
    repo: Repo<'_>,
    digest: &str,
) -> Result<Vec<String>> {
    let names = names(store, repo).await?;
    futures::stream::iter(names)
        .map(|name| async move {
            let target = match Tag::parse(&name) {
                Some(tag) => resolve(store, repo, tag).await?,
                None => None,
            };
            Ok::<_, crate::StorageError>((target.as_deref() == Some(digest)).then_some(name))
        })
        .buffered(LOOKUP_CONCURRENCY)
        .try_filter_map(|found| async move { Ok(found) })
        .try_collect()
        .await
}
