//! Upload sessions' owners, kept outside registry:2's tree (registry:2 has
//! its own `_uploads` per repository, which Berth's blob stores do not use).

use super::names::{self, Repo};
use super::{catalog, objects, paths};
use crate::{Result, StorageError};
use object_store::ObjectStore;

/// A repository name is far shorter; anything longer is not ours.
const MAX_OWNER: u64 = 4096;

/// Records that session `id` belongs to `repo`, and makes sure `repo`
/// exists from now on.
pub(super) async fn begin(store: &dyn ObjectStore, repo: Repo<'_>, id: &str) -> Result<()> {
    if !names::is_upload_id(id) {
        return Err(names::invalid("upload id", id));
    }
    let owner = paths::upload_owner(id);
    // Create-once, so two hosts cannot both claim a session for different
    // repositories.
    if !objects::create(store, &owner, repo.as_str().as_bytes().to_vec()).await? {
        let current = objects::read(store, &owner, MAX_OWNER).await?;
        // Beginning twice for the same repository is harmless; taking over
        // another repository's session (or one just ended) is not.
        if current.as_deref() != Some(repo.as_str().as_bytes()) {
            return Err(StorageError::Conflict(format!(
                "upload {id} belongs to another repository"
            )));
        }
    }
    // registry:2's layout has no empty repository; a marker outside its tree
    // records one, so the tree stays exactly what registry:2 would write.
    if !catalog::has_registry_content(store, repo).await? {
        objects::create(store, &paths::repo_marker(repo), Vec::new()).await?;
    }
    Ok(())
}

/// The repository session `id` belongs to, or `None`.
pub(super) async fn owner(store: &dyn ObjectStore, id: &str) -> Result<Option<String>> {
    if !names::is_upload_id(id) {
        return Ok(None);
    }
    let Some(bytes) = objects::read(store, &paths::upload_owner(id), MAX_OWNER).await? else {
        return Ok(None);
    };
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| StorageError::Backend(format!("owner of upload {id} is not text")))
}

/// Every session with an owner record, in id order.
pub(super) async fn ids(store: &dyn ObjectStore) -> Result<Vec<String>> {
    let dir = paths::upload_owners_dir();
    let mut ids: Vec<String> = objects::keys_under(store, &dir)
        .await?
        .iter()
        .filter_map(|key| paths::upload_of_owner(&dir, key))
        .filter(|id| names::is_upload_id(id))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Forgets session `id`; idempotent.
pub(super) async fn end(store: &dyn ObjectStore, id: &str) -> Result<()> {
    if !names::is_upload_id(id) {
        return Ok(());
    }
    objects::delete(store, &paths::upload_owner(id)).await
}
