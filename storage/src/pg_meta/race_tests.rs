//! Races between hosts that SQLite's single writer ruled out and the
//! per-digest locks (locks.rs) must rule out here, run many times over two
//! `PostgresMetadata` instances (two hosts, two pools).

use super::tests::store;
use crate::conformance::gc::{GcProbe, ZERO, at, now};
use crate::conformance::manifest;
use crate::{MetadataStore, StorageError};

/// A manifest push on one host against a pass condemning its layer at
/// zero grace on another: either the pass wins (the push fails, nothing
/// names the blob) or the push wins (the pass leaves the blob alone),
/// never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_and_a_condemn_never_both_win() {
    let pusher = store("push_vs_condemn").await;
    let collector = pusher.second_process().await;
    let gc = collector.gc().expect("gc");
    let (lease, _) = gc.gc_begin().await.expect("begin");
    let (mut pushed, mut condemned) = (0, 0);
    for i in 0..60u32 {
        let layer = format!("sha256:layer{i:03}");
        let m = manifest(i, None, None);
        pusher.link_blob("r", &layer).await.expect("link");
        let refs = [layer.clone()];
        let (put, condemn) = tokio::join!(
            pusher.put_manifest("r", &m, &refs, Some("t")),
            gc.gc_condemn(&lease, &layer, at(now()) + 10, ZERO),
        );
        let condemn = condemn.expect("condemn");
        match put {
            Ok(()) => {
                assert!(!condemn, "round {i}: pushed and condemned {layer}");
                assert!(gc.gc_is_referenced(&layer).await.expect("refd"));
                pushed += 1;
            }
            Err(StorageError::Invalid(_)) => {
                assert!(condemn, "round {i}: push refused but nothing condemned");
                assert_eq!(
                    pusher.get_manifest("r", &m.digest).await.expect("get"),
                    None
                );
                gc.gc_bury(&lease, &layer).await.expect("bury");
                condemned += 1;
            }
            Err(other) => panic!("round {i}: {other:?}"),
        }
    }
    // Both outcomes happen often enough for the race to be exercised; not
    // asserted, as scheduling may favour one side.
    eprintln!("push vs condemn: {pushed} pushed, {condemned} condemned");
}

/// Untagged-manifest collection on one host against a push tagging the
/// manifest on another: the tag is never lost with the manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untagged_collection_never_takes_a_manifest_being_tagged() {
    let pusher = store("untagged_vs_tag").await;
    let collector = pusher.second_process().await;
    let gc = collector.gc().expect("gc");
    for i in 0..40u32 {
        let m = manifest(i, None, None);
        pusher.put_manifest("r", &m, &[], None).await.expect("put");
        let tag = format!("t{i}");
        let before = at(now()) + 10;
        let (tagged, deleted) = tokio::join!(
            pusher.put_manifest("r", &m, &[], Some(&tag)),
            gc.gc_delete_untagged("r", &m.digest, before),
        );
        let deleted = deleted.expect("delete untagged");
        let resolved = pusher.resolve_tag("r", &tag).await.expect("resolve");
        match tagged {
            // Tagged after the delete: the push stored it again.
            Ok(()) => assert_eq!(resolved.as_deref(), Some(m.digest.as_str()), "round {i}"),
            Err(e) => panic!("round {i}: tagging failed: {e:?} (deleted: {deleted})"),
        }
        assert!(
            pusher
                .get_manifest("r", &m.digest)
                .await
                .expect("get")
                .is_some(),
            "round {i}: a tagged manifest is gone"
        );
    }
    // A manifest that stays untagged is collected, and only once.
    let loose = manifest(1000, None, None);
    pusher
        .put_manifest("r", &loose, &[], None)
        .await
        .expect("put");
    assert!(
        gc.gc_delete_untagged("r", &loose.digest, at(now()) + 10)
            .await
            .expect("delete")
    );
    assert!(
        !gc.gc_delete_untagged("r", &loose.digest, at(now()) + 10)
            .await
            .expect("again")
    );
    let tagged = manifest(1001, None, None);
    pusher
        .put_manifest("r", &tagged, &[], Some("keep"))
        .await
        .expect("put");
    assert!(
        !gc.gc_delete_untagged("r", &tagged.digest, at(now()) + 10)
            .await
            .expect("tagged")
    );
}
