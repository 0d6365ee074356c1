//! The upstream registry a repository caches (pull-through cache), so that
//! pushes into it can be refused later, after a restart or on another host.
//! One small object per repository, `_berth/origin`, holding the URL: inside
//! the repository's directory, so it goes wherever the repository goes, and
//! under a `_` directory, which registry:2's walk and Berth's catalog and
//! inventory never descend into.

use super::names::Repo;
use super::{catalog, objects, paths};
use crate::{Result, StorageError};
use object_store::ObjectStore;

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
    objects::write(store, &paths::origin(repo), origin.as_bytes().to_vec()).await
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
