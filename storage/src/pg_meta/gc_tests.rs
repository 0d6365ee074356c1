//! Garbage collection on PostgreSQL: the shared GC conformance cases
//! (conformance/gc.rs) through a probe into the tables, where "another
//! process" is another `PostgresMetadata` with its own pool and holders,
//! as another host has; and what only PostgreSQL has: hosts migrating an
//! empty database at once, a pass losing its connection mid-pass, and an
//! unreachable server.

use super::tests::{server, settings, store};
use super::{PostgresMetadata, PostgresSettings, holders, schema};
use crate::conformance::gc::{GcProbe, QueueRow, ZERO, at, now};
use crate::{GcLease, MetadataStore, StorageError};
use async_trait::async_trait;
use std::time::Duration;
use tokio_postgres::config::Host;

crate::gc_conformance_tests!(|case| ((), Box::new(store(case).await)));

impl PostgresMetadata {
    /// A URL for the same database (tests use trust authentication, so
    /// user, host, port and database are all it needs).
    fn test_url(&self) -> String {
        let config = &self.inner.config;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            other => panic!("tests connect over TCP, not {other:?}"),
        };
        format!(
            "postgres://{}@{host}:{}/{}",
            config.get_user().expect("user"),
            config.get_ports().first().expect("port"),
            config.get_dbname().expect("database")
        )
    }

    /// Waits until no other session sees holder `id` alive: a server
    /// notices a closed connection a moment after it closed.
    async fn wait_dead(&self, id: &str) {
        let client = self.client().await.expect("client");
        for _ in 0..500 {
            if !holders::is_alive(&client, Some(id)).await.expect("check") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("holder {id} still alive after 5 s");
    }
}

async fn strings(meta: &PostgresMetadata, sql: &str) -> Vec<String> {
    let client = meta.client().await.expect("client");
    client
        .query(sql, &[])
        .await
        .expect(sql)
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[async_trait]
impl GcProbe for PostgresMetadata {
    async fn queue_row(&self, digest: &str) -> Option<QueueRow> {
        let client = self.client().await.expect("client");
        client
            .query_opt(
                "SELECT uploaded_at, unreferenced_at FROM gc_queue WHERE digest = $1",
                &[&digest],
            )
            .await
            .expect("queue row")
            .map(|r| (r.get(0), r.get(1)))
    }

    async fn set_queue_row(&self, digest: &str, (uploaded, unreferenced): QueueRow) {
        let client = self.client().await.expect("client");
        client
            .execute(
                "INSERT INTO gc_queue (digest, uploaded_at, unreferenced_at) VALUES ($1, $2, $3)
                 ON CONFLICT (digest) DO UPDATE
                 SET uploaded_at = excluded.uploaded_at, unreferenced_at = excluded.unreferenced_at",
                &[&digest, &uploaded, &unreferenced],
            )
            .await
            .expect("set row");
    }

    async fn queued(&self) -> Vec<String> {
        strings(self, "SELECT digest FROM gc_queue ORDER BY digest").await
    }

    async fn tombstones(&self) -> Vec<String> {
        strings(self, "SELECT digest FROM gc_tombstones ORDER BY digest").await
    }

    async fn tombstone_since(&self, digest: &str) -> Option<i64> {
        let client = self.client().await.expect("client");
        client
            .query_opt(
                "SELECT since FROM gc_tombstones WHERE digest = $1",
                &[&digest],
            )
            .await
            .expect("since")
            .map(|r| r.get(0))
    }

    async fn add_tombstone(&self, digest: &str, since: i64) {
        let client = self.client().await.expect("client");
        client
            .execute(
                "INSERT INTO gc_tombstones (digest, since) VALUES ($1, $2)",
                &[&digest, &since],
            )
            .await
            .expect("tombstone");
    }

    async fn pin_count(&self) -> i64 {
        let client = self.client().await.expect("client");
        client
            .query_one("SELECT count(*) FROM gc_pins", &[])
            .await
            .expect("count")
            .get(0)
    }

    async fn manifest_times(&self) -> (i64, i64) {
        let client = self.client().await.expect("client");
        let row = client
            .query_one(
                "SELECT min(created_at), max(created_at) FROM manifests",
                &[],
            )
            .await
            .expect("created_at");
        (row.get(0), row.get(1))
    }

    async fn second_process(&self) -> Self {
        PostgresMetadata::connect(&settings(self.test_url()))
            .await
            .expect("second host")
    }

    async fn end_process(self) {
        let holders = self.pin_holders().await;
        let watcher = self.second_process().await;
        drop(self);
        for id in holders {
            watcher.wait_dead(&id).await;
        }
    }

    async fn end_lease(&self, lease: GcLease) {
        let id = lease.id().to_owned();
        drop(lease);
        self.wait_dead(&id).await;
    }
}

/// Several hosts starting at once against an empty database: one
/// migrates under the advisory lock, the others wait and find the version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_migrating_an_empty_database_at_once_all_start() {
    let url = server().create_database("concurrent_migrations");
    let connects = (0..4).map(|_| {
        let settings = settings(url.clone());
        tokio::spawn(async move { PostgresMetadata::connect(&settings).await })
    });
    let mut hosts = Vec::new();
    for connect in connects {
        hosts.push(connect.await.expect("task").expect("connect"));
    }
    let client = hosts[0].client().await.expect("client");
    let versions = client
        .query("SELECT version FROM schema_version", &[])
        .await
        .expect("version");
    assert_eq!(versions.len(), 1, "one version row");
    let version: i32 = versions[0].get(0);
    assert_eq!(
        usize::try_from(version).ok(),
        Some(schema::MIGRATIONS.len())
    );
    // Every host works on the one schema.
    hosts[1].link_blob("r", "sha256:a").await.expect("link");
    assert!(hosts[3].blob_linked("r", "sha256:a").await.expect("linked"));
    // Connecting again migrates nothing twice.
    PostgresMetadata::connect(&settings(url))
        .await
        .expect("reconnect");
}

/// A host whose lease connection is cut mid-pass (the server ends the
/// session, as it does when it notices a host is gone): its lock goes with
/// the session, so it condemns nothing more, and a pass on another host
/// takes over its tombstone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_that_lost_its_connection_is_taken_over() {
    let a = store("lost_connection").await;
    let b = a.second_process().await;
    let (d, e) = ("sha256:condemned", "sha256:next");
    a.link_blob("r", d).await.expect("link");
    a.link_blob("r", e).await.expect("link");
    let gc_a = a.gc().expect("gc");
    let (lease, _) = gc_a.gc_begin().await.expect("begin");
    assert!(
        gc_a.gc_condemn(&lease, d, at(now()), ZERO)
            .await
            .expect("condemn")
    );

    // While A lives, B's pass leaves A's tombstone alone.
    let (b1, inherited) = b.gc().expect("gc").gc_begin().await.expect("B begins");
    assert!(inherited.is_empty(), "{inherited:?}");
    b.end_lease(b1).await;

    let client = b.client().await.expect("client");
    let cut = client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND query LIKE 'SELECT pg_advisory_lock(%'",
            &[],
        )
        .await
        .expect("terminate");
    assert_eq!(cut, 1, "A's lease is the one holder");
    a.wait_dead(lease.id()).await;

    let refused = gc_a.gc_condemn(&lease, e, at(now()), ZERO).await;
    assert!(
        matches!(refused, Err(StorageError::Unavailable(_))),
        "a pass without its lease condemns nothing: {refused:?}"
    );
    assert!(a.blob_linked("r", e).await.expect("linked"), "e untouched");

    let (b2, inherited) = b.gc().expect("gc").gc_begin().await.expect("B again");
    assert_eq!(inherited, [d]);
    b.gc().expect("gc").gc_bury(&b2, d).await.expect("bury");
    // A's late bury is a no-op: the tombstone is no longer its own.
    gc_a.gc_bury(&lease, d).await.expect("late bury");
    assert!(b.tombstones().await.is_empty());
}

/// A server that cannot be reached: `Unavailable`, naming where it looked
/// and why, never the password.
#[tokio::test]
async fn an_unreachable_server_is_unavailable_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let settings = PostgresSettings {
        url: format!("postgres://berth:s3cret@127.0.0.1:{port}/meta"),
        pool_size: 2,
        statement_timeout: Duration::from_secs(2),
    };
    let shown = format!("{settings:?}");
    assert!(
        shown.contains(&format!("127.0.0.1:{port}/meta")) && !shown.contains("s3cret"),
        "{shown}"
    );
    match PostgresMetadata::connect(&settings).await {
        Err(StorageError::Unavailable(why)) => {
            assert!(why.contains(&format!("127.0.0.1:{port}/meta")), "{why}");
            assert!(!why.contains("s3cret"), "{why}");
            assert!(why.to_lowercase().contains("refused"), "{why}");
        }
        Err(other) => panic!("expected Unavailable, got {other:?}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

/// The pool's connections carry the statement timeout.
#[tokio::test]
async fn connections_carry_the_statement_timeout() {
    let url = server().create_database("statement_timeout");
    let meta = PostgresMetadata::connect(&PostgresSettings {
        url,
        pool_size: 1,
        statement_timeout: Duration::from_millis(1500),
    })
    .await
    .expect("connect");
    let client = meta.client().await.expect("client");
    let timeout: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(timeout, "1500ms");
    let slow = client.execute("SELECT pg_sleep(3)", &[]).await;
    assert!(matches!(
        slow.map_err(super::errors::db),
        Err(StorageError::Unavailable(_))
    ));
}

/// A PostgreSQL outage: calls fail with `Unavailable` (the host's 503)
/// while the server is down, nothing half-written shows, and the store
/// recovers by itself once the server is back, without reconnecting by
/// hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_and_heals_by_itself() {
    let own = tokio::task::spawn_blocking(crate::conformance::postgres::TestPostgres::start)
        .await
        .expect("server");
    let url = own.create_database("outage");
    let meta = PostgresMetadata::connect(&PostgresSettings {
        url,
        pool_size: 2,
        statement_timeout: Duration::from_secs(2),
    })
    .await
    .expect("connect");
    meta.link_blob("r", "sha256:before").await.expect("link");
    meta.pin_blob("sha256:pinned", 1).await.expect("pin");
    own.stop();
    for attempt in 0..3 {
        let down = meta.link_blob("r", "sha256:during").await;
        assert!(
            matches!(down, Err(StorageError::Unavailable(_))),
            "attempt {attempt}: {down:?}"
        );
        let read = meta.blob_linked("r", "sha256:before").await;
        assert!(
            matches!(read, Err(StorageError::Unavailable(_))),
            "attempt {attempt}: {read:?}"
        );
    }
    own.resume();
    let mut healed = false;
    for _ in 0..50 {
        if meta.blob_linked("r", "sha256:before").await.is_ok() {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healed, "the store did not reconnect");
    assert!(
        meta.blob_linked("r", "sha256:before")
            .await
            .expect("linked")
    );
    assert!(
        !meta
            .blob_linked("r", "sha256:during")
            .await
            .expect("linked")
    );
    meta.link_blob("r", "sha256:after")
        .await
        .expect("link after");
    // Holders reconnect too: the pin holder the outage cut is replaced,
    // and a pass takes over what it held.
    meta.pin_blob("sha256:after", 2).await.expect("pin");
    let (_lease, _) = meta.gc().expect("gc").gc_begin().await.expect("begin");
}

/// A host whose pin holder's connection is cut while a request has a blob
/// pinned: a pass on another host drops the pin, condemns the blob at zero
/// grace and buries it (its bytes are gone). The request's link must then
/// fail rather than name bytes that are gone; a request that pins again
/// (under a new holder) goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_whose_pin_was_dropped_fails() {
    let a = store("dropped_pin").await;
    let b = a.second_process().await;
    let (d, m) = ("sha256:pinned", crate::conformance::manifest(1, None, None));
    a.pin_blob(d, 1).await.expect("pin");
    a.pin_blob(&m.digest, 2).await.expect("pin manifest");
    let holder = a.pin_holders().await.pop().expect("holder");
    let client = b.client().await.expect("client");
    let cut = client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND query LIKE 'SELECT pg_advisory_lock(%'",
            &[],
        )
        .await
        .expect("terminate");
    assert_eq!(cut, 1, "A's pin holder is the one holder");
    b.wait_dead(&holder).await;

    let gc = b.gc().expect("gc");
    let (lease, _) = gc.gc_begin().await.expect("begin");
    let later = at(now()) + 10;
    for digest in [d, m.digest.as_str()] {
        assert!(
            gc.gc_condemn(&lease, digest, later, ZERO)
                .await
                .expect("condemn")
        );
        gc.gc_bury(&lease, digest).await.expect("bury");
    }

    let linked = a.link_committed("r", d, 1).await;
    assert!(
        matches!(linked, Err(StorageError::Conflict(_))),
        "{linked:?}"
    );
    assert!(!a.blob_linked("r", d).await.expect("linked"));
    let stored = a.put_manifest_committed("r", &m, &[], Some("t"), 2).await;
    assert!(
        matches!(stored, Err(StorageError::Conflict(_))),
        "{stored:?}"
    );
    assert_eq!(a.get_manifest("r", &m.digest).await.expect("get"), None);

    // The upload again: a new holder, and the link goes ahead.
    a.pin_blob(d, 3).await.expect("pin again");
    a.link_committed("r", d, 3).await.expect("link");
    assert!(a.blob_linked("r", d).await.expect("linked"));
    // A link retried after its commit (the answer was lost) is fine.
    a.link_committed("r", d, 3).await.expect("link again");
    assert_eq!(a.pin_count().await, 0);
}
