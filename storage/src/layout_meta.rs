//! Registry metadata kept in distribution's `registry:2` layout, on any
//! object store: Berth can serve an existing registry:2 directory or bucket
//! in place, and registry:2 can serve what Berth wrote.
//!
//! Every key is defined in `paths.rs`. Nothing is cached: several Berth
//! processes (and registry:2 itself) may share one bucket, and a tag moved
//! by one is seen by the others at once on a strongly consistent store
//! (S3, the local filesystem). Operations are sequences of object writes,
//! ordered so that a crash midway leaves nothing a reader could trip on; a
//! retry completes them. Repositories, tags and referrers are found by
//! listing, so their cost grows with their number, as in registry:2.
//! `berth fsck` and `berth du` list the whole tree at once (`inventory.rs`).
//! Empty directories left behind by deletes (a local directory; SeaweedFS)
//! are harmless: nothing is taken to exist from a directory alone but a
//! repository, as registry:2 does.

mod catalog;
mod inventory;
mod manifests;
mod names;
mod objects;
mod origins;
mod paths;
mod tags;
mod uploads;

#[cfg(test)]
mod registry2_fixture;

use crate::{
    CachedRepository, Digest, Inventory, ManifestInfo, MetadataStore, Page, Reference,
    RepositoryUsage, Result,
};
use async_trait::async_trait;
use names::{Repo, Tag};
use object_store::ObjectStore;
use std::sync::Arc;

/// Registry metadata as registry:2's link files in an object store.
#[derive(Clone, Debug)]
pub struct LayoutMetadata {
    store: Arc<dyn ObjectStore>,
}

impl LayoutMetadata {
    /// Metadata in `store`, whose root is registry:2's storage root (the
    /// directory or bucket prefix holding `docker/registry/v2`).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// Metadata in the local directory `root` (registry:2's filesystem
    /// `rootdirectory`), which must exist. Directories emptied by deletes
    /// are removed, so a repository whose every link was deleted is gone
    /// from the catalog.
    pub fn open_local(root: &std::path::Path) -> Result<Self> {
        let files = object_store::local::LocalFileSystem::new_with_prefix(root)?
            .with_automatic_cleanup(true);
        Ok(Self::new(Arc::new(files)))
    }

    fn store(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }
}

/// Where registry:2 keeps the bytes of blob (or manifest) `digest` in the
/// store; `None` for a digest that cannot be stored.
#[cfg(any(test, feature = "conformance"))]
pub(crate) fn blob_path(digest: &str) -> Option<object_store::path::Path> {
    Digest::parse_any(digest).ok().map(|d| paths::blob_data(&d))
}

/// The part of sorted `items` that `page` asks for.
fn paginate(items: Vec<String>, page: &Page) -> Vec<String> {
    let last = page.last.as_deref().unwrap_or("");
    let limit = page.n.map_or(usize::MAX, |n| n as usize);
    items
        .into_iter()
        .filter(|item| item.as_str() > last)
        .take(limit)
        .collect()
}

#[async_trait]
impl MetadataStore for LayoutMetadata {
    async fn link_blob(&self, repo: &str, digest: &str) -> Result<()> {
        let (repo, d) = (names::repo(repo)?, names::digest(digest)?);
        objects::write_link(self.store(), &paths::layer_link(repo, &d), digest).await
    }

    async fn blob_linked(&self, repo: &str, digest: &str) -> Result<bool> {
        let (Some(repo), Some(d)) = (Repo::parse(repo), Digest::parse_any(digest).ok()) else {
            return Ok(false);
        };
        objects::exists(self.store(), &paths::layer_link(repo, &d)).await
    }

    async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        let (Some(repo), Some(d)) = (Repo::parse(repo), Digest::parse_any(digest).ok()) else {
            return Ok(false);
        };
        let link = paths::layer_link(repo, &d);
        // S3 does not say whether a delete removed anything, hence the look
        // first; two hosts unlinking at once may both answer true.
        if !objects::exists(self.store(), &link).await? {
            return Ok(false);
        }
        objects::delete(self.store(), &link).await?;
        Ok(true)
    }

    /// `references` are not stored: registry:2 (and its garbage collector)
    /// read them from the manifest's bytes when needed.
    async fn put_manifest(
        &self,
        repo: &str,
        manifest: &ManifestInfo,
        _references: &[String],
        tag: Option<&str>,
    ) -> Result<()> {
        let repo = names::repo(repo)?;
        let tag = tag.map(names::tag).transpose()?;
        manifests::put(self.store(), repo, manifest, tag).await
    }

    async fn get_manifest(&self, repo: &str, digest: &str) -> Result<Option<ManifestInfo>> {
        let Some(repo) = Repo::parse(repo) else {
            return Ok(None);
        };
        manifests::get(self.store(), repo, digest).await
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<String>> {
        let (Some(repo), Some(tag)) = (Repo::parse(repo), Tag::parse(tag)) else {
            return Ok(None);
        };
        tags::resolve(self.store(), repo, tag).await
    }

    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool> {
        let Some(repo) = Repo::parse(repo) else {
            return Ok(false);
        };
        manifests::delete(self.store(), repo, digest).await
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        let (Some(repo), Some(tag)) = (Repo::parse(repo), Tag::parse(tag)) else {
            return Ok(false);
        };
        tags::remove(self.store(), repo, tag).await
    }

    async fn list_tags(&self, repo: &str, page: &Page) -> Result<Option<Vec<String>>> {
        let Some(repo) = Repo::parse(repo) else {
            return Ok(None);
        };
        let names = tags::names(self.store(), repo).await?;
        // Only a repository without tags needs the second look.
        if names.is_empty() && !catalog::exists(self.store(), repo).await? {
            return Ok(None);
        }
        Ok(Some(paginate(names, page)))
    }

    async fn list_repositories(&self, page: &Page) -> Result<Vec<String>> {
        catalog::list(self.store(), page).await
    }

    async fn list_referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestInfo>> {
        let Some(repo) = Repo::parse(repo) else {
            return Ok(Vec::new());
        };
        manifests::referrers(self.store(), repo, subject, artifact_type).await
    }

    async fn begin_upload(&self, repo: &str, id: &str) -> Result<()> {
        uploads::begin(self.store(), names::repo(repo)?, id).await
    }

    async fn upload_repository(&self, id: &str) -> Result<Option<String>> {
        uploads::owner(self.store(), id).await
    }

    async fn end_upload(&self, id: &str) -> Result<()> {
        uploads::end(self.store(), id).await
    }

    async fn set_origin(&self, repo: &str, origin: &str) -> Result<()> {
        origins::set(self.store(), names::repo(repo)?, origin).await
    }

    async fn origin(&self, repo: &str) -> Result<Option<String>> {
        let Some(repo) = Repo::parse(repo) else {
            return Ok(None);
        };
        origins::get(self.store(), repo).await
    }

    async fn note_pulled(&self, repo: &str, now: u64) -> Result<()> {
        let Some(repo) = Repo::parse(repo) else {
            return Ok(());
        };
        origins::note_pulled(self.store(), repo, now).await
    }

    async fn cached_repositories(&self) -> Result<Vec<CachedRepository>> {
        origins::cached(self.store()).await
    }

    async fn delete_repository(&self, repo: &str) -> Result<bool> {
        let Some(repo) = Repo::parse(repo) else {
            return Ok(false);
        };
        origins::delete_repository(self.store(), repo).await
    }

    fn inventory(&self) -> Option<&dyn Inventory> {
        Some(self)
    }
}

/// The tree listed whole (`inventory.rs`); repairs go through the same
/// deletes a client's requests take.
#[async_trait]
impl Inventory for LayoutMetadata {
    async fn references(&self) -> Result<Vec<Reference>> {
        Ok(inventory::walk(self.store()).await?.references())
    }

    async fn drop_reference(&self, reference: &Reference) -> Result<()> {
        match reference {
            Reference::Link { repo, digest } => {
                self.unlink_blob(repo, digest).await?;
            }
            Reference::Manifest { repo, digest }
            | Reference::Ref {
                repo,
                manifest: digest,
                ..
            } => {
                self.delete_manifest(repo, digest).await?;
            }
            Reference::Tag { repo, tag, .. } => {
                self.delete_tag(repo, tag).await?;
            }
        }
        Ok(())
    }

    async fn usage(&self) -> Result<Vec<RepositoryUsage>> {
        Ok(inventory::walk(self.store()).await?.usage())
    }

    async fn upload_ids(&self) -> Result<Vec<String>> {
        uploads::ids(self.store()).await
    }
}

#[cfg(test)]
mod tests;
