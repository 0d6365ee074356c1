//! `berth fsck`: re-hashes every blob and checks that everything the
//! metadata names exists (links and manifests in the blob store, the blobs
//! each manifest names, the manifest each tag points at); `--repair`
//! quarantines corrupt blobs and drops dangling entries the way a client's
//! delete would. Each problem is described in words (`Problem::describe`).

use crate::backends::Backends;
use berth_storage::{BlobEntry, Digest, Reference, StorageError};
use futures::{StreamExt as _, TryStreamExt as _};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::time::{Duration, Instant};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct FsckReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    /// Blobs whose bytes do not hash to their name: (digest, actual, or
    /// "unreadable").
    pub corrupt: Vec<(String, String)>,
    /// Metadata entries checked against the blob store; `None` when the
    /// metadata store cannot list itself (blobs only were checked).
    pub entries_checked: Option<u64>,
    /// What is wrong in the metadata, one entry per thing `--repair` fixes.
    pub problems: Vec<Problem>,
    /// Whether the problems above were repaired.
    pub repaired: bool,
}

impl FsckReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.problems.is_empty()
    }
}

/// Why a blob the metadata names cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// Not in the blob store.
    Missing,
    /// Its bytes do not hash to its name (quarantined by `--repair`).
    Corrupt,
}

impl Absent {
    fn word(self) -> &'static str {
        match self {
            Absent::Missing => "missing",
            Absent::Corrupt => "corrupt",
        }
    }
}

/// Something in the metadata that names what is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Repository `repo` links blob `digest`, which cannot be served.
    Link {
        repo: String,
        digest: String,
        why: Absent,
    },
    /// Manifest `digest` of `repo` cannot be pulled: its own bytes are
    /// gone (`own`), or blobs it names are (`blobs`, in the manifest's
    /// order). Repaired by deleting it, with `tags`, as a client's delete
    /// would.
    Manifest {
        repo: String,
        digest: String,
        own: Option<Absent>,
        blobs: Vec<(String, Absent)>,
        tags: Vec<String>,
    },
    /// Tag `tag` of `repo` points at manifest `digest`, which the
    /// repository does not hold.
    Tag {
        repo: String,
        tag: String,
        digest: String,
    },
}

impl Problem {
    /// The entry `--repair` drops.
    fn repair(&self) -> Reference {
        match self.clone() {
            Problem::Link { repo, digest, .. } => Reference::Link { repo, digest },
            Problem::Manifest { repo, digest, .. } => Reference::Manifest { repo, digest },
            Problem::Tag { repo, tag, digest } => Reference::Tag { repo, tag, digest },
        }
    }

    /// One line for a person: what is wrong, where, and what `--repair`
    /// will do (or, `repaired`, did).
    pub fn describe(&self, repaired: bool) -> String {
        let (will, did) = if repaired {
            ("", true)
        } else {
            ("--repair ", false)
        };
        let verb = |present: &str, past: &str| {
            if did {
                past.to_owned()
            } else {
                format!("{will}{present}")
            }
        };
        match self {
            Problem::Link { repo, digest, why } => format!(
                "repository {repo}: links blob {digest}, which is {}; {} the link",
                match why {
                    Absent::Missing => "missing from the blob store",
                    Absent::Corrupt => "corrupt",
                },
                verb("removes", "removed")
            ),
            Problem::Manifest {
                repo,
                digest,
                own,
                blobs,
                tags,
            } => {
                let mut what: Vec<String> = Vec::new();
                match own {
                    Some(Absent::Missing) => {
                        what.push("has no bytes in the blob store".to_owned());
                    }
                    Some(Absent::Corrupt) => what.push("has corrupt bytes".to_owned()),
                    None => {}
                }
                for why in [Absent::Missing, Absent::Corrupt] {
                    let named: Vec<&str> = blobs
                        .iter()
                        .filter(|(_, w)| *w == why)
                        .map(|(d, _)| d.as_str())
                        .collect();
                    match named.as_slice() {
                        [] => {}
                        [one] => what.push(format!("names blob {one}, which is {}", why.word())),
                        many => what.push(format!(
                            "names blobs {}, which are {}",
                            many.join(", "),
                            why.word()
                        )),
                    }
                }
                let what = what.join(", and ");
                let takes = match tags.as_slice() {
                    [] => "the manifest (it has no tags)".to_owned(),
                    [one] => format!("the manifest and its tag {one}"),
                    many => format!("the manifest and its tags {}", many.join(", ")),
                };
                format!(
                    "repository {repo}: manifest {digest} {what}; {} {takes}",
                    verb("drops", "dropped")
                )
            }
            Problem::Tag { repo, tag, digest } => format!(
                "repository {repo}: tag {tag} points at manifest {digest}, which the \
                 repository does not hold; {} the tag",
                verb("removes", "removed")
            ),
        }
    }
}

/// Checks the whole store; progress goes to stderr when `progress` is set.
pub async fn run(
    backends: &Backends,
    repair: bool,
    progress: bool,
) -> Result<FsckReport, StorageError> {
    let entries: Vec<BlobEntry> = backends.blobs.list_blobs().await?.try_collect().await?;
    let total_bytes: u64 = entries.iter().map(|e| e.size).sum();
    let mut report = FsckReport {
        repaired: repair,
        ..FsckReport::default()
    };
    let mut present = HashSet::with_capacity(entries.len());
    let mut last_draw = Instant::now();
    for entry in &entries {
        // Deleted since the listing (a collector at work): nothing to check.
        let Some(actual) = hash_blob(backends, &entry.digest, entry.size).await? else {
            continue;
        };
        report.blobs_checked += 1;
        report.bytes_checked += entry.size;
        if actual == entry.digest.to_string() {
            present.insert(entry.digest.to_string());
        } else {
            tracing::warn!(digest = %entry.digest, %actual, "corrupt blob");
            if repair {
                backends.blobs.quarantine(&entry.digest).await?;
            }
            report.corrupt.push((entry.digest.to_string(), actual));
        }
        if progress && last_draw.elapsed() >= PROGRESS_EVERY {
            draw(&report, entries.len(), total_bytes);
            last_draw = Instant::now();
        }
    }
    if progress {
        draw(&report, entries.len(), total_bytes);
        eprintln!();
    }
    let Some(inventory) = backends.metadata.inventory() else {
        tracing::warn!("this metadata backend cannot list its references; checked blobs only");
        return Ok(report);
    };
    let references = inventory.references().await?;
    report.entries_checked = Some(references.len() as u64);
    report.problems = problems(backends, &references, &present, &report).await?;
    if repair {
        for problem in &report.problems {
            inventory.drop_reference(&problem.repair()).await?;
        }
    }
    Ok(report)
}

/// The metadata's entries that name what is not there, grouped by what a
/// repair drops: a manifest once, however many of its blobs are missing.
async fn problems(
    backends: &Backends,
    references: &[Reference],
    present: &HashSet<String>,
    report: &FsckReport,
) -> Result<Vec<Problem>, StorageError> {
    let corrupt: HashSet<&str> = report.corrupt.iter().map(|(d, _)| d.as_str()).collect();
    // Why `digest` cannot be served, if it cannot.
    let absent = |digest: &str| {
        let digest = digest.to_owned();
        let is_corrupt = corrupt.contains(digest.as_str());
        async move {
            if is_corrupt {
                return Ok::<_, StorageError>(Some(Absent::Corrupt));
            }
            let gone = !present.contains(&digest)
                && !committed_since_listing(backends, &digest, report).await?;
            Ok(gone.then_some(Absent::Missing))
        }
    };
    let mut held: HashSet<(&str, &str)> = HashSet::new();
    let mut tags: HashMap<(&str, &str), Vec<String>> = HashMap::new();
    for reference in references {
        match reference {
            Reference::Manifest { repo, digest } => {
                held.insert((repo, digest));
            }
            Reference::Tag { repo, tag, digest } => {
                tags.entry((repo, digest)).or_default().push(tag.clone());
            }
            _ => {}
        }
    }
    let mut links = Vec::new();
    // (repo, manifest) → (its own bytes, the blobs it names), if gone.
    type Gone = (Option<Absent>, Vec<(String, Absent)>);
    let mut manifests: BTreeMap<(&str, &str), Gone> = BTreeMap::new();
    let mut dangling_tags = Vec::new();
    for reference in references {
        match reference {
            Reference::Link { repo, digest } => {
                if let Some(why) = absent(digest).await? {
                    links.push(Problem::Link {
                        repo: repo.clone(),
                        digest: digest.clone(),
                        why,
                    });
                }
            }
            Reference::Manifest { repo, digest } => {
                if let Some(why) = absent(digest).await? {
                    manifests.entry((repo, digest)).or_default().0 = Some(why);
                }
            }
            Reference::Ref {
                repo,
                manifest,
                digest,
            } => {
                if let Some(why) = absent(digest).await? {
                    let gone = manifests.entry((repo, manifest)).or_default();
                    gone.1.push((digest.clone(), why));
                }
            }
            Reference::Tag { repo, tag, digest }
                if !held.contains(&(repo.as_str(), digest.as_str()))
                    // Pushed since the walk listed the manifests?
                    && backends.metadata.get_manifest(repo, digest).await?.is_none() =>
            {
                dangling_tags.push(Problem::Tag {
                    repo: repo.clone(),
                    tag: tag.clone(),
                    digest: digest.clone(),
                });
            }
            _ => {}
        }
    }
    let mut out = links;
    for ((repo, digest), (own, blobs)) in manifests {
        let mut tags = tags.get(&(repo, digest)).cloned().unwrap_or_default();
        tags.sort();
        out.push(Problem::Manifest {
            repo: repo.to_owned(),
            digest: digest.to_owned(),
            own,
            blobs,
            tags,
        });
    }
    out.extend(dangling_tags);
    Ok(out)
}

/// A push may have committed a blob (and referenced it) after the listing;
/// only a blob absent now is dangling. Corrupt ones count as absent.
async fn committed_since_listing(
    backends: &Backends,
    digest: &str,
    report: &FsckReport,
) -> Result<bool, StorageError> {
    if report.corrupt.iter().any(|(d, _)| d == digest) {
        return Ok(false);
    }
    let Ok(parsed) = digest.parse::<Digest>() else {
        return Ok(false);
    };
    Ok(backends.blobs.stat(&parsed).await?.is_some())
}

/// The digest the blob's bytes hash to, read as a stream; `None` when it
/// was deleted since the listing. A blob shorter than listed is
/// "unreadable".
async fn hash_blob(
    backends: &Backends,
    digest: &Digest,
    size: u64,
) -> Result<Option<String>, StorageError> {
    let mut hasher = Sha256::new();
    let mut chunks = match backends.blobs.read(digest, 0, size).await {
        Ok(chunks) => chunks,
        Err(StorageError::NotFound) => return Ok(None),
        Err(StorageError::Invalid(_)) => return Ok(Some("unreadable".to_owned())),
        Err(e) => return Err(e),
    };
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(bytes) => hasher.update(&bytes),
            Err(e) => {
                tracing::warn!(%digest, error = %e, "blob read failed");
                return Ok(Some("unreadable".to_owned()));
            }
        }
    }
    Ok(Some(format!("sha256:{}", hex::encode(hasher.finalize()))))
}

fn draw(report: &FsckReport, total: usize, total_bytes: u64) {
    let percent = (report.bytes_checked * 100)
        .checked_div(total_bytes)
        .unwrap_or(100);
    let filled = (percent / 4) as usize;
    eprint!(
        "\rfsck [{}{}] {percent:>3}%  {}/{} blobs, {} MiB, {} corrupt",
        "#".repeat(filled),
        " ".repeat(25 - filled.min(25)),
        report.blobs_checked,
        total,
        report.bytes_checked >> 20,
        report.corrupt.len()
    );
    let _ = std::io::stderr().flush();
}
