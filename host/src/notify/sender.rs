//! One delivery task per endpoint: reads the outbox after the endpoint's
//! cursor, POSTs what the endpoint wants (with whatever pull events wait in
//! its memory queue) and, once the receiver answered 2xx or 3xx, moves and
//! saves the cursor. A failed POST is retried after `backoff`, forever: the
//! outbox keeps everything until every endpoint has passed it, so a
//! receiver that is down loses nothing and slows nobody but itself.
//! Events leave in outbox order, so one repository's arrive in order.

use super::Shared;
use super::envelope::{self, Event, Head};
use crate::config::NotificationEndpoint;
use reqwest_upstream::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Events in one POST at most.
const BATCH: u32 = 100;
/// How often the outbox is looked at without a wake-up (events appended by
/// another host sharing the database).
const POLL: Duration = Duration::from_secs(2);

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Http(#[from] reqwest_upstream::Error),
    #[error("the receiver answered {0}")]
    Status(reqwest_upstream::StatusCode),
}

/// An endpoint as its task uses it.
pub(super) struct Endpoint {
    pub name: String,
    url: String,
    headers: HeaderMap,
    timeout: Duration,
    threshold: u32,
    backoff: Duration,
    ignored_media_types: Vec<String>,
    ignored_actions: Vec<String>,
    /// Where its task got to (0 until loaded); trimming takes the least.
    pub cursor: AtomicU64,
}

impl Endpoint {
    pub fn new(config: &NotificationEndpoint) -> Endpoint {
        let mut headers = HeaderMap::new();
        for (name, values) in &config.headers {
            // `config check` refuses invalid names; values are checked here.
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            for value in values {
                match HeaderValue::from_str(value) {
                    Ok(value) => {
                        headers.append(name.clone(), value);
                    }
                    Err(_) => tracing::warn!(
                        endpoint = config.name,
                        header = %name,
                        "notifications: a header value that cannot be sent is left out"
                    ),
                }
            }
        }
        let mut ignored_media_types = config.ignore.mediatypes.clone();
        ignored_media_types.extend(config.ignoredmediatypes.iter().cloned());
        Endpoint {
            name: config.name.trim().to_owned(),
            url: config.url.clone(),
            headers,
            timeout: config.timeout.0,
            threshold: config.threshold.max(1),
            backoff: config.backoff.0.max(Duration::from_millis(10)),
            ignored_media_types,
            ignored_actions: config.ignore.actions.clone(),
            cursor: AtomicU64::new(0),
        }
    }

    /// Whether the endpoint wants an event with this action and target
    /// media type.
    pub fn wants(&self, action: envelope::Action, media_type: &str) -> bool {
        !self.ignored_actions.iter().any(|a| a == action.as_str())
            && !self.ignored_media_types.iter().any(|m| m == media_type)
    }

    /// Whether the endpoint wants some events of this action.
    pub fn wants_action(&self, action: envelope::Action) -> bool {
        !self.ignored_actions.iter().any(|a| a == action.as_str())
    }

    /// [`Endpoint::wants`] for a stored payload; one that does not parse
    /// is sent (the receiver may know better than to drop it).
    fn wants_payload(&self, payload: &str) -> bool {
        match serde_json::from_str::<Head>(payload) {
            Ok(head) => self.wants(head.action, &head.target.media_type),
            Err(_) => true,
        }
    }
}

/// Delivers to endpoint `index` of `shared` for as long as the server runs.
pub(super) async fn run(
    shared: Arc<Shared>,
    index: usize,
    mut pulls: mpsc::Receiver<Arc<Event>>,
    mut wake: watch::Receiver<u64>,
) {
    let Some(endpoint) = shared.endpoints.get(index) else {
        return;
    };
    let name = endpoint.name.as_str();
    let client = match reqwest_upstream::Client::builder()
        .timeout(endpoint.timeout)
        .default_headers(endpoint.headers.clone())
        // A 3xx counts as delivered, as registry:2 counts it; following
        // it would turn the POST into a GET.
        .redirect(reqwest_upstream::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(endpoint = name, error = %e, "notifications: no HTTP client; this endpoint gets nothing");
            return;
        }
    };
    let mut cursor = start(&shared, endpoint).await;
    endpoint.cursor.store(cursor, Ordering::Relaxed);
    tracing::info!(endpoint = name, cursor, "notifications: delivering");
    let mut failures: u32 = 0;
    let mut waiting: Vec<Arc<Event>> = Vec::new();
    loop {
        let durable = match shared.outbox().read_after(cursor, BATCH).await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(endpoint = name, error = %e.cause(), "notifications: reading the outbox");
                tokio::time::sleep(endpoint.backoff).await;
                continue;
            }
        };
        while waiting.len() < BATCH as usize {
            match pulls.try_recv() {
                Ok(event) => waiting.push(event),
                Err(_) => break,
            }
        }
        if durable.is_empty() && waiting.is_empty() {
            tokio::select! {
                _ = wake.changed() => {}
                Some(event) = pulls.recv() => waiting.push(event),
                () = tokio::time::sleep(POLL) => {}
            }
            continue;
        }
        let mut events: Vec<String> = durable
            .iter()
            .filter(|e| endpoint.wants_payload(&e.payload))
            .map(|e| e.payload.clone())
            .collect();
        events.extend(
            waiting
                .iter()
                .filter(|e| endpoint.wants(e.action, &e.target.media_type))
                .filter_map(|e| serde_json::to_string(e.as_ref()).ok()),
        );
        let metrics = crate::metrics::get();
        let head = *wake.borrow();
        metrics
            .notifications_pending
            .with_label_values(&[name])
            .set(i64::try_from(head.saturating_sub(cursor)).unwrap_or(i64::MAX));
        if !events.is_empty() {
            let sent = post(&client, endpoint, &events).await;
            count(name, &sent, events.len());
            match sent {
                Ok(_) => {
                    if failures >= endpoint.threshold {
                        tracing::info!(
                            endpoint = name,
                            failures,
                            "notifications: endpoint is back"
                        );
                    }
                    failures = 0;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == endpoint.threshold {
                        tracing::warn!(endpoint = name, url = endpoint.url, error = %e, failures, "notifications: endpoint is down; retrying every backoff, keeping its events");
                    } else {
                        tracing::debug!(endpoint = name, error = %e, failures, "notifications: delivery failed");
                    }
                    tokio::time::sleep(endpoint.backoff).await;
                    continue;
                }
            }
        }
        waiting.clear();
        if let Some(last) = durable.last().map(|e| e.seq) {
            cursor = last;
            endpoint.cursor.store(cursor, Ordering::Relaxed);
            if let Err(e) = shared.outbox().save_cursor(name, cursor).await {
                // Delivered anyway; a restart before the next save sends
                // these again (at least once).
                tracing::warn!(endpoint = name, error = %e.cause(), "notifications: saving the cursor");
            }
            shared.trim().await;
        }
    }
}

/// Where the endpoint resumes: its saved cursor, or for an endpoint the
/// outbox never saw, the head (it gets what happens from now on).
async fn start(shared: &Shared, endpoint: &Endpoint) -> u64 {
    loop {
        let outbox = shared.outbox();
        let found = match outbox.cursor(&endpoint.name).await {
            Ok(Some(cursor)) => Ok(cursor),
            Ok(None) => match outbox.head().await {
                Ok(head) => outbox
                    .save_cursor(&endpoint.name, head)
                    .await
                    .map(|()| head),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match found {
            Ok(cursor) => return cursor,
            Err(e) => {
                tracing::warn!(endpoint = endpoint.name, error = %e.cause(), "notifications: loading the cursor");
                tokio::time::sleep(endpoint.backoff).await;
            }
        }
    }
}

/// registry:2's delivery metrics for one POST of `events` events.
fn count(
    endpoint: &str,
    sent: &Result<reqwest_upstream::StatusCode, DeliveryError>,
    events: usize,
) {
    let metrics = crate::metrics::get();
    let (kind, status) = match sent {
        Ok(status) => ("Successes", Some(*status)),
        Err(DeliveryError::Status(status)) => ("Failures", Some(*status)),
        Err(DeliveryError::Http(_)) => ("Errors", None),
    };
    metrics.notified(kind, endpoint, events);
    if let Some(status) = status {
        // registry:2 labels codes with their reason: "200 OK".
        let code = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        );
        metrics
            .notifications_status
            .with_label_values(&[code.as_str(), endpoint])
            .inc();
    }
}

async fn post(
    client: &reqwest_upstream::Client,
    endpoint: &Endpoint,
    events: &[String],
) -> Result<reqwest_upstream::StatusCode, DeliveryError> {
    let body = envelope::envelope(events.iter().map(String::as_str));
    let resp = client
        .post(&endpoint.url)
        .header(CONTENT_TYPE, envelope::MEDIA_TYPE)
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    // registry:2 counts 2xx and 3xx as delivered.
    if status.is_success() || status.is_redirection() {
        Ok(status)
    } else {
        Err(DeliveryError::Status(status))
    }
}
