//! Garbage-collection conformance: the review queue, tombstones, leases
//! and pins every store with [`crate::GcMetadata`] keeps (docs/GC.md), run
//! by each backend through [`gc_conformance_tests!`](crate::gc_conformance_tests).
//! The cases read and set queue rows through [`GcProbe`], a test-only view
//! of the store's tables. Times the triggers write come from the store's
//! clock, so cases read them back and pass explicit `now` values relative
//! to them.

use super::manifest;
use crate::{GcLease, GcMetadata, GracePeriods, MetadataStore, StorageError};
use async_trait::async_trait;

/// `(uploaded_at, unreferenced_at)` of a queue row.
pub type QueueRow = (Option<i64>, Option<i64>);

/// What the cases peek at or set in a store's GC tables.
#[async_trait]
pub trait GcProbe: MetadataStore + Sized {
    /// The queue row of `digest`.
    async fn queue_row(&self, digest: &str) -> Option<QueueRow>;
    /// Replaces (or adds) `digest`'s queue row.
    async fn set_queue_row(&self, digest: &str, row: QueueRow);
    /// Every queued digest, sorted.
    async fn queued(&self) -> Vec<String>;
    /// Every tombstoned digest, whoever holds it, sorted.
    async fn tombstones(&self) -> Vec<String>;
    /// When `digest` was condemned.
    async fn tombstone_since(&self, digest: &str) -> Option<i64>;
    /// A tombstone without holder (one from before leases).
    async fn add_tombstone(&self, digest: &str, since: i64);
    /// How many pins exist.
    async fn pin_count(&self) -> i64;
    /// The smallest and largest `created_at` of stored manifests.
    async fn manifest_times(&self) -> (i64, i64);
    /// Another handle on the same database, as another process (or
    /// host) has: its own leases and pin holder.
    async fn second_process(&self) -> Self;
    /// Ends this handle as its process would end, returning once other
    /// processes can see its holders are gone (a server may notice a
    /// closed connection a moment later).
    async fn end_process(self) {
        drop(self);
    }
    /// Drops a pass's lease, returning once other processes can see it
    /// gone.
    async fn end_lease(&self, lease: GcLease) {
        drop(lease);
    }
}

/// One `#[tokio::test]` per GC case, for stores implementing [`GcProbe`];
/// the same `|case| setup` as [`metadata_conformance_tests!`](crate::metadata_conformance_tests).
#[macro_export]
macro_rules! gc_conformance_tests {
    (|$case:ident| $setup:expr) => {
        $crate::gc_conformance_tests!(@each |$case| $setup;
            linking_and_protecting_queue_as_uploaded,
            manifest_put_ends_uploads,
            manifest_delete_queues_its_references_and_itself,
            tag_delete_queues_nothing,
            unlink_queues_as_unreferenced,
            due_honours_both_grace_periods,
            condemn_drops_referenced_blobs_from_the_queue,
            condemn_takes_unreferenced_due_blobs,
            manifest_naming_an_absent_blob_stores_nothing,
            condemned_manifest_digest_conflicts,
            bury_forgets_the_tombstone,
            adopt_skips_what_the_metadata_knows,
            referrers_follow_their_subject,
            untagged_selection,
            a_second_collector_leaves_a_live_passes_tombstones_alone,
            a_pinned_blob_is_not_condemned_at_zero_grace,
            the_pins_of_a_process_that_ended_are_dropped,
            a_mount_links_only_a_blob_something_holds,
            tombstones_from_before_leases_are_inherited,
            waiting_lists_blobs_inside_their_grace_periods,
            a_deleted_repository_leaves_its_blobs_to_collection,
            a_caches_links_hold_its_blobs_until_the_repository_goes);
    };
    (@each |$case:ident| $setup:expr; $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let $case = stringify!($name);
            let (_guard, store) = $setup;
            $crate::conformance::gc::$name(&*store).await;
        }
    )*};
}

/// Unix seconds now, as the stores' trigger timestamps count them.
pub fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("seconds")
}

/// Asserts `t` is a trigger timestamp written during this test.
pub fn recent(t: Option<i64>) {
    let t = t.expect("timestamp set");
    assert!((now() - t).abs() <= 5, "{t} is not about now ({})", now());
}

fn gc(meta: &impl MetadataStore) -> &dyn GcMetadata {
    meta.gc().expect("the store keeps gc bookkeeping")
}

/// A collection pass's lease (inheriting nothing in a fresh store).
async fn lease(meta: &impl MetadataStore) -> GcLease {
    let (lease, inherited) = gc(meta).gc_begin().await.expect("begin");
    assert!(inherited.is_empty(), "{inherited:?}");
    lease
}

/// A commit that pinned `digest` and let go without linking it: queued as
/// uploaded now, unpinned.
async fn pinned_and_let_go(meta: &impl GcProbe, digest: &str) {
    meta.pin_blob(digest, 1).await.expect("pin");
    meta.unpin(1).await.expect("unpin");
}

const GRACE: GracePeriods = GracePeriods {
    unreferenced: 100,
    uploaded: 1000,
};

/// Seconds `t` as the u64 the trait takes.
/// Condemns every blob due at `later` at zero grace; the digests taken.
async fn condemn_due(meta: &impl GcProbe, lease: &GcLease, later: u64) -> Vec<String> {
    let mut condemned = Vec::new();
    for d in gc(meta).gc_due(later, ZERO, 100).await.expect("due") {
        if gc(meta)
            .gc_condemn(lease, &d, later, ZERO)
            .await
            .expect("condemn")
        {
            condemned.push(d);
        }
    }
    condemned
}

/// A timestamp as the GC calls take it.
pub fn at(t: i64) -> u64 {
    u64::try_from(t).expect("non-negative time")
}

pub async fn linking_and_protecting_queue_as_uploaded<S: GcProbe>(meta: &S) {
    meta.link_blob("r", "sha256:l").await.expect("link");
    let (uploaded, unreferenced) = meta.queue_row("sha256:l").await.expect("queued by link");
    recent(uploaded);
    assert_eq!(unreferenced, None);

    pinned_and_let_go(meta, "sha256:p").await;
    let (uploaded, unreferenced) = meta.queue_row("sha256:p").await.expect("queued by protect");
    recent(uploaded);
    assert_eq!(unreferenced, None);

    // A new link elsewhere restarts the upload grace period and keeps the
    // unreferenced time.
    meta.set_queue_row("sha256:l", (Some(5), Some(7))).await;
    meta.link_blob("r", "sha256:l").await.expect("link again");
    assert_eq!(
        meta.queue_row("sha256:l").await,
        Some((Some(5), Some(7))),
        "an existing link is no upload"
    );
    meta.link_blob("other", "sha256:l")
        .await
        .expect("link elsewhere");
    let (uploaded, unreferenced) = meta.queue_row("sha256:l").await.expect("row");
    recent(uploaded);
    assert_eq!(unreferenced, Some(7));
    meta.set_queue_row("sha256:p", (Some(5), Some(7))).await;
    pinned_and_let_go(meta, "sha256:p").await;
    let (uploaded, unreferenced) = meta.queue_row("sha256:p").await.expect("row");
    recent(uploaded);
    assert_eq!(unreferenced, Some(7));
}

pub async fn manifest_put_ends_uploads<S: GcProbe>(meta: &S) {
    let m = manifest(1, None, None);
    for blob in ["sha256:cfg", "sha256:layer"] {
        meta.link_blob("r", blob).await.expect("link");
    }
    pinned_and_let_go(meta, &m.digest).await;
    // An earlier unlink somewhere leaves its time; only the upload ends.
    meta.set_queue_row("sha256:layer", (Some(5), Some(7))).await;
    meta.set_queue_row("sha256:unrelated", (Some(5), None))
        .await;
    meta.put_manifest(
        "r",
        &m,
        &["sha256:cfg".into(), "sha256:layer".into()],
        Some("t"),
    )
    .await
    .expect("put");
    assert_eq!(meta.queue_row("sha256:cfg").await, None);
    assert_eq!(meta.queue_row(&m.digest).await, None);
    assert_eq!(meta.queue_row("sha256:layer").await, Some((None, Some(7))));
    assert_eq!(
        meta.queue_row("sha256:unrelated").await,
        Some((Some(5), None))
    );
}

pub async fn manifest_delete_queues_its_references_and_itself<S: GcProbe>(meta: &S) {
    let m = manifest(1, None, None);
    let refs = ["sha256:cfg".to_string(), "sha256:layer".to_string()];
    for blob in &refs {
        meta.link_blob("r", blob).await.expect("link");
    }
    meta.put_manifest("r", &m, &refs, Some("t"))
        .await
        .expect("put");
    assert!(meta.queued().await.is_empty(), "{:?}", meta.queued().await);
    assert!(meta.delete_manifest("r", &m.digest).await.expect("delete"));
    for digest in [&refs[0], &refs[1], &m.digest] {
        let (uploaded, unreferenced) = meta.queue_row(digest).await.expect("queued");
        assert_eq!(uploaded, None, "{digest}");
        recent(unreferenced);
    }
    assert_eq!(meta.queued().await.len(), 3);
}

pub async fn tag_delete_queues_nothing<S: GcProbe>(meta: &S) {
    let m = manifest(1, None, None);
    meta.put_manifest("r", &m, &[], Some("t"))
        .await
        .expect("put");
    assert!(meta.delete_tag("r", "t").await.expect("delete tag"));
    assert!(meta.queued().await.is_empty(), "{:?}", meta.queued().await);
}

pub async fn unlink_queues_as_unreferenced<S: GcProbe>(meta: &S) {
    meta.link_blob("r", "sha256:b").await.expect("link");
    meta.set_queue_row("sha256:b", (Some(5), None)).await;
    assert!(meta.unlink_blob("r", "sha256:b").await.expect("unlink"));
    let (uploaded, unreferenced) = meta.queue_row("sha256:b").await.expect("queued");
    assert_eq!(uploaded, Some(5));
    recent(unreferenced);
}

pub async fn due_honours_both_grace_periods<S: GcProbe>(meta: &S) {
    meta.set_queue_row("sha256:a", (Some(10_000), None)).await;
    meta.set_queue_row("sha256:b", (None, Some(10_000))).await;
    meta.set_queue_row("sha256:c", (Some(10_000), Some(10_950)))
        .await;
    meta.set_queue_row("sha256:d", (None, None)).await;
    let g = gc(meta);
    let due = |now| async move { g.gc_due(now, GRACE, 10).await.expect("due") };
    assert_eq!(due(9_000).await, ["sha256:d"]);
    assert_eq!(due(10_099).await, ["sha256:d"]);
    assert_eq!(due(10_100).await, ["sha256:b", "sha256:d"]);
    assert_eq!(due(10_999).await, ["sha256:b", "sha256:d"]);
    assert_eq!(due(11_000).await, ["sha256:a", "sha256:b", "sha256:d"]);
    assert_eq!(
        due(11_050).await,
        ["sha256:a", "sha256:b", "sha256:c", "sha256:d"]
    );
    assert_eq!(
        gc(meta).gc_due(11_050, GRACE, 2).await.expect("limited"),
        ["sha256:a", "sha256:b"]
    );
    let forever = GracePeriods {
        unreferenced: u64::MAX,
        uploaded: u64::MAX,
    };
    assert_eq!(
        gc(meta).gc_due(11_050, forever, 10).await.expect("due"),
        ["sha256:d"],
        "huge grace periods must not overflow"
    );
    meta.add_tombstone("sha256:a", 1).await;
    assert_eq!(
        due(11_050).await,
        ["sha256:b", "sha256:c", "sha256:d"],
        "tombstoned rows are not due"
    );
}

pub async fn condemn_drops_referenced_blobs_from_the_queue<S: GcProbe>(meta: &S) {
    let lease = lease(meta).await;
    let (m, child) = (manifest(1, None, None), manifest(2, None, None));
    meta.link_blob("r", "sha256:layer").await.expect("link");
    meta.put_manifest("r", &m, &["sha256:layer".into()], Some("t"))
        .await
        .expect("put");
    meta.put_manifest("r", &child, &[], None)
        .await
        .expect("put child");
    for digest in ["sha256:layer", m.digest.as_str(), child.digest.as_str()] {
        meta.set_queue_row(digest, (None, Some(1))).await;
        assert!(gc(meta).gc_is_referenced(digest).await.expect("refd"));
        assert!(
            !gc(meta)
                .gc_condemn(&lease, digest, 1_000_000, GRACE)
                .await
                .expect("condemn"),
            "{digest} is referenced"
        );
        assert_eq!(
            meta.queue_row(digest).await,
            None,
            "{digest} left the queue"
        );
    }
    assert!(meta.blob_linked("r", "sha256:layer").await.expect("linked"));
    assert!(meta.tombstones().await.is_empty());
}

pub async fn condemn_takes_unreferenced_due_blobs<S: GcProbe>(meta: &S) {
    let lease = lease(meta).await;
    let d = "sha256:dead";
    for repo in ["a", "b"] {
        meta.link_blob(repo, d).await.expect("link");
    }
    let (uploaded, _) = meta.queue_row(d).await.expect("queued");
    let uploaded = at(uploaded.expect("uploaded_at"));
    assert!(!gc(meta).gc_is_referenced(d).await.expect("refd"));

    // Not yet due: nothing changes.
    let early = uploaded + GRACE.uploaded - 1;
    assert!(
        !gc(meta)
            .gc_condemn(&lease, d, early, GRACE)
            .await
            .expect("early")
    );
    assert!(meta.blob_linked("a", d).await.expect("linked"));
    assert!(meta.queue_row(d).await.is_some());
    assert!(
        !gc(meta)
            .gc_condemn(&lease, "sha256:unqueued", early, GRACE)
            .await
            .expect("unqueued")
    );

    let due = uploaded + GRACE.uploaded;
    assert!(
        gc(meta)
            .gc_condemn(&lease, d, due, GRACE)
            .await
            .expect("condemn")
    );
    for repo in ["a", "b"] {
        assert!(!meta.blob_linked(repo, d).await.expect("linked"), "{repo}");
    }
    assert_eq!(meta.queue_row(d).await, None, "the tombstone tracks it now");
    assert_eq!(meta.tombstones().await, [d]);
    let since = meta.tombstone_since(d).await.expect("tombstoned");
    assert_eq!(at(since), due);
    assert!(
        !gc(meta)
            .gc_condemn(&lease, d, due, GRACE)
            .await
            .expect("again"),
        "a tombstoned blob is condemned once"
    );
    assert!(
        gc(meta)
            .gc_due(due, GRACE, 10)
            .await
            .expect("due")
            .is_empty()
    );

    let conflict = |r: crate::Result<()>| matches!(r, Err(StorageError::Conflict(_)));
    assert!(conflict(meta.link_blob("a", d).await), "link");
    assert!(conflict(meta.link_blob("c", d).await), "link elsewhere");
    assert!(conflict(meta.pin_blob(d, 1).await), "pin");
    assert!(
        meta.list_repositories(&Default::default())
            .await
            .expect("list")
            .iter()
            .all(|r| r != "c"),
        "a refused link creates no repository"
    );
}

pub async fn manifest_naming_an_absent_blob_stores_nothing<S: GcProbe>(meta: &S) {
    let lease = lease(meta).await;
    let d = "sha256:dead";
    meta.link_blob("r", d).await.expect("link");
    meta.link_blob("r", "sha256:cfg").await.expect("link cfg");
    let (uploaded, _) = meta.queue_row(d).await.expect("queued");
    let due = at(uploaded.expect("uploaded_at")) + GRACE.uploaded;
    // A push checked the blob before the pass condemned it.
    assert!(
        gc(meta)
            .gc_condemn(&lease, d, due, GRACE)
            .await
            .expect("condemn")
    );
    let m = manifest(1, None, None);
    let refs = ["sha256:cfg".to_string(), d.to_string()];
    let err = meta
        .put_manifest("r", &m, &refs, Some("t"))
        .await
        .expect_err("must fail");
    match err {
        StorageError::Invalid(msg) => assert_eq!(
            msg,
            format!("manifest references {d}, which is not in the repository")
        ),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(meta.get_manifest("r", &m.digest).await.expect("get"), None);
    assert_eq!(meta.resolve_tag("r", "t").await.expect("resolve"), None);
    assert!(!gc(meta).gc_is_referenced(d).await.expect("refd"));
    assert!(
        meta.put_manifest("fresh", &m, &refs, None).await.is_err(),
        "a blob linked elsewhere only is not in the repository"
    );
    assert!(
        meta.list_repositories(&Default::default())
            .await
            .expect("list")
            .iter()
            .all(|r| r != "fresh"),
        "the failed put created no repository"
    );
    // A manifest of the repository counts as present (an index's child).
    meta.put_manifest("r", &m, &refs[..1], None)
        .await
        .expect("put");
    meta.put_manifest(
        "r",
        &manifest(2, None, None),
        std::slice::from_ref(&m.digest),
        None,
    )
    .await
    .expect("index naming its child");
}

pub async fn condemned_manifest_digest_conflicts<S: GcProbe>(meta: &S) {
    let lease = lease(meta).await;
    let m = manifest(1, None, None);
    pinned_and_let_go(meta, &m.digest).await;
    let (uploaded, _) = meta.queue_row(&m.digest).await.expect("queued");
    let due = at(uploaded.expect("uploaded_at")) + GRACE.uploaded;
    assert!(
        gc(meta)
            .gc_condemn(&lease, &m.digest, due, GRACE)
            .await
            .expect("condemn")
    );
    assert!(matches!(
        meta.put_manifest("r", &m, &[], Some("t")).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(meta.get_manifest("r", &m.digest).await.expect("get"), None);
    gc(meta).gc_bury(&lease, &m.digest).await.expect("bury");
    meta.put_manifest("r", &m, &[], Some("t"))
        .await
        .expect("after burial");
}

pub async fn bury_forgets_the_tombstone<S: GcProbe>(meta: &S) {
    let lease = lease(meta).await;
    let d = "sha256:dead";
    meta.link_blob("r", d).await.expect("link");
    let (uploaded, _) = meta.queue_row(d).await.expect("queued");
    let due = at(uploaded.expect("uploaded_at")) + GRACE.uploaded;
    assert!(
        gc(meta)
            .gc_condemn(&lease, d, due, GRACE)
            .await
            .expect("condemn")
    );
    // A stale row (say, from an fsck repair meanwhile) goes too.
    meta.set_queue_row(d, (None, Some(1))).await;
    gc(meta).gc_bury(&lease, d).await.expect("bury");
    gc(meta)
        .gc_bury(&lease, d)
        .await
        .expect("bury is idempotent");
    assert!(meta.tombstones().await.is_empty());
    assert_eq!(meta.queue_row(d).await, None);
    pinned_and_let_go(meta, d).await;
    meta.link_blob("r", d).await.expect("relink");
    assert!(meta.blob_linked("r", d).await.expect("linked"));
}

pub async fn adopt_skips_what_the_metadata_knows<S: GcProbe>(meta: &S) {
    let m = manifest(1, None, None);
    meta.link_blob("r", "sha256:layer").await.expect("link");
    meta.put_manifest("r", &m, &["sha256:layer".into()], None)
        .await
        .expect("put");
    meta.set_queue_row("sha256:queued", (Some(5), None)).await;
    meta.add_tombstone("sha256:tomb", 1).await;
    let present: Vec<(String, u64)> = [
        "sha256:layer",
        m.digest.as_str(),
        "sha256:queued",
        "sha256:tomb",
        "sha256:stray",
        "sha256:stray2",
    ]
    .iter()
    .map(|d| (d.to_string(), 42))
    .collect();
    assert_eq!(gc(meta).gc_adopt(&present).await.expect("adopt"), 2);
    assert_eq!(meta.queue_row("sha256:stray").await, Some((Some(42), None)));
    assert_eq!(
        meta.queue_row("sha256:stray2").await,
        Some((Some(42), None))
    );
    assert_eq!(meta.queue_row("sha256:queued").await, Some((Some(5), None)));
    assert_eq!(meta.queue_row("sha256:layer").await, None);
    assert_eq!(meta.queue_row(&m.digest).await, None);
    assert_eq!(meta.queue_row("sha256:tomb").await, None);
    assert_eq!(
        gc(meta).gc_adopt(&present).await.expect("again"),
        0,
        "adopting is idempotent"
    );
    assert_eq!(gc(meta).gc_adopt(&[]).await.expect("empty"), 0);
}

pub async fn referrers_follow_their_subject<S: GcProbe>(meta: &S) {
    let subject = manifest(1, None, None);
    let sig = manifest(2, Some(&subject.digest), Some("application/sig"));
    let sig_of_sig = manifest(3, Some(&sig.digest), Some("application/sig"));
    let unrelated = manifest(4, Some("sha256:elsewhere"), None);
    for (m, tag) in [
        (&subject, Some("img")),
        (&sig, Some("sig")),
        (&sig_of_sig, None),
        (&unrelated, None),
    ] {
        meta.put_manifest("r", m, &[], tag).await.expect("put");
    }
    let other_repo = manifest(5, Some(&subject.digest), None);
    meta.put_manifest("other", &subject, &[], None)
        .await
        .expect("put");
    meta.put_manifest("other", &other_repo, &[], None)
        .await
        .expect("put");

    // Deleting an absent subject touches nobody's referrers.
    assert!(
        !meta
            .delete_manifest("r", "sha256:elsewhere")
            .await
            .expect("delete absent")
    );
    assert!(
        meta.get_manifest("r", &unrelated.digest)
            .await
            .expect("get")
            .is_some()
    );

    assert!(
        meta.delete_manifest("r", &subject.digest)
            .await
            .expect("delete")
    );
    for gone in [&subject, &sig, &sig_of_sig] {
        assert_eq!(
            meta.get_manifest("r", &gone.digest).await.expect("get"),
            None,
            "{}",
            gone.digest
        );
        let (_, unreferenced) = meta.queue_row(&gone.digest).await.expect("queued");
        recent(unreferenced);
    }
    assert_eq!(meta.resolve_tag("r", "sig").await.expect("resolve"), None);
    for (repo, kept) in [
        ("r", &unrelated),
        ("other", &subject),
        ("other", &other_repo),
    ] {
        assert!(
            meta.get_manifest(repo, &kept.digest)
                .await
                .expect("get")
                .is_some(),
            "{repo} {}",
            kept.digest
        );
    }
}

pub async fn untagged_selection<S: GcProbe>(meta: &S) {
    let tagged = manifest(1, None, None);
    let loose = manifest(2, None, None);
    let child = manifest(3, None, None);
    let index = manifest(4, None, None);
    let live_referrer = manifest(5, Some(&tagged.digest), None);
    let orphan_referrer = manifest(6, Some("sha256:never"), None);
    meta.put_manifest("r", &tagged, &[], Some("t"))
        .await
        .expect("put");
    meta.put_manifest("r", &loose, &[], None)
        .await
        .expect("put");
    meta.put_manifest("r", &child, &[], None)
        .await
        .expect("put");
    meta.put_manifest("r", &index, std::slice::from_ref(&child.digest), None)
        .await
        .expect("put index");
    meta.put_manifest("r", &live_referrer, &[], None)
        .await
        .expect("put");
    meta.put_manifest("r", &orphan_referrer, &[], None)
        .await
        .expect("put");
    // The child is untagged in the other repository, where no index holds it.
    meta.put_manifest("s", &child, &[], None)
        .await
        .expect("put");

    let (oldest, created) = meta.manifest_times().await;
    recent(Some(created));
    let g = gc(meta);
    let untagged = |before| async move { g.gc_untagged(before).await.expect("untagged") };
    assert!(untagged(0).await.is_empty());
    assert!(
        untagged(at(oldest)).await.is_empty(),
        "stored at `before` is not before it"
    );
    let mut want = vec![
        ("r".to_string(), loose.digest.clone()),
        ("r".to_string(), index.digest.clone()),
        ("r".to_string(), orphan_referrer.digest.clone()),
        ("s".to_string(), child.digest.clone()),
    ];
    want.sort();
    assert_eq!(untagged(at(created) + 1).await, want);
}

/// Both grace periods at zero.
pub const ZERO: GracePeriods = GracePeriods {
    unreferenced: 0,
    uploaded: 0,
};

/// The interleaving that lost blobs with collectors in two processes,
/// stepped: pass A condemns a blob; pass B starts while A is still
/// deleting. B used to finish and bury A's tombstone, a push then
/// re-uploaded the blob, and A's delete, arriving last, took the new bytes.
/// Now B leaves a live pass's tombstones alone, the push waits, and only
/// once A is gone does a pass take over what it left.
pub async fn a_second_collector_leaves_a_live_passes_tombstones_alone<S: GcProbe>(meta: &S) {
    let (other, pusher) = (meta.second_process().await, meta.second_process().await);
    let d = "sha256:shared";
    meta.link_blob("r", d).await.expect("link");
    let a = lease(meta).await;
    assert!(
        gc(meta)
            .gc_condemn(&a, d, at(now()), ZERO)
            .await
            .expect("condemn")
    );

    let (b, inherited) = gc(&other).gc_begin().await.expect("B begins");
    assert!(inherited.is_empty(), "B took A's tombstone: {inherited:?}");
    gc(&other).gc_bury(&b, d).await.expect("B buries");
    assert_eq!(meta.tombstones().await, [d], "only A may bury it");
    assert!(
        matches!(pusher.pin_blob(d, 1).await, Err(StorageError::Conflict(_))),
        "a re-upload waits for A"
    );
    drop(b);

    // A dies before burying: the next pass inherits the tombstone.
    meta.end_lease(a).await;
    let (c, inherited) = gc(&other).gc_begin().await.expect("C begins");
    assert_eq!(inherited, [d]);
    gc(&other).gc_bury(&c, d).await.expect("C buries");
    assert!(meta.tombstones().await.is_empty());
    pusher
        .pin_blob(d, 1)
        .await
        .expect("the re-upload goes ahead");
}

/// At zero upload grace a pass could condemn a blob between its commit and
/// its link, delete the bytes and bury it; the link then named nothing.
/// The pin holds it from commit to link.
pub async fn a_pinned_blob_is_not_condemned_at_zero_grace<S: GcProbe>(meta: &S) {
    let lease = lease(meta).await;
    let d = "sha256:inflight";
    meta.pin_blob(d, 7).await.expect("pin");
    let later = at(now()) + 10;
    assert!(
        gc(meta)
            .gc_due(later, ZERO, 10)
            .await
            .expect("due")
            .is_empty()
    );
    assert!(
        !gc(meta)
            .gc_condemn(&lease, d, later, ZERO)
            .await
            .expect("condemn")
    );
    meta.link_committed("r", d, 7).await.expect("link");
    assert!(meta.blob_linked("r", d).await.expect("linked"));
    // The link used the pin up: from now on only grace periods protect it.
    assert!(
        gc(meta)
            .gc_condemn(&lease, d, later, ZERO)
            .await
            .expect("condemn")
    );

    let m = manifest(1, None, None);
    meta.pin_blob(&m.digest, 8)
        .await
        .expect("pin manifest bytes");
    assert!(
        !gc(meta)
            .gc_condemn(&lease, &m.digest, later, ZERO)
            .await
            .expect("pinned")
    );
    meta.put_manifest_committed("r", &m, &[], Some("t"), 8)
        .await
        .expect("put");
    let pins = meta.pin_count().await;
    assert_eq!(pins, 0, "storing the manifest used its pin up");
}

pub async fn the_pins_of_a_process_that_ended_are_dropped<S: GcProbe>(meta: &S) {
    let server = meta.second_process().await;
    let d = "sha256:abandoned";
    server.pin_blob(d, 1).await.expect("pin");
    let later = at(now()) + 10;
    {
        let lease = lease(meta).await;
        assert!(
            !gc(meta)
                .gc_condemn(&lease, d, later, ZERO)
                .await
                .expect("pinned")
        );
    }
    server.end_process().await;
    let lease = lease(meta).await;
    assert!(
        gc(meta)
            .gc_condemn(&lease, d, later, ZERO)
            .await
            .expect("released")
    );
}

/// A mount checks, in its own transaction, that something still holds the
/// blob: the guest saw it linked a moment ago, but a pass may have taken it
/// since.
pub async fn a_mount_links_only_a_blob_something_holds<S: GcProbe>(meta: &S) {
    let lease = lease(meta).await;
    let d = "sha256:mounted";
    meta.link_blob("from", d).await.expect("link");
    assert!(meta.mount_blob("to", d).await.expect("mount"));
    assert!(meta.blob_linked("to", d).await.expect("linked"));

    assert!(
        gc(meta)
            .gc_condemn(&lease, d, at(now()), ZERO)
            .await
            .expect("condemn")
    );
    assert!(matches!(
        meta.mount_blob("again", d).await,
        Err(StorageError::Conflict(_))
    ));
    gc(meta).gc_bury(&lease, d).await.expect("bury");
    assert!(!meta.mount_blob("again", d).await.expect("mount"));
    assert!(!meta.blob_linked("again", d).await.expect("linked"));
}

/// Tombstones written before passes had leases (holder NULL) belong to
/// passes long gone: the first pass inherits them.
pub async fn tombstones_from_before_leases_are_inherited<S: GcProbe>(meta: &S) {
    meta.add_tombstone("sha256:old", 1).await;
    let (lease, inherited) = gc(meta).gc_begin().await.expect("begin");
    assert_eq!(inherited, ["sha256:old"]);
    gc(meta).gc_bury(&lease, "sha256:old").await.expect("bury");
    assert!(meta.tombstones().await.is_empty());
}

/// The dry run's "waiting" list: unreferenced, not yet due, each with the
/// end of its later grace period; due, referenced, pinned and condemned
/// blobs are not waiting.
pub async fn waiting_lists_blobs_inside_their_grace_periods<S: GcProbe>(meta: &S) {
    let t = 1_000_000;
    meta.set_queue_row("sha256:up", (Some(t), None)).await;
    meta.set_queue_row("sha256:both", (Some(t - 950), Some(t - 50)))
        .await;
    meta.set_queue_row("sha256:due", (Some(t - 2000), Some(t - 200)))
        .await;
    meta.set_queue_row("sha256:pinned", (Some(t), None)).await;
    meta.pin_blob("sha256:pinned", 7).await.expect("pin");
    let m = manifest(1, None, None);
    meta.link_blob("r", "sha256:held").await.expect("link");
    meta.put_manifest("r", &m, &["sha256:held".into()], None)
        .await
        .expect("put");
    meta.set_queue_row("sha256:held", (Some(t), None)).await;
    let mut waiting = gc(meta).gc_waiting(at(t), GRACE).await.expect("waiting");
    waiting.sort();
    assert_eq!(
        waiting,
        [
            // The upload grace ends later than the unreferenced one.
            ("sha256:both".to_owned(), at(t + 50)),
            ("sha256:up".to_owned(), at(t + 1000)),
        ]
    );
    // A huge grace period saturates instead of overflowing.
    let forever = GracePeriods {
        unreferenced: u64::MAX,
        uploaded: u64::MAX,
    };
    let waiting = gc(meta).gc_waiting(at(t), forever).await.expect("waiting");
    assert!(
        waiting.iter().all(|(_, due)| *due == u64::MAX),
        "{waiting:?}"
    );
    assert_eq!(waiting.len(), 3, "{waiting:?}");
}

/// Deleting a whole repository queues every digest it held, as deleting
/// each manifest and link would: a pass at zero grace then condemns the
/// blobs only it held (its manifests' bytes included), and leaves a blob
/// another repository still holds, with that repository's link.
pub async fn a_deleted_repository_leaves_its_blobs_to_collection<S: GcProbe>(meta: &S) {
    let (cfg, layer, shared, loose) = (
        "sha256:cfg",
        "sha256:layer",
        "sha256:shared",
        "sha256:loose",
    );
    let m = manifest(1, None, None);
    let referrer = manifest(2, Some(&m.digest), Some("application/x-sig"));
    for d in [cfg, layer, shared, loose] {
        meta.link_blob("r", d).await.expect("link r");
    }
    let refs = [cfg.to_string(), layer.to_string(), shared.to_string()];
    meta.put_manifest("r", &m, &refs, Some("latest"))
        .await
        .expect("put");
    meta.put_manifest("r", &referrer, &[], None)
        .await
        .expect("put referrer");
    let kept = manifest(3, None, None);
    meta.link_blob("o", shared).await.expect("link o");
    meta.put_manifest("o", &kept, &[shared.to_string()], Some("v1"))
        .await
        .expect("put o");
    // Nested and prefixed names are repositories of their own.
    let nested = manifest(4, None, None);
    meta.link_blob("r/n", "sha256:nested")
        .await
        .expect("link r/n");
    meta.put_manifest("r/n", &nested, &["sha256:nested".to_string()], None)
        .await
        .expect("put r/n");
    meta.set_origin("r", "https://registry-1.docker.io")
        .await
        .expect("origin");
    // Named by manifests, the blobs left the queue.
    for d in [cfg, layer, shared, m.digest.as_str()] {
        assert_eq!(meta.queue_row(d).await, None, "{d}");
    }

    assert!(meta.delete_repository("r").await.expect("delete"));
    assert_eq!(
        meta.list_tags("r", &Default::default())
            .await
            .expect("tags"),
        None
    );
    assert_eq!(
        meta.list_repositories(&Default::default())
            .await
            .expect("catalog"),
        ["o", "r/n"]
    );
    for d in [cfg, layer, shared, loose, &m.digest, &referrer.digest] {
        let (_, unreferenced) = meta
            .queue_row(d)
            .await
            .unwrap_or_else(|| panic!("{d} queued"));
        recent(unreferenced);
    }

    let lease = lease(meta).await;
    let later = at(now()) + 10;
    let mut condemned = condemn_due(meta, &lease, later).await;
    condemned.sort_unstable();
    let mut expected = vec![
        cfg.to_string(),
        layer.to_string(),
        loose.to_string(),
        m.digest.clone(),
        referrer.digest.clone(),
    ];
    expected.sort_unstable();
    assert_eq!(condemned, expected);
    assert!(meta.blob_linked("o", shared).await.expect("o links"));
    assert_eq!(
        meta.resolve_tag("o", "v1").await.expect("resolve"),
        Some(kept.digest)
    );
    assert!(
        meta.blob_linked("r/n", "sha256:nested")
            .await
            .expect("r/n links")
    );
    assert!(
        meta.get_manifest("r/n", &nested.digest)
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(meta.cached_repositories().await.expect("cached"), []);
}

/// A cache stores its manifests without references: its links hold its
/// blobs, at any grace period, until the cached repository is deleted; and
/// untagged-manifest collection leaves a cache's manifests (an index's
/// children are untagged by nature) alone.
pub async fn a_caches_links_hold_its_blobs_until_the_repository_goes<S: GcProbe>(meta: &S) {
    let (cached, local) = ("sha256:cached", "sha256:local");
    meta.set_origin("hub/app", "https://registry-1.docker.io")
        .await
        .expect("origin");
    meta.link_blob("hub/app", cached)
        .await
        .expect("link cached");
    meta.link_blob("team/app", local).await.expect("link local");
    let child = manifest(7, None, None);
    meta.put_manifest("hub/app", &child, &[], None)
        .await
        .expect("put child");
    assert!(gc(meta).gc_is_referenced(cached).await.expect("refd"));
    assert!(!gc(meta).gc_is_referenced(local).await.expect("refd"));

    let later = at(now()) + 10;
    assert!(
        gc(meta)
            .gc_untagged(later)
            .await
            .expect("untagged")
            .is_empty()
    );
    let lease = lease(meta).await;
    let condemned = condemn_due(meta, &lease, later).await;
    assert_eq!(condemned, [local]);
    assert!(meta.blob_linked("hub/app", cached).await.expect("linked"));

    assert!(meta.delete_repository("hub/app").await.expect("delete"));
    let mut condemned = condemn_due(meta, &lease, later).await;
    condemned.sort_unstable();
    let mut expected = vec![cached.to_string(), child.digest.clone()];
    expected.sort_unstable();
    assert_eq!(condemned, expected);
}
