//! What an export writes, worked out before anything is written: which
//! images the arguments name, and every file of the output in order.

use super::ExportError;
use crate::backends::Backends;
use crate::cli::ExportArgs;
use crate::transfer::archive::docker;
use crate::transfer::archive::layout::{self, CONTAINERD_NAME, ImageName, REF_NAME};
use crate::transfer::store;
use berth_oci::Digest;
use berth_oci::manifest::{Kind, MAX_MANIFEST_BYTES, Parsed};
use berth_storage::{ManifestInfo, Page};
use bytes::Bytes;
use futures::StreamExt as _;
use std::collections::{BTreeMap, HashSet};

/// An image the arguments name.
#[derive(Debug, Clone)]
pub struct Root {
    pub name: ImageName,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// One file of the output.
pub enum File {
    /// Written from memory: `oci-layout`, `index.json`, manifests.
    Bytes { path: String, bytes: Bytes },
    /// Streamed from the store to `blobs/sha256/<hex>`.
    Blob { digest: Digest, size: u64 },
}

/// Everything an export writes.
#[derive(Default)]
pub struct Plan {
    pub files: Vec<File>,
    /// How many of the files are manifests.
    pub manifests: usize,
    pub images: usize,
    /// How many of the files are other blobs (configs, layers).
    pub blobs: usize,
    /// One line per image, printed once written.
    pub notes: Vec<String>,
    /// Digests already among the files.
    written: HashSet<Digest>,
}

impl Plan {
    pub fn bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| match f {
                File::Bytes { bytes, .. } => bytes.len() as u64,
                File::Blob { size, .. } => *size,
            })
            .sum()
    }

    fn add_bytes(&mut self, path: &str, bytes: Bytes) {
        self.files.push(File::Bytes {
            path: path.to_owned(),
            bytes,
        });
    }

    /// A manifest's bytes at its blob path, once.
    fn add_manifest(&mut self, digest: &Digest, bytes: &Bytes) {
        if self.written.insert(digest.clone()) {
            self.manifests += 1;
            self.add_bytes(&layout::blob_path(digest), bytes.clone());
        }
    }

    /// A blob streamed from the store, once.
    fn add_blob(&mut self, digest: &Digest, size: u64) {
        if self.written.insert(digest.clone()) {
            self.files.push(File::Blob {
                digest: digest.clone(),
                size,
            });
        }
    }
}

/// The images the arguments name, in the order named.
pub async fn roots(store: &Backends, args: &ExportArgs) -> Result<Vec<Root>, ExportError> {
    let meta = store.metadata.as_ref();
    let mut names = Vec::new();
    if args.all {
        for repo in all_repositories(store).await? {
            names.extend(tags(store, &repo).await?);
        }
        if names.is_empty() {
            return Err(ExportError::Empty);
        }
    }
    for text in &args.refs {
        let name = ImageName::parse(text)?;
        if name.tag.is_none() && name.digest.is_none() {
            let all = tags(store, &name.repo).await?;
            if all.is_empty() {
                return Err(ExportError::NoRepository(name.repo));
            }
            names.extend(all);
        } else {
            names.push(name);
        }
    }
    let mut roots = Vec::new();
    for name in names {
        let digest = match (&name.digest, &name.tag) {
            (Some(digest), _) => digest.clone(),
            (None, Some(tag)) => meta
                .resolve_tag(&name.repo, tag)
                .await
                .map_err(storage("tag", &name.display()))?
                .ok_or_else(|| ExportError::NoTag(name.display()))?,
            (None, None) => continue,
        };
        let info = meta
            .get_manifest(&name.repo, &digest)
            .await
            .map_err(storage("manifest", &digest))?
            .ok_or_else(|| ExportError::NoManifest(name.display()))?;
        let digest = Digest::parse(&info.digest).map_err(|_| bad(&name, &info.digest, "digest"))?;
        roots.push(Root {
            name,
            digest,
            media_type: info.media_type,
            size: info.size,
        });
    }
    Ok(roots)
}

async fn all_repositories(store: &Backends) -> Result<Vec<String>, ExportError> {
    let mut repos = Vec::new();
    loop {
        let page = Page {
            last: repos.last().cloned(),
            n: Some(1000),
        };
        let more = store
            .metadata
            .list_repositories(&page)
            .await
            .map_err(storage("repository list", ""))?;
        if more.is_empty() {
            return Ok(repos);
        }
        repos.extend(more);
    }
}

async fn tags(store: &Backends, repo: &str) -> Result<Vec<ImageName>, ExportError> {
    let tags = store
        .metadata
        .list_tags(repo, &Page::default())
        .await
        .map_err(storage("tags of", repo))?
        .unwrap_or_default();
    Ok(tags
        .into_iter()
        .map(|tag| ImageName {
            repo: repo.to_owned(),
            tag: Some(tag),
            digest: None,
        })
        .collect())
}

fn storage(
    what: &'static str,
    digest: &str,
) -> impl FnOnce(berth_storage::StorageError) -> ExportError {
    let digest = digest.to_owned();
    move |source| ExportError::Storage {
        what,
        digest,
        source,
    }
}

fn bad(name: &ImageName, digest: &str, why: &str) -> ExportError {
    ExportError::BadManifest {
        image: name.display(),
        digest: digest.to_owned(),
        why: why.to_owned(),
    }
}

/// A manifest read from the store and parsed.
struct Read {
    bytes: Bytes,
    parsed: Parsed,
}

async fn read_manifest(
    store: &Backends,
    image: &ImageName,
    digest: &Digest,
    media_type: &str,
) -> Result<Read, ExportError> {
    let missing = || ExportError::Missing {
        image: image.display(),
        what: "manifest",
        digest: digest.to_string(),
    };
    let size = store
        .blobs
        .stat(digest)
        .await
        .map_err(storage("manifest", digest.as_str()))?
        .ok_or_else(missing)?;
    if size > MAX_MANIFEST_BYTES {
        return Err(bad(image, digest.as_str(), "larger than 4 MiB"));
    }
    let mut reader = store
        .blobs
        .read(digest, 0, size)
        .await
        .map_err(storage("manifest", digest.as_str()))?;
    let mut bytes = Vec::with_capacity(size as usize);
    while let Some(chunk) = reader.next().await {
        let chunk = chunk.map_err(|source| ExportError::Read {
            digest: digest.to_string(),
            source,
        })?;
        bytes.extend_from_slice(&chunk);
    }
    if Digest::of(&bytes) != *digest {
        return Err(bad(
            image,
            digest.as_str(),
            "its bytes in the store do not hash to it (run `berth fsck`)",
        ));
    }
    let parsed = store::parse(digest, Some(media_type), &bytes)
        .map_err(|e| bad(image, digest.as_str(), &e.to_string()))?;
    Ok(Read {
        bytes: Bytes::from(bytes),
        parsed,
    })
}

/// The size of blob `digest` in the store.
async fn blob_size(
    store: &Backends,
    image: &ImageName,
    digest: &Digest,
) -> Result<u64, ExportError> {
    store
        .blobs
        .stat(digest)
        .await
        .map_err(storage("blob", digest.as_str()))?
        .ok_or_else(|| ExportError::Missing {
            image: image.display(),
            what: "blob",
            digest: digest.to_string(),
        })
}

/// An OCI image layout of `roots`: every platform, and their referrers
/// when `referrers`.
pub async fn oci(store: &Backends, roots: &[Root], referrers: bool) -> Result<Plan, ExportError> {
    let mut plan = Plan::default();
    plan.add_bytes(
        layout::OCI_LAYOUT,
        Bytes::from_static(layout::OCI_LAYOUT_BODY),
    );
    let mut walker = Walker {
        store,
        referrers,
        walked: HashSet::new(),
        referrer_entries: Vec::new(),
        body: Plan::default(),
    };
    let mut entries = Vec::new();
    for root in roots {
        let before = walker.body.written.len();
        walker
            .walk(&root.name, &root.digest, &root.media_type)
            .await?;
        let mut annotations = BTreeMap::new();
        let name = root.name.display();
        if root.name.tag.is_some() {
            annotations.insert(REF_NAME.to_owned(), name.clone());
        }
        annotations.insert(CONTAINERD_NAME.to_owned(), name.clone());
        entries.push(layout::Entry {
            media_type: root.media_type.clone(),
            digest: root.digest.to_string(),
            size: root.size,
            artifact_type: None,
            platform: None,
            annotations,
        });
        plan.images += 1;
        plan.notes.push(format!(
            "{name} {} ({} new files)",
            root.digest,
            walker.body.written.len() - before
        ));
    }
    entries.append(&mut walker.referrer_entries);
    let index = serde_json::to_vec_pretty(&layout::Index::new(entries)).map_err(|e| {
        ExportError::Encode {
            what: layout::INDEX_JSON,
            why: e.to_string(),
        }
    })?;
    plan.add_bytes(layout::INDEX_JSON, Bytes::from(index));
    let body = walker.body;
    plan.manifests = body.manifests;
    plan.blobs = body.files.len() - body.manifests;
    plan.files.extend(body.files);
    Ok(plan)
}

/// Walks manifests into a plan's body.
struct Walker<'a> {
    store: &'a Backends,
    referrers: bool,
    /// (repository, manifest) pairs walked: referrers are per repository.
    walked: HashSet<(String, Digest)>,
    referrer_entries: Vec<layout::Entry>,
    body: Plan,
}

impl Walker<'_> {
    async fn walk(
        &mut self,
        image: &ImageName,
        digest: &Digest,
        media_type: &str,
    ) -> Result<(), ExportError> {
        // An explicit stack: indexes and referrers nest.
        let mut stack = vec![(digest.clone(), media_type.to_owned())];
        while let Some((digest, media_type)) = stack.pop() {
            if !self.walked.insert((image.repo.clone(), digest.clone())) {
                continue;
            }
            let read = read_manifest(self.store, image, &digest, &media_type).await?;
            match read.parsed.kind {
                Kind::Image => {
                    for blob in &read.parsed.required {
                        let size = blob_size(self.store, image, blob).await?;
                        self.body.add_blob(blob, size);
                    }
                }
                Kind::Index => {
                    for child in read.parsed.descriptors.iter().rev() {
                        if let Ok(d) = Digest::parse(&child.digest) {
                            stack.push((d, child.media_type.clone()));
                        }
                    }
                }
            }
            // Readers take the files in any order; an image's blobs come
            // before its manifest all the same.
            self.body.add_manifest(&digest, &read.bytes);
            if self.referrers {
                for info in self.referrers_of(image, &digest).await? {
                    let Ok(d) = Digest::parse(&info.digest) else {
                        continue;
                    };
                    if !self
                        .referrer_entries
                        .iter()
                        .any(|e| e.digest == info.digest)
                    {
                        self.referrer_entries.push(layout::Entry {
                            media_type: info.media_type.clone(),
                            digest: info.digest.clone(),
                            size: info.size,
                            artifact_type: info.artifact_type.clone(),
                            platform: None,
                            annotations: BTreeMap::new(),
                        });
                    }
                    stack.push((d, info.media_type));
                }
            }
        }
        Ok(())
    }

    async fn referrers_of(
        &self,
        image: &ImageName,
        digest: &Digest,
    ) -> Result<Vec<ManifestInfo>, ExportError> {
        self.store
            .metadata
            .list_referrers(&image.repo, digest.as_str(), None)
            .await
            .map_err(storage("referrers of", digest.as_str()))
    }
}

/// `--platform os/arch[/variant]`.
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    pub fn parse(text: &str) -> Result<Self, ExportError> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts[..] {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Self {
                os: os.to_owned(),
                architecture: arch.to_owned(),
                variant: parts.get(2).map(|v| (*v).to_owned()),
            }),
            _ => Err(ExportError::BadPlatform(text.to_owned())),
        }
    }

    fn matches(&self, p: &berth_oci::manifest::Platform) -> bool {
        p.os == self.os
            && p.architecture == self.architecture
            && (self.variant.is_none() || p.variant == self.variant)
    }
}

/// A `docker load` archive of `roots`, one platform each.
pub async fn docker(
    store: &Backends,
    roots: &[Root],
    platform: &Platform,
) -> Result<Plan, ExportError> {
    let mut body = Plan::default();
    // One manifest.json entry per image manifest, with all its tags.
    let mut images: Vec<(Digest, docker::Image)> = Vec::new();
    let mut notes = Vec::new();
    for root in roots {
        let mut read = read_manifest(store, &root.name, &root.digest, &root.media_type).await?;
        let mut digest = root.digest.clone();
        if read.parsed.kind == Kind::Index {
            let child = pick(&root.name, &read.parsed, platform)?;
            digest = Digest::parse(&child.digest)
                .map_err(|_| bad(&root.name, &child.digest, "not a sha256 digest"))?;
            read = read_manifest(store, &root.name, &digest, &child.media_type).await?;
            if read.parsed.kind != Kind::Image {
                return Err(bad(
                    &root.name,
                    digest.as_str(),
                    "the platform's manifest is an index",
                ));
            }
        }
        let tag = root.name.tag.as_ref().map(|_| root.name.display());
        if let Some((_, image)) = images.iter_mut().find(|(d, _)| *d == digest) {
            image.repo_tags.get_or_insert_with(Vec::new).extend(tag);
            continue;
        }
        let mut blobs = read.parsed.required.iter();
        let Some(config) = blobs.next() else {
            return Err(bad(&root.name, digest.as_str(), "no config"));
        };
        let mut layers = Vec::new();
        for blob in std::iter::once(config).chain(blobs) {
            let size = blob_size(store, &root.name, blob).await?;
            body.add_blob(blob, size);
            if blob != config {
                layers.push(layout::blob_path(blob));
            }
        }
        notes.push(format!("{} {digest}", root.name.display()));
        images.push((
            digest,
            docker::Image {
                config: layout::blob_path(config),
                repo_tags: Some(tag.into_iter().collect()),
                layers,
            },
        ));
    }
    let mut plan = Plan::default();
    let manifest: Vec<&docker::Image> = images.iter().map(|(_, i)| i).collect();
    let json = serde_json::to_vec(&manifest).map_err(|e| ExportError::Encode {
        what: docker::MANIFEST_JSON,
        why: e.to_string(),
    })?;
    plan.add_bytes(docker::MANIFEST_JSON, Bytes::from(json));
    plan.images = images.len();
    plan.blobs = body.files.len();
    plan.notes = notes;
    plan.files.extend(body.files);
    Ok(plan)
}

/// The child of an index for `platform`.
fn pick<'a>(
    image: &ImageName,
    index: &'a Parsed,
    platform: &Platform,
) -> Result<&'a berth_oci::manifest::Descriptor, ExportError> {
    index
        .descriptors
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .ok_or_else(|| ExportError::NoPlatform {
            image: image.display(),
            platform: match &platform.variant {
                Some(v) => format!("{}/{}/{v}", platform.os, platform.architecture),
                None => format!("{}/{}", platform.os, platform.architecture),
            },
            available: index
                .descriptors
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| match &p.variant {
                    Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                    None => format!("{}/{}", p.os, p.architecture),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64/v8").expect("parses");
        let arm = |variant: Option<&str>| berth_oci::manifest::Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: variant.map(Into::into),
        };
        assert!(p.matches(&arm(Some("v8"))));
        assert!(!p.matches(&arm(None)));
        assert!(
            Platform::parse("linux/arm64")
                .expect("parses")
                .matches(&arm(Some("v8")))
        );
        for bad in ["linux", "/amd64", "a/b/c/d"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }
}
