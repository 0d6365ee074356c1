//! What the web UI's browsing reads answer (`summarize`, `pushed_at`,
//! `holders`), for every store that answers them.

use super::manifest;
use crate::{MetadataStore, RepositorySummary};

const LAYER: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const OWN: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Two repositories sharing a layer: tag counts, push times, which
/// digests another repository needs too, and who holds the layer.
pub async fn browse(meta: &dyn MetadataStore) {
    let (a, b) = (manifest(1, None, None), manifest(2, None, None));
    for digest in [LAYER, OWN] {
        meta.link_blob("a", digest).await.expect("link");
    }
    meta.link_blob("b", LAYER).await.expect("link");
    meta.put_manifest("a", &a, &[LAYER.into(), OWN.into()], Some("v1"))
        .await
        .expect("put");
    meta.put_manifest("a", &a, &[LAYER.into(), OWN.into()], Some("v2"))
        .await
        .expect("put");
    meta.put_manifest("b", &b, &[LAYER.into()], Some("v1"))
        .await
        .expect("put");

    let names = ["a".to_owned(), "nope".to_owned()];
    let summaries = meta.summarize(&names).await.expect("summarize");
    assert_eq!(summaries.len(), 2);
    let RepositorySummary {
        tags,
        last_push,
        digests,
        ..
    } = &summaries[0];
    assert_eq!(*tags, 2);
    assert!(last_push.is_some());
    let mut digests = digests.clone().expect("digests");
    digests.sort();
    let mut expected = vec![
        (LAYER.to_owned(), true),
        (OWN.to_owned(), false),
        (a.digest.clone(), false),
    ];
    expected.sort();
    assert_eq!(digests, expected);
    assert_eq!(summaries[1].tags, 0);
    assert_eq!(summaries[1].digests, Some(Vec::new()));

    assert!(meta.pushed_at("a", &a.digest).await.expect("at").is_some());
    assert_eq!(meta.pushed_at("b", &a.digest).await.expect("at"), None);
    assert_eq!(
        meta.holders(LAYER, 10).await.expect("holders"),
        Some(vec!["a".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        meta.holders(LAYER, 1).await.expect("holders"),
        Some(vec!["a".to_owned()])
    );
}
