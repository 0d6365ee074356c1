//! `GET /ui/`: the repositories the caller may pull, one page at a time,
//! with a search over names, tag counts, sizes and the last push. A page
//! reads only its own repositories' summaries, so it costs the same with
//! ten thousand repositories as with ten.

use super::error::UiError;
use super::{Ui, html, layout};
use crate::sandbox::runtime::GuestRuntime;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use berth_storage::{Digest, Page, RepositorySummary};
use futures::StreamExt as _;
use maud::html;
use serde::Deserialize;
use std::collections::HashMap;

/// Repositories per page.
const PAGE: usize = 50;
/// Names read from the store per step while filling a page.
const BATCH: u32 = 1000;
/// Blob sizes asked for at once.
const STATS_IN_FLIGHT: usize = 16;

#[derive(Debug, Deserialize)]
pub(super) struct Params {
    /// Part of a repository name.
    q: Option<String>,
    /// The last name of the previous page.
    after: Option<String>,
}

/// One row of the table.
struct Row {
    summary: RepositorySummary,
    /// Stored and exclusive bytes; `None` when the store cannot tell.
    sizes: Option<(u64, u64)>,
}

pub(super) async fn page(
    State(guest): State<GuestRuntime>,
    Extension(ui): Extension<Ui>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let viewer = ui.gate.viewer(&headers).await?;
    let backends = guest.backends();
    let query = params.q.as_deref().unwrap_or("").trim().to_lowercase();
    let after = params.after.filter(|a| !a.is_empty());
    let mut names = Vec::new();
    let mut more = false;
    let mut cursor = after.clone();
    'fill: loop {
        let batch = backends
            .metadata
            .list_repositories(&Page {
                last: cursor.clone(),
                n: Some(BATCH),
            })
            .await?;
        let exhausted = batch.len() < BATCH as usize;
        cursor = batch.last().cloned();
        for name in batch {
            if !query.is_empty() && !name.contains(&query) {
                continue;
            }
            if !ui.gate.may_pull(&viewer, &name).await {
                continue;
            }
            if names.len() == PAGE {
                more = true;
                break 'fill;
            }
            names.push(name);
        }
        if exhausted {
            break;
        }
    }
    let summaries = backends.metadata.summarize(&names).await?;
    let rows = with_sizes(&guest, summaries).await;
    let next = more.then(|| names.last().cloned()).flatten();
    let body = html! {
        h1 { "Repositories" }
        form.search method="get" action="/ui/" {
            input type="search" name="q" value=(query) placeholder="Search repository names" aria-label="Search repository names";
            button type="submit" { "Search" }
        }
        @if rows.is_empty() {
            p.muted {
                @if query.is_empty() { "No repositories to show." }
                @else { "No repository name contains " code { (query) } "." }
            }
        } @else {
            table.repositories {
                thead { tr {
                    th { "Repository" }
                    th.num { "Tags" }
                    th.num { "Stored" }
                    th.num { "Exclusive" }
                    th { "Last push" }
                } }
                tbody {
                    @for row in &rows {
                        tr {
                            td { a href={ "/ui/repo/" (row.summary.name) } { (row.summary.name) } }
                            td.num { (row.summary.tags) }
                            @match row.sizes {
                                Some((stored, exclusive)) => {
                                    td.num { (layout::size(stored)) }
                                    td.num { (layout::size(exclusive)) }
                                }
                                None => {
                                    td.num.muted { "unknown" }
                                    td.num.muted { "unknown" }
                                }
                            }
                            td { @match row.summary.last_push {
                                Some(at) => (layout::time(at)),
                                None => span.muted { "unknown" },
                            } }
                        }
                    }
                }
            }
        }
        div.pages {
            @if after.is_some() {
                a href={ "/ui/?q=" (layout::query_value(&query)) } { "First page" }
            }
            @if let Some(next) = &next {
                a rel="next" href={ "/ui/?q=" (layout::query_value(&query)) "&after=" (layout::query_value(next)) } { "Next page" }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Repositories", Some(viewer.who()), body),
    ))
}

/// Adds up each repository's blobs: all it needs, and those only it needs.
async fn with_sizes(guest: &GuestRuntime, summaries: Vec<RepositorySummary>) -> Vec<Row> {
    let mut digests: Vec<String> = summaries
        .iter()
        .flat_map(|s| s.digests.iter().flatten())
        .map(|(d, _)| d.clone())
        .collect();
    digests.sort_unstable();
    digests.dedup();
    let blobs = guest.backends().blobs.clone();
    let sizes: HashMap<String, u64> = futures::stream::iter(digests)
        .map(|digest| {
            let blobs = blobs.clone();
            async move {
                let size = match Digest::parse(&digest) {
                    Ok(parsed) => blobs.stat(&parsed).await.ok().flatten(),
                    Err(_) => None,
                };
                (digest, size.unwrap_or(0))
            }
        })
        .buffer_unordered(STATS_IN_FLIGHT)
        .collect()
        .await;
    summaries
        .iter()
        .map(|summary| {
            let sizes = summary.digests.as_ref().map(|digests| {
                digests
                    .iter()
                    .fold((0, 0), |(stored, exclusive), (d, shared)| {
                        let size = sizes.get(d.as_str()).copied().unwrap_or(0);
                        (
                            stored + size,
                            if *shared { exclusive } else { exclusive + size },
                        )
                    })
            });
            (summary.clone(), sizes)
        })
        .map(|(summary, sizes)| Row { summary, sizes })
        .collect()
}
