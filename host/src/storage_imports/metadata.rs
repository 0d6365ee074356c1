//! `berth:registry/metadata` on a `MetadataStore`.

use super::{StorageCtx, WitResult, wit};
use crate::bindings::berth::registry::metadata::{Host, ManifestInfo, Page};

fn from_wit_manifest(m: ManifestInfo) -> berth_storage::ManifestInfo {
    berth_storage::ManifestInfo {
        digest: m.digest,
        media_type: m.media_type,
        size: m.size,
        artifact_type: m.artifact_type,
        subject: m.subject,
        annotations: m.annotations,
    }
}

fn to_wit_manifest(m: berth_storage::ManifestInfo) -> ManifestInfo {
    ManifestInfo {
        digest: m.digest,
        media_type: m.media_type,
        size: m.size,
        artifact_type: m.artifact_type,
        subject: m.subject,
        annotations: m.annotations,
    }
}

fn from_wit_page(p: Page) -> berth_storage::Page {
    berth_storage::Page {
        last: p.last,
        n: p.n,
    }
}

impl Host for StorageCtx<'_> {
    async fn link_blob(&mut self, repository: String, digest: String) -> WitResult<()> {
        wit(self.backends.metadata.link_blob(&repository, &digest).await)
    }

    async fn blob_linked(&mut self, repository: String, digest: String) -> WitResult<bool> {
        wit(self
            .backends
            .metadata
            .blob_linked(&repository, &digest)
            .await)
    }

    async fn unlink_blob(&mut self, repository: String, digest: String) -> WitResult<bool> {
        wit(self
            .backends
            .metadata
            .unlink_blob(&repository, &digest)
            .await)
    }

    async fn put_manifest(
        &mut self,
        repository: String,
        manifest: ManifestInfo,
        references: Vec<String>,
        tag: Option<String>,
    ) -> WitResult<()> {
        let manifest = from_wit_manifest(manifest);
        let metadata = &self.backends.metadata;
        wit(metadata
            .put_manifest(&repository, &manifest, &references, tag.as_deref())
            .await)
    }

    async fn get_manifest(
        &mut self,
        repository: String,
        digest: String,
    ) -> WitResult<Option<ManifestInfo>> {
        let found = self
            .backends
            .metadata
            .get_manifest(&repository, &digest)
            .await;
        wit(found.map(|m| m.map(to_wit_manifest)))
    }

    async fn resolve_tag(&mut self, repository: String, tag: String) -> WitResult<Option<String>> {
        wit(self.backends.metadata.resolve_tag(&repository, &tag).await)
    }

    async fn delete_manifest(&mut self, repository: String, digest: String) -> WitResult<bool> {
        wit(self
            .backends
            .metadata
            .delete_manifest(&repository, &digest)
            .await)
    }

    async fn delete_tag(&mut self, repository: String, tag: String) -> WitResult<bool> {
        wit(self.backends.metadata.delete_tag(&repository, &tag).await)
    }

    async fn list_tags(
        &mut self,
        repository: String,
        page: Page,
    ) -> WitResult<Option<Vec<String>>> {
        let page = from_wit_page(page);
        wit(self.backends.metadata.list_tags(&repository, &page).await)
    }

    async fn list_repositories(&mut self, page: Page) -> WitResult<Vec<String>> {
        let page = from_wit_page(page);
        wit(self.backends.metadata.list_repositories(&page).await)
    }

    async fn list_referrers(
        &mut self,
        repository: String,
        subject: String,
        artifact_type: Option<String>,
    ) -> WitResult<Vec<ManifestInfo>> {
        let metadata = &self.backends.metadata;
        let found = metadata
            .list_referrers(&repository, &subject, artifact_type.as_deref())
            .await;
        wit(found.map(|list| list.into_iter().map(to_wit_manifest).collect()))
    }

    async fn begin_upload(&mut self, repository: String, id: String) -> WitResult<()> {
        wit(self.backends.metadata.begin_upload(&repository, &id).await)
    }

    async fn upload_repository(&mut self, id: String) -> WitResult<Option<String>> {
        wit(self.backends.metadata.upload_repository(&id).await)
    }

    async fn end_upload(&mut self, id: String) -> WitResult<()> {
        wit(self.backends.metadata.end_upload(&id).await)
    }
}
