//! Registry metadata (WIT `berth:registry/metadata`) as small files, see
//! `paths.rs`. Every file is written whole by rename, so each one is always
//! complete; an operation touching several files orders its writes so that
//! a crash in between leaves nothing a reader could misread:
//!
//! - put-manifest writes the referrers index entry, then the record, then
//!   the tag; an index entry without a record is ignored.
//! - delete-manifest removes the tags, the referrers (recursively), then
//!   the record, then the index entry; repeating it finishes the job.
//! - resolve-tag checks that the tag's manifest exists.
//!
//! Two calls racing on one name are not serialised (there are no locks in
//! `wasi:filesystem` 0.2): the last rename wins, as with two pushes of one
//! tag. Listings read whole directories and sort in memory: correct, not
//! fast.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::paths::{Layout, REPO_MARKER, decode};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A manifest as stored; mirrors WIT `metadata.manifest-info`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInfo {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
    pub annotations: Option<String>,
}

/// What `manifests/<digest>` holds.
#[derive(Serialize, Deserialize)]
struct ManifestRecord {
    #[serde(flatten)]
    info: ManifestInfo,
    /// Config, layers, children: for garbage collection and fsck.
    references: Vec<String>,
}

/// A page of a sorted listing: at most `n` items strictly after `last`.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub last: Option<String>,
    pub n: Option<u32>,
}

impl Page {
    /// Sorts `items` in byte order and cuts this page out of them.
    fn apply(&self, mut items: Vec<String>) -> Vec<String> {
        items.sort_unstable();
        items.dedup();
        let start = match &self.last {
            Some(last) => items.partition_point(|item| item <= last),
            None => 0,
        };
        let end = match self.n {
            Some(n) => start.saturating_add(n as usize).min(items.len()),
            None => items.len(),
        };
        items.drain(start..end).collect()
    }
}

/// Metadata operations on the data directory.
pub struct Metadata {
    layout: Layout,
}

impl Metadata {
    pub fn new(layout: Layout) -> Self {
        Self { layout }
    }

    fn tmp(&self) -> PathBuf {
        self.layout.tmp_dir()
    }

    /// The repository's directory, created (with its marker) if needed.
    fn ensure_repo(&self, name: &str) -> Result<PathBuf> {
        let dir = self.layout.repo(name)?;
        fsutil::create_dirs(&dir)?;
        Ok(dir)
    }

    /// The repository's directory if the repository exists.
    fn existing_repo(&self, name: &str) -> Result<Option<PathBuf>> {
        let dir = self.layout.repo(name)?;
        Ok(fsutil::exists(&dir)?.then_some(dir))
    }

    pub fn link_blob(&self, repo: &str, digest: &str) -> Result<()> {
        let dir = self.ensure_repo(repo)?;
        fsutil::touch(&Layout::link(&dir, digest)?)
    }

    pub fn blob_linked(&self, repo: &str, digest: &str) -> Result<bool> {
        fsutil::exists(&Layout::link(&self.layout.repo(repo)?, digest)?)
    }

    pub fn unlink_blob(&self, repo: &str, digest: &str) -> Result<bool> {
        fsutil::remove_opt(&Layout::link(&self.layout.repo(repo)?, digest)?)
    }

    /// Stores the manifest unless it is there already (its record is fixed
    /// by its digest), then moves `tag` to it. A new manifest's references
    /// must each be linked in the repository or be one of its manifests.
    pub fn put_manifest(
        &self,
        repo: &str,
        manifest: &ManifestInfo,
        references: &[String],
        tag: Option<&str>,
    ) -> Result<()> {
        let dir = self.ensure_repo(repo)?;
        let record = Layout::manifest(&dir, &manifest.digest)?;
        // Check the tag's grammar before anything is written.
        let tag_path = tag.map(|t| Layout::tag(&dir, t)).transpose()?;
        if !fsutil::exists(&record)? {
            for digest in references {
                let present = fsutil::exists(&Layout::link(&dir, digest)?)?
                    || fsutil::exists(&Layout::manifest(&dir, digest)?)?;
                if !present {
                    return Err(Error::Invalid(format!(
                        "manifest references {digest}, which is not in the repository"
                    )));
                }
            }
            if let Some(subject) = &manifest.subject {
                fsutil::touch(&Layout::referrer(&dir, subject, &manifest.digest)?)?;
            }
            let json = serde_json::to_vec(&ManifestRecord {
                info: manifest.clone(),
                references: references.to_vec(),
            })
            .map_err(|e| Error::Backend(format!("encoding manifest record: {e}")))?;
            fsutil::write_atomic(&self.tmp(), &record, &json)?;
        }
        if let Some(tag_path) = tag_path {
            fsutil::write_atomic(&self.tmp(), &tag_path, manifest.digest.as_bytes())?;
        }
        Ok(())
    }

    pub fn get_manifest(&self, repo: &str, digest: &str) -> Result<Option<ManifestInfo>> {
        read_record(&Layout::manifest(&self.layout.repo(repo)?, digest)?)
    }

    pub fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Option<String>> {
        let dir = self.layout.repo(repo)?;
        let Some(digest) = read_text(&Layout::tag(&dir, tag)?)? else {
            return Ok(None);
        };
        // A tag left behind by an interrupted delete-manifest points nowhere.
        Ok(fsutil::exists(&Layout::manifest(&dir, &digest)?)?.then_some(digest))
    }

    /// Deletes the manifest with its tags and, as SQLite metadata does, its
    /// referrers (and theirs): they describe a subject that is gone.
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> Result<bool> {
        let dir = self.layout.repo(repo)?;
        if !fsutil::exists(&Layout::manifest(&dir, digest)?)? {
            return Ok(false);
        }
        delete_manifest_in(&dir, digest, &mut HashSet::new())?;
        Ok(true)
    }

    pub fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        fsutil::remove_opt(&Layout::tag(&self.layout.repo(repo)?, tag)?)
    }

    /// Tags in byte order, or None for an unknown repository.
    pub fn list_tags(&self, repo: &str, page: &Page) -> Result<Option<Vec<String>>> {
        let Some(dir) = self.existing_repo(repo)? else {
            return Ok(None);
        };
        let tags = fsutil::list_dir(&Layout::tags(&dir))?
            .iter()
            .filter_map(|name| decode(name))
            .collect();
        Ok(Some(page.apply(tags)))
    }

    /// Repository names in byte order.
    pub fn list_repositories(&self, page: &Page) -> Result<Vec<String>> {
        let mut names = Vec::new();
        collect_repositories(&self.layout.repositories(), &mut Vec::new(), &mut names)?;
        Ok(page.apply(names))
    }

    /// Manifests of `repo` whose subject is `subject` (and whose artifact
    /// type is `artifact_type`, when given), by digest.
    pub fn list_referrers(
        &self,
        repo: &str,
        subject: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<ManifestInfo>> {
        let dir = self.layout.repo(repo)?;
        let mut found = Vec::new();
        for digest in referrer_digests(&dir, subject)? {
            let Some(m) = read_record(&Layout::manifest(&dir, &digest)?)? else {
                continue;
            };
            if m.subject.as_deref() == Some(subject)
                && artifact_type.is_none_or(|t| m.artifact_type.as_deref() == Some(t))
            {
                found.push(m);
            }
        }
        found.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(found)
    }

    /// Records the session's repository (creating the repository); a
    /// session already owned by another repository is a `Conflict`.
    pub fn begin_upload(&self, repo: &str, id: &str) -> Result<()> {
        self.ensure_repo(repo)?;
        let owner = self.layout.upload_owner(id)?;
        match read_text(&owner)? {
            Some(current) if current == repo => Ok(()),
            Some(_) => Err(Error::Conflict(format!(
                "upload {id} belongs to another repository"
            ))),
            None => fsutil::write_atomic(&self.tmp(), &owner, repo.as_bytes()),
        }
    }

    pub fn upload_repository(&self, id: &str) -> Result<Option<String>> {
        read_text(&self.layout.upload_owner(id)?)
    }

    /// Idempotent: forgetting an unknown session is not an error.
    pub fn end_upload(&self, id: &str) -> Result<()> {
        fsutil::remove_opt(&self.layout.upload_owner(id)?)?;
        Ok(())
    }
}

fn delete_manifest_in(dir: &Path, digest: &str, seen: &mut HashSet<String>) -> Result<()> {
    // `seen` stops a cycle of made-up subjects.
    if !seen.insert(digest.to_owned()) {
        return Ok(());
    }
    let record = Layout::manifest(dir, digest)?;
    let Some(info) = read_record(&record)? else {
        return Ok(());
    };
    let tags = Layout::tags(dir);
    for name in fsutil::list_dir(&tags)? {
        let path = tags.join(&name);
        if read_text(&path)?.as_deref() == Some(digest) {
            fsutil::remove_opt(&path)?;
        }
    }
    for referrer in referrer_digests(dir, digest)? {
        let subject = read_record(&Layout::manifest(dir, &referrer)?)?.and_then(|m| m.subject);
        if subject.as_deref() == Some(digest) {
            delete_manifest_in(dir, &referrer, seen)?;
        }
    }
    fsutil::remove_opt(&record)?;
    if let Some(subject) = &info.subject {
        fsutil::remove_opt(&Layout::referrer(dir, subject, digest)?)?;
        // The subject's index directory goes once empty; failing (not
        // empty) is expected.
        let _ = std::fs::remove_dir(Layout::referrers_of(dir, subject)?);
    }
    Ok(())
}

/// Digests listed in the referrers index of `subject`.
fn referrer_digests(dir: &Path, subject: &str) -> Result<Vec<String>> {
    Ok(fsutil::list_dir(&Layout::referrers_of(dir, subject)?)?
        .iter()
        .filter_map(|name| decode(name))
        .collect())
}

/// Walks `repositories/`: a directory holding the marker is a repository
/// named by the decoded components leading to it.
fn collect_repositories(dir: &Path, prefix: &mut Vec<String>, out: &mut Vec<String>) -> Result<()> {
    for name in fsutil::list_dir(dir)? {
        if name == REPO_MARKER {
            // Listed once it holds a manifest: an upload or a blob link
            // alone does not put a name in the catalog.
            let holds_manifest =
                !fsutil::list_dir(&Layout::manifests(&dir.join(&name)))?.is_empty();
            if !prefix.is_empty() && holds_manifest {
                out.push(prefix.join("/"));
            }
            continue;
        }
        let Some(component) = decode(&name) else {
            continue;
        };
        let path = dir.join(&name);
        if !std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            continue;
        }
        prefix.push(component);
        collect_repositories(&path, prefix, out)?;
        prefix.pop();
    }
    Ok(())
}

fn read_record(path: &Path) -> Result<Option<ManifestInfo>> {
    let Some(bytes) = fsutil::read_opt(path)? else {
        return Ok(None);
    };
    let record: ManifestRecord = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Backend(format!("{}: {e}", path.display())))?;
    Ok(Some(record.info))
}

fn read_text(path: &Path) -> Result<Option<String>> {
    fsutil::read_opt(path)?
        .map(|bytes| {
            String::from_utf8(bytes)
                .map_err(|_| Error::Backend(format!("{}: not UTF-8", path.display())))
        })
        .transpose()
}

#[cfg(test)]
mod tests;
