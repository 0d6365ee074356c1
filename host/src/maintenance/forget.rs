//! Forgetting cached repositories nobody pulls: a `[[proxy]]` with
//! `unused_after` has every repository cached from it deleted once it went
//! that long without a pull. Deleting the repository drops its tags,
//! manifests and blob links in one step; garbage collection then takes the
//! blobs no other repository holds, after its grace period, as for any
//! delete.

use berth_storage::{CachedRepository, MetadataStore};
use std::time::Duration;

/// Repositories cached from `origin` (an upstream's URL) are forgotten
/// after `unused_after` without a pull.
#[derive(Debug, Clone)]
pub struct Rule {
    pub origin: String,
    pub unused_after: Duration,
}

/// The cached repositories that `rules` say to forget at `now` (unix
/// seconds). A repository whose upstream has no rule (or is no longer
/// configured) is kept.
pub fn due(cached: &[CachedRepository], rules: &[Rule], now: u64) -> Vec<String> {
    cached
        .iter()
        .filter(|repo| {
            rules.iter().any(|rule| {
                rule.origin == repo.origin
                    && now.saturating_sub(repo.pulled) >= rule.unused_after.as_secs()
            })
        })
        .map(|repo| repo.name.clone())
        .collect()
}

/// Deletes the cached repositories due at `now`; returns their names.
pub async fn run(
    metadata: &dyn MetadataStore,
    rules: &[Rule],
    now: u64,
) -> berth_storage::Result<Vec<String>> {
    if rules.is_empty() {
        return Ok(Vec::new());
    }
    let cached = metadata.cached_repositories().await?;
    let mut forgotten = Vec::new();
    for name in due(&cached, rules, now) {
        if metadata.delete_repository(&name).await? {
            forgotten.push(name);
        }
    }
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(name: &str, origin: &str, pulled: u64) -> CachedRepository {
        CachedRepository {
            name: name.to_owned(),
            origin: origin.to_owned(),
            pulled,
        }
    }

    #[test]
    fn only_repositories_of_a_ruled_upstream_past_their_time_are_due() {
        let repos = [
            cached("hub/old", "https://hub", 1_000),
            cached("hub/recent", "https://hub", 9_500),
            cached("corp/old", "https://corp", 1_000),
            cached("gone/old", "https://gone", 1_000),
        ];
        let rules = [
            Rule {
                origin: "https://hub".into(),
                unused_after: Duration::from_secs(1_000),
            },
            Rule {
                origin: "https://corp".into(),
                unused_after: Duration::from_secs(10_000),
            },
        ];
        assert_eq!(due(&repos, &rules, 10_000), ["hub/old"]);
        assert_eq!(due(&repos, &rules, 10_600), ["hub/old", "hub/recent"]);
        assert_eq!(
            due(&repos, &rules, 11_000),
            ["hub/old", "hub/recent", "corp/old"]
        );
        assert!(due(&repos, &[], 1_000_000).is_empty());
    }
}
