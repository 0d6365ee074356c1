//! Conformance tests for [`Inventory`]: the walk `berth fsck` checks and
//! `berth du` adds up, the same on every store that offers it.

use super::manifest;
use crate::{Inventory, ManifestInfo, MetadataStore, Reference, RepositoryUsage};

const CONFIG: &str = "sha256:cf01";
const LAYER: &str = "sha256:1a01";
const EXTRA: &str = "sha256:e0e0";

fn inventory(meta: &dyn MetadataStore) -> &dyn Inventory {
    meta.inventory().expect("this store lists what it holds")
}

fn link(repo: &str, digest: &str) -> Reference {
    Reference::Link {
        repo: repo.into(),
        digest: digest.into(),
    }
}

fn tag(repo: &str, tag: &str, digest: &str) -> Reference {
    Reference::Tag {
        repo: repo.into(),
        tag: tag.into(),
        digest: digest.into(),
    }
}

fn held(repo: &str, digest: &str) -> Reference {
    Reference::Manifest {
        repo: repo.into(),
        digest: digest.into(),
    }
}

fn names(repo: &str, manifest: &str, digest: &str) -> Reference {
    Reference::Ref {
        repo: repo.into(),
        manifest: manifest.into(),
        digest: digest.into(),
    }
}

/// `inv/a`: an image `m` tagged v1 and v2, an "index" naming it tagged
/// multi, three linked blobs; `inv/b`: one link; `inv/empty`: an upload
/// begun, nothing else.
async fn fill(meta: &dyn MetadataStore) -> (ManifestInfo, ManifestInfo) {
    let m = manifest(31, None, None);
    let index = manifest(32, None, None);
    for d in [CONFIG, LAYER, EXTRA] {
        meta.link_blob("inv/a", d).await.expect("link");
    }
    let refs = [CONFIG.to_owned(), LAYER.to_owned()];
    for t in ["v2", "v1"] {
        meta.put_manifest("inv/a", &m, &refs, Some(t))
            .await
            .expect("put");
    }
    meta.put_manifest(
        "inv/a",
        &index,
        std::slice::from_ref(&m.digest),
        Some("multi"),
    )
    .await
    .expect("put index");
    meta.link_blob("inv/b", LAYER).await.expect("link");
    meta.begin_upload("inv/empty", "u-inventory")
        .await
        .expect("begin");
    (m, index)
}

async fn references(meta: &dyn MetadataStore) -> Vec<Reference> {
    let mut got = inventory(meta).references().await.expect("references");
    got.sort();
    got
}

/// Every link, manifest, manifest reference and tag is listed, and usage
/// counts each repository's tags, manifests and digests.
pub async fn inventory_lists_everything(meta: &dyn MetadataStore) {
    let (m, index) = fill(meta).await;
    let mut want = vec![
        link("inv/a", CONFIG),
        link("inv/a", LAYER),
        link("inv/a", EXTRA),
        held("inv/a", &m.digest),
        held("inv/a", &index.digest),
        names("inv/a", &m.digest, CONFIG),
        names("inv/a", &m.digest, LAYER),
        names("inv/a", &index.digest, &m.digest),
        tag("inv/a", "multi", &index.digest),
        tag("inv/a", "v1", &m.digest),
        tag("inv/a", "v2", &m.digest),
        link("inv/b", LAYER),
    ];
    want.sort();
    assert_eq!(references(meta).await, want);
    let uploads = inventory(meta).upload_ids().await.expect("upload ids");
    assert_eq!(uploads, ["u-inventory"]);
    meta.end_upload("u-inventory").await.expect("end");
    let uploads = inventory(meta).upload_ids().await.expect("upload ids");
    assert!(uploads.is_empty(), "{uploads:?}");

    let mut digests: Vec<String> = [CONFIG, LAYER, EXTRA, &m.digest, &index.digest]
        .map(String::from)
        .to_vec();
    digests.sort();
    let mut usage = inventory(meta).usage().await.expect("usage");
    usage.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        usage,
        [
            RepositoryUsage {
                name: "inv/a".into(),
                tags: vec!["multi".into(), "v1".into(), "v2".into()],
                manifests: 2,
                digests,
            },
            RepositoryUsage {
                name: "inv/b".into(),
                digests: vec![LAYER.into()],
                ..Default::default()
            },
            RepositoryUsage {
                name: "inv/empty".into(),
                ..Default::default()
            },
        ]
    );
}

/// Dropping an entry does what a client's delete would: a link goes, a
/// manifest goes with its tags (for a dangling reference too), a tag goes
/// alone. Dropping what is not there is harmless.
pub async fn inventory_drops_like_a_delete(meta: &dyn MetadataStore) {
    let (m, index) = fill(meta).await;
    let inv = inventory(meta);
    inv.drop_reference(&link("inv/a", EXTRA))
        .await
        .expect("drop link");
    assert!(!meta.blob_linked("inv/a", EXTRA).await.expect("linked"));
    // A dangling child takes the index naming it, not the child.
    inv.drop_reference(&names("inv/a", &index.digest, &m.digest))
        .await
        .expect("drop reference");
    assert_eq!(
        meta.get_manifest("inv/a", &index.digest)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        meta.resolve_tag("inv/a", "multi").await.expect("resolve"),
        None
    );
    assert!(
        meta.get_manifest("inv/a", &m.digest)
            .await
            .expect("get")
            .is_some()
    );
    inv.drop_reference(&tag("inv/a", "v1", &m.digest))
        .await
        .expect("drop tag");
    assert_eq!(
        meta.resolve_tag("inv/a", "v1").await.expect("resolve"),
        None
    );
    assert_eq!(
        meta.resolve_tag("inv/a", "v2").await.expect("resolve"),
        Some(m.digest.clone())
    );
    inv.drop_reference(&held("inv/a", &m.digest))
        .await
        .expect("drop manifest");
    assert_eq!(
        meta.get_manifest("inv/a", &m.digest).await.expect("get"),
        None
    );
    let mut want = vec![
        link("inv/a", CONFIG),
        link("inv/a", LAYER),
        link("inv/b", LAYER),
    ];
    want.sort();
    assert_eq!(references(meta).await, want);
    for absent in [
        link("inv/nowhere", CONFIG),
        held("inv/nowhere", &m.digest),
        tag("inv/a", "gone", &m.digest),
    ] {
        inv.drop_reference(&absent)
            .await
            .expect("dropping what is not there is harmless");
    }
}
