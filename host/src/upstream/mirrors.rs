//! The upstream registries one server caches (`[[proxy]]`), and what it
//! shares between requests for them: when each cached tag was last
//! confirmed, and the fetches in flight, so that concurrent pulls of one
//! manifest or blob make one upstream request.
//!
//! Deciding what to fetch and when is the guest's (`guest/src/handlers/
//! cache.rs`); this is the host's half of the `berth:registry/upstream`
//! import.

use super::flight::{BlobFlights, FetchedBlob};
use super::{FetchedManifest, MANIFEST_ACCEPT, Upstream, UpstreamError, UpstreamSettings};
use crate::config::ProxyConfig;
use berth_oci::Digest;
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::route::Reference;
use berth_storage::{BlobStore, MetadataStore};
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One configured upstream.
pub struct Mirror {
    /// Local repositories `<prefix>/<name>` are `<name>` upstream; none for
    /// the mirror of unprefixed names.
    pub prefix: Option<String>,
    /// The host name clients know it by (`?ns=`).
    pub registry: Option<String>,
    pub tag_ttl: Duration,
    /// Cached repositories nobody pulled for this long are forgotten.
    pub unused_after: Option<Duration>,
    pub client: Arc<Upstream>,
}

/// An upstream failure, shared by every caller of one fetch.
pub type Failure = Arc<UpstreamError>;

/// Every configured upstream, by the index the guest names it with.
pub struct Mirrors {
    entries: Vec<Mirror>,
    /// (local repository, tag) → when the upstream last confirmed it.
    checked: Mutex<HashMap<(String, String), Instant>>,
    heads: Flights<(usize, String, String), Result<Digest, Failure>>,
    manifests: Flights<(usize, String, String), Result<FetchedManifest, Failure>>,
    blobs: Option<BlobFlights>,
    /// Where pulls are recorded, and when each cached repository's last
    /// pull was (so that one is written at most every `note_every`).
    metadata: Option<Arc<dyn MetadataStore>>,
    pulled: Mutex<HashMap<String, Instant>>,
    note_every: Duration,
}

/// How often a cached repository's pull time is written at most: often
/// enough for `unused_after` measured in days, rarely enough that pulls
/// cost no write.
const NOTE_EVERY: Duration = Duration::from_secs(3600);

impl Mirrors {
    /// No upstreams: every name is local.
    pub fn none() -> Mirrors {
        Mirrors {
            entries: Vec::new(),
            checked: Mutex::default(),
            heads: Flights::default(),
            manifests: Flights::default(),
            blobs: None,
            metadata: None,
            pulled: Mutex::default(),
            note_every: NOTE_EVERY,
        }
    }

    /// The clients for `proxies`, spooling blobs in flight under `spool`.
    /// Reads the CA and password files now, so a bad one stops the start.
    pub fn from_config(
        proxies: &[ProxyConfig],
        spool: PathBuf,
        blobs: Arc<dyn BlobStore>,
        metadata: Arc<dyn MetadataStore>,
    ) -> Result<Mirrors, UpstreamError> {
        let mut entries = Vec::with_capacity(proxies.len());
        for proxy in proxies {
            let settings = UpstreamSettings::from_proxy(proxy)?;
            entries.push(Mirror {
                prefix: proxy.prefix.clone(),
                registry: proxy.registry.clone(),
                tag_ttl: proxy.tag_ttl.0,
                unused_after: proxy.unused_after.map(|span| span.0),
                client: Arc::new(Upstream::new(&settings)?),
            });
        }
        // A quarter of the shortest `unused_after`, so a repository in use
        // is never forgotten for want of a recorded pull.
        let note_every = entries
            .iter()
            .filter_map(|m| m.unused_after)
            .map(|d| d / 4)
            .fold(NOTE_EVERY, Duration::min);
        let flights =
            (!entries.is_empty()).then(|| BlobFlights::new(spool, blobs, metadata.clone()));
        Ok(Mirrors {
            entries,
            blobs: flights,
            metadata: Some(metadata),
            note_every,
            ..Mirrors::none()
        })
    }

    pub fn entries(&self) -> &[Mirror] {
        &self.entries
    }

    pub fn get(&self, id: u32) -> Option<&Mirror> {
        self.entries.get(usize::try_from(id).ok()?)
    }

    /// How long ago the upstream last confirmed `tag` of local `repository`.
    pub fn tag_checked(&self, repository: &str, tag: &str) -> Option<Duration> {
        let checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
        let key = (repository.to_owned(), tag.to_owned());
        checked.get(&key).map(Instant::elapsed)
    }

    /// Records a pull of cached `repository`: in memory at once, in the
    /// metadata at most every `note_every` (in the background, so the pull
    /// does not wait for the write).
    pub fn note_pull(&self, repository: &str) {
        let Some(metadata) = self.metadata.clone() else {
            return;
        };
        {
            let mut pulled = self.pulled.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            match pulled.get(repository) {
                Some(last) if now.duration_since(*last) < self.note_every => return,
                _ => pulled.insert(repository.to_owned(), now),
            };
        }
        let repository = repository.to_owned();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        tokio::spawn(async move {
            if let Err(e) = metadata.note_pulled(&repository, now).await {
                tracing::warn!(repository, error = %e, "recording a pull of a cached repository");
            }
        });
    }

    fn note_checked(&self, repository: &str, reference: &Reference) {
        if let Reference::Tag(tag) = reference {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            checked.insert((repository.to_owned(), tag.clone()), Instant::now());
        }
    }

    /// The digest `reference` of `remote` has upstream now (`HEAD`).
    pub async fn head(
        &self,
        id: usize,
        repository: &str,
        remote: &str,
        reference: &Reference,
    ) -> Result<Digest, Failure> {
        let client = self.client(id)?;
        let key = (id, remote.to_owned(), super::show(reference).to_owned());
        let (remote, wanted) = (remote.to_owned(), reference.clone());
        let digest = self
            .heads
            .run(key, async move {
                match client
                    .manifest_head(&remote, &wanted, MANIFEST_ACCEPT)
                    .await
                {
                    Ok(Some(head)) => Ok(head.digest),
                    Ok(None) => Err(Arc::new(UpstreamError::NotFound {
                        upstream: client.url().to_owned(),
                        what: format!("manifest {remote}:{}", super::show(&wanted)),
                    })),
                    Err(e) => Err(Arc::new(e)),
                }
            })
            .await?;
        self.note_checked(repository, reference);
        Ok(digest)
    }

    /// Manifest `reference` of `remote`, at most [`MAX_MANIFEST_BYTES`].
    pub async fn manifest(
        &self,
        id: usize,
        repository: &str,
        remote: &str,
        reference: &Reference,
    ) -> Result<FetchedManifest, Failure> {
        let client = self.client(id)?;
        let key = (id, remote.to_owned(), super::show(reference).to_owned());
        let (remote, wanted) = (remote.to_owned(), reference.clone());
        let fetched = self
            .manifests
            .run(key, async move {
                client
                    .manifest_get(&remote, &wanted, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)
                    .await
                    .map_err(Arc::new)
            })
            .await?;
        self.note_checked(repository, reference);
        Ok(fetched)
    }

    /// Starts or joins the fetch of blob `digest` of `remote` into the
    /// store, linked to `repository` once stored.
    pub async fn blob(
        &self,
        id: usize,
        repository: &str,
        remote: &str,
        digest: &Digest,
    ) -> Result<FetchedBlob, Failure> {
        let client = self.client(id)?;
        let flights = self.blobs.as_ref().ok_or_else(|| no_such(id))?;
        flights
            .fetch(&client, remote, digest, repository)
            .await
            .map_err(Arc::new)
    }

    /// Whether a fetch of blob `digest` is in progress on this host.
    pub fn blob_in_flight(&self, digest: &Digest) -> bool {
        self.blobs.as_ref().is_some_and(|f| f.in_flight(digest))
    }

    /// Whether the upstream has blob `digest` in `remote` (`HEAD`): what a
    /// blob the store already holds is linked to a mirror on.
    pub async fn has_blob(&self, id: usize, remote: &str, digest: &Digest) -> Result<u64, Failure> {
        let client = self.client(id)?;
        client.blob_head(remote, digest).await.map_err(Arc::new)
    }

    fn client(&self, id: usize) -> Result<Arc<Upstream>, Failure> {
        self.entries
            .get(id)
            .map(|m| m.client.clone())
            .ok_or_else(|| no_such(id))
    }
}

fn no_such(id: usize) -> Failure {
    Arc::new(UpstreamError::Config {
        upstream: format!("#{id}"),
        reason: "no such upstream is configured".to_owned(),
    })
}

/// Requests in flight by key: a caller that finds one running waits for
/// its answer instead of starting another. Answers are not kept once
/// given.
struct Flights<K, V> {
    running: Mutex<HashMap<K, Shared<BoxFuture<'static, V>>>>,
}

impl<K, V> Default for Flights<K, V> {
    fn default() -> Self {
        Flights {
            running: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone + Send + Sync + 'static> Flights<K, V> {
    async fn run(&self, key: K, work: impl Future<Output = V> + Send + 'static) -> V {
        let flight = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running
                .entry(key.clone())
                .or_insert_with(|| work.boxed().shared())
                .clone()
        };
        let answer = flight.await;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.get(&key).is_some_and(|f| f.peek().is_some()) {
            running.remove(&key);
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_run_and_later_ones_start_anew() {
        let flights: Arc<Flights<&str, usize>> = Arc::new(Flights::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let call = |flights: Arc<Flights<&'static str, usize>>, runs: Arc<AtomicUsize>| async move {
            flights
                .run("k", async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    runs.fetch_add(1, Ordering::SeqCst) + 1
                })
                .await
        };
        let together: Vec<_> = (0..10)
            .map(|_| tokio::spawn(call(flights.clone(), runs.clone())))
            .collect();
        for task in together {
            assert_eq!(task.await.expect("join"), 1);
        }
        assert_eq!(call(flights.clone(), runs.clone()).await, 2);
        assert!(flights.running.lock().expect("lock").is_empty());
    }
}
