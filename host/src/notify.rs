//! Notifications: registry:2's event envelope POSTed to the
//! `[[notifications]]` endpoints (docs/NOTIFICATIONS.md).
//!
//! Push, mount and delete events are appended to a durable outbox before
//! the client hears back (the metadata store's, or with `layout` metadata
//! a spool under the root, `spool.rs`); one task per endpoint delivers
//! them in order from its own saved cursor (`sender.rs`), so a restart
//! resumes where each endpoint left off and a receiver that is down holds
//! up nothing but its own deliveries. At least once: a redelivered event
//! carries the id it had the first time. Rows every endpoint has passed
//! are trimmed.
//!
//! Pull events are best-effort: each endpoint has a bounded memory queue,
//! and an event that finds it full is dropped and counted
//! ([`Notifier::dropped`]), so a manifest GET never waits on a receiver.
//!
//! Where events come from (the requests and the guest's answers) is the
//! front's business (`front/events.rs`); this module never looks at HTTP
//! requests.

pub mod envelope;
mod sender;
pub mod spool;

use crate::backends::Backends;
use crate::config::NotificationEndpoint;
use berth_storage::MetadataStore;
use berth_storage::outbox::Outbox;
use envelope::{Action, Actor, Event, RequestRecord, Source, Target};
use sender::Endpoint;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// Pull events waiting for one endpoint, at most.
pub const PULL_QUEUE: usize = 10_000;

/// Why notifications cannot start or an event was not stored.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifications spool at {path}: {source}")]
    Spool {
        path: String,
        source: berth_storage::StorageError,
    },
    #[error("writing events to the notifications outbox: {0}")]
    Outbox(berth_storage::StorageError),
    #[error("an event cannot be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Takes events from the front and delivers them; cheap to clone. The
/// default sends nothing.
#[derive(Clone, Default)]
pub struct Notifier {
    shared: Option<Arc<Shared>>,
}

/// Where the outbox is.
enum Durable {
    /// The metadata store keeps it (checked to have one).
    Store(Arc<dyn MetadataStore>),
    Spool(spool::Spool),
}

struct Shared {
    endpoints: Vec<Endpoint>,
    durable: Durable,
    /// The newest sequence number appended here: wakes the senders.
    appended: watch::Sender<u64>,
    /// Each endpoint's pull queue (same order as `endpoints`).
    pulls: Vec<mpsc::Sender<Arc<Event>>>,
    /// Taken by `start`.
    receivers: Mutex<Vec<mpsc::Receiver<Arc<Event>>>>,
    dropped: AtomicU64,
    /// The last trim's bound.
    trimmed: AtomicU64,
    backends: Backends,
    source: Source,
}

impl Shared {
    fn outbox(&self) -> &dyn Outbox {
        match &self.durable {
            Durable::Store(store) => match store.outbox() {
                Some(outbox) => outbox,
                // `from_config` only picks a store that has one.
                None => &NO_OUTBOX,
            },
            Durable::Spool(spool) => spool,
        }
    }

    /// Deletes what every endpoint has passed.
    async fn trim(&self) {
        let Some(least) = self
            .endpoints
            .iter()
            .map(|e| e.cursor.load(Ordering::Relaxed))
            .min()
        else {
            return;
        };
        if least <= self.trimmed.load(Ordering::Relaxed) {
            return;
        }
        match self.outbox().trim(least).await {
            Ok(gone) => {
                self.trimmed.fetch_max(least, Ordering::Relaxed);
                tracing::debug!(upto = least, gone, "notifications: outbox trimmed");
            }
            Err(e) => tracing::warn!(error = %e.cause(), "notifications: trimming the outbox"),
        }
    }
}

/// Stands in for an outbox that cannot be there; every call fails.
struct NoOutbox;
static NO_OUTBOX: NoOutbox = NoOutbox;

#[async_trait::async_trait]
impl Outbox for NoOutbox {
    async fn append(&self, _: &[String]) -> berth_storage::Result<u64> {
        Err(missing())
    }
    async fn read_after(
        &self,
        _: u64,
        _: u32,
    ) -> berth_storage::Result<Vec<berth_storage::outbox::OutboxEntry>> {
        Err(missing())
    }
    async fn head(&self) -> berth_storage::Result<u64> {
        Err(missing())
    }
    async fn cursor(&self, _: &str) -> berth_storage::Result<Option<u64>> {
        Err(missing())
    }
    async fn save_cursor(&self, _: &str, _: u64) -> berth_storage::Result<()> {
        Err(missing())
    }
    async fn trim(&self, _: u64) -> berth_storage::Result<u64> {
        Err(missing())
    }
}

fn missing() -> berth_storage::StorageError {
    berth_storage::StorageError::Backend("the metadata store keeps no outbox".into())
}

impl Notifier {
    /// A notifier for the enabled endpoints of `endpoints` (none: the
    /// default, which sends nothing), with its outbox in the metadata store
    /// or, when that keeps none, under `root`. `listening` names this
    /// server in each event's `source`.
    pub fn from_config(
        endpoints: &[NotificationEndpoint],
        backends: &Backends,
        root: &Path,
        listening: SocketAddr,
    ) -> Result<Notifier, NotifyError> {
        let endpoints: Vec<Endpoint> = endpoints
            .iter()
            .filter(|e| !e.disabled)
            .map(Endpoint::new)
            .collect();
        if endpoints.is_empty() {
            return Ok(Notifier::default());
        }
        let durable = if backends.metadata.outbox().is_some() {
            Durable::Store(backends.metadata.clone())
        } else {
            let dir = root.join(".notifications");
            let spool = spool::Spool::open(&dir).map_err(|source| NotifyError::Spool {
                path: dir.display().to_string(),
                source,
            })?;
            Durable::Spool(spool)
        };
        let (pulls, receivers) = endpoints.iter().map(|_| mpsc::channel(PULL_QUEUE)).unzip();
        let (appended, _) = watch::channel(0);
        let source = Source {
            addr: format!("{}:{}", hostname(), listening.port()),
            instance_id: uuid::Uuid::new_v4().to_string(),
        };
        Ok(Notifier {
            shared: Some(Arc::new(Shared {
                endpoints,
                durable,
                appended,
                pulls,
                receivers: Mutex::new(receivers),
                dropped: AtomicU64::new(0),
                trimmed: AtomicU64::new(0),
                backends: backends.clone(),
                source,
            })),
        })
    }

    /// Starts one delivery task per endpoint (once; later calls do
    /// nothing). Needs a tokio runtime.
    pub fn start(self) -> Notifier {
        let Some(shared) = &self.shared else {
            return self;
        };
        let receivers = std::mem::take(
            &mut *shared
                .receivers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let names: Vec<&str> = shared.endpoints.iter().map(|e| e.name.as_str()).collect();
        if !receivers.is_empty() {
            tracing::info!(endpoints = ?names, "notifications: sending events");
        }
        for (index, pulls) in receivers.into_iter().enumerate() {
            let wake = shared.appended.subscribe();
            tokio::spawn(sender::run(shared.clone(), index, pulls, wake));
        }
        self
    }

    /// Whether any endpoint wants events at all.
    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Whether any endpoint wants events of `action` (of some media
    /// type): pulls nobody wants cost a GET nothing.
    pub fn wants(&self, action: Action) -> bool {
        self.shared
            .as_deref()
            .is_some_and(|s| s.endpoints.iter().any(|e| e.wants_action(action)))
    }

    /// The stores, for what an event needs to know (a manifest's size);
    /// `None` when notifications are off.
    pub fn backends(&self) -> Option<&Backends> {
        self.shared.as_deref().map(|s| &s.backends)
    }

    /// Pull events dropped because an endpoint's queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared
            .as_deref()
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }

    /// A new event: a fresh id, the time, this server as its source.
    pub fn event(
        &self,
        action: Action,
        target: Target,
        request: &RequestRecord,
        actor: Option<String>,
    ) -> Event {
        Event {
            id: envelope::new_id(),
            timestamp: envelope::now(),
            action,
            target,
            request: request.clone(),
            actor: Actor { name: actor },
            source: self
                .shared
                .as_deref()
                .map(|s| s.source.clone())
                .unwrap_or_default(),
        }
    }

    /// Stores push, mount and delete events durably, in order; returns
    /// once they are committed. Their delivery happens in the background.
    pub async fn record(&self, events: &[Event]) -> Result<(), NotifyError> {
        let Some(shared) = self.shared.as_deref() else {
            return Ok(());
        };
        if events.is_empty() {
            return Ok(());
        }
        let payloads = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        let head = shared
            .outbox()
            .append(&payloads)
            .await
            .map_err(NotifyError::Outbox)?;
        shared.appended.send_replace(head);
        let metrics = crate::metrics::get();
        for endpoint in &shared.endpoints {
            let wanted = events
                .iter()
                .filter(|e| endpoint.wants(e.action, &e.target.media_type))
                .count();
            metrics.notified("Events", &endpoint.name, wanted);
        }
        Ok(())
    }

    /// Whether some endpoint that wants pulls has room in its queue: when
    /// none has, a pull's event need not even be built
    /// ([`Notifier::pull_dropped`]).
    pub fn pull_room(&self) -> bool {
        self.shared.as_deref().is_some_and(|s| {
            s.endpoints
                .iter()
                .zip(&s.pulls)
                .any(|(e, q)| e.wants_action(Action::Pull) && q.capacity() > 0)
        })
    }

    /// Counts a pull event dropped, unbuilt, for every endpoint that
    /// wanted it (their queues were full).
    pub fn pull_dropped(&self) {
        if let Some(s) = self.shared.as_deref() {
            let wanting = s
                .endpoints
                .iter()
                .filter(|e| e.wants_action(Action::Pull))
                .count();
            s.dropped.fetch_add(wanting as u64, Ordering::Relaxed);
            crate::metrics::get()
                .notifications_dropped
                .inc_by(wanting as u64);
        }
    }

    /// Queues a pull event for every endpoint that wants it, never
    /// waiting: a full queue drops it (counted).
    pub fn pulled(&self, event: Event) {
        let Some(shared) = self.shared.as_deref() else {
            return;
        };
        let event = Arc::new(event);
        for (endpoint, queue) in shared.endpoints.iter().zip(&shared.pulls) {
            if !endpoint.wants(event.action, &event.target.media_type) {
                continue;
            }
            let metrics = crate::metrics::get();
            if queue.try_send(event.clone()).is_err() {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                metrics.notifications_dropped.inc();
            } else {
                metrics.notified("Events", &endpoint.name, 1);
            }
        }
    }
}

/// This machine's name, for `source.addr` as registry:2 writes it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
