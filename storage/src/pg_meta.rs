//! Registry metadata in PostgreSQL, shared by any number of Berth hosts.
//!
//! Every mutation is one transaction on a pooled connection
//! (deadpool-postgres), every read one statement (or, for the inventory's
//! walks, one read-only REPEATABLE READ transaction: one snapshot).
//! Transactions run at READ COMMITTED; the garbage-collection guarantees
//! SQLite got from its single writer come from per-digest advisory locks
//! (locks.rs, gc.rs). A transaction that fails on a deadlock or
//! serialization failure runs again a few times before the caller sees
//! [`StorageError::Unavailable`].
//!
//! Online garbage collection keeps the same review queue, tombstones and
//! pins as SQLite (docs/GC.md), in the same tables, fed by plpgsql triggers
//! (schema.rs). A holder (a pass's lease, this process's pin holder) lives
//! while a dedicated connection holds its session advisory lock
//! (holders.rs); any host may take over what a dead holder held.
//!
//! # Losing the database connection mid-pass
//!
//! If a host's connection to PostgreSQL breaks, the server ends the
//! sessions it notices are gone: at once for a closed socket (the process
//! died, the host rebooted), after about a minute of TCP keepalives for a
//! network gone silent (holder sessions set `tcp_keepalives_*`). With the
//! sessions go the lease and pin-holder locks. From then on:
//! - the pass's metadata calls fail with `Unavailable`; `gc_condemn` checks,
//!   in its own transaction, that the lease's lock is still held and fails
//!   when it is not, so a pass never condemns once it may have been taken
//!   over. Its tombstones are taken over by the next pass on any host,
//!   which deletes those bytes (again) and buries them.
//! - the one thing not covered: a pass that condemned a blob, then lost its
//!   lease before deleting the bytes, may still delete them after another
//!   pass took the tombstone over, buried it and a push re-uploaded the
//!   blob. That needs the connection lost, a second pass, its delete and a
//!   re-upload, all within one blob deletion; a lease loss is logged.
//! - this process's pin holder is replaced by a new one on the next pin;
//!   pins taken under the old one may be dropped by a pass. A request whose
//!   pin was dropped fails its link (or manifest put) with `Conflict`
//!   rather than link bytes a pass may have deleted meanwhile: the link
//!   checks, under the digest's lock, that the pin is still there.
//! - requests answer 503 while the pool cannot connect, and recover by
//!   themselves once PostgreSQL answers again (the pool reconnects).
//! - a server-side `idle_session_timeout` would end idle holder sessions
//!   and so their holders: leave it unset for Berth's database user.

mod browse;
mod errors;
mod gc;
mod holders;
mod locks;
mod marks;
mod outbox;
mod queries;
mod schema;
mod sql;

use holders::Holder;

use crate::{
    CachedRepository, GcLease, GcMetadata, GracePeriods, Inventory, ManifestInfo, MetadataStore,
    Page, Reference, RepositorySummary, RepositoryUsage, Result, StorageError,
};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

/// How often a transaction that lost a deadlock or serialization race runs
/// again before the caller gets `Unavailable`.
const RETRIES: u32 = 3;
/// More connections than any server accepts; also keeps the pool's
/// semaphore within its limits whatever the configuration says.
const MAX_POOL: usize = 10_000;
/// Used for connecting and waiting for a pooled connection when no
/// statement timeout is set.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// Where and how to reach the database.
#[derive(Clone)]
pub struct PostgresSettings {
    /// `postgres://user:password@host:port/database?options`.
    pub url: String,
    /// Pooled connections at most (holders take one more each); at least
    /// 1, at most 10,000.
    pub pool_size: usize,
    /// Longest a statement may run (PostgreSQL `statement_timeout`; zero:
    /// none). Also bounds waiting for a pooled connection.
    pub statement_timeout: Duration,
}

/// Shows where the database is, never the URL's password.
impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = self
            .url
            .parse::<tokio_postgres::Config>()
            .map_or_else(|_| "(unparsable url)".to_owned(), |c| describe_database(&c));
        f.debug_struct("PostgresSettings")
            .field("database", &target)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// Registry metadata stored in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresMetadata {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// For the holders' own connections, outside the pool.
    config: tokio_postgres::Config,
    /// This process's holder of its requests' pins.
    pins: tokio::sync::Mutex<PinHolders>,
}

/// This process's pin holder, from the first pin on, replaced when its
/// connection is lost; and the ids of every one it had, since requests
/// that pinned under an earlier holder still let go of those pins.
#[derive(Default)]
struct PinHolders {
    current: Option<Arc<Holder>>,
    ids: Vec<String>,
}

/// Runs `$body` (an expression that may use `$tx`, a `&Transaction`, and
/// `.await`) in one transaction, committing on `Ok`; runs it again when it
/// lost a deadlock or serialization race. A macro rather than a function
/// taking a closure: the body borrows the transaction across awaits.
macro_rules! in_tx {
    ($self:expr, |$tx:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let result = async {
                let mut client = $self.client().await?;
                let transaction = client.transaction().await.map_err(errors::db)?;
                let value = {
                    let $tx = &transaction;
                    $body
                }?;
                transaction.commit().await.map_err(errors::db)?;
                Ok::<_, StorageError>(value)
            }
            .await;
            match result {
                Err(e) if errors::retryable(&e) && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(attempt, "postgres transaction contended; running it again");
                }
                other => break other,
            }
        }
    }};
}

/// Runs `$body` on a pooled connection outside a transaction: one
/// statement, one snapshot.
macro_rules! on_client {
    ($self:expr, |$c:ident| $body:expr) => {{
        let client = $self.client().await?;
        let $c = &client;
        $body
    }};
}

/// Runs `$body` in one read-only REPEATABLE READ transaction: several
/// statements, one snapshot.
macro_rules! snapshot {
    ($self:expr, |$tx:ident| $body:expr) => {{
        let mut client = $self.client().await?;
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(errors::db)?;
        let value = {
            let $tx = &transaction;
            $body
        }?;
        transaction.commit().await.map_err(errors::db)?;
        Ok(value)
    }};
}

/// `host:port/database` for messages, never the user or password.
pub fn describe_database(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

impl PostgresMetadata {
    /// Creates the pool and brings the schema to the latest version. Fails
    /// with `Unavailable`, naming `host:port/database` and the cause, when
    /// the server cannot be reached.
    pub async fn connect(settings: &PostgresSettings) -> Result<Self> {
        // The parser's errors never repeat the URL, so no password leaks.
        let mut config: tokio_postgres::Config = settings
            .url
            .parse()
            .map_err(|e| StorageError::Invalid(format!("metadata.postgres.url: {e}")))?;
        let timeout = settings.statement_timeout;
        let wait = if timeout.is_zero() {
            DEFAULT_WAIT
        } else {
            timeout
        };
        // Every session, pooled or a holder's, starts with the timeout.
        let mut options = config.get_options().unwrap_or_default().to_owned();
        options.push_str(&format!(" -c statement_timeout={}", timeout.as_millis()));
        config.options(options.trim());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(wait);
        }
        if config.get_application_name().is_none() {
            config.application_name("berth");
        }
        let target = describe_database(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.clamp(1, MAX_POOL))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(wait))
            .create_timeout(Some(wait))
            .recycle_timeout(Some(wait))
            .build()
            .map_err(|e| StorageError::Backend(format!("postgres pool: {e}")))?;
        let unreachable = |cause: String| {
            StorageError::Unavailable(format!("PostgreSQL at {target} cannot be reached: {cause}"))
        };
        let mut client = pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => unreachable(errors::chain(&e)),
            other => unreachable(errors::chain(&other)),
        })?;
        schema::migrate(&mut client).await.map_err(|e| match e {
            StorageError::Unavailable(why) => unreachable(why),
            other => other,
        })?;
        drop(client);
        tracing::info!(database = %target, "postgres metadata ready");
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                config,
                pins: tokio::sync::Mutex::default(),
            }),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        self.inner.pool.get().await.map_err(errors::pool)
    }

    /// The id pins of this process carry, registering a holder on first
    /// use and again when the last one's connection was lost.
    async fn pin_holder(&self) -> Result<String> {
        let mut pins = self.inner.pins.lock().await;
        if let Some(holder) = pins.current.as_ref().filter(|h| h.is_connected()) {
            return Ok(holder.id().to_owned());
        }
        if let Some(lost) = pins.current.take() {
            tracing::warn!(
                holder = lost.id(),
                "pin holder lost its database connection; replacing it"
            );
        }
        let holder = Arc::new(Holder::register(&self.inner.config).await?);
        let id = holder.id().to_owned();
        pins.current = Some(holder);
        pins.ids.push(id.clone());
        Ok(id)
    }

    /// Every pin holder this process had (none before its first pin).
    async fn pin_holders(&self) -> Vec<String> {
        self.inner.pins.lock().await.ids.clone()
    }

    /// `put_manifest`, also dropping `pinned_by`'s pin on the manifest's
    /// bytes in the same transaction.
    async fn store_manifest(
        &self,
        repo: &str,
        manifest: &ManifestInfo,
        references: &[String],
        tag: Option<&str>,
        pinned_by: Option<u64>,
    ) -> Result<()> {
        require("repository", repo)?;
        require("digest", &manifest.digest)?;
        if let Some(tag) = tag {
            require("tag", tag)?;
        }
        let holders = match pinned_by {
            Some(_) => self.pin_holders().await,
            None => Vec::new(),
        };
        in_tx!(self, |tx| {
            if let Some(request) = pinned_by {
                gc::require_pin(tx, &holders, request, &manifest.digest, repo, true).await?;
            }
            queries::put_manifest(tx, repo, manifest, references, tag).await?;
            match pinned_by {
                Some(request) => gc::unpin(tx, &holders, request, Some(&manifest.digest)).await,
                None => Ok(()),
            }
        })
    }
}

/// Rejects names that cannot be stored: empty ones sort before every
/// pagination marker and are never valid OCI names.
fn require(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        Err(StorageError::Invalid(format!("empty {what}")))
    } else {
        Ok(())
    }
}

#[async_trait]
impl MetadataStore for PostgresMetadata {
    async fn link_blob(&self, repo: &str, digest: &str) -> Result<()> {
        require("repository", repo)?;
        require("digest", digest)?;
        in_tx!(self, |tx| queries::link_blob(tx, repo, digest).await)
    }

    async fn blob_linked(&self, repo: &str, digest: &str) -> Result<bool> {
        on_client!(self, |c| queries::blob_linked(c, repo, digest).await)
    }

    async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        in_tx!(self, |tx| queries::unlink_blob(tx, repo, digest).await)
    }

    async fn put_manifest(
        &self,
        repo: &str,
        manifest: &ManifestInfo,
        references: &[String],
        tag: Option<&str>,
    ) -> Result<()> {
        self.store_manifest(repo, manifest, references, tag, None)
            .await
    }

    async fn get_manifest(&self, repo: &str, digest: &str) -> Result<Option<ManifestInfo>> {
        on_client!(self, |c| queries::get_manifest(c, repo, digest).await)
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<String>> {
        on_client!(self, |c| queries::resolve_tag(c, repo, tag).await)
    }

    async fn tags_of(&self, repo: &str, digest: &str) -> Result<Vec<String>> {
        on_client!(self, |c| queries::tags_of(c, repo, digest).await)
    }

    async fn summarize(&self, names: &[String]) -> Result<Vec<RepositorySummary>> {
        // One snapshot: counts and sharing agree across the page.
        snapshot!(self, |tx| browse::summarize(tx, names).await)
    }

    async fn pushed_at(&self, repo: &str, digest: &str) -> Result<Option<u64>> {
        on_client!(self, |c| browse::pushed_at(c, repo, digest).await)
    }

    async fn holders(&self, digest: &str, limit: u32) -> Result<Option<Vec<String>>> {
        on_client!(self, |c| browse::holders(c, digest, limit).await.map(Some))
    }

    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool> {
        in_tx!(self, |tx| queries::delete_manifest(tx, repo, digest).await)
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        in_tx!(self, |tx| queries::delete_tag(tx, repo, tag).await)
    }

    async fn list_tags(&self, repo: &str, page: &Page) -> Result<Option<Vec<String>>> {
        on_client!(self, |c| queries::list_tags(c, repo, page).await)
    }

    async fn list_repositories(&self, page: &Page) -> Result<Vec<String>> {
        on_client!(self, |c| queries::list_repositories(c, page).await)
    }

    async fn list_referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestInfo>> {
        on_client!(self, |c| queries::list_referrers(
            c,
            repo,
            subject,
            artifact_type
        )
        .await)
    }

    async fn begin_upload(&self, repo: &str, id: &str) -> Result<()> {
        require("repository", repo)?;
        require("upload id", id)?;
        in_tx!(self, |tx| queries::begin_upload(tx, repo, id).await)
    }

    async fn upload_repository(&self, id: &str) -> Result<Option<String>> {
        on_client!(self, |c| queries::upload_repository(c, id).await)
    }

    async fn end_upload(&self, id: &str) -> Result<()> {
        in_tx!(self, |tx| queries::end_upload(tx, id).await)
    }

    async fn set_origin(&self, repo: &str, origin: &str) -> Result<()> {
        require("repository", repo)?;
        require("origin", origin)?;
        in_tx!(self, |tx| queries::set_origin(tx, repo, origin).await)
    }

    async fn origin(&self, repo: &str) -> Result<Option<String>> {
        on_client!(self, |c| queries::origin(c, repo).await)
    }

    async fn note_pulled(&self, repo: &str, now: u64) -> Result<()> {
        in_tx!(self, |tx| queries::note_pulled(tx, repo, now).await)
    }

    async fn cached_repositories(&self) -> Result<Vec<CachedRepository>> {
        on_client!(self, |c| queries::cached_repositories(c).await)
    }

    /// One transaction: a collection pass sees the repository whole or
    /// gone, and every digest it held is queued by the delete triggers.
    async fn delete_repository(&self, repo: &str) -> Result<bool> {
        in_tx!(self, |tx| queries::delete_repository(tx, repo).await)
    }

    async fn pin_blob(&self, digest: &str, request: u64) -> Result<()> {
        require("digest", digest)?;
        let holder = self.pin_holder().await?;
        in_tx!(self, |tx| gc::pin(tx, digest, &holder, request).await)
    }

    async fn unpin(&self, request: u64) -> Result<()> {
        let holders = self.pin_holders().await;
        if holders.is_empty() {
            return Ok(());
        }
        in_tx!(self, |tx| gc::unpin(tx, &holders, request, None).await)
    }

    async fn link_committed(&self, repo: &str, digest: &str, request: u64) -> Result<()> {
        require("repository", repo)?;
        require("digest", digest)?;
        let holders = self.pin_holders().await;
        in_tx!(self, |tx| {
            gc::require_pin(tx, &holders, request, digest, repo, false).await?;
            queries::link_blob(tx, repo, digest).await?;
            gc::unpin(tx, &holders, request, Some(digest)).await
        })
    }

    async fn mount_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        require("repository", repo)?;
        require("digest", digest)?;
        in_tx!(self, |tx| gc::mount(tx, repo, digest).await)
    }

    async fn put_manifest_committed(
        &self,
        repo: &str,
        manifest: &ManifestInfo,
        references: &[String],
        tag: Option<&str>,
        request: u64,
    ) -> Result<()> {
        self.store_manifest(repo, manifest, references, tag, Some(request))
            .await
    }

    fn gc(&self) -> Option<&dyn GcMetadata> {
        Some(self)
    }

    fn inventory(&self) -> Option<&dyn Inventory> {
        Some(self)
    }

    fn outbox(&self) -> Option<&dyn crate::outbox::Outbox> {
        Some(self)
    }
}

#[async_trait]
impl GcMetadata for PostgresMetadata {
    async fn gc_due(&self, now: u64, grace: GracePeriods, limit: u32) -> Result<Vec<String>> {
        on_client!(self, |c| gc::due(c, now, grace, limit).await)
    }

    async fn gc_begin(&self) -> Result<(GcLease, Vec<String>)> {
        let lease = Holder::register(&self.inner.config).await?;
        let id = lease.id().to_owned();
        // Checked outside the take-over transaction: a holder found dead
        // stays dead (its id is never used again).
        let dead = on_client!(self, |c| {
            let others = gc::holders(c, &id).await?;
            gc::dead(c, others).await
        })?;
        let inherited = in_tx!(self, |tx| gc::take_over(tx, &dead, &id).await)?;
        Ok((GcLease::new(id, Box::new(lease)), inherited))
    }

    async fn gc_condemn(
        &self,
        lease: &GcLease,
        digest: &str,
        now: u64,
        grace: GracePeriods,
    ) -> Result<bool> {
        in_tx!(self, |tx| {
            // A pass whose lease lock is gone may have been taken over: it
            // must not condemn anything more.
            if !holders::is_alive(tx, Some(lease.id())).await? {
                tracing::warn!(
                    lease = lease.id(),
                    "collection pass lost its database lease"
                );
                Err(StorageError::Unavailable(
                    "this collection pass lost its database lease".into(),
                ))
            } else {
                gc::condemn(tx, digest, now, grace, lease.id()).await
            }
        })
    }

    async fn gc_bury(&self, lease: &GcLease, digest: &str) -> Result<()> {
        in_tx!(self, |tx| gc::bury(tx, digest, lease.id()).await)
    }

    async fn gc_adopt(&self, present: &[(String, u64)]) -> Result<u64> {
        in_tx!(self, |tx| gc::adopt(tx, present).await)
    }

    async fn gc_is_referenced(&self, digest: &str) -> Result<bool> {
        on_client!(self, |c| gc::is_referenced(c, digest).await)
    }

    async fn gc_untagged(&self, before: u64) -> Result<Vec<(String, String)>> {
        on_client!(self, |c| gc::untagged(c, before).await)
    }

    async fn gc_delete_untagged(&self, repo: &str, digest: &str, before: u64) -> Result<bool> {
        in_tx!(self, |tx| gc::delete_untagged(tx, repo, digest, before)
            .await)
    }

    async fn gc_waiting(&self, now: u64, grace: GracePeriods) -> Result<Vec<(String, u64)>> {
        on_client!(self, |c| gc::waiting(c, now, grace).await)
    }
}

#[async_trait]
impl Inventory for PostgresMetadata {
    async fn references(&self) -> Result<Vec<Reference>> {
        snapshot!(self, |tx| gc::references(tx).await)
    }

    async fn drop_reference(&self, reference: &Reference) -> Result<()> {
        in_tx!(self, |tx| gc::drop_reference(tx, reference).await)
    }

    async fn usage(&self) -> Result<Vec<RepositoryUsage>> {
        on_client!(self, |c| gc::usage(c).await)
    }

    async fn upload_ids(&self) -> Result<Vec<String>> {
        on_client!(self, |c| gc::upload_ids(c).await)
    }
}

#[cfg(test)]
mod gc_tests;
#[cfg(test)]
mod race_tests;
#[cfg(test)]
mod tests;
