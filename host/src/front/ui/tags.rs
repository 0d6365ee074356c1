//! `GET /ui/repo/<name>`: a repository's tags, each with its digest,
//! platforms, size, push time, the pull command and (for callers who may
//! delete) a delete button.

use super::error::UiError;
use super::{Ui, csrf, html, layout, read};
use crate::front::client::ClientInfo;
use crate::sandbox::runtime::GuestRuntime;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use berth_storage::Page;
use futures::StreamExt as _;
use maud::{Markup, html};
use serde::Deserialize;

/// Tags per page.
const PAGE: u32 = 100;
/// Tags read at once.
const IN_FLIGHT: usize = 8;

#[derive(Debug, Deserialize)]
pub(super) struct Params {
    after: Option<String>,
    /// What the last delete removed, to say so.
    deleted: Option<String>,
}

/// One tag as the table shows it.
struct Row {
    tag: String,
    digest: Option<String>,
    media_type: String,
    summary: Option<read::Summary>,
    pushed: Option<u64>,
}

pub(super) async fn page(
    State(guest): State<GuestRuntime>,
    Extension(ui): Extension<Ui>,
    client: Option<Extension<ClientInfo>>,
    Path(name): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let viewer = ui.gate.viewer_of(&headers, &name).await?;
    let backends = guest.backends();
    let tags = backends
        .metadata
        .list_tags(
            &name,
            &Page {
                last: params.after.clone().filter(|a| !a.is_empty()),
                n: Some(PAGE + 1),
            },
        )
        .await?
        .ok_or(UiError::NotFound)?;
    let more = tags.len() > PAGE as usize;
    let tags: Vec<String> = tags.into_iter().take(PAGE as usize).collect();
    let rows: Vec<Row> = futures::stream::iter(tags.iter().cloned())
        .map(|tag| row(&guest, &name, tag))
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let deletes = ui.writes.deletes && ui.gate.may_delete(&viewer, &name).await;
    let client = client.map(|Extension(c)| c);
    let token = csrf::token(&headers, client.as_ref());
    let host = registry_host(&headers, client.as_ref());
    let body = html! {
        h1 { (name) }
        @if let Some(deleted) = &params.deleted {
            p.notice { "Deleted " code { (deleted) } "." }
        }
        @if rows.is_empty() {
            p.muted { "No tags." }
        } @else {
            table.tags {
                thead { tr {
                    th { "Tag" } th { "Digest" } th { "Platforms" } th.num { "Size" }
                    th { "Pushed" } th { "Pull" }
                    @if deletes { th { } }
                } }
                tbody {
                    @for row in &rows { (tag_row(row, &name, &host, deletes.then_some(&token.value))) }
                }
            }
        }
        div.pages {
            @if params.after.is_some() {
                a href={ "/ui/repo/" (name) } { "First page" }
            }
            @if more && let Some(last) = tags.last() {
                a rel="next" href={ "/ui/repo/" (name) "?after=" (layout::query_value(last)) } { "Next page" }
            }
        }
    };
    let mut resp = html(
        StatusCode::OK,
        layout::page(&name, Some(viewer.who()), body),
    );
    if let Some(cookie) = token.set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(resp)
}

async fn row(guest: &GuestRuntime, repository: &str, tag: String) -> Row {
    let metadata = &guest.backends().metadata;
    let mut row = Row {
        tag,
        digest: None,
        media_type: String::new(),
        summary: None,
        pushed: None,
    };
    let Ok(Some(digest)) = metadata.resolve_tag(repository, &row.tag).await else {
        return row;
    };
    if let Ok(Some(info)) = metadata.get_manifest(repository, &digest).await {
        row.summary = Some(read::summary(guest.backends(), repository, &info).await);
        row.media_type = info.media_type;
    }
    row.pushed = metadata.pushed_at(repository, &digest).await.ok().flatten();
    row.digest = Some(digest);
    row
}

fn tag_row(row: &Row, repository: &str, host: &str, token: Option<&String>) -> Markup {
    let pull = format!("docker pull {host}/{repository}:{}", row.tag);
    html! {
        tr {
            td { a href=(layout::manifest_link(repository, &row.tag)) { (row.tag) } }
            td {
                @if let Some(digest) = &row.digest {
                    a href=(layout::manifest_link(repository, digest)) title=(digest) { code { (layout::short(digest)) } }
                } @else { span.muted { "gone" } }
            }
            td {
                @match &row.summary {
                    Some(s) if !s.platforms.is_empty() => (s.platforms.join(", ")),
                    _ => span.muted { (kind(&row.media_type)) },
                }
            }
            td.num {
                @match row.summary.as_ref().and_then(|s| s.size) {
                    Some(size) => (layout::size(size)),
                    None => span.muted { "unknown" },
                }
            }
            td { @match row.pushed {
                Some(at) => (layout::time(at)),
                None => span.muted { "unknown" },
            } }
            td.pull {
                code { (pull) }
                button type="button" data-copy=(pull) hidden { "Copy" }
            }
            @if let Some(token) = token {
                td { (delete_form(repository, &row.tag, token, "Delete tag")) }
            }
        }
    }
}

/// A delete button: a form POST with the CSRF token.
pub(super) fn delete_form(repository: &str, reference: &str, token: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action="/ui/delete" {
            input type="hidden" name="repository" value=(repository);
            input type="hidden" name="reference" value=(reference);
            input type="hidden" name="csrf" value=(token);
            button.danger type="submit" { (label) }
        }
    }
}

/// What kind of manifest a media type names, in a word.
fn kind(media_type: &str) -> &'static str {
    if media_type.contains("index") || media_type.contains("manifest.list") {
        "index"
    } else if media_type.is_empty() {
        "unknown"
    } else {
        "single platform"
    }
}

/// The registry's address as the browser reached it, for pull commands.
fn registry_host(headers: &HeaderMap, client: Option<&ClientInfo>) -> String {
    client
        .and_then(|c| c.host.clone())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "localhost".to_owned())
}
