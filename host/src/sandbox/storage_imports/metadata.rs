//! `berth:registry/metadata` on a `MetadataStore`. Annotations cross the
//! WIT as sorted pairs; stores record them as JSON text.

use super::{StorageCtx, WitResult, wit};
use crate::backends::past_tombstones;
use crate::sandbox::bindings::berth::registry::metadata::{Host, ManifestInfo, Page};
use berth_oci::manifest::{annotations_from_json, annotations_to_json};
use berth_storage::StorageError;

fn from_wit_manifest(m: ManifestInfo) -> berth_storage::ManifestInfo {
    berth_storage::ManifestInfo {
        digest: m.digest,
        media_type: m.media_type,
        size: m.size,
        artifact_type: m.artifact_type,
        subject: m.subject,
        annotations: m.annotations.as_deref().map(annotations_to_json),
    }
}

fn to_wit_manifest(m: berth_storage::ManifestInfo) -> ManifestInfo {
    ManifestInfo {
        digest: m.digest,
        media_type: m.media_type,
        size: m.size,
        artifact_type: m.artifact_type,
        subject: m.subject,
        annotations: m.annotations.as_deref().and_then(annotations_from_json),
    }
}

fn from_wit_page(p: Page) -> berth_storage::Page {
    berth_storage::Page {
        last: p.last,
        n: p.n,
    }
}

impl Host for StorageCtx<'_> {
    /// The guest links a blob after committing it (this request pinned it)
    /// or to mount it from another repository. A mount waits for a
    /// collector's decision about a condemned blob; a blob nothing holds
    /// any more is a `conflict`, and the guest falls back to an upload.
    async fn link_blob(&mut self, repository: String, digest: String) -> WitResult<()> {
        let metadata = self.backends.metadata.as_ref();
        if self.pins.holds(&digest) {
            let linked = crate::metrics::timed(
                self.backends.drivers.metadata,
                "link_committed",
                metadata.link_committed(&repository, &digest, self.pins.request()),
            )
            .await;
            if linked.is_ok() {
                self.pins.note_released(&digest);
            }
            return wit(linked);
        }
        let mounted = past_tombstones(|| metadata.mount_blob(&repository, &digest)).await;
        wit(mounted.and_then(|held| {
            held.then_some(())
                .ok_or_else(|| StorageError::Conflict(format!("blob {digest} is no longer stored")))
        }))
    }

    async fn blob_linked(&mut self, repository: String, digest: String) -> WitResult<bool> {
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "blob_linked",
            self.backends.metadata.blob_linked(&repository, &digest),
        )
        .await)
    }

    async fn unlink_blob(&mut self, repository: String, digest: String) -> WitResult<bool> {
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "unlink_blob",
            self.backends.metadata.unlink_blob(&repository, &digest),
        )
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
        if !self.pins.holds(&manifest.digest) {
            return wit(crate::metrics::timed(
                self.backends.drivers.metadata,
                "put_manifest",
                metadata.put_manifest(&repository, &manifest, &references, tag.as_deref()),
            )
            .await);
        }
        let request = self.pins.request();
        let stored = crate::metrics::timed(
            self.backends.drivers.metadata,
            "put_manifest_committed",
            metadata.put_manifest_committed(
                &repository,
                &manifest,
                &references,
                tag.as_deref(),
                request,
            ),
        )
        .await;
        if stored.is_ok() {
            self.pins.note_released(&manifest.digest);
        }
        wit(stored)
    }

    async fn get_manifest(
        &mut self,
        repository: String,
        digest: String,
    ) -> WitResult<Option<ManifestInfo>> {
        let found = crate::metrics::timed(
            self.backends.drivers.metadata,
            "get_manifest",
            self.backends.metadata.get_manifest(&repository, &digest),
        )
        .await;
        wit(found.map(|m| m.map(to_wit_manifest)))
    }

    async fn resolve_tag(&mut self, repository: String, tag: String) -> WitResult<Option<String>> {
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "resolve_tag",
            self.backends.metadata.resolve_tag(&repository, &tag),
        )
        .await)
    }

    async fn delete_manifest(&mut self, repository: String, digest: String) -> WitResult<bool> {
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "delete_manifest",
            self.backends.metadata.delete_manifest(&repository, &digest),
        )
        .await)
    }

    async fn delete_tag(&mut self, repository: String, tag: String) -> WitResult<bool> {
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "delete_tag",
            self.backends.metadata.delete_tag(&repository, &tag),
        )
        .await)
    }

    async fn list_tags(
        &mut self,
        repository: String,
        page: Page,
    ) -> WitResult<Option<Vec<String>>> {
        let page = from_wit_page(page);
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "list_tags",
            self.backends.metadata.list_tags(&repository, &page),
        )
        .await)
    }

    async fn list_repositories(&mut self, page: Page) -> WitResult<Vec<String>> {
        let page = from_wit_page(page);
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "list_repositories",
            self.backends.metadata.list_repositories(&page),
        )
        .await)
    }

    async fn list_referrers(
        &mut self,
        repository: String,
        subject: String,
        artifact_type: Option<String>,
    ) -> WitResult<Vec<ManifestInfo>> {
        let metadata = &self.backends.metadata;
        let found = crate::metrics::timed(
            self.backends.drivers.metadata,
            "list_referrers",
            metadata.list_referrers(&repository, &subject, artifact_type.as_deref()),
        )
        .await;
        wit(found.map(|list| list.into_iter().map(to_wit_manifest).collect()))
    }

    async fn begin_upload(&mut self, repository: String, id: String) -> WitResult<()> {
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "begin_upload",
            self.backends.metadata.begin_upload(&repository, &id),
        )
        .await)
    }

    async fn upload_repository(&mut self, id: String) -> WitResult<Option<String>> {
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "upload_repository",
            self.backends.metadata.upload_repository(&id),
        )
        .await)
    }

    async fn end_upload(&mut self, id: String) -> WitResult<()> {
        wit(crate::metrics::timed(
            self.backends.drivers.metadata,
            "end_upload",
            self.backends.metadata.end_upload(&id),
        )
        .await)
    }
}
