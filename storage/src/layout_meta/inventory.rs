//! The whole tree listed at once, for `berth fsck` and `berth du`: one
//! listing of `repositories/` (paged, on S3: a thousand keys a request)
//! instead of a walk per repository, then each tag's current link and each
//! manifest's bytes read once. Manifest references are not stored in the
//! layout, so they are read from the bytes, as registry:2's collector does.

use super::names::{Repo, Tag};
use super::{objects, paths, tags};
use crate::{Digest, Reference, RepositoryUsage, Result};
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::ObjectStore;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Links and manifests read at once.
const READ_CONCURRENCY: usize = 16;

/// What one repository records.
#[derive(Debug, Default)]
pub(super) struct Contents {
    links: BTreeSet<String>,
    manifests: BTreeSet<String>,
    /// Tag → the manifest its current link names.
    tags: BTreeMap<String, String>,
}

/// Every repository (with blob links, manifests, tags, or only a creation
/// marker) and what it records, by name; and what each manifest references
/// (absent for a manifest whose bytes are gone).
pub(super) struct Tree {
    repos: BTreeMap<String, Contents>,
    references: HashMap<String, Vec<String>>,
}

pub(super) async fn walk(store: &dyn ObjectStore) -> Result<Tree> {
    let mut repos: BTreeMap<String, Contents> = BTreeMap::new();
    let mut tag_keys = Vec::new();
    for key in objects::keys_under(store, &paths::repositories_root()).await? {
        let Some((repo, entry)) = paths::repository_entry(&key) else {
            continue;
        };
        let contents = repos.entry(repo.clone()).or_default();
        match entry {
            paths::Entry::Layer(d) => {
                contents.links.insert(d);
            }
            paths::Entry::Revision(d) => {
                contents.manifests.insert(d);
            }
            paths::Entry::TagCurrent(tag) => tag_keys.push((repo, tag)),
        }
    }
    for key in objects::keys_under(store, &paths::markers_root()).await? {
        if let Some(repo) = paths::marked_repo(&key) {
            repos.entry(repo).or_default();
        }
    }
    let targets: Vec<_> = futures::stream::iter(tag_keys)
        .map(|(repo, tag)| async move {
            let target = resolve(store, &repo, &tag).await?;
            Ok::<_, crate::StorageError>((repo, tag, target))
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    for (repo, tag, target) in targets {
        if let Some(target) = target {
            repos.entry(repo).or_default().tags.insert(tag, target);
        }
    }
    let manifests: BTreeSet<String> = repos
        .values()
        .flat_map(|c| c.manifests.iter().cloned())
        .collect();
    let read: Vec<_> = futures::stream::iter(manifests)
        .map(|digest| async move {
            let found = read_references(store, &digest).await;
            (digest, found)
        })
        .buffer_unordered(READ_CONCURRENCY)
        .collect()
        .await;
    let mut references = HashMap::new();
    for (digest, found) in read {
        if let Some(found) = found? {
            references.insert(digest, found);
        }
    }
    Ok(Tree { repos, references })
}

/// Where a tag points; `None` when its link went away since the listing or
/// does not hold a digest (logged: fsck cannot name a target for it).
async fn resolve(store: &dyn ObjectStore, repo: &str, tag: &str) -> Result<Option<String>> {
    let (Some(r), Some(t)) = (Repo::parse(repo), Tag::parse(tag)) else {
        return Ok(None);
    };
    match tags::resolve(store, r, t).await {
        Ok(target) => Ok(target),
        Err(crate::StorageError::Backend(why)) => {
            tracing::warn!(repository = repo, tag, %why, "unreadable tag link");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The references in manifest `digest`'s bytes; `None` when the bytes are
/// gone (fsck reports the manifest itself) or too large to be a manifest.
async fn read_references(store: &dyn ObjectStore, digest: &str) -> Result<Option<Vec<String>>> {
    let Ok(d) = Digest::parse_any(digest) else {
        return Ok(None);
    };
    match objects::read(store, &paths::blob_data(&d), MAX_MANIFEST_BYTES).await {
        Ok(bytes) => Ok(bytes.map(|b| berth_oci::manifest::stored_references(&b))),
        Err(crate::StorageError::Backend(why)) => {
            tracing::warn!(digest, %why, "unreadable manifest");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl Tree {
    /// Links, manifests, their references and tags, repository by
    /// repository.
    pub(super) fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        for (repo, contents) in &self.repos {
            let repo = || repo.clone();
            out.extend(contents.links.iter().map(|d| Reference::Link {
                repo: repo(),
                digest: d.clone(),
            }));
            for manifest in &contents.manifests {
                out.push(Reference::Manifest {
                    repo: repo(),
                    digest: manifest.clone(),
                });
                for d in self.references.get(manifest).into_iter().flatten() {
                    out.push(Reference::Ref {
                        repo: repo(),
                        manifest: manifest.clone(),
                        digest: d.clone(),
                    });
                }
            }
            out.extend(contents.tags.iter().map(|(tag, d)| Reference::Tag {
                repo: repo(),
                tag: tag.clone(),
                digest: d.clone(),
            }));
        }
        out
    }

    /// Per repository, in name order: its tags, manifest count, and every
    /// digest it needs, sorted.
    pub(super) fn usage(&self) -> Vec<RepositoryUsage> {
        self.repos
            .iter()
            .map(|(name, contents)| {
                let mut digests: BTreeSet<&String> = contents.links.iter().collect();
                for manifest in &contents.manifests {
                    digests.insert(manifest);
                    digests.extend(self.references.get(manifest).into_iter().flatten());
                }
                RepositoryUsage {
                    name: name.clone(),
                    tags: contents.tags.keys().cloned().collect(),
                    manifests: contents.manifests.len() as u64,
                    digests: digests.into_iter().cloned().collect(),
                }
            })
            .collect()
    }
}
