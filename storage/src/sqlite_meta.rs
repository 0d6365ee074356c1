//! Registry metadata in SQLite.
//!
//! One writer connection behind a mutex runs every mutation as an IMMEDIATE
//! transaction; reads go through a small pool of read-only connections,
//! which WAL mode lets proceed while a write is in progress. All SQLite work
//! runs on tokio's blocking pool so it never stalls the async executor.
//!
//! It also keeps online garbage collection's review queue ([`GcMetadata`],
//! `gc.rs`), fed by triggers on the tables above.

mod browse;
mod gc;
mod gc_marks;
mod holders;
mod outbox;
mod queries;
mod schema;

use holders::{Holder, Holders};

use crate::{
    CachedRepository, GcLease, GcMetadata, GracePeriods, Inventory, ManifestInfo, MetadataStore,
    Page, Reference, RepositorySummary, RepositoryUsage, Result, StorageError,
};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// How long a connection waits on a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle read connections kept around; more are opened under load.
const MAX_IDLE_READERS: usize = 4;

/// Registry metadata stored in one SQLite database file.
#[derive(Clone)]
pub struct SqliteMetadata {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    holders: Holders,
    /// This process's holder of its requests' pins, from the first pin on.
    pin_holder: OnceLock<Holder>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic mid-transaction rolls the transaction back on drop, so the
    // connection is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteMetadata {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut conn = Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Backend(format!(
                "cannot enable WAL mode (got {mode})"
            )));
        }
        // FULL: a committed tag or manifest survives power loss, not just a crash.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        schema::migrate(&mut conn)?;
        let inner = Inner {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            holders: Holders::beside(path),
            pin_holder: OnceLock::new(),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Runs `f` in one write transaction on the blocking pool, committing on `Ok`.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        run_blocking(move || {
            let mut conn = lock(&inner.writer);
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    /// Runs `f` in one read transaction (a consistent snapshot) on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        // Reads run inline: in WAL mode they never wait for the writer, and
        // an indexed lookup costs less than a hop to the blocking pool.
        let conn = self.inner.take_reader()?;
        let result = conn
            .unchecked_transaction()
            .map_err(StorageError::from)
            .and_then(|tx| f(&tx));
        self.inner.return_reader(conn);
        result
    }
}

impl Inner {
    /// The id pins of this process carry, registering it on first use.
    fn pin_holder(&self) -> Result<String> {
        if let Some(holder) = self.pin_holder.get() {
            return Ok(holder.id().to_owned());
        }
        // Two first pins at once may both register; the loser's holder is
        // dropped (and its file removed) before it pinned anything.
        let registered = self.holders.register()?;
        let _ = self.pin_holder.set(registered);
        self.pin_holder
            .get()
            .map(|h| h.id().to_owned())
            .ok_or_else(|| StorageError::Backend("pin holder vanished".into()))
    }

    fn take_reader(&self) -> Result<Connection> {
        if let Some(conn) = lock(&self.readers).pop() {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }

    fn return_reader(&self, conn: Connection) {
        let mut idle = lock(&self.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Backend(format!("blocking task failed: {e}")))?
}

impl SqliteMetadata {
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
        let (repo, manifest, references) = (repo.to_owned(), manifest.clone(), references.to_vec());
        let tag = tag.map(str::to_owned);
        let inner = self.inner.clone();
        self.write(move |tx| {
            queries::put_manifest(tx, &repo, &manifest, &references, tag.as_deref())?;
            match pinned_by {
                Some(request) => {
                    gc::unpin(tx, &inner.pin_holder()?, request, Some(&manifest.digest))
                }
                None => Ok(()),
            }
        })
        .await
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
impl MetadataStore for SqliteMetadata {
    async fn link_blob(&self, repo: &str, digest: &str) -> Result<()> {
        require("repository", repo)?;
        require("digest", digest)?;
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        self.write(move |tx| queries::link_blob(tx, &repo, &digest))
            .await
    }

    async fn blob_linked(&self, repo: &str, digest: &str) -> Result<bool> {
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        self.read(move |tx| queries::blob_linked(tx, &repo, &digest))
            .await
    }

    async fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        self.write(move |tx| queries::unlink_blob(tx, &repo, &digest))
            .await
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
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        self.read(move |tx| queries::get_manifest(tx, &repo, &digest))
            .await
    }

    async fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<String>> {
        let (repo, tag) = (repo.to_owned(), tag.to_owned());
        self.read(move |tx| queries::resolve_tag(tx, &repo, &tag))
            .await
    }

    async fn tags_of(&self, repo: &str, digest: &str) -> Result<Vec<String>> {
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        self.read(move |tx| queries::tags_of(tx, &repo, &digest))
            .await
    }

    async fn summarize(&self, names: &[String]) -> Result<Vec<RepositorySummary>> {
        let names = names.to_vec();
        self.read(move |tx| browse::summarize(tx, &names)).await
    }

    async fn pushed_at(&self, repo: &str, digest: &str) -> Result<Option<u64>> {
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        self.read(move |tx| browse::pushed_at(tx, &repo, &digest))
            .await
    }

    async fn holders(&self, digest: &str, limit: u32) -> Result<Option<Vec<String>>> {
        let digest = digest.to_owned();
        self.read(move |tx| browse::holders(tx, &digest, limit).map(Some))
            .await
    }

    async fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool> {
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        self.write(move |tx| queries::delete_manifest(tx, &repo, &digest))
            .await
    }

    async fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        let (repo, tag) = (repo.to_owned(), tag.to_owned());
        self.write(move |tx| queries::delete_tag(tx, &repo, &tag))
            .await
    }

    async fn list_tags(&self, repo: &str, page: &Page) -> Result<Option<Vec<String>>> {
        let (repo, page) = (repo.to_owned(), page.clone());
        self.read(move |tx| queries::list_tags(tx, &repo, &page))
            .await
    }

    async fn list_repositories(&self, page: &Page) -> Result<Vec<String>> {
        let page = page.clone();
        self.read(move |tx| queries::list_repositories(tx, &page))
            .await
    }

    async fn list_referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestInfo>> {
        let (repo, subject) = (repo.to_owned(), subject.to_owned());
        let artifact_type = artifact_type.map(str::to_owned);
        self.read(move |tx| queries::list_referrers(tx, &repo, &subject, artifact_type.as_deref()))
            .await
    }

    async fn begin_upload(&self, repo: &str, id: &str) -> Result<()> {
        require("repository", repo)?;
        require("upload id", id)?;
        let (repo, id) = (repo.to_owned(), id.to_owned());
        self.write(move |tx| queries::begin_upload(tx, &repo, &id))
            .await
    }

    async fn upload_repository(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_owned();
        self.read(move |tx| queries::upload_repository(tx, &id))
            .await
    }

    async fn end_upload(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.write(move |tx| queries::end_upload(tx, &id)).await
    }

    async fn set_origin(&self, repo: &str, origin: &str) -> Result<()> {
        require("repository", repo)?;
        require("origin", origin)?;
        let (repo, origin) = (repo.to_owned(), origin.to_owned());
        self.write(move |tx| queries::set_origin(tx, &repo, &origin))
            .await
    }

    async fn origin(&self, repo: &str) -> Result<Option<String>> {
        let repo = repo.to_owned();
        self.read(move |tx| queries::origin(tx, &repo)).await
    }

    async fn note_pulled(&self, repo: &str, now: u64) -> Result<()> {
        let repo = repo.to_owned();
        self.write(move |tx| queries::note_pulled(tx, &repo, now))
            .await
    }

    async fn cached_repositories(&self) -> Result<Vec<CachedRepository>> {
        self.read(|tx| queries::cached_repositories(tx)).await
    }

    /// One transaction: a collection pass sees the repository whole or
    /// gone, and every digest it held is queued by the delete triggers.
    async fn delete_repository(&self, repo: &str) -> Result<bool> {
        let repo = repo.to_owned();
        self.write(move |tx| queries::delete_repository(tx, &repo))
            .await
    }

    async fn pin_blob(&self, digest: &str, request: u64) -> Result<()> {
        require("digest", digest)?;
        let digest = digest.to_owned();
        let inner = self.inner.clone();
        self.write(move |tx| gc::pin(tx, &digest, &inner.pin_holder()?, request))
            .await
    }

    async fn unpin(&self, request: u64) -> Result<()> {
        let Some(holder) = self.inner.pin_holder.get().map(|h| h.id().to_owned()) else {
            return Ok(());
        };
        self.write(move |tx| gc::unpin(tx, &holder, request, None))
            .await
    }

    async fn link_committed(&self, repo: &str, digest: &str, request: u64) -> Result<()> {
        require("repository", repo)?;
        require("digest", digest)?;
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        let inner = self.inner.clone();
        self.write(move |tx| {
            queries::link_blob(tx, &repo, &digest)?;
            gc::unpin(tx, &inner.pin_holder()?, request, Some(&digest))
        })
        .await
    }

    async fn mount_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        require("repository", repo)?;
        require("digest", digest)?;
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        self.write(move |tx| gc::mount(tx, &repo, &digest)).await
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
impl GcMetadata for SqliteMetadata {
    async fn gc_due(&self, now: u64, grace: GracePeriods, limit: u32) -> Result<Vec<String>> {
        self.read(move |tx| gc::due(tx, now, grace, limit)).await
    }

    async fn gc_begin(&self) -> Result<(GcLease, Vec<String>)> {
        let inner = self.inner.clone();
        let lease = run_blocking(move || inner.holders.register()).await?;
        let id = lease.id().to_owned();
        let others = {
            let id = id.clone();
            self.read(move |tx| gc::holders(tx, &id)).await?
        };
        let holders = self.inner.holders.clone();
        // Checked outside the transaction: a holder found dead stays dead
        // (its file, removed by the check, cannot come back).
        let dead = run_blocking(move || {
            let mut dead = Vec::new();
            for holder in others {
                if !holders.is_alive(holder.as_deref())? {
                    dead.push(holder);
                }
            }
            Ok(dead)
        })
        .await?;
        let heir = id.clone();
        let inherited = self
            .write(move |tx| gc::take_over(tx, &dead, &heir))
            .await?;
        Ok((GcLease::new(id, Box::new(lease)), inherited))
    }

    async fn gc_condemn(
        &self,
        lease: &GcLease,
        digest: &str,
        now: u64,
        grace: GracePeriods,
    ) -> Result<bool> {
        let (digest, holder) = (digest.to_owned(), lease.id().to_owned());
        self.write(move |tx| gc::condemn(tx, &digest, now, grace, &holder))
            .await
    }

    async fn gc_bury(&self, lease: &GcLease, digest: &str) -> Result<()> {
        let (digest, holder) = (digest.to_owned(), lease.id().to_owned());
        self.write(move |tx| gc::bury(tx, &digest, &holder)).await
    }

    async fn gc_adopt(&self, present: &[(String, u64)]) -> Result<u64> {
        let present = present.to_vec();
        self.write(move |tx| gc::adopt(tx, &present)).await
    }

    async fn gc_is_referenced(&self, digest: &str) -> Result<bool> {
        let digest = digest.to_owned();
        self.read(move |tx| gc::is_referenced(tx, &digest)).await
    }

    async fn gc_untagged(&self, before: u64) -> Result<Vec<(String, String)>> {
        self.read(move |tx| gc::untagged(tx, before)).await
    }

    async fn gc_delete_untagged(&self, repo: &str, digest: &str, before: u64) -> Result<bool> {
        let (repo, digest) = (repo.to_owned(), digest.to_owned());
        self.write(move |tx| gc::delete_untagged(tx, &repo, &digest, before))
            .await
    }

    async fn gc_waiting(&self, now: u64, grace: GracePeriods) -> Result<Vec<(String, u64)>> {
        self.read(move |tx| gc::waiting(tx, now, grace)).await
    }
}

#[async_trait]
impl Inventory for SqliteMetadata {
    async fn references(&self) -> Result<Vec<Reference>> {
        self.read(|tx| gc::references(tx)).await
    }

    async fn drop_reference(&self, reference: &Reference) -> Result<()> {
        let reference = reference.clone();
        self.write(move |tx| gc::drop_reference(tx, &reference))
            .await
    }

    async fn usage(&self) -> Result<Vec<RepositoryUsage>> {
        self.read(|tx| gc::usage(tx)).await
    }

    async fn upload_ids(&self) -> Result<Vec<String>> {
        self.read(|tx| gc::upload_ids(tx)).await
    }
}

#[cfg(test)]
mod gc_tests;
#[cfg(test)]
mod tests;
