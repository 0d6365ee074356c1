//! Storage usage per repository: `berth du` and `GET /berth/v1/usage`.

use crate::backends::Backends;
use berth_storage::StorageError;
use futures::TryStreamExt as _;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Serialize)]
pub struct Usage {
    pub repositories: Vec<RepositoryReport>,
    /// Every committed blob in the store, referenced or not.
    pub blobs: u64,
    pub blob_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct RepositoryReport {
    pub name: String,
    pub tags: Vec<String>,
    pub manifests: u64,
    /// Bytes of every blob the repository needs (manifests, configs,
    /// layers, linked blobs), each counted once.
    pub size: u64,
    /// Bytes of the blobs no other repository needs: what deleting the
    /// repository would free.
    pub exclusive_size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("usage needs a metadata store that can list what it holds")]
    Unsupported,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub async fn compute(backends: &Backends) -> Result<Usage, UsageError> {
    let inventory = backends
        .metadata
        .inventory()
        .ok_or(UsageError::Unsupported)?;
    let mut sizes = HashMap::new();
    let mut listing = backends.blobs.list_blobs().await?;
    while let Some(entry) = listing.try_next().await? {
        sizes.insert(entry.digest.to_string(), entry.size);
    }
    let repos = inventory.usage().await?;
    // How many repositories need each digest.
    let mut holders: HashMap<&str, u32> = HashMap::new();
    for repo in &repos {
        for digest in &repo.digests {
            *holders.entry(digest.as_str()).or_default() += 1;
        }
    }
    let size_of = |d: &str| sizes.get(d).copied().unwrap_or(0);
    let repositories = repos
        .iter()
        .map(|repo| RepositoryReport {
            name: repo.name.clone(),
            tags: repo.tags.clone(),
            manifests: repo.manifests,
            size: repo.digests.iter().map(|d| size_of(d)).sum(),
            exclusive_size: repo
                .digests
                .iter()
                .filter(|d| holders.get(d.as_str()) == Some(&1))
                .map(|d| size_of(d))
                .sum(),
        })
        .collect();
    Ok(Usage {
        repositories,
        blobs: sizes.len() as u64,
        blob_bytes: sizes.values().sum(),
    })
}

/// A table for humans.
pub fn render(usage: &Usage) -> String {
    let mut out = format!(
        "{:<40} {:>6} {:>9} {:>12} {:>12}\n",
        "REPOSITORY", "TAGS", "MANIFESTS", "SIZE", "EXCLUSIVE"
    );
    for r in &usage.repositories {
        out += &format!(
            "{:<40} {:>6} {:>9} {:>12} {:>12}\n",
            r.name,
            r.tags.len(),
            r.manifests,
            human(r.size),
            human(r.exclusive_size)
        );
    }
    out += &format!(
        "{} blobs, {} in the store\n",
        usage.blobs,
        human(usage.blob_bytes)
    );
    out
}

/// Bytes in binary units, `1.5 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
