//! Manifests of a repository: a revision link each, their tags, and
//! Berth's referrers index beside them. The record itself is not stored:
//! it is read back from the manifest's bytes (`berth_oci::manifest::describe`).

use super::names::{self, Repo, Tag};
use super::{objects, paths, tags};
use crate::{Digest, ManifestInfo, Result, StorageError};
use berth_oci::manifest::{MAX_MANIFEST_BYTES, describe};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::ObjectStore;

/// Referrer manifests read at once.
const READ_CONCURRENCY: usize = 8;

/// Stores `m` in `repo` and points `tag` at it.
pub(super) async fn put(
    store: &dyn ObjectStore,
    repo: Repo<'_>,
    m: &ManifestInfo,
    tag: Option<Tag<'_>>,
) -> Result<()> {
    let d = names::digest(&m.digest)?;
    let subject = m.subject.as_deref().map(names::digest).transpose()?;
    let revision_link = paths::revision_link(repo, &d);
    let revision = objects::write_link(store, &revision_link, &m.digest);
    // Both links are in place before any tag can lead a client to the
    // manifest.
    match subject {
        Some(subject) => {
            let referrer = paths::referrer_link(repo, &subject, &d);
            futures::try_join!(revision, objects::write_link(store, &referrer, &m.digest))?;
        }
        None => revision.await?,
    }
    if let Some(tag) = tag {
        tags::point(store, repo, tag, &d).await?;
    }
    Ok(())
}

/// Manifest `digest` of `repo`, or `None`.
pub(super) async fn get(
    store: &dyn ObjectStore,
    repo: Repo<'_>,
    digest: &str,
) -> Result<Option<ManifestInfo>> {
    let Some(d) = Digest::parse_any(digest).ok() else {
        return Ok(None);
    };
    // A revision link names its own digest (Berth and registry:2 write them
    // so): fetch the bytes alongside the link, not after it, saving a round
    // trip on every manifest pull.
    let (link, data) = (paths::revision_link(repo, &d), paths::blob_data(&d));
    let (target, bytes) = futures::join!(
        objects::read_link(store, &link),
        objects::read(store, &data, MAX_MANIFEST_BYTES)
    );
    match target? {
        None => Ok(None),
        Some(target) if target == digest => Ok(info(digest, bytes?)?),
        Some(target) => read_info(store, digest, &target).await,
    }
}

/// The record of manifest `digest` from the bytes of blob `target`, the
/// digest its link names; `None` when the bytes are gone.
async fn read_info(
    store: &dyn ObjectStore,
    digest: &str,
    target: &str,
) -> Result<Option<ManifestInfo>> {
    let Some(t) = Digest::parse_any(target).ok() else {
        return Ok(None);
    };
    let bytes = objects::read(store, &paths::blob_data(&t), MAX_MANIFEST_BYTES).await?;
    info(digest, bytes)
}

/// The record of manifest `digest` from its `bytes`, if there are any.
fn info(digest: &str, bytes: Option<bytes::Bytes>) -> Result<Option<ManifestInfo>> {
    let Some(bytes) = bytes else {
        tracing::warn!(digest, "manifest is linked but its bytes are missing");
        return Ok(None);
    };
    let described = describe(&bytes)
        .map_err(|why| StorageError::Backend(format!("manifest {digest}: {why}")))?;
    Ok(Some(ManifestInfo {
        digest: digest.to_owned(),
        media_type: described.media_type,
        size: bytes.len() as u64,
        artifact_type: described.artifact_type,
        subject: described.subject,
        annotations: described.annotations,
    }))
}

/// Deletes manifest `digest` with every tag pointing at it and its
/// referrers entry; `false` when it was not there.
pub(super) async fn delete(store: &dyn ObjectStore, repo: Repo<'_>, digest: &str) -> Result<bool> {
    let Some(d) = Digest::parse_any(digest).ok() else {
        return Ok(false);
    };
    let revision = paths::revision_link(repo, &d);
    let Some(target) = objects::read_link(store, &revision).await? else {
        return Ok(false);
    };
    // The subject is only in the bytes; unreadable bytes leave at worst a
    // stale referrers entry, which listing skips.
    let subject = match read_info(store, digest, &target).await {
        Ok(info) => info.and_then(|i| i.subject),
        Err(e) => {
            tracing::warn!(digest, error = %e, "cannot read deleted manifest's subject");
            None
        }
    };
    for name in tags::pointing_at(store, repo, digest).await? {
        if let Some(tag) = Tag::parse(&name) {
            tags::remove(store, repo, tag).await?;
        }
    }
    if let Some(subject) = subject.as_deref().and_then(|s| Digest::parse_any(s).ok()) {
        objects::delete(store, &paths::referrer_link(repo, &subject, &d)).await?;
    }
    // registry:2 deletes the revision first; here it goes last, so a crash
    // midway leaves the manifest in place for a retry to finish deleting,
    // never tags pointing at a manifest that is gone.
    objects::delete(store, &revision).await?;
    tracing::debug!(repository = repo.as_str(), digest, "manifest deleted");
    Ok(true)
}

/// Manifests of `repo` whose subject is `subject` (of `artifact_type`, if
/// given), ordered by digest.
pub(super) async fn referrers(
    store: &dyn ObjectStore,
    repo: Repo<'_>,
    subject: &str,
    artifact_type: Option<&str>,
) -> Result<Vec<ManifestInfo>> {
    let Some(s) = Digest::parse_any(subject).ok() else {
        return Ok(Vec::new());
    };
    let dir = paths::referrers_dir(repo, &s);
    let mut digests: Vec<String> = objects::keys_under(store, &dir)
        .await?
        .iter()
        .filter_map(|key| paths::referrer_of(&dir, key))
        .collect();
    digests.sort_unstable();
    digests.dedup();
    let found: Vec<Option<ManifestInfo>> = futures::stream::iter(digests)
        .map(|digest| async move { referrer(store, repo, &digest).await })
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found
        .into_iter()
        .flatten()
        .filter(|m| m.subject.as_deref() == Some(subject))
        .filter(|m| artifact_type.is_none_or(|t| m.artifact_type.as_deref() == Some(t)))
        .collect())
}

/// One indexed referrer, or `None` when its entry is stale (the manifest
/// was deleted midway, or its bytes are unreadable).
async fn referrer(
    store: &dyn ObjectStore,
    repo: Repo<'_>,
    digest: &str,
) -> Result<Option<ManifestInfo>> {
    let Some(d) = Digest::parse_any(digest).ok() else {
        return Ok(None);
    };
    let revision = paths::revision_link(repo, &d);
    let (present, info) = futures::join!(
        objects::exists(store, &revision),
        read_info(store, digest, digest),
    );
    match (present?, info) {
        (true, Ok(info)) => Ok(info),
        (false, _) => Ok(None),
        (true, Err(e)) => {
            tracing::warn!(digest, error = %e, "skipping unreadable referrer");
            Ok(None)
        }
    }
}
