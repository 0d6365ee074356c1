//! `berth metadata migrate --to postgres`: copies the metadata of the
//! configured store (SQLite, or layout metadata, registry:2's tree
//! included) into the PostgreSQL database of `[metadata.postgres]`. The
//! blobs stay where they are; only repositories, links, manifests, tags,
//! upload sessions and cache origins move.
//!
//! It reads the old store through the same interface fsck walks and writes
//! the new one through the one a push uses, so every row is checked as a
//! push's would be. Everything it writes is idempotent (a link, a manifest
//! by digest, a tag set to the same digest), so it may run again: after a
//! failure, or to catch up with pushes the old store took in the meantime,
//! since it only reads the old store, which may keep serving meanwhile.

use crate::backends::{self, Backends};
use crate::config::{Config, MetadataKind};
use crate::store_root;
use crate::transfer::progress::{Progress, Unit};
use anyhow::{Context as _, bail};
use berth_storage::{Digest, ManifestInfo, MetadataStore, Reference};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What one repository holds, gathered from the old store's inventory.
#[derive(Default)]
struct Repository {
    links: BTreeSet<String>,
    /// Manifest digest → what it references.
    manifests: BTreeMap<String, Vec<String>>,
    tags: BTreeMap<String, String>,
}

/// What a run copied, and what it could not.
#[derive(Default)]
struct Tally {
    repositories: u64,
    links: u64,
    manifests: u64,
    tags: u64,
    uploads: u64,
    skipped: u64,
}

pub async fn run(config: &Config, quiet: bool) -> anyhow::Result<()> {
    if config.metadata.kind == MetadataKind::Postgres {
        bail!(
            "metadata.kind is already \"postgres\": set it to the kind the store has now \
             (\"sqlite\" or \"layout\") and keep [metadata.postgres] for the target"
        );
    }
    let source = store_root::open_existing(config).await?;
    let mut target_config = config.clone();
    target_config.metadata.kind = MetadataKind::Postgres;
    let (target, shown) = backends::postgres(&target_config.metadata.postgres).await?;
    let inventory = source
        .metadata
        .inventory()
        .context("this metadata kind cannot list what it holds")?;
    let references = inventory.references().await?;
    let uploads = inventory.upload_ids().await?;
    let repositories = gather(references);
    let total = repositories
        .values()
        .map(|r| (r.links.len() + r.manifests.len() + r.tags.len()) as u64)
        .sum::<u64>()
        + uploads.len() as u64;
    let progress = Progress::counting(Unit::Items("entries"), Some(total), quiet, "migrate");
    let mut tally = Tally::default();
    for (name, repository) in &repositories {
        copy_repository(&source, &target, name, repository, &progress, &mut tally).await?;
    }
    for id in &uploads {
        if let Some(repo) = source.metadata.upload_repository(id).await? {
            target.begin_upload(&repo, id).await?;
            tally.uploads += 1;
        }
        progress.add(1);
    }
    let skipped = match tally.skipped {
        0 => String::new(),
        n => format!("; skipped {n} entries naming content that is gone (see above)"),
    };
    progress.finish(&format!(
        "migrated {} repositories ({} blob links, {} manifests, {} tags) and {} upload \
         sessions into {shown}{skipped}",
        tally.repositories, tally.links, tally.manifests, tally.tags, tally.uploads
    ));
    Ok(())
}

/// The inventory's flat list, by repository.
fn gather(references: Vec<Reference>) -> BTreeMap<String, Repository> {
    let mut repositories: BTreeMap<String, Repository> = BTreeMap::new();
    for reference in references {
        match reference {
            Reference::Link { repo, digest } => {
                repositories.entry(repo).or_default().links.insert(digest);
            }
            Reference::Manifest { repo, digest } => {
                repositories
                    .entry(repo)
                    .or_default()
                    .manifests
                    .entry(digest)
                    .or_default();
            }
            Reference::Ref {
                repo,
                manifest,
                digest,
            } => repositories
                .entry(repo)
                .or_default()
                .manifests
                .entry(manifest)
                .or_default()
                .push(digest),
            Reference::Tag { repo, tag, digest } => {
                repositories
                    .entry(repo)
                    .or_default()
                    .tags
                    .insert(tag, digest);
            }
        }
    }
    repositories
}

async fn copy_repository(
    source: &Backends,
    target: &Arc<dyn MetadataStore>,
    name: &str,
    repository: &Repository,
    progress: &Progress,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    if let Some(origin) = source.metadata.origin(name).await? {
        target.set_origin(name, &origin).await?;
    }
    for digest in &repository.links {
        target.link_blob(name, digest).await?;
        tally.links += 1;
        progress.add(1);
    }
    // A manifest is stored only once what it references is in the
    // repository: children of an index before the index.
    // What is stored in the target, kept for its tags.
    let mut stored: BTreeMap<&str, (ManifestInfo, &Vec<String>)> = BTreeMap::new();
    let mut waiting: Vec<(&String, &Vec<String>)> = repository.manifests.iter().collect();
    while !waiting.is_empty() {
        let (ready, rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|(_, refs)| {
            refs.iter()
                .all(|r| stored.contains_key(r.as_str()) || !repository.manifests.contains_key(r))
        });
        if ready.is_empty() {
            // Only a cycle of manifests naming each other is left, which
            // digests make impossible; report rather than loop.
            for (digest, _) in &rest {
                progress.warn(&format!(
                    "{name}@{digest}: references form a cycle; skipped"
                ));
                tally.skipped += 1;
            }
            break;
        }
        for (digest, refs) in ready {
            match copy_manifest(source, target, name, digest, refs, repository, progress).await? {
                Some(info) => {
                    stored.insert(digest, (info, refs));
                    tally.manifests += 1;
                }
                None => tally.skipped += 1,
            }
            progress.add(1);
        }
        waiting = rest;
    }
    for (tag, digest) in &repository.tags {
        match stored.get(digest.as_str()) {
            Some((info, refs)) => {
                target.put_manifest(name, info, refs, Some(tag)).await?;
                tally.tags += 1;
            }
            None => {
                progress.warn(&format!(
                    "{name}:{tag} -> {digest}: the manifest is not in the repository; skipped"
                ));
                tally.skipped += 1;
            }
        }
        progress.add(1);
    }
    tally.repositories += 1;
    Ok(())
}

/// Stores one manifest in the target and returns its record; `None` (with
/// a warning) when the old store no longer has it or a blob it references
/// is gone.
async fn copy_manifest(
    source: &Backends,
    target: &Arc<dyn MetadataStore>,
    name: &str,
    digest: &str,
    refs: &[String],
    repository: &Repository,
    progress: &Progress,
) -> anyhow::Result<Option<ManifestInfo>> {
    let Some(info) = source.metadata.get_manifest(name, digest).await? else {
        progress.warn(&format!(
            "{name}@{digest}: gone from the old store; skipped"
        ));
        return Ok(None);
    };
    // registry:2 links every blob a push uploaded, but a tree written by
    // other tools may hold a manifest whose layers were never linked: link
    // those whose bytes are there, as a push of the manifest would need.
    for reference in refs {
        if repository.manifests.contains_key(reference) || repository.links.contains(reference) {
            continue;
        }
        let Ok(parsed) = reference.parse::<Digest>() else {
            progress.warn(&format!(
                "{name}@{digest}: bad reference {reference}; skipped"
            ));
            return Ok(None);
        };
        if source.blobs.stat(&parsed).await?.is_none() {
            progress.warn(&format!(
                "{name}@{digest}: references {reference}, whose blob is gone; skipped \
                 (berth fsck --repair drops such manifests)"
            ));
            return Ok(None);
        }
        target.link_blob(name, reference).await?;
    }
    target
        .put_manifest(name, &info, refs, None)
        .await
        .with_context(|| format!("storing {name}@{digest}"))?;
    Ok(Some(info))
}
