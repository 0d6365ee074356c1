//! Whether the storage answers: probed once when `serve` starts (it refuses
//! to run on storage it cannot use), then in the background, so that
//! `/health` answers from the last checks without a storage call of its own
//! and a load balancer can take a host whose storage is gone out of service.
//!
//! A probe goes through the same `BlobStore` and `MetadataStore` calls
//! requests use, so every backend is checked the way it is used, and leaves
//! nothing a client or registry:2 could see: it stats a blob no one has,
//! asks who owns an upload session that does not exist, and (unless the
//! server is read-only) creates an upload session in the blob store, reads
//! its size and aborts it, and forgets an unknown session in the metadata
//! (a write that changes nothing). A session a crash leaves behind is purged
//! like any abandoned upload.

use super::Backends;
use berth_storage::{Digest, StorageError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Consecutive failed checks after which `/health` says 503; one success
/// brings it back.
pub const UNHEALTHY_AFTER: u32 = 3;

/// How long one probe may take, at start and in the background.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server knows about its storage: shared by the checker, which
/// writes it, and `/health`, which reads it.
#[derive(Clone)]
pub struct Health {
    /// What is probed, for messages: "S3 bucket `b` at http://…".
    what: Arc<str>,
    state: Arc<Mutex<State>>,
}

/// What `/health` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Healthy,
    /// The last `failures` checks failed; the last one because of `why`.
    Unhealthy {
        failures: u32,
        why: String,
    },
}

/// A change a check made, worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// A check failed, but not yet enough of them in a row.
    Failing,
    /// This check made `UNHEALTHY_AFTER` failures in a row.
    WentDown,
    /// A check succeeded after the storage had been reported down.
    CameBack,
}

/// The state machine, apart from the clock and the storage.
#[derive(Debug, Default)]
struct State {
    failures: u32,
    last_failure: Option<String>,
}

impl State {
    fn record(&mut self, outcome: Result<(), String>) -> Change {
        match outcome {
            Ok(()) => {
                let was_down = self.failures >= UNHEALTHY_AFTER;
                self.failures = 0;
                self.last_failure = None;
                if was_down {
                    Change::CameBack
                } else {
                    Change::None
                }
            }
            Err(why) => {
                self.failures = self.failures.saturating_add(1);
                self.last_failure = Some(why);
                match self.failures {
                    n if n == UNHEALTHY_AFTER => Change::WentDown,
                    n if n > UNHEALTHY_AFTER => Change::None,
                    _ => Change::Failing,
                }
            }
        }
    }

    fn status(&self) -> Status {
        match &self.last_failure {
            Some(why) if self.failures >= UNHEALTHY_AFTER => Status::Unhealthy {
                failures: self.failures,
                why: why.clone(),
            },
            _ => Status::Healthy,
        }
    }
}

impl Health {
    /// Healthy until a check says otherwise; `what` names the storage.
    pub fn new(what: String) -> Self {
        Self {
            what: what.into(),
            state: Arc::default(),
        }
    }

    /// The storage this is about, as messages name it.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The answer of the last checks; no storage call.
    pub fn status(&self) -> Status {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .status()
    }

    fn record(&self, outcome: Result<(), String>) -> Change {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(outcome)
    }
}

/// Why a probe failed: the step, and the backend's whole cause.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{step}: {cause}")]
    Failed {
        step: &'static str,
        /// Every `source()` of the backend's error, for the log.
        cause: String,
        /// Words anyone may read (no endpoint, bucket or key).
        public: String,
    },
    #[error("no answer within {} s", PROBE_TIMEOUT.as_secs())]
    TimedOut,
}

impl ProbeError {
    /// What `/health` may tell anyone who asks: the step and the kind of
    /// failure; the endpoint, bucket and whole cause stay in the log.
    pub fn public(&self) -> String {
        match self {
            ProbeError::Failed { step, public, .. } => format!("{step}: {public}"),
            ProbeError::TimedOut => self.to_string(),
        }
    }
}

/// One probe of `backends`, with writes unless `write` is false.
pub async fn probe(backends: &Backends, write: bool) -> Result<(), ProbeError> {
    tokio::time::timeout(PROBE_TIMEOUT, steps(backends, write))
        .await
        .unwrap_or(Err(ProbeError::TimedOut))
}

async fn steps(backends: &Backends, write: bool) -> Result<(), ProbeError> {
    let (blobs, metadata) = (&backends.blobs, &backends.metadata);
    // A digest no blob has, and an upload id no session has.
    let absent = Digest::from_sha256(&[0; 32]);
    let unknown_id = uuid::Uuid::new_v4().simple().to_string();
    step("reading blobs", blobs.stat(&absent).await)?;
    step(
        "reading metadata",
        metadata.upload_repository(&unknown_id).await,
    )?;
    if !write {
        return Ok(());
    }
    let id = step("writing blobs", blobs.create_upload().await)?;
    let read_back = step("reading back a blob write", blobs.upload_size(&id).await);
    let deleted = step("deleting a blob write", blobs.abort(&id).await);
    read_back?;
    deleted?;
    step("writing metadata", metadata.end_upload(&unknown_id).await)
}

fn step<T>(step: &'static str, result: Result<T, StorageError>) -> Result<T, ProbeError> {
    result.map_err(|e| ProbeError::Failed {
        step,
        cause: e.cause(),
        public: e
            .temporary()
            .unwrap_or_else(|| "the storage backend failed; the server log says why".to_owned()),
    })
}

/// The probe `serve` runs before it listens: refusing to start on storage
/// it cannot use, with a message naming the storage and the real cause.
pub async fn check_at_start(backends: &Backends, write: bool) -> anyhow::Result<()> {
    probe(backends, write)
        .await
        .map_err(|e| anyhow::anyhow!("cannot use the {}: {e}", backends.health.what()))
}

/// Checks `backends` every `interval` for as long as the server runs,
/// recording each outcome in `backends.health` and logging the changes.
pub fn spawn_checker(backends: Backends, interval: Duration, write: bool) {
    // A zero interval would probe without pause.
    let interval = interval.max(Duration::from_millis(100));
    tokio::spawn(async move {
        let health = &backends.health;
        loop {
            tokio::time::sleep(interval).await;
            let result = probe(&backends, write).await;
            let why = result
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            match health.record(result.map_err(|e| e.public())) {
                Change::None => {}
                Change::Failing => {
                    tracing::warn!(storage = health.what(), error = %why, "storage check failed");
                }
                Change::WentDown => tracing::error!(
                    storage = health.what(),
                    error = %why,
                    "storage unavailable: {UNHEALTHY_AFTER} checks failed in a row, /health answers 503"
                ),
                Change::CameBack => {
                    tracing::warn!(
                        storage = health.what(),
                        "storage is back, /health answers 200"
                    );
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_three_failures_back_after_one_success() {
        let mut state = State::default();
        assert_eq!(state.status(), Status::Healthy);
        assert_eq!(state.record(Err("refused".into())), Change::Failing);
        assert_eq!(state.record(Err("refused".into())), Change::Failing);
        assert_eq!(state.status(), Status::Healthy, "two failures are a blip");
        assert_eq!(state.record(Err("timed out".into())), Change::WentDown);
        assert_eq!(
            state.status(),
            Status::Unhealthy {
                failures: 3,
                why: "timed out".into()
            }
        );
        assert_eq!(state.record(Err("refused".into())), Change::None);
        assert!(matches!(
            state.status(),
            Status::Unhealthy { failures: 4, .. }
        ));
        assert_eq!(state.record(Ok(())), Change::CameBack);
        assert_eq!(state.status(), Status::Healthy);
        assert_eq!(state.record(Ok(())), Change::None);
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut state = State::default();
        state.record(Err("a".into()));
        state.record(Err("b".into()));
        assert_eq!(state.record(Ok(())), Change::None);
        state.record(Err("c".into()));
        state.record(Err("d".into()));
        assert_eq!(state.status(), Status::Healthy);
    }

    #[tokio::test]
    async fn probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = crate::config::Config::default();
        config.storage.root = dir.path().join("data");
        let backends = super::super::open(&config).await.expect("open");
        probe(&backends, true).await.expect("probe");
        probe(&backends, false).await.expect("read-only probe");
        let uploads = backends.blobs.list_uploads().await.expect("uploads");
        assert!(uploads.is_empty(), "{uploads:?}");
        let page = berth_storage::Page::default();
        let repos = backends.metadata.list_repositories(&page).await;
        assert!(repos.expect("repositories").is_empty());
    }
}
