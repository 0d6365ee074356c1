//! `GET /ui/storage`: what the store holds per repository (the caller's
//! repositories only), and what garbage collection would free. Where the
//! backend cannot tell, the page says "unknown".

use super::error::UiError;
use super::{Ui, html, layout};
use crate::maintenance::{gc, usage};
use crate::sandbox::runtime::GuestRuntime;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use berth_storage::{Digest, GracePeriods};
use maud::html;

/// A grace period long enough that every unreferenced blob counts as
/// waiting: the page does not know the server's own periods.
const FOREVER: u64 = 100 * 365 * 86_400;
/// Waiting blobs whose sizes are added up.
const MAX_STATS: usize = 10_000;

/// What the next passes would free.
struct Reclaimable {
    blobs: usize,
    bytes: u64,
    /// Whether every size was added.
    complete: bool,
    /// When the oldest became unreferenced (unix seconds).
    oldest: Option<u64>,
}

pub(super) async fn page(
    State(guest): State<GuestRuntime>,
    Extension(ui): Extension<Ui>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let viewer = ui.gate.viewer(&headers).await?;
    let backends = guest.backends();
    let usage = match usage::compute(backends).await {
        Ok(usage) => Some(usage),
        Err(usage::UsageError::Unsupported) => None,
        Err(usage::UsageError::Storage(e)) => return Err(e.into()),
    };
    let mut rows = Vec::new();
    if let Some(usage) = &usage {
        for repo in &usage.repositories {
            if ui.gate.may_pull(&viewer, &repo.name).await {
                rows.push(repo);
            }
        }
    }
    let reclaimable = match backends.metadata.gc() {
        None => None,
        Some(queue) => {
            let grace = GracePeriods {
                unreferenced: FOREVER,
                uploaded: FOREVER,
            };
            let waiting = queue.gc_waiting(gc::now(), grace).await?;
            let mut bytes = 0;
            for (digest, _) in waiting.iter().take(MAX_STATS) {
                if let Ok(parsed) = Digest::parse(digest)
                    && let Ok(Some(size)) = backends.blobs.stat(&parsed).await
                {
                    bytes += size;
                }
            }
            Some(Reclaimable {
                blobs: waiting.len(),
                bytes,
                complete: waiting.len() <= MAX_STATS,
                oldest: waiting
                    .iter()
                    .map(|(_, due)| due.saturating_sub(FOREVER))
                    .min(),
            })
        }
    };
    // This server's collector records its passes in the metrics; another
    // host's or a `berth gc` process's are not seen here.
    let last_pass = u64::try_from(crate::metrics::get().gc_last_pass.get())
        .ok()
        .filter(|&at| at > 0);
    let body = html! {
        h1 { "Storage" }
        @match &usage {
            None => p.muted { "Usage per repository: unknown (this metadata store cannot list what it holds)." },
            Some(usage) => {
                p { (usage.blobs) " blobs, " (layout::size(usage.blob_bytes)) " in the blob store." }
                table.usage {
                    thead { tr {
                        th { "Repository" } th.num { "Tags" } th.num { "Manifests" }
                        th.num { "Stored" } th.num { "Exclusive" }
                    } }
                    tbody { @for repo in &rows {
                        tr {
                            td { a href={ "/ui/repo/" (repo.name) } { (repo.name) } }
                            td.num { (repo.tags.len()) }
                            td.num { (repo.manifests) }
                            td.num { (layout::size(repo.size)) }
                            td.num { (layout::size(repo.exclusive_size)) }
                        }
                    } }
                }
                p.muted { "Exclusive: what deleting the repository would free." }
            }
        }
        h2 { "Garbage collection" }
        dl.facts {
            dt { "Last pass" }
            @match last_pass {
                Some(at) => dd { (layout::time(at)) " (this server's collector)" },
                None => dd.muted { "none since this server started" },
            }
            dt { "Next passes would free" }
            dd {
                @match &reclaimable {
                    None => span.muted { "unknown (this metadata store keeps no review queue; blobs are not collected)" },
                    Some(r) if r.blobs == 0 => "nothing: no blob is waiting",
                    Some(r) => {
                        (r.blobs) " unreferenced blobs, "
                        @if !r.complete { "at least " }
                        (layout::size(r.bytes))
                        @if let Some(oldest) = r.oldest { ", the oldest unreferenced since " (layout::time(oldest)) }
                        ". Each goes once its grace period (gc.grace, gc.upload_grace) is over."
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Storage", Some(viewer.who()), body),
    ))
}
