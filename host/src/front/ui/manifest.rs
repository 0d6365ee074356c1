//! `GET /ui/manifest/<name>?ref=<tag or digest>`: one manifest or index:
//! its annotations, the image config (entrypoint, env, labels, history),
//! layers with sizes and which other repositories the caller can see share
//! them, an index's children, and the referrers (signatures, SBOMs).

use super::error::UiError;
use super::tags::delete_form;
use super::{Ui, csrf, html, layout, read};
use crate::front::client::ClientInfo;
use crate::sandbox::runtime::GuestRuntime;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use berth_oci::manifest::{Descriptor, Kind, annotations_from_json};
use berth_storage::ManifestInfo;
use maud::{Markup, html};
use serde::Deserialize;

/// Other repositories named per layer.
const SHARED_SHOWN: u32 = 20;

#[derive(Debug, Deserialize)]
pub(super) struct Params {
    #[serde(rename = "ref")]
    reference: String,
}

/// A layer and who else holds it.
struct Layer {
    descriptor: Descriptor,
    /// Other repositories the caller may pull that hold it; `None` when
    /// the store cannot tell.
    shared: Option<Vec<String>>,
    more: bool,
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
    let metadata = &backends.metadata;
    let reference = params.reference;
    let by_digest = berth_oci::digest::is_digest_syntax(&reference);
    let digest = if by_digest {
        reference.clone()
    } else if berth_oci::grammar::is_valid_tag(&reference) {
        metadata
            .resolve_tag(&name, &reference)
            .await?
            .ok_or(UiError::NotFound)?
    } else {
        return Err(UiError::NotFound);
    };
    let info = metadata
        .get_manifest(&name, &digest)
        .await?
        .ok_or(UiError::NotFound)?;
    let parsed = read::manifest(backends, &info).await;
    let tags = metadata.tags_of(&name, &digest).await?;
    let referrers = metadata.list_referrers(&name, &digest, None).await?;
    let pushed = metadata.pushed_at(&name, &digest).await?;
    let annotations = info
        .annotations
        .as_deref()
        .and_then(annotations_from_json)
        .unwrap_or_default();

    let mut config = None;
    let mut layers = Vec::new();
    let mut children = Vec::new();
    let mut problem = None;
    match &parsed {
        Ok(parsed) if parsed.kind == Kind::Image => {
            if let Some(descriptor) = parsed.descriptors.first() {
                config = Some((
                    descriptor.clone(),
                    read::config(backends, &descriptor.digest).await,
                ));
            }
            for descriptor in parsed.descriptors.iter().skip(1) {
                let holders = metadata
                    .holders(&descriptor.digest, SHARED_SHOWN + 2)
                    .await?;
                let (shared, more) = match holders {
                    Some(holders) => {
                        let more = holders.len() > SHARED_SHOWN as usize + 1;
                        let mut visible = Vec::new();
                        for holder in holders.into_iter().filter(|h| *h != name) {
                            if visible.len() < SHARED_SHOWN as usize
                                && ui.gate.may_pull(&viewer, &holder).await
                            {
                                visible.push(holder);
                            }
                        }
                        (Some(visible), more)
                    }
                    None => (None, false),
                };
                layers.push(Layer {
                    descriptor: descriptor.clone(),
                    shared,
                    more,
                });
            }
        }
        Ok(parsed) => children = parsed.descriptors.clone(),
        Err(e) => problem = Some(e.to_string()),
    }

    let deletes = ui.writes.deletes && ui.gate.may_delete(&viewer, &name).await;
    let client = client.map(|Extension(c)| c);
    let token = csrf::token(&headers, client.as_ref());
    let title = format!("{name}@{}", layout::short(&digest));
    let body = html! {
        p { a href={ "/ui/repo/" (name) } { (name) } }
        h1 { @if by_digest { (layout::short(&digest)) } @else { (reference) } }
        dl.facts {
            dt { "Digest" } dd { code { (digest) } }
            dt { "Media type" } dd { code { (info.media_type) } }
            @if let Some(artifact) = &info.artifact_type { dt { "Artifact type" } dd { code { (artifact) } } }
            dt { "Manifest size" } dd { (layout::size(info.size)) }
            dt { "Pushed" } dd { @match pushed { Some(at) => (layout::time(at)), None => span.muted { "unknown" } } }
            dt { "Tags" } dd {
                @if tags.is_empty() { span.muted { "none" } }
                @for tag in &tags { a href=(layout::manifest_link(&name, tag)) { code { (tag) } } " " }
            }
            @if let Some(subject) = &info.subject {
                dt { "Refers to" } dd { a href=(layout::manifest_link(&name, subject)) { code { (subject) } } }
            }
        }
        @if deletes {
            div.actions {
                @if !by_digest { (delete_form(&name, &reference, &token.value, "Delete tag")) " " }
                (delete_form(&name, &digest, &token.value, "Delete manifest and its tags"))
            }
        }
        @if let Some(problem) = &problem { p.error { "This manifest cannot be read: " (problem) } }
        h2 { "Annotations" }
        @if annotations.is_empty() { p.muted { "None." } } @else {
            table.annotations { tbody {
                @for (key, value) in &annotations { tr { th { code { (key) } } td { (value) } } }
            } }
        }
        @if let Some((descriptor, config)) = &config { (config_section(descriptor, config)) }
        @if !layers.is_empty() { (layers_section(&layers)) }
        @if !children.is_empty() { (children_section(&name, &children)) }
        h2 { "Referrers" }
        @if referrers.is_empty() { p.muted { "None: no signature, SBOM or other artifact refers to this manifest." } } @else {
            (referrers_section(&name, &referrers))
        }
    };
    let mut resp = html(
        StatusCode::OK,
        layout::page(&title, Some(viewer.who()), body),
    );
    if let Some(cookie) = token.set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(resp)
}

fn config_section(descriptor: &Descriptor, config: &Result<read::ImageConfig, String>) -> Markup {
    html! {
        h2 { "Configuration" }
        p.muted { code title=(descriptor.digest) { (layout::short(&descriptor.digest)) } " · " code { (descriptor.media_type) } " · " (layout::size(descriptor.size)) }
        @match config {
            Err(why) => p.muted { (why) },
            Ok(config) => {
                dl.facts {
                    @if let Some(created) = &config.created { dt { "Created" } dd { (created) } }
                    @if let (Some(os), Some(arch)) = (&config.os, &config.architecture) { dt { "Platform" } dd { (os) "/" (arch) } }
                    @if let Some(author) = &config.author { dt { "Author" } dd { (author) } }
                    @if let Some(run) = &config.config {
                        @if let Some(entrypoint) = &run.entrypoint { dt { "Entrypoint" } dd { code { (shell_words(entrypoint)) } } }
                        @if let Some(cmd) = &run.cmd { dt { "Command" } dd { code { (shell_words(cmd)) } } }
                        @if let Some(dir) = run.working_dir.as_ref().filter(|d| !d.is_empty()) { dt { "Working directory" } dd { code { (dir) } } }
                        @if let Some(user) = run.user.as_ref().filter(|u| !u.is_empty()) { dt { "User" } dd { code { (user) } } }
                        @if let Some(ports) = &run.exposed_ports { dt { "Ports" } dd { @for port in ports.keys() { code { (port) } " " } } }
                        @if let Some(env) = &run.env { dt { "Environment" } dd { @for var in env { code { (var) } br; } } }
                        @if let Some(labels) = &run.labels { dt { "Labels" } dd { @for (k, v) in labels { code { (k) "=" (v) } br; } } }
                    }
                }
                @if !config.history.is_empty() {
                    h2 { "History" }
                    table.history {
                        thead { tr { th { "Created" } th { "Created by" } th { "Comment" } } }
                        tbody { @for step in &config.history {
                            tr {
                                td { (step.created.as_deref().unwrap_or("")) }
                                td { code { (step.created_by.as_deref().unwrap_or("")) }
                                     @if step.empty_layer == Some(true) { " " span.muted { "(no layer)" } } }
                                td { (step.comment.as_deref().unwrap_or("")) }
                            }
                        } }
                    }
                }
            }
        }
    }
}

fn layers_section(layers: &[Layer]) -> Markup {
    let total: u64 = layers.iter().map(|l| l.descriptor.size).sum();
    html! {
        h2 { "Layers" }
        table.layers {
            thead { tr { th { "#" } th { "Digest" } th { "Media type" } th.num { "Size" } th { "Also in" } } }
            tbody {
                @for (i, layer) in layers.iter().enumerate() {
                    tr {
                        td { (i + 1) }
                        td { code title=(layer.descriptor.digest) { (layout::short(&layer.descriptor.digest)) } }
                        td { code { (layer.descriptor.media_type) } }
                        td.num { (layout::size(layer.descriptor.size)) }
                        td {
                            @match &layer.shared {
                                None => span.muted { "unknown" },
                                Some(shared) if shared.is_empty() => span.muted { "no other repository" },
                                Some(shared) => {
                                    @for repo in shared { a href={ "/ui/repo/" (repo) } { (repo) } " " }
                                    @if layer.more { span.muted { "and more" } }
                                }
                            }
                        }
                    }
                }
            }
            tfoot { tr { td {} td { "Total" } td {} td.num { (layout::size(total)) } td {} } }
        }
    }
}

fn children_section(repository: &str, children: &[Descriptor]) -> Markup {
    html! {
        h2 { "Manifests" }
        table.children {
            thead { tr { th { "Platform" } th { "Digest" } th { "Media type" } th.num { "Size" } } }
            tbody { @for child in children {
                tr {
                    td { @match &child.platform { Some(p) => (read::platform(p)), None => span.muted { "any" } } }
                    td { a href=(layout::manifest_link(repository, &child.digest)) title=(child.digest) { code { (layout::short(&child.digest)) } } }
                    td { code { (child.media_type) } }
                    td.num { (layout::size(child.size)) }
                }
            } }
        }
    }
}

fn referrers_section(repository: &str, referrers: &[ManifestInfo]) -> Markup {
    html! {
        table.referrers {
            thead { tr { th { "Artifact type" } th { "Digest" } th.num { "Size" } th { "Annotations" } } }
            tbody { @for referrer in referrers {
                tr {
                    td { code { (referrer.artifact_type.as_deref().unwrap_or("unknown")) } }
                    td { a href=(layout::manifest_link(repository, &referrer.digest)) title=(referrer.digest) { code { (layout::short(&referrer.digest)) } } }
                    td.num { (layout::size(referrer.size)) }
                    td { @for (k, v) in referrer.annotations.as_deref().and_then(annotations_from_json).unwrap_or_default() {
                        code { (k) } " = " (v) br;
                    } }
                }
            } }
        }
    }
}

/// A command line as a person reads it: words with spaces quoted.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(char::is_whitespace) {
                format!("\"{}\"", w.replace('"', "\\\""))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
