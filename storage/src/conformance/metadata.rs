//! Conformance tests for [`MetadataStore`] backends.

use super::{Reopen, digest_of};
use crate::{ManifestInfo, MetadataStore, Page, StorageError};

/// A manifest record for tests; `n` makes a distinct digest.
pub fn manifest(n: u32, subject: Option<&str>, artifact_type: Option<&str>) -> ManifestInfo {
    ManifestInfo {
        digest: digest_of(format!("manifest {n}").as_bytes()).to_string(),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        size: 100 + u64::from(n),
        artifact_type: artifact_type.map(Into::into),
        subject: subject.map(Into::into),
        annotations: Some(format!("{{\"n\":\"{n}\"}}")),
    }
}

fn page(last: Option<&str>, n: Option<u32>) -> Page {
    Page {
        last: last.map(Into::into),
        n,
    }
}

/// Blob links per repository.
pub async fn blob_links(meta: &dyn MetadataStore) {
    let (repo, d) = ("conf/links", "sha256:aa");
    assert!(!meta.blob_linked(repo, d).await.expect("linked"));
    meta.link_blob(repo, d).await.expect("link");
    meta.link_blob(repo, d).await.expect("link twice");
    assert!(meta.blob_linked(repo, d).await.expect("linked"));
    assert!(
        !meta
            .blob_linked("conf/other", d)
            .await
            .expect("linked elsewhere")
    );
    assert!(meta.unlink_blob(repo, d).await.expect("unlink"));
    assert!(!meta.unlink_blob(repo, d).await.expect("unlink again"));
    assert!(!meta.blob_linked(repo, d).await.expect("linked"));
    assert!(
        !meta
            .unlink_blob("conf/nowhere", d)
            .await
            .expect("unlink unknown repo")
    );
}

/// Tags are listed in byte order, paginated strictly after `last`.
pub async fn tags_pagination(meta: &dyn MetadataStore) {
    let repo = "conf/tags";
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("list"),
        None
    );
    let m = manifest(1, None, None);
    // Inserted out of order; "B" < "a" < "a-b" < "a.b" < "b" < "v10" < "v2" in byte order.
    for tag in ["v2", "a.b", "B", "v10", "a", "b", "a-b"] {
        meta.put_manifest(repo, &m, &[], Some(tag))
            .await
            .expect("put");
    }
    let all = ["B", "a", "a-b", "a.b", "b", "v10", "v2"];
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("list"),
        Some(all.map(String::from).to_vec())
    );
    let cases: [(Option<&str>, Option<u32>, &[&str]); 7] = [
        (None, Some(2), &["B", "a"]),
        (Some("a"), Some(2), &["a-b", "a.b"]),
        (Some("a.b"), None, &["b", "v10", "v2"]),
        (Some("v2"), Some(5), &[]),
        (Some("c"), Some(1), &["v10"]),
        (None, Some(0), &[]),
        (Some(""), Some(100), &all),
    ];
    for (last, n, want) in cases {
        let got = meta
            .list_tags(repo, &page(last, n))
            .await
            .expect("list page");
        assert_eq!(
            got,
            Some(want.iter().map(|s| s.to_string()).collect()),
            "last={last:?} n={n:?}"
        );
    }
    // Walking page by page visits every tag once.
    let (mut seen, mut last) = (Vec::new(), None::<String>);
    loop {
        let got = meta
            .list_tags(repo, &page(last.as_deref(), Some(3)))
            .await
            .expect("list")
            .expect("repo");
        if got.is_empty() {
            break;
        }
        last = got.last().cloned();
        seen.extend(got);
    }
    assert_eq!(seen, all);
}

/// The catalog lists repositories in byte order with pagination. Needs a
/// store without repositories.
pub async fn catalog_pagination(meta: &dyn MetadataStore) {
    assert!(
        meta.list_repositories(&Page::default())
            .await
            .expect("list")
            .is_empty()
    );
    meta.link_blob("zeta/blobonly", "sha256:01")
        .await
        .expect("link");
    meta.put_manifest("alpha", &manifest(2, None, None), &[], None)
        .await
        .expect("put");
    meta.begin_upload("Mid/upload", "u-catalog")
        .await
        .expect("begin");
    meta.put_manifest("alpha/sub", &manifest(3, None, None), &[], Some("t"))
        .await
        .expect("put");
    // A blob link or an upload alone does not list a repository.
    assert_eq!(
        meta.list_repositories(&Page::default())
            .await
            .expect("list"),
        ["alpha", "alpha/sub"]
    );
    meta.put_manifest("Mid/upload", &manifest(4, None, None), &[], None)
        .await
        .expect("put");
    meta.put_manifest("zeta/blobonly", &manifest(5, None, None), &[], None)
        .await
        .expect("put");
    let all = ["Mid/upload", "alpha", "alpha/sub", "zeta/blobonly"];
    assert_eq!(
        meta.list_repositories(&Page::default())
            .await
            .expect("list"),
        all
    );
    assert_eq!(
        meta.list_repositories(&page(None, Some(2)))
            .await
            .expect("list"),
        all[..2]
    );
    assert_eq!(
        meta.list_repositories(&page(Some("alpha"), Some(2)))
            .await
            .expect("list"),
        all[2..]
    );
    assert_eq!(
        meta.list_repositories(&page(Some("alpha/sub"), None))
            .await
            .expect("list"),
        all[3..]
    );
    assert!(
        meta.list_repositories(&page(Some("zz"), Some(9)))
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        meta.list_repositories(&page(None, Some(0)))
            .await
            .expect("list")
            .is_empty()
    );
}

/// Manifests with tags: put, get, resolve, move a tag, re-put, delete.
pub async fn manifests_and_tags(meta: &dyn MetadataStore) {
    let repo = "conf/manifests";
    let (m1, m2) = (
        manifest(10, None, Some("application/x-a")),
        manifest(11, None, None),
    );
    assert_eq!(
        meta.get_manifest(repo, &m1.digest).await.expect("get"),
        None
    );
    assert_eq!(
        meta.resolve_tag(repo, "latest").await.expect("resolve"),
        None
    );
    // Pushed first, as a client does: a store may refuse a manifest whose
    // blobs are not in the repository.
    for blob in ["sha256:c1", "sha256:l1"] {
        meta.link_blob(repo, blob).await.expect("link");
    }
    meta.put_manifest(
        repo,
        &m1,
        &["sha256:c1".into(), "sha256:l1".into()],
        Some("latest"),
    )
    .await
    .expect("put");
    meta.put_manifest(
        repo,
        &m1,
        &["sha256:c1".into(), "sha256:l1".into()],
        Some("v1"),
    )
    .await
    .expect("re-put");
    assert_eq!(
        meta.get_manifest(repo, &m1.digest).await.expect("get"),
        Some(m1.clone())
    );
    assert_eq!(
        meta.get_manifest("conf/elsewhere", &m1.digest)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        meta.resolve_tag(repo, "latest")
            .await
            .expect("resolve")
            .as_deref(),
        Some(&*m1.digest)
    );
    assert_eq!(
        meta.resolve_tag(repo, "v1")
            .await
            .expect("resolve")
            .as_deref(),
        Some(&*m1.digest)
    );

    // Moving a tag leaves the old manifest (and its other tags) in place.
    meta.put_manifest(repo, &m2, &[], Some("latest"))
        .await
        .expect("put m2");
    assert_eq!(
        meta.resolve_tag(repo, "latest")
            .await
            .expect("resolve")
            .as_deref(),
        Some(&*m2.digest)
    );
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("tags"),
        Some(vec!["latest".into(), "v1".into()])
    );

    // Deleting a manifest takes every tag pointing at it, and only those.
    meta.put_manifest(repo, &m1, &[], Some("stable"))
        .await
        .expect("tag m1 again");
    assert_eq!(
        meta.tags_of(repo, &m1.digest).await.expect("tags of m1"),
        ["stable", "v1"],
        "what a delete of m1 takes"
    );
    assert_eq!(
        meta.tags_of(repo, &m2.digest).await.expect("tags of m2"),
        ["latest"]
    );
    assert!(
        meta.tags_of("conf/elsewhere", &m1.digest)
            .await
            .expect("tags in unknown repo")
            .is_empty()
    );
    assert!(
        meta.delete_manifest(repo, &m1.digest)
            .await
            .expect("delete")
    );
    assert!(
        !meta
            .delete_manifest(repo, &m1.digest)
            .await
            .expect("delete again")
    );
    assert_eq!(
        meta.get_manifest(repo, &m1.digest).await.expect("get"),
        None
    );
    assert_eq!(meta.resolve_tag(repo, "v1").await.expect("resolve"), None);
    assert_eq!(
        meta.resolve_tag(repo, "stable").await.expect("resolve"),
        None
    );
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("tags"),
        Some(vec!["latest".into()])
    );
    assert!(
        !meta
            .delete_manifest("conf/unknown", &m1.digest)
            .await
            .expect("delete in unknown repo")
    );
    // A deleted manifest can be pushed again.
    meta.put_manifest(repo, &m1, &["sha256:c1".into()], None)
        .await
        .expect("put again");
    assert_eq!(
        meta.get_manifest(repo, &m1.digest).await.expect("get"),
        Some(m1)
    );
}

/// Deleting a tag keeps the manifest and the repository's other tags.
pub async fn delete_tag_keeps_manifest(meta: &dyn MetadataStore) {
    let repo = "conf/deltag";
    let m = manifest(20, None, None);
    meta.put_manifest(repo, &m, &[], Some("a"))
        .await
        .expect("put");
    meta.put_manifest(repo, &m, &[], Some("b"))
        .await
        .expect("put");
    assert!(meta.delete_tag(repo, "a").await.expect("delete tag"));
    assert!(!meta.delete_tag(repo, "a").await.expect("delete tag again"));
    assert!(
        !meta
            .delete_tag("conf/unknown", "a")
            .await
            .expect("delete tag in unknown repo")
    );
    assert_eq!(
        meta.get_manifest(repo, &m.digest).await.expect("get"),
        Some(m.clone())
    );
    assert_eq!(
        meta.resolve_tag(repo, "b")
            .await
            .expect("resolve")
            .as_deref(),
        Some(&*m.digest)
    );
    assert!(meta.delete_tag(repo, "b").await.expect("delete last tag"));
    // A repository without tags still exists: an empty list, not none.
    assert_eq!(
        meta.list_tags(repo, &Page::default()).await.expect("tags"),
        Some(vec![])
    );
    assert!(
        meta.get_manifest(repo, &m.digest)
            .await
            .expect("get")
            .is_some()
    );
}

/// Referrers by subject, optionally filtered by artifact type, by digest.
pub async fn referrers(meta: &dyn MetadataStore) {
    let repo = "conf/referrers";
    let subject = manifest(30, None, None);
    meta.put_manifest(repo, &subject, &[], Some("img"))
        .await
        .expect("put subject");
    assert!(
        meta.list_referrers(repo, &subject.digest, None)
            .await
            .expect("none yet")
            .is_empty()
    );
    let sig = "application/vnd.example.signature";
    let mut refs: Vec<ManifestInfo> = (31..36)
        .map(|n| {
            manifest(
                n,
                Some(&subject.digest),
                Some(if n % 2 == 0 { sig } else { "application/sbom" }),
            )
        })
        .collect();
    refs.push(manifest(36, Some(&subject.digest), None));
    for m in &refs {
        meta.put_manifest(repo, m, std::slice::from_ref(&subject.digest), None)
            .await
            .expect("put referrer");
    }
    // Same subject digest in another repository does not leak in.
    meta.put_manifest(
        "conf/referrers2",
        &manifest(37, Some(&subject.digest), Some(sig)),
        &[],
        None,
    )
    .await
    .expect("put elsewhere");
    meta.put_manifest(
        repo,
        &manifest(38, Some("sha256:other"), Some(sig)),
        &[],
        None,
    )
    .await
    .expect("put");

    refs.sort_by(|a, b| a.digest.cmp(&b.digest));
    assert_eq!(
        meta.list_referrers(repo, &subject.digest, None)
            .await
            .expect("all"),
        refs
    );
    let sigs: Vec<_> = refs
        .iter()
        .filter(|m| m.artifact_type.as_deref() == Some(sig))
        .cloned()
        .collect();
    assert_eq!(sigs.len(), 2);
    assert_eq!(
        meta.list_referrers(repo, &subject.digest, Some(sig))
            .await
            .expect("filtered"),
        sigs
    );
    assert!(
        meta.list_referrers(repo, &subject.digest, Some("x/none"))
            .await
            .expect("no match")
            .is_empty()
    );
    assert!(
        meta.list_referrers("conf/unknown", &subject.digest, None)
            .await
            .expect("unknown repo")
            .is_empty()
    );

    assert!(
        meta.delete_manifest(repo, &sigs[0].digest)
            .await
            .expect("delete")
    );
    assert_eq!(
        meta.list_referrers(repo, &subject.digest, Some(sig))
            .await
            .expect("filtered"),
        sigs[1..]
    );
}

/// Upload sessions map to their repository until ended.
pub async fn uploads(meta: &dyn MetadataStore) {
    assert_eq!(
        meta.upload_repository("u-conf-1").await.expect("lookup"),
        None
    );
    meta.begin_upload("conf/uploads", "u-conf-1")
        .await
        .expect("begin");
    meta.begin_upload("conf/uploads", "u-conf-1")
        .await
        .expect("begin twice");
    meta.begin_upload("conf/uploads2", "u-conf-2")
        .await
        .expect("begin other");
    assert!(matches!(
        meta.begin_upload("conf/uploads2", "u-conf-1").await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        meta.upload_repository("u-conf-1")
            .await
            .expect("lookup")
            .as_deref(),
        Some("conf/uploads")
    );
    assert_eq!(
        meta.upload_repository("u-conf-2")
            .await
            .expect("lookup")
            .as_deref(),
        Some("conf/uploads2")
    );
    meta.end_upload("u-conf-1").await.expect("end");
    meta.end_upload("u-conf-1")
        .await
        .expect("end is idempotent");
    assert_eq!(
        meta.upload_repository("u-conf-1").await.expect("lookup"),
        None
    );
    assert_eq!(
        meta.upload_repository("u-conf-2")
            .await
            .expect("lookup")
            .as_deref(),
        Some("conf/uploads2")
    );
    // A repository exists from its first upload on.
    assert_eq!(
        meta.list_tags("conf/uploads", &Page::default())
            .await
            .expect("tags"),
        Some(vec![])
    );
}

/// Everything written survives dropping and reopening the store.
pub async fn metadata_persists(open: Reopen<'_, dyn MetadataStore>) {
    let m = manifest(40, Some("sha256:subj"), Some("a/b"));
    {
        let meta = open();
        meta.link_blob("conf/persist", "sha256:bb")
            .await
            .expect("link");
        meta.put_manifest("conf/persist", &m, &["sha256:bb".into()], Some("kept"))
            .await
            .expect("put");
        meta.begin_upload("conf/persist", "u-persist")
            .await
            .expect("begin");
    }
    let meta = open();
    assert!(
        meta.blob_linked("conf/persist", "sha256:bb")
            .await
            .expect("linked")
    );
    assert_eq!(
        meta.get_manifest("conf/persist", &m.digest)
            .await
            .expect("get"),
        Some(m.clone())
    );
    assert_eq!(
        meta.resolve_tag("conf/persist", "kept")
            .await
            .expect("resolve"),
        Some(m.digest.clone())
    );
    assert_eq!(
        meta.list_referrers("conf/persist", "sha256:subj", None)
            .await
            .expect("referrers"),
        vec![m]
    );
    assert_eq!(
        meta.upload_repository("u-persist")
            .await
            .expect("lookup")
            .as_deref(),
        Some("conf/persist")
    );
}

/// Runs every metadata conformance test that needs only one store handle;
/// the store must start without repositories.
pub async fn all_metadata_tests(meta: &dyn MetadataStore) {
    catalog_pagination(meta).await;
    blob_links(meta).await;
    tags_pagination(meta).await;
    manifests_and_tags(meta).await;
    delete_tag_keeps_manifest(meta).await;
    referrers(meta).await;
    uploads(meta).await;
}

/// Stores `bytes` as the content of manifest `digest`, where the backend
/// under test reads manifests from.
pub type ManifestWriter = std::sync::Arc<
    dyn Fn(String, Vec<u8>) -> futures::future::BoxFuture<'static, ()> + Send + Sync,
>;

/// Runs the suite on backends that keep no manifest records but read them
/// back from the manifest's bytes, as registry:2's layout does.
///
/// The tests fabricate records ([`manifest`]) without bytes, so the
/// wrapper, before each `put_manifest`, stores a JSON document carrying the
/// record's media type, artifact type, subject and annotations under the
/// record's digest ([`manifest_document`]). The document cannot have the
/// record's made-up size: the backend must report the document's length,
/// which the wrapper checks and swaps back for the made-up size. Everything
/// else the backend returns is passed on untouched.
#[derive(Clone)]
pub struct ManifestBytes {
    write: ManifestWriter,
    /// Per digest: the size the record claims and the document's length.
    sizes: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>>,
}

impl ManifestBytes {
    /// Documents go through `write`.
    pub fn new(write: ManifestWriter) -> Self {
        Self {
            write,
            sizes: Default::default(),
        }
    }

    /// Documents go where registry:2 keeps blobs in `store`.
    pub fn object_store(store: std::sync::Arc<dyn object_store::ObjectStore>) -> Self {
        Self::new(std::sync::Arc::new(
            move |digest: String, bytes: Vec<u8>| {
                let store = store.clone();
                Box::pin(async move {
                    use object_store::ObjectStoreExt as _;
                    let path = crate::layout_meta::blob_path(&digest).expect("manifest digest");
                    store
                        .put(&path, bytes.into())
                        .await
                        .expect("store manifest");
                })
            },
        ))
    }

    /// `inner` with manifest documents stored before each `put_manifest`;
    /// wrappers made from one `ManifestBytes` share what they stored.
    pub fn wrap(&self, inner: Box<dyn MetadataStore>) -> Box<dyn MetadataStore> {
        Box::new(WithManifestBytes {
            inner,
            bytes: self.clone(),
        })
    }

    fn restore(&self, mut info: ManifestInfo) -> ManifestInfo {
        let sizes = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(claimed, written)) = sizes.get(&info.digest) {
            assert_eq!(
                info.size, written,
                "size of {} must be its bytes' length",
                info.digest
            );
            info.size = claimed;
        }
        info
    }
}

/// A JSON manifest carrying `m`'s media type, artifact type, subject and
/// annotations (its digest and size are not those of `m`).
pub fn manifest_document(m: &ManifestInfo) -> Vec<u8> {
    manifest_document_with(m, &[])
}

/// [`manifest_document`] naming `references` too: as an index's children,
/// else as layers (not as a config, whose media type would become the
/// artifact type), for stores that read references back from the bytes.
pub fn manifest_document_with(m: &ManifestInfo, references: &[String]) -> Vec<u8> {
    use serde_json::{Value, json};
    let mut doc = serde_json::Map::new();
    doc.insert("schemaVersion".into(), json!(2));
    doc.insert("mediaType".into(), json!(m.media_type));
    if let Some(t) = &m.artifact_type {
        doc.insert("artifactType".into(), json!(t));
    }
    let (children, child_type) = if m.media_type.contains("index") || m.media_type.contains("list")
    {
        ("manifests", "application/vnd.oci.image.manifest.v1+json")
    } else {
        ("layers", "application/vnd.oci.image.layer.v1.tar")
    };
    let descriptors: Vec<Value> = references
        .iter()
        .map(|d| json!({"mediaType": child_type, "digest": d, "size": 0}))
        .collect();
    doc.insert(children.into(), Value::Array(descriptors));
    if let Some(subject) = &m.subject {
        doc.insert(
            "subject".into(),
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 0}),
        );
    }
    if let Some(a) = &m.annotations {
        let a: Value = serde_json::from_str(a).expect("annotations are JSON");
        doc.insert("annotations".into(), a);
    }
    serde_json::to_vec(&Value::Object(doc)).expect("serialise manifest")
}

struct WithManifestBytes {
    inner: Box<dyn MetadataStore>,
    bytes: ManifestBytes,
}

#[async_trait::async_trait]
impl MetadataStore for WithManifestBytes {
    async fn link_blob(&self, repo: &str, digest: &str) -> crate::Result<()> {
        self.inner.link_blob(repo, digest).await
    }

    async fn blob_linked(&self, repo: &str, digest: &str) -> crate::Result<bool> {
        self.inner.blob_linked(repo, digest).await
    }

    async fn unlink_blob(&self, repo: &str, digest: &str) -> crate::Result<bool> {
        self.inner.unlink_blob(repo, digest).await
    }

    async fn put_manifest(
        &self,
        repo: &str,
        manifest: &ManifestInfo,
        references: &[String],
        tag: Option<&str>,
    ) -> crate::Result<()> {
        let doc = manifest_document_with(manifest, references);
        let len = doc.len() as u64;
        self.bytes
            .sizes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(manifest.digest.clone(), (manifest.size, len));
        (self.bytes.write)(manifest.digest.clone(), doc).await;
        let stored = ManifestInfo {
            size: len,
            ..manifest.clone()
        };
        self.inner
            .put_manifest(repo, &stored, references, tag)
            .await
    }

    async fn get_manifest(&self, repo: &str, digest: &str) -> crate::Result<Option<ManifestInfo>> {
        let found = self.inner.get_manifest(repo, digest).await?;
        Ok(found.map(|m| self.bytes.restore(m)))
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> crate::Result<Option<String>> {
        self.inner.resolve_tag(repo, tag).await
    }

    async fn tags_of(&self, repo: &str, digest: &str) -> crate::Result<Vec<String>> {
        self.inner.tags_of(repo, digest).await
    }

    async fn delete_manifest(&self, repo: &str, digest: &str) -> crate::Result<bool> {
        self.inner.delete_manifest(repo, digest).await
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> crate::Result<bool> {
        self.inner.delete_tag(repo, tag).await
    }

    async fn list_tags(&self, repo: &str, page: &Page) -> crate::Result<Option<Vec<String>>> {
        self.inner.list_tags(repo, page).await
    }

    async fn list_repositories(&self, page: &Page) -> crate::Result<Vec<String>> {
        self.inner.list_repositories(page).await
    }

    async fn list_referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> crate::Result<Vec<ManifestInfo>> {
        let found = self
            .inner
            .list_referrers(repo, subject, artifact_type)
            .await?;
        Ok(found.into_iter().map(|m| self.bytes.restore(m)).collect())
    }

    async fn begin_upload(&self, repo: &str, id: &str) -> crate::Result<()> {
        self.inner.begin_upload(repo, id).await
    }

    async fn upload_repository(&self, id: &str) -> crate::Result<Option<String>> {
        self.inner.upload_repository(id).await
    }

    async fn end_upload(&self, id: &str) -> crate::Result<()> {
        self.inner.end_upload(id).await
    }

    async fn set_origin(&self, repo: &str, origin: &str) -> crate::Result<()> {
        self.inner.set_origin(repo, origin).await
    }

    async fn origin(&self, repo: &str) -> crate::Result<Option<String>> {
        self.inner.origin(repo).await
    }

    async fn note_pulled(&self, repo: &str, now: u64) -> crate::Result<()> {
        self.inner.note_pulled(repo, now).await
    }

    async fn cached_repositories(&self) -> crate::Result<Vec<crate::CachedRepository>> {
        self.inner.cached_repositories().await
    }

    async fn delete_repository(&self, repo: &str) -> crate::Result<bool> {
        self.inner.delete_repository(repo).await
    }

    fn gc(&self) -> Option<&dyn crate::GcMetadata> {
        self.inner.gc()
    }

    fn inventory(&self) -> Option<&dyn crate::Inventory> {
        self.inner.inventory()
    }
}
