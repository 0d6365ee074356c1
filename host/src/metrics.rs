//! Prometheus metrics for `/metrics`: registry:2's names (its
//! `registry_http_*` and `registry_storage_*` families, so that existing
//! dashboards keep working) and Berth's own (`berth_*`: the sandbox,
//! garbage collection, uploads, plugins, stored bytes per repository).
//!
//! One process-wide set, as the `prometheus` crate's own default registry
//! is: requests, the sandbox and the collector all count into it without
//! passing a handle around.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::OnceLock;

/// Every metric Berth exports.
pub struct Metrics {
    /// Everything but the per-repository family.
    registry: Registry,
    /// Only `berth_repository_stored_bytes`, left out where it could name
    /// repositories the catalog hides from the caller.
    repositories: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_request_size: HistogramVec,
    pub http_response_size: HistogramVec,
    pub http_in_flight: IntGaugeVec,
    pub storage_action: HistogramVec,
    pub gc_passes: IntCounterVec,
    pub gc_blobs_removed: IntCounter,
    pub gc_bytes_removed: IntCounter,
    pub gc_manifests_removed: IntCounter,
    pub gc_queue: IntGauge,
    pub gc_last_pass: IntGauge,
    pub uploads_in_progress: IntGauge,
    pub guest_instantiation: Histogram,
    pub guest_failures: IntCounterVec,
    pub plugin_denials: IntCounterVec,
    pub repository_bytes: IntGaugeVec,
    pub notifications_dropped: IntCounter,
    pub proxy_requests: IntCounterVec,
    pub proxy_hits: IntCounterVec,
    pub proxy_misses: IntCounterVec,
    pub proxy_pulled_bytes: IntCounterVec,
    pub notifications_events: IntCounterVec,
    pub notifications_pending: IntGaugeVec,
    pub notifications_status: IntCounterVec,
}

/// `type` of the proxy families: what was asked of the cache.
#[derive(Debug, Clone, Copy)]
pub enum Cached {
    Blob,
    Manifest,
}

impl Cached {
    fn label(self) -> &'static str {
        match self {
            Cached::Blob => "blob",
            Cached::Manifest => "manifest",
        }
    }
}

/// Request and response sizes: 256 B up to 4 GiB, by factors of 4.
fn size_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(256.0, 4.0, 12).unwrap_or_default()
}

/// Instantiation takes tens of microseconds: finer than the default
/// buckets, which start at 5 ms.
fn instantiation_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(10e-6, 2.5, 10).unwrap_or_default()
}

impl Metrics {
    fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let repositories = Registry::new();
        let http = |name: &str, help: &str| {
            Opts::new(name, help)
                .namespace("registry")
                .subsystem("http")
        };
        let hist = |name: &str, help: &str, buckets: Vec<f64>| {
            HistogramOpts::new(name, help)
                .namespace("registry")
                .subsystem("http")
                .buckets(buckets)
        };
        let berth = |name: &str, help: &str| Opts::new(name, help).namespace("berth");
        let notifications = |name: &str, help: &str| {
            Opts::new(name, help)
                .namespace("registry")
                .subsystem("notifications")
        };
        let proxy = |name: &str, help: &str| {
            Opts::new(name, help)
                .namespace("registry")
                .subsystem("proxy")
        };
        let metrics = Self {
            http_requests: IntCounterVec::new(
                http("requests_total", "Total number of HTTP requests made."),
                &["handler", "code", "method"],
            )?,
            http_duration: HistogramVec::new(
                hist(
                    "request_duration_seconds",
                    "The HTTP request latencies in seconds.",
                    prometheus::DEFAULT_BUCKETS.to_vec(),
                ),
                &["handler", "method"],
            )?,
            http_request_size: HistogramVec::new(
                hist(
                    "request_size_bytes",
                    "The HTTP request sizes in bytes.",
                    size_buckets(),
                ),
                &["handler"],
            )?,
            http_response_size: HistogramVec::new(
                hist(
                    "response_size_bytes",
                    "The HTTP response sizes in bytes.",
                    size_buckets(),
                ),
                &["handler"],
            )?,
            http_in_flight: IntGaugeVec::new(
                http("in_flight_requests", "The in-flight HTTP requests"),
                &["handler"],
            )?,
            storage_action: HistogramVec::new(
                HistogramOpts::new(
                    "action_seconds",
                    "The number of seconds that the storage action takes",
                )
                .namespace("registry")
                .subsystem("storage"),
                &["driver", "action"],
            )?,
            gc_passes: IntCounterVec::new(
                berth("gc_passes_total", "Garbage collection passes, by outcome."),
                &["outcome"],
            )?,
            gc_blobs_removed: IntCounter::with_opts(berth(
                "gc_blobs_removed_total",
                "Blobs garbage collection deleted.",
            ))?,
            gc_bytes_removed: IntCounter::with_opts(berth(
                "gc_bytes_removed_total",
                "Bytes garbage collection freed.",
            ))?,
            gc_manifests_removed: IntCounter::with_opts(berth(
                "gc_manifests_removed_total",
                "Untagged manifests garbage collection deleted.",
            ))?,
            gc_queue: IntGauge::with_opts(berth(
                "gc_queue_blobs",
                "Blobs no longer referenced, waiting for their grace period or the next pass.",
            ))?,
            gc_last_pass: IntGauge::with_opts(berth(
                "gc_last_pass_timestamp_seconds",
                "When the last garbage collection pass of this server ended (Unix time).",
            ))?,
            uploads_in_progress: IntGauge::with_opts(berth(
                "uploads_in_progress",
                "Upload sessions open in the blob store.",
            ))?,
            guest_instantiation: Histogram::with_opts(
                HistogramOpts::new(
                    "guest_instantiation_seconds",
                    "Time to instantiate the registry guest for one request.",
                )
                .namespace("berth")
                .buckets(instantiation_buckets()),
            )?,
            guest_failures: IntCounterVec::new(
                berth(
                    "guest_failures_total",
                    "Requests the registry guest failed: out of fuel, over its memory cap, \
                     trapped, or otherwise.",
                ),
                &["kind"],
            )?,
            plugin_denials: IntCounterVec::new(
                berth(
                    "plugin_denials_total",
                    "Pushes and tag changes a policy plugin refused.",
                ),
                &["plugin"],
            )?,
            repository_bytes: IntGaugeVec::new(
                berth(
                    "repository_stored_bytes",
                    "Bytes of the blobs each repository refers to (shared blobs counted in \
                     each).",
                ),
                &["repository"],
            )?,
            notifications_dropped: IntCounter::with_opts(berth(
                "notifications_pull_events_dropped_total",
                "Pull events dropped because the best-effort queue was full.",
            ))?,
            proxy_requests: IntCounterVec::new(
                proxy(
                    "requests_total",
                    "The number of total incoming proxy request received",
                ),
                &["type"],
            )?,
            proxy_hits: IntCounterVec::new(
                proxy("hits_total", "The number of total proxy request hits"),
                &["type"],
            )?,
            proxy_misses: IntCounterVec::new(
                proxy("misses_total", "The number of total proxy request misses"),
                &["type"],
            )?,
            proxy_pulled_bytes: IntCounterVec::new(
                proxy(
                    "pulled_bytes_total",
                    "The size of total bytes pulled from the upstream",
                ),
                &["type"],
            )?,
            notifications_events: IntCounterVec::new(
                notifications("events_total", "The number of total events"),
                &["type", "endpoint"],
            )?,
            notifications_pending: IntGaugeVec::new(
                notifications("pending_total", "The gauge of pending events in queue"),
                &["endpoint"],
            )?,
            notifications_status: IntCounterVec::new(
                notifications("status_total", "The number of status code"),
                &["code", "endpoint"],
            )?,
            registry,
            repositories,
        };
        let r = &metrics.registry;
        r.register(Box::new(metrics.http_requests.clone()))?;
        r.register(Box::new(metrics.http_duration.clone()))?;
        r.register(Box::new(metrics.http_request_size.clone()))?;
        r.register(Box::new(metrics.http_response_size.clone()))?;
        r.register(Box::new(metrics.http_in_flight.clone()))?;
        r.register(Box::new(metrics.storage_action.clone()))?;
        r.register(Box::new(metrics.gc_passes.clone()))?;
        r.register(Box::new(metrics.gc_blobs_removed.clone()))?;
        r.register(Box::new(metrics.gc_bytes_removed.clone()))?;
        r.register(Box::new(metrics.gc_manifests_removed.clone()))?;
        r.register(Box::new(metrics.gc_queue.clone()))?;
        r.register(Box::new(metrics.gc_last_pass.clone()))?;
        r.register(Box::new(metrics.uploads_in_progress.clone()))?;
        r.register(Box::new(metrics.guest_instantiation.clone()))?;
        r.register(Box::new(metrics.guest_failures.clone()))?;
        r.register(Box::new(metrics.plugin_denials.clone()))?;
        r.register(Box::new(metrics.notifications_dropped.clone()))?;
        r.register(Box::new(metrics.notifications_events.clone()))?;
        r.register(Box::new(metrics.notifications_pending.clone()))?;
        r.register(Box::new(metrics.notifications_status.clone()))?;
        for family in [
            &metrics.proxy_requests,
            &metrics.proxy_hits,
            &metrics.proxy_misses,
            &metrics.proxy_pulled_bytes,
        ] {
            r.register(Box::new(family.clone()))?;
            // Present from the start, as registry:2 shows them.
            for kind in [Cached::Blob, Cached::Manifest] {
                family.with_label_values(&[kind.label()]);
            }
        }
        metrics
            .repositories
            .register(Box::new(metrics.repository_bytes.clone()))?;
        Ok(metrics)
    }

    /// One request to the pull-through cache, served from the store
    /// (`hit`) or fetched upstream.
    pub fn proxy_request(&self, kind: Cached, hit: bool) {
        self.proxy_requests.with_label_values(&[kind.label()]).inc();
        let family = if hit {
            &self.proxy_hits
        } else {
            &self.proxy_misses
        };
        family.with_label_values(&[kind.label()]).inc();
    }

    /// Bytes fetched from an upstream.
    pub fn proxy_pulled(&self, kind: Cached, bytes: u64) {
        self.proxy_pulled_bytes
            .with_label_values(&[kind.label()])
            .inc_by(bytes);
    }

    /// `count` events of `kind` (registry:2's `Events`, `Successes`,
    /// `Failures`, `Errors`) for a webhook endpoint.
    pub fn notified(&self, kind: &str, endpoint: &str, count: usize) {
        self.notifications_events
            .with_label_values(&[kind, endpoint])
            .inc_by(count as u64);
    }

    /// The text exposition format, with the per-repository family only
    /// when `repositories` is true.
    pub fn render(&self, repositories: bool) -> String {
        let mut families = self.registry.gather();
        if repositories {
            families.extend(self.repositories.gather());
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    // Names and label sets are constants, checked by the tests below: a
    // failure here is a programming error caught before any release.
    METRICS.get_or_init(|| Metrics::new().expect("metric definitions are valid"))
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Seconds since `start`, for histograms.
pub fn seconds_since(start: std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Times one storage call into `registry_storage_action_seconds`.
pub async fn timed<T>(
    driver: &'static str,
    action: &'static str,
    call: impl std::future::Future<Output = T>,
) -> T {
    let start = std::time::Instant::now();
    let out = call.await;
    get()
        .storage_action
        .with_label_values(&[driver, action])
        .observe(seconds_since(start));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_definitions_register_and_render() {
        let metrics = super::Metrics::new().expect("valid definitions");
        metrics
            .http_requests
            .with_label_values(&["manifest", "200", "GET"])
            .inc();
        metrics.repository_bytes.with_label_values(&["a/b"]).set(5);
        let shown = metrics.render(false);
        assert!(
            shown.contains(
                "registry_http_requests_total{code=\"200\",handler=\"manifest\",method=\"GET\"} 1"
            ),
            "{shown}"
        );
        assert!(!shown.contains("berth_repository_stored_bytes"), "{shown}");
        let all = metrics.render(true);
        assert!(
            all.contains("berth_repository_stored_bytes{repository=\"a/b\"} 5"),
            "{all}"
        );
    }
}
