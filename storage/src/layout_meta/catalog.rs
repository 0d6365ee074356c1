//! Which repositories exist, and the catalog: registry:2 has no list of
//! repositories, only directories, so both are answered by listing them.
//!
//! A directory under `repositories/` is a repository when it holds
//! `_layers` (registry:2 2.8's own test) or `_manifests` (Berth can store
//! a manifest before linking any blob); Berth's creation markers add the
//! repositories that were created empty. The catalog lists only those with
//! `_manifests`: an upload or a blob link alone does not name a repository
//! there. Directories starting with `_` are never descended into, as in
//! registry:2's walk.

use super::names::{self, Repo};
use super::{objects, paths};
use crate::{Page, Result};
use object_store::ObjectStore;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Whether a repository directory's sub-directories make it a repository.
fn has_content(children: &[String]) -> bool {
    children
        .iter()
        .any(|c| c == paths::MANIFESTS || c == paths::LAYERS)
}

/// Whether `repo` holds anything registry:2 records.
pub(super) async fn has_registry_content(store: &dyn ObjectStore, repo: Repo<'_>) -> Result<bool> {
    let children = objects::child_dirs(store, &paths::repo_dir(repo)).await?;
    Ok(has_content(&children))
}

/// Whether `repo` exists.
pub(super) async fn exists(store: &dyn ObjectStore, repo: Repo<'_>) -> Result<bool> {
    Ok(has_registry_content(store, repo).await?
        || objects::exists(store, &paths::repo_marker(repo)).await?)
}

/// One page of repository names in byte order.
///
/// A best-first walk: pending directories sit in a min-heap keyed by name. Every
/// name found under a directory `d` is `d/...`, greater than `d`, so names
/// come out in order and the walk stops as soon as the page is full,
/// listing only the directories it needed. Subtrees wholly before `last`
/// are skipped.
pub(super) async fn list(store: &dyn ObjectStore, page: &Page) -> Result<Vec<String>> {
    let limit = page.n.map_or(usize::MAX, |n| n as usize);
    let last = page.last.as_deref().unwrap_or("");
    let mut out: Vec<String> = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut pending = BinaryHeap::new();
    for child in objects::child_dirs(store, &paths::repositories_root()).await? {
        if names::is_component(&child) {
            pending.push(Reverse(child));
        }
    }
    while let Some(Reverse(name)) = pending.pop() {
        if before(&name, last) {
            continue;
        }
        let Some(repo) = Repo::parse(&name) else {
            continue;
        };
        let children = objects::child_dirs(store, &paths::repo_dir(repo)).await?;
        for child in children.iter().filter(|c| names::is_component(c)) {
            pending.push(Reverse(format!("{name}/{child}")));
        }
        let holds_manifest = children.iter().any(|c| c == paths::MANIFESTS);
        if holds_manifest && name.as_str() > last {
            out.push(name);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Whether every name under directory `dir` (itself included) sorts at or
/// before `last`. They all sort before `dir` + "0", '0' being the byte
/// after '/'.
fn before(dir: &str, last: &str) -> bool {
    !last.is_empty() && last >= format!("{dir}0").as_str()
}

#[cfg(test)]
mod tests {
    use super::before;

    #[test]
    fn subtree_pruning() {
        assert!(!before("a", ""));
        assert!(!before("a", "a"));
        assert!(!before("a", "a-b"));
        assert!(!before("a", "a/z"));
        assert!(before("a", "a0"));
        assert!(before("a", "b"));
        assert!(!before("b", "a/zzz"));
    }
}
