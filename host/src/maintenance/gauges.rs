//! The metrics that describe the whole store rather than one request:
//! stored bytes per repository, open upload sessions, and blobs waiting
//! for the collector. Reading them walks the store, so they are refreshed
//! in the background (every few minutes and after each collector pass),
//! never while `/metrics` is scraped.

use crate::backends::Backends;
use crate::maintenance::{gc, usage};
use crate::metrics;
use berth_storage::GracePeriods;
use std::time::Duration;

/// How often the gauges are read again.
pub const REFRESH: Duration = Duration::from_secs(300);

/// Reads the store once and sets the gauges. Failures are logged at DEBUG:
/// the health checks report a store that does not answer.
pub async fn refresh(backends: &Backends, grace: GracePeriods) {
    let m = metrics::get();
    match usage::compute(backends).await {
        Ok(usage) => {
            m.repository_bytes.reset();
            for repo in &usage.repositories {
                let bytes = i64::try_from(repo.size).unwrap_or(i64::MAX);
                m.repository_bytes
                    .with_label_values(&[repo.name.as_str()])
                    .set(bytes);
            }
        }
        Err(usage::UsageError::Unsupported) => {}
        Err(e) => tracing::debug!(error = %e, "metrics: reading usage"),
    }
    match backends.blobs.list_uploads().await {
        Ok(uploads) => m
            .uploads_in_progress
            .set(i64::try_from(uploads.len()).unwrap_or(i64::MAX)),
        Err(e) => tracing::debug!(error = %e, "metrics: listing uploads"),
    }
    if let Some(collector) = backends.metadata.gc() {
        match collector.gc_waiting(gc::now(), grace).await {
            Ok(waiting) => m
                .gc_queue
                .set(i64::try_from(waiting.len()).unwrap_or(i64::MAX)),
            Err(e) => tracing::debug!(error = %e, "metrics: reading the collector's queue"),
        }
    }
}

/// Refreshes the gauges every [`REFRESH`] for as long as the server runs.
pub fn spawn(backends: Backends, grace: GracePeriods) {
    tokio::spawn(async move {
        loop {
            refresh(&backends, grace).await;
            tokio::time::sleep(REFRESH).await;
        }
    });
}

/// Counts one collector pass of this server.
pub fn count_pass(report: Result<&gc::GcReport, ()>) {
    let m = metrics::get();
    match report {
        Ok(report) => {
            m.gc_passes.with_label_values(&["ok"]).inc();
            m.gc_blobs_removed.inc_by(report.blobs.len() as u64);
            m.gc_bytes_removed.inc_by(report.bytes_freed());
            m.gc_manifests_removed.inc_by(report.manifests.len() as u64);
        }
        Err(()) => m.gc_passes.with_label_values(&["failed"]).inc(),
    }
    m.gc_last_pass
        .set(i64::try_from(gc::now()).unwrap_or(i64::MAX));
}
