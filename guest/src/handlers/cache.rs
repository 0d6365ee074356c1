//! The pull-through cache's protocol logic: which upstream a repository
//! mirrors, when a cached tag is asked about again, and what a client sees
//! when the upstream fails. The host does the fetching (the `upstream`
//! import): it shares one request among concurrent callers and stores a
//! blob only once its digest verified.
//!
//! - A repository under a proxy's prefix (`hub/library/nginx`) mirrors the
//!   upstream's `library/nginx`. With an unprefixed mirror, every name the
//!   store does not hold as its own mirrors the same name upstream: local
//!   content first, the upstream on a miss, as registry:2's
//!   `proxy.remoteurl` (but beside local repositories).
//! - A manifest by digest, once cached, is served from the store for good.
//!   A cached tag is served as it is for `tag-ttl`; after that the upstream
//!   is asked (`HEAD`) and the manifest fetched only if the digest moved.
//!   When the upstream cannot answer, the cached tag is served stale.
//! - A cached manifest is stored without references: its blobs arrive one
//!   pull at a time, each linked to the repository as it is stored, and
//!   the links are what keep them from garbage collection.
//! - Mirrors are read-only: a push or delete into one is `DENIED`.

use super::manifest_store;
use crate::storage::metadata::{self, ManifestInfo, Page};
use crate::storage::upstream::{self, FetchedBlob, Proxy, UpstreamError};
use berth_oci::manifest;
use berth_oci::route::Reference;
use berth_oci::{ApiError, Digest};

/// An upstream repository a local one mirrors.
pub struct Mirror {
    pub proxy: Proxy,
    /// The repository's name upstream.
    pub remote: String,
}

/// The upstream repository `name` mirrors, or none for a repository of the
/// store's own.
pub fn mirror_of(name: &str) -> Result<Option<Mirror>, ApiError> {
    let proxies = upstream::proxies();
    if proxies.is_empty() {
        return Ok(None);
    }
    if let Some(mirror) = prefixed(name, &proxies) {
        return Ok(Some(mirror));
    }
    let Some(proxy) = proxies.into_iter().find(|p| p.prefix.is_none()) else {
        return Ok(None);
    };
    // The unprefixed mirror takes names the store does not hold as its own.
    if upstream::origin(name)?.is_some() || !exists(name)? {
        Ok(Some(Mirror {
            proxy,
            remote: name.to_owned(),
        }))
    } else {
        Ok(None)
    }
}

/// Refuses pushes and deletes into a mirror: a name under a proxy's
/// prefix, or one holding content cached through the unprefixed mirror.
pub fn refuse_writes(name: &str) -> Result<(), ApiError> {
    let proxies = upstream::proxies();
    if proxies.is_empty() {
        return Ok(());
    }
    if let Some(mirror) = prefixed(name, &proxies) {
        return Err(ApiError::Denied(format!(
            "{name} is a read-only cache of {}; push to a name outside {}/",
            mirror.proxy.url,
            mirror.proxy.prefix.as_deref().unwrap_or_default()
        )));
    }
    if proxies.iter().any(|p| p.prefix.is_none())
        && let Some(url) = upstream::origin(name)?
    {
        return Err(ApiError::Denied(format!(
            "{name} holds images cached from {url} and is read-only; push under another name"
        )));
    }
    Ok(())
}

/// The proxy whose prefix `name` is under.
fn prefixed(name: &str, proxies: &[Proxy]) -> Option<Mirror> {
    proxies.iter().find_map(|p| {
        let prefix = p.prefix.as_deref()?;
        let remote = name.strip_prefix(prefix)?.strip_prefix('/')?;
        Some(Mirror {
            proxy: p.clone(),
            remote: remote.to_owned(),
        })
    })
}

/// Whether the store has repository `name` (`list-tags` answers none only
/// for unknown repositories).
pub fn exists(name: &str) -> Result<bool, ApiError> {
    let page = Page {
        last: None,
        n: Some(0),
    };
    Ok(metadata::list_tags(name, &page)?.is_some())
}

/// A manifest of a mirror: its record, and its bytes when they were
/// fetched just now (so they need not be read back).
pub fn manifest(
    name: &str,
    reference: &Reference,
    mirror: &Mirror,
) -> Result<(ManifestInfo, Option<Vec<u8>>), ApiError> {
    match reference {
        Reference::Digest(digest) => match metadata::get_manifest(name, digest.as_str())? {
            Some(info) => Ok((info, None)),
            None => fetch(name, digest.as_str(), None, mirror),
        },
        Reference::Tag(tag) => by_tag(name, tag, mirror),
    }
}

/// Tells the host a cached repository was pulled (what `unused_after`
/// measures).
pub fn note_pull(name: &str) {
    upstream::note_pull(name);
}

/// A tag of a mirror: cached and fresh, cached and confirmed, moved, or
/// cached and served stale because the upstream cannot say.
fn by_tag(
    name: &str,
    tag: &str,
    mirror: &Mirror,
) -> Result<(ManifestInfo, Option<Vec<u8>>), ApiError> {
    let cached = match metadata::resolve_tag(name, tag)? {
        Some(digest) => metadata::get_manifest(name, &digest)?,
        None => None,
    };
    if let Some(info) = &cached
        && upstream::tag_checked(name, tag).is_some_and(|age| age < mirror.proxy.tag_ttl_ms)
    {
        return Ok((info.clone(), None));
    }
    let current = match upstream::head_manifest(mirror.proxy.id, name, &mirror.remote, tag) {
        Ok(digest) => digest,
        Err(UpstreamError::NotFound) => return Err(ApiError::ManifestUnknown),
        Err(e) => {
            let Some(info) = cached else {
                return Err(failed(e, ApiError::ManifestUnknown));
            };
            eprintln!(
                "berth-guest: serving {name}:{tag} from the cache, stale: {}",
                describe(&e)
            );
            return Ok((info, None));
        }
    };
    if let Some(info) = cached
        && info.digest == current
    {
        return Ok((info, None));
    }
    // The tag moved (or was never cached): point it at the manifest it
    // names now, fetching that only when the store does not hold it.
    match metadata::get_manifest(name, &current)? {
        Some(info) => {
            metadata::put_manifest(name, &info, &[], Some(tag))?;
            Ok((info, None))
        }
        None => fetch(name, &current, Some(tag), mirror),
    }
}

/// Fetches manifest `digest` and stores it like a push, tagged `tag`.
fn fetch(
    name: &str,
    digest: &str,
    tag: Option<&str>,
    mirror: &Mirror,
) -> Result<(ManifestInfo, Option<Vec<u8>>), ApiError> {
    let fetched = upstream::fetch_manifest(mirror.proxy.id, name, &mirror.remote, digest)
        .map_err(|e| failed(e, ApiError::ManifestUnknown))?;
    let unusable = |why: String| {
        ApiError::Unavailable(format!(
            "{} sent manifest {digest} of {}, which cannot be cached: {why}",
            mirror.proxy.url, mirror.remote
        ))
    };
    let computed = Digest::of(&fetched.bytes);
    if computed.as_str() != digest || fetched.digest != digest {
        return Err(unusable(format!("its bytes hash to {computed}")));
    }
    let parsed =
        manifest::parse(Some(&fetched.media_type), &fetched.bytes).map_err(|e| match e {
            ApiError::ManifestInvalid(why) => unusable(why),
            other => unusable(other.descriptor().message.to_owned()),
        })?;
    let tags: Vec<&str> = tag.into_iter().collect();
    let info = manifest_store::record(name, &computed, &fetched.bytes, &parsed, &[], &tags)?;
    Ok((info, Some(fetched.bytes)))
}

/// Starts (or joins) the fetch of a blob of a mirror that the repository
/// does not link yet; the host links it once stored.
pub fn blob(name: &str, digest: &Digest, mirror: &Mirror) -> Result<FetchedBlob, ApiError> {
    upstream::fetch_blob(mirror.proxy.id, name, &mirror.remote, digest.as_str())
        .map_err(|e| failed(e, ApiError::BlobUnknown(digest.to_string())))
}

/// What a client sees when the upstream failed: `not_found` for a miss, a
/// 503 naming the upstream for anything that may pass, `DENIED` when the
/// upstream refused the configured credentials.
fn failed(err: UpstreamError, not_found: ApiError) -> ApiError {
    match err {
        UpstreamError::NotFound => not_found,
        UpstreamError::Unavailable(why) | UpstreamError::Invalid(why) => ApiError::Unavailable(why),
        UpstreamError::Denied(why) => ApiError::Denied(why),
        UpstreamError::Storage(e) => crate::error::unexpected("caching from an upstream", e),
    }
}

fn describe(err: &UpstreamError) -> String {
    match err {
        UpstreamError::NotFound => "not found upstream".to_owned(),
        UpstreamError::Unavailable(why)
        | UpstreamError::Invalid(why)
        | UpstreamError::Denied(why) => why.clone(),
        UpstreamError::Storage(e) => crate::error::describe(e),
    }
}
