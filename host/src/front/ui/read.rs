//! Reading what pages show from the stores: small blobs (manifests,
//! configs) whole, manifests through `berth_oci::manifest`, image configs
//! leniently (whatever a client pushed is described, never trusted).

use super::error::UiError;
use crate::backends::Backends;
use berth_oci::manifest::{self, Kind, MAX_MANIFEST_BYTES, Parsed};
use berth_storage::{Digest, ManifestInfo};
use futures::TryStreamExt as _;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Largest image config a page reads.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Children of an index read to add up its size.
const MAX_CHILDREN_READ: usize = 16;

/// A whole small blob.
pub(crate) async fn blob(
    backends: &Backends,
    digest: &str,
    limit: u64,
) -> Result<Vec<u8>, UiError> {
    let parsed = Digest::parse(digest).map_err(|_| UiError::NotFound)?;
    let size = backends
        .blobs
        .stat(&parsed)
        .await?
        .ok_or(UiError::NotFound)?;
    if size > limit {
        return Err(UiError::TooLarge(digest.to_owned()));
    }
    let mut stream = backends.blobs.read(&parsed, 0, size).await?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    while let Some(chunk) = stream.try_next().await.map_err(|e| UiError::Read {
        what: digest.to_owned(),
        why: e.to_string(),
    })? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A stored manifest, parsed as the guest parsed it at push time.
pub(crate) async fn manifest(backends: &Backends, info: &ManifestInfo) -> Result<Parsed, UiError> {
    let bytes = blob(backends, &info.digest, MAX_MANIFEST_BYTES).await?;
    manifest::parse(Some(&info.media_type), &bytes).map_err(|e| UiError::Read {
        what: info.digest.clone(),
        why: match e {
            berth_oci::ApiError::ManifestInvalid(why) => why,
            other => other.descriptor().message.to_owned(),
        },
    })
}

/// What a tags table shows of one manifest.
pub(crate) struct Summary {
    /// Platforms of an index's children (`linux/arm64/v8`).
    pub platforms: Vec<String>,
    /// Bytes of the manifest and everything it references (an index: its
    /// children too, as far as read); `None` when unreadable.
    pub size: Option<u64>,
}

/// Platforms and size of manifest `info` of `repository`.
pub(crate) async fn summary(backends: &Backends, repository: &str, info: &ManifestInfo) -> Summary {
    let Ok(parsed) = manifest(backends, info).await else {
        return Summary {
            platforms: Vec::new(),
            size: None,
        };
    };
    let own: u64 = info.size + parsed.descriptors.iter().map(|d| d.size).sum::<u64>();
    if parsed.kind == Kind::Image {
        return Summary {
            platforms: Vec::new(),
            size: Some(own),
        };
    }
    let platforms = parsed
        .descriptors
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(platform)
        .filter(|p| p != "unknown/unknown")
        .collect();
    let mut size = own;
    for child in parsed.descriptors.iter().take(MAX_CHILDREN_READ) {
        if let Ok(Some(info)) = backends
            .metadata
            .get_manifest(repository, &child.digest)
            .await
            && let Ok(parsed) = manifest(backends, &info).await
            && parsed.kind == Kind::Image
        {
            size += parsed.descriptors.iter().map(|d| d.size).sum::<u64>();
        }
    }
    Summary {
        platforms,
        size: Some(size),
    }
}

/// `os/architecture[/variant]`.
pub(crate) fn platform(p: &manifest::Platform) -> String {
    let os = if p.os.is_empty() { "unknown" } else { &p.os };
    let arch = if p.architecture.is_empty() {
        "unknown"
    } else {
        &p.architecture
    };
    match &p.variant {
        Some(v) if !v.is_empty() => format!("{os}/{arch}/{v}"),
        _ => format!("{os}/{arch}"),
    }
}

/// The parts of an image configuration a page shows.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ImageConfig {
    pub created: Option<String>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub author: Option<String>,
    pub config: Option<RunConfig>,
    #[serde(default)]
    pub history: Vec<History>,
}

/// How the image runs.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RunConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

/// One step that built the image.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct History {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub empty_layer: Option<bool>,
}

/// The image config `digest`, or why it cannot be shown.
pub(crate) async fn config(backends: &Backends, digest: &str) -> Result<ImageConfig, String> {
    let bytes = blob(backends, digest, MAX_CONFIG_BYTES)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| format!("not an image configuration: {e}"))
}
