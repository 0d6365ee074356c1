//! Making the archive's images visible, each only once all of its content
//! is stored: every manifest of the image is read and checked and every
//! blob it names is found stored (or verified) first; then its blobs are
//! linked into the repository, child manifests stored, and the image's
//! own manifest stored with its tags last. An image whose content is
//! wrong or missing is refused whole; the others go on.

use super::names::{Named, Naming, Target};
use super::refusal::{At, ImportError, Refusal};
use super::source::{Blobs, Source};
use super::stage::{Got, LegacyFile, Staged};
use crate::transfer::archive::docker;
use crate::transfer::archive::layout::{self, INDEX_JSON};
use crate::transfer::progress::Progress;
use crate::transfer::store::{self, Manifest};
use berth_oci::Digest;
use berth_oci::manifest::Kind;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};

/// How deep indexes may nest.
const MAX_DEPTH: usize = 8;

/// What became of the archive's images; each line is also shown as it
/// happens (the progress's notes and warnings).
#[derive(Default)]
pub struct Report {
    /// One line per image imported (or verified).
    pub done: Vec<String>,
    /// One line per image refused, with why.
    pub refused: Vec<String>,
    /// Damaged blobs no image uses (`--verify-only` looks at every blob).
    pub unused_bad: Vec<String>,
}

/// A manifest to import.
#[derive(Clone)]
struct Desc {
    digest: Digest,
    media_type: String,
    size: u64,
}

/// Imports every image of the archive `blobs` reads.
pub async fn all(
    blobs: &mut Blobs,
    naming: &Naming<'_>,
    input: &str,
) -> Result<Report, ImportError> {
    let (index, legacy) = match &blobs.source {
        Source::Tar(staged) => (staged.index.clone(), staged.docker_manifest.clone()),
        Source::Dir(root) => {
            let path = root.join(INDEX_JSON);
            let bytes = tokio::fs::read(&path)
                .await
                .map_err(|_| ImportError::NotAnArchive {
                    input: input.to_owned(),
                    stopped: None,
                })?;
            (Some(Bytes::from(bytes)), None)
        }
    };
    let mut placer = Placer {
        naming,
        progress: blobs.progress.clone(),
        report: Report::default(),
        placed: HashMap::new(),
    };
    match (index, legacy) {
        (Some(index), _) => {
            placer
                .oci(blobs, &index)
                .await
                .map_err(|why| ImportError::BadIndex {
                    input: input.to_owned(),
                    what: INDEX_JSON,
                    why,
                })?
        }
        (None, Some(manifest)) => {
            placer
                .legacy(blobs, &manifest)
                .await
                .map_err(|why| ImportError::BadIndex {
                    input: input.to_owned(),
                    what: docker::MANIFEST_JSON,
                    why,
                })?
        }
        (None, None) => {
            let stopped = match &blobs.source {
                Source::Tar(staged) => staged.stopped.clone(),
                Source::Dir(_) => None,
            };
            return Err(ImportError::NotAnArchive {
                input: input.to_owned(),
                stopped,
            });
        }
    }
    if blobs.writer.is_none() {
        placer.report.unused_bad = blobs
            .unused()
            .await
            .into_iter()
            .map(|why| format!("damaged, and no image uses it: {why}"))
            .inspect(|line| placer.progress.warn(line))
            .collect();
    }
    Ok(placer.report)
}

struct Placer<'a> {
    naming: &'a Naming<'a>,
    progress: Progress,
    report: Report,
    /// Per repository, the manifests imported into it (where referrers go).
    placed: HashMap<String, HashSet<Digest>>,
}

impl Placer<'_> {
    async fn oci(&mut self, blobs: &mut Blobs, index: &[u8]) -> Result<(), String> {
        let index: layout::Index = serde_json::from_slice(index).map_err(|e| e.to_string())?;
        // (target, descriptor) with the tags of one manifest gathered.
        let mut images: Vec<(String, Desc, Vec<String>)> = Vec::new();
        let mut unnamed = Vec::new();
        for entry in &index.manifests {
            let what = format!("{INDEX_JSON} entry {}", entry.digest);
            let Ok(digest) = Digest::parse(&entry.digest) else {
                self.refuse(&what, &"not a sha256 digest");
                continue;
            };
            let desc = Desc {
                digest,
                media_type: entry.media_type.clone(),
                size: entry.size,
            };
            match self.naming.entry(entry) {
                Ok(Named::Image(Target { repo, tag })) => {
                    match images
                        .iter_mut()
                        .find(|(r, d, _)| *r == repo && d.digest == desc.digest)
                    {
                        Some((_, _, tags)) => tags.extend(tag),
                        None => images.push((repo, desc, tag.into_iter().collect())),
                    }
                }
                Ok(Named::Unnamed) => unnamed.push(desc),
                Err(why) => self.refuse(&what, &why),
            }
        }
        for (repo, desc, tags) in &images {
            self.image(blobs, repo, desc, tags).await;
        }
        // Unnamed: referrers (with a subject) or images for --repo.
        let mut referrers = Vec::new();
        for desc in unnamed {
            let what = format!("{INDEX_JSON} entry {}", desc.digest);
            let subject = match blobs.manifest(&desc.digest, desc.size).await {
                Ok(bytes) => store::parse(&desc.digest, Some(&desc.media_type), &bytes)
                    .map(|p| p.subject)
                    .map_err(|e| Refusal::from_put(At::blob(&desc.digest), e)),
                Err(why) => Err(why),
            };
            match subject {
                Ok(Some(subject)) => referrers.push((desc, subject)),
                Ok(None) => match self.naming.unnamed() {
                    Ok(target) => {
                        self.image(blobs, &target.repo, &desc, &[]).await;
                    }
                    Err(why) => self.refuse(&what, &why),
                },
                Err(why) => self.refuse(&what, &why),
            }
        }
        self.referrers(blobs, referrers).await;
        Ok(())
    }

    /// Each referrer goes into every repository that holds its subject
    /// (which may be another referrer: signatures of an SBOM).
    async fn referrers(&mut self, blobs: &mut Blobs, referrers: Vec<(Desc, String)>) {
        let mut failed = HashSet::new();
        loop {
            let mut moved = false;
            for (desc, subject) in &referrers {
                let Ok(subject) = Digest::parse(subject) else {
                    continue;
                };
                let repos: Vec<String> = self
                    .placed
                    .iter()
                    .filter(|(_, held)| held.contains(&subject) && !held.contains(&desc.digest))
                    .map(|(repo, _)| repo.clone())
                    .collect();
                for repo in repos {
                    if failed.contains(&(repo.clone(), desc.digest.clone())) {
                        continue;
                    }
                    if self.image(blobs, &repo, desc, &[]).await {
                        moved = true;
                    } else {
                        failed.insert((repo, desc.digest.clone()));
                    }
                }
            }
            if !moved {
                break;
            }
        }
        for (desc, subject) in &referrers {
            if !self.placed.values().any(|held| held.contains(&desc.digest)) {
                let note = format!(
                    "referrer {} left out: its subject {subject} is in no imported repository",
                    desc.digest
                );
                blobs.progress.note(&note);
            }
        }
    }

    /// A legacy `docker save` archive: each image turned into an OCI
    /// manifest over its config and `layer.tar` files.
    async fn legacy(&mut self, blobs: &mut Blobs, manifest: &[u8]) -> Result<(), String> {
        let images = docker::parse_manifest(manifest)?;
        for image in images {
            let names = image.repo_tags.clone().unwrap_or_default();
            let what = if names.is_empty() {
                image.config.clone()
            } else {
                names.join(", ")
            };
            let desc = match legacy_image(blobs, &image) {
                Ok(desc) => desc,
                Err(why) => {
                    self.refuse(&what, &why);
                    continue;
                }
            };
            let mut targets: Vec<(String, Vec<String>)> = Vec::new();
            let mut named = Vec::new();
            for name in &names {
                match self.naming.repo_tag(name) {
                    Ok(target) => named.push(target),
                    Err(why) => self.refuse(name, &why),
                }
            }
            if names.is_empty() {
                match self.naming.unnamed() {
                    Ok(target) => named.push(target),
                    Err(why) => self.refuse(&what, &why),
                }
            }
            for Target { repo, tag } in named {
                match targets.iter_mut().find(|(r, _)| *r == repo) {
                    Some((_, tags)) => tags.extend(tag),
                    None => targets.push((repo, tag.into_iter().collect())),
                }
            }
            for (repo, tags) in targets {
                self.image(blobs, &repo, &desc, &tags).await;
            }
        }
        Ok(())
    }

    /// One image into `repo`; reports it and says whether it went in.
    async fn image(&mut self, blobs: &mut Blobs, repo: &str, desc: &Desc, tags: &[String]) -> bool {
        let name = match tags {
            [] => format!("{repo}@{}", desc.digest),
            tags => format!("{repo}:{}", tags.join(",")),
        };
        match import_image(blobs, repo, desc, tags).await {
            Ok(manifests) => {
                let verb = if blobs.writer.is_some() {
                    "imported"
                } else {
                    "verified"
                };
                let line = format!(
                    "{verb} {name} {} ({})",
                    desc.digest,
                    crate::transfer::export::count(manifests.len(), "manifest")
                );
                blobs.progress.note(&line);
                self.report.done.push(line);
                self.placed
                    .entry(repo.to_owned())
                    .or_default()
                    .extend(manifests);
                true
            }
            Err(why) => {
                self.refuse(&format!("{name} {}", desc.digest), &why);
                false
            }
        }
    }

    fn refuse(&mut self, what: &str, why: &dyn std::fmt::Display) {
        let line = format!("refused {what}: {why}");
        self.progress.warn(&line);
        self.report.refused.push(line);
    }
}

/// A manifest of the image, read and checked, with the blobs it names.
struct Checked {
    manifest: Manifest,
    blobs: Vec<Digest>,
}

/// Checks the whole image, then (unless verifying) makes it visible.
/// Returns the digests of its manifests.
async fn import_image(
    blobs: &mut Blobs,
    repo: &str,
    desc: &Desc,
    tags: &[String],
) -> Result<Vec<Digest>, Refusal> {
    let mut manifests = Vec::new();
    gather(blobs, desc.clone(), &mut manifests, 0).await?;
    let Some(writer) = blobs.writer.as_mut() else {
        return Ok(manifests.into_iter().map(|m| m.manifest.digest).collect());
    };
    let last = manifests.len().saturating_sub(1);
    for (i, Checked { manifest, blobs }) in manifests.iter().enumerate() {
        for blob in blobs {
            writer
                .link(repo, blob)
                .await
                .map_err(|e| Refusal::from_put(At::blob(blob), e))?;
        }
        let tags = if i == last { tags } else { &[] };
        writer
            .put_manifest(repo, manifest, tags)
            .await
            .map_err(|e| Refusal::from_put(At::blob(&manifest.digest), e))?;
    }
    Ok(manifests.into_iter().map(|m| m.manifest.digest).collect())
}

/// Reads manifest `desc` and what it names, children first into `out`.
fn gather<'a>(
    blobs: &'a mut Blobs,
    desc: Desc,
    out: &'a mut Vec<Checked>,
    depth: usize,
) -> futures::future::BoxFuture<'a, Result<(), Refusal>> {
    Box::pin(async move {
        if out.iter().any(|m| m.manifest.digest == desc.digest) {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(Refusal::Invalid {
                at: At::blob(&desc.digest),
                why: "indexes nest too deep".to_owned(),
            });
        }
        let bytes = blobs.manifest(&desc.digest, desc.size).await?;
        let manifest = Manifest::parse(Some(&desc.media_type), bytes)
            .map_err(|e| Refusal::from_put(At::blob(&desc.digest), e))?;
        let parsed = &manifest.parsed;
        let size_of = |digest: &Digest| {
            parsed
                .descriptors
                .iter()
                .find(|d| d.digest == digest.as_str())
                .map_or(0, |d| d.size)
        };
        let mut names = Vec::new();
        match parsed.kind {
            Kind::Image => {
                for blob in &parsed.required {
                    blobs.ensure(blob, size_of(blob)).await?;
                    names.push(blob.clone());
                }
            }
            Kind::Index => {
                for child in &parsed.descriptors {
                    let Ok(digest) = Digest::parse(&child.digest) else {
                        return Err(Refusal::Invalid {
                            at: At::blob(&desc.digest),
                            why: format!("child {} is not a sha256 digest", child.digest),
                        });
                    };
                    let child = Desc {
                        digest,
                        media_type: child.media_type.clone(),
                        size: child.size,
                    };
                    gather(blobs, child, out, depth + 1).await?;
                }
            }
        }
        out.push(Checked {
            manifest,
            blobs: names,
        });
        Ok(())
    })
}

/// The OCI manifest for a legacy image, its content made known to
/// `blobs` (layers as staged, config and manifest from memory).
fn legacy_image(blobs: &mut Blobs, image: &docker::Image) -> Result<Desc, Refusal> {
    let Source::Tar(staged) = &mut blobs.source else {
        return Err(Refusal::Invalid {
            at: At::path(docker::MANIFEST_JSON),
            why: "a `docker save` archive must be a tar".to_owned(),
        });
    };
    let config = match follow(staged, &image.config) {
        Some(LegacyFile::Json(bytes)) => bytes.clone(),
        Some(LegacyFile::Bad(why)) => return Err(why.clone()),
        _ => return Err(not_there(staged, &image.config)),
    };
    // `docker save` names a config by its digest (the image id): the one
    // check its bytes can get.
    let named = image
        .config
        .rsplit('/')
        .next()
        .and_then(|name| name.strip_suffix(".json"))
        .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok());
    if let Some(named) = named
        && Digest::of(&config) != named
    {
        return Err(Refusal::Digest {
            at: At {
                path: image.config.clone(),
                digest: Some(named),
            },
            actual: Digest::of(&config).to_string(),
        });
    }
    let mut layers = Vec::new();
    for path in &image.layers {
        match follow(staged, path) {
            Some(LegacyFile::Layer { digest, size }) => layers.push((digest.clone(), *size)),
            Some(LegacyFile::Bad(why)) => return Err(why.clone()),
            _ => return Err(not_there(staged, path)),
        }
    }
    let manifest = docker::oci_manifest(&config, &layers).map_err(|e| match e {
        docker::LegacyError::Layer {
            index,
            actual,
            expected,
        } => Refusal::Digest {
            at: At {
                path: image.layers.get(index).cloned().unwrap_or_default(),
                digest: Digest::parse(&expected).ok(),
            },
            actual,
        },
        e => Refusal::Invalid {
            at: At::path(image.config.clone()),
            why: e.to_string(),
        },
    })?;
    let verify = blobs.writer.is_none();
    for (digest, size) in &layers {
        let got = if verify {
            Got::Verified(*size)
        } else {
            Got::Stored(*size)
        };
        staged.blobs.insert(digest.clone(), got);
    }
    let digest = Digest::of(&manifest);
    let size = manifest.len() as u64;
    blobs.made.insert(Digest::of(&config), config);
    blobs.made.insert(digest.clone(), Bytes::from(manifest));
    Ok(Desc {
        digest,
        media_type: berth_oci::media_types::OCI_MANIFEST.to_owned(),
        size,
    })
}

/// The file at `path`, through links.
fn follow<'a>(staged: &'a Staged, path: &str) -> Option<&'a LegacyFile> {
    let mut path = layout::normalize(path);
    for _ in 0..MAX_DEPTH {
        match staged.legacy.get(&path)? {
            LegacyFile::Link(target) => path = target.clone(),
            file => return Some(file),
        }
    }
    None
}

fn not_there(staged: &Staged, path: &str) -> Refusal {
    Refusal::Missing {
        at: At::path(path),
        layout: false,
        stopped: staged.stopped.clone(),
    }
}
