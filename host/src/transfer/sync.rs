//! `berth sync`: copies images from an upstream registry into the store,
//! on the connected side of an air gap (then `berth export` there and
//! `berth import` on the other side; docs/TRANSFER.md).
//!
//! The upstream is a configured `[[proxy]]` (named by its prefix, with its
//! credentials and CA; images land under the prefix, as the pull-through
//! cache would store them, and count as cached content of that upstream)
//! or a registry URL (anonymous, or basic/token login with --username).
//! Every platform of an index comes along, and the referrers of each
//! manifest (signatures, SBOMs) unless --no-referrers. Blobs the store
//! already holds are not fetched again; each image becomes visible only
//! once all of its content is stored (`store.rs`).

use super::progress::Progress;
use super::store::{Manifest, PutError, StoreWriter};
use crate::backends::{self, Backends};
use crate::cli::SyncArgs;
use crate::config::{Config, ProxyConfig};
use crate::store_root;
use crate::upstream::{MANIFEST_ACCEPT, Upstream, UpstreamError, UpstreamSettings};
use berth_oci::manifest::{Kind, MAX_MANIFEST_BYTES};
use berth_oci::route::Reference;
use berth_oci::{Digest, grammar};
use futures::TryStreamExt as _;
use std::collections::HashSet;

/// Why an image could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Store(#[from] PutError),
    #[error("recording the origin of {repo}: {source}")]
    Origin {
        repo: String,
        source: berth_storage::StorageError,
    },
}

/// Where images come from, and under which local names they go.
struct Source {
    upstream: Upstream,
    /// Local repository = prefix + "/" + upstream name.
    prefix: Option<String>,
    /// The proxy's URL when --from named one: synced repositories are
    /// that proxy's cached content.
    origin: Option<String>,
}

pub async fn run(config: &Config, args: &SyncArgs) -> anyhow::Result<()> {
    let source = resolve_source(config, args)?;
    let wanted = args
        .refs
        .iter()
        .map(|r| parse_ref(r))
        .collect::<Result<Vec<_>, _>>()?;
    store_root::check(config, true)?;
    let backends = backends::open(config).await?;
    let progress = Progress::new(None, args.progress.quiet, "sync");
    let mut sync = Sync {
        upstream: &source.upstream,
        writer: StoreWriter::new(&backends),
        backends: &backends,
        origin: source.origin.as_deref(),
        referrers: !args.no_referrers,
        progress,
        fetched: 0,
        present: 0,
    };
    let mut failed = Vec::new();
    let mut synced = 0;
    for (name, reference) in wanted {
        let local = match &source.prefix {
            Some(prefix) => format!("{prefix}/{name}"),
            None => name.clone(),
        };
        let references = match reference {
            Some(reference) => vec![reference],
            None => match source.upstream.tags(&name).await {
                Ok(tags) => tags.into_iter().map(Reference::Tag).collect(),
                Err(e) => {
                    sync.progress.warn(&format!("{name}: listing tags: {e}"));
                    failed.push(name.clone());
                    continue;
                }
            },
        };
        for reference in references {
            let shown = format!("{name}{}", show(&reference));
            match sync.image(&name, &local, &reference).await {
                Ok(digest) => {
                    synced += 1;
                    sync.progress
                        .note(&format!("{shown} -> {local}{} {digest}", show(&reference)));
                }
                Err(e) => {
                    sync.progress.warn(&format!("{shown}: not synced: {e}"));
                    failed.push(shown);
                }
            }
        }
    }
    let Sync {
        writer,
        progress,
        fetched,
        present,
        ..
    } = sync;
    writer.finish().await;
    progress.finish(&format!(
        "synced {synced} images from {}: fetched {fetched} bytes, {present} bytes already stored",
        source.upstream.url()
    ));
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} images not synced: {}", failed.len(), failed.join(", "))
    }
}

/// `--from`: a configured proxy's prefix, or a URL.
fn resolve_source(config: &Config, args: &SyncArgs) -> anyhow::Result<Source> {
    let proxy: Option<&ProxyConfig> = config
        .proxy
        .iter()
        .find(|p| p.prefix.as_deref() == Some(args.from.as_str()) || p.url == args.from);
    let (settings, prefix, origin) = match proxy {
        Some(proxy) => {
            if args.username.is_some() {
                anyhow::bail!(
                    "--username: {} is a configured proxy, whose credentials come from the \
                     configuration",
                    args.from
                );
            }
            (
                UpstreamSettings::from_proxy(proxy)?,
                proxy.prefix.clone(),
                Some(proxy.url.clone()),
            )
        }
        None if args.from.starts_with("http://") || args.from.starts_with("https://") => {
            let password = match &args.password_file {
                Some(file) => Some(read_password(file)?),
                None => None,
            };
            if password.is_some() != args.username.is_some() {
                anyhow::bail!("--username and --password-file go together");
            }
            let settings = UpstreamSettings {
                username: args.username.clone(),
                password,
                ..UpstreamSettings::new(&args.from)
            };
            (settings, None, None)
        }
        None => {
            let prefixes: Vec<&str> = config
                .proxy
                .iter()
                .filter_map(|p| p.prefix.as_deref())
                .collect();
            anyhow::bail!(
                "--from {}: neither a configured [[proxy]] prefix ({}) nor an http(s):// URL",
                args.from,
                if prefixes.is_empty() {
                    "none configured".to_owned()
                } else {
                    prefixes.join(", ")
                }
            );
        }
    };
    let prefix = match &args.repo_prefix {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p.trim_end_matches('/').to_owned()),
        None => prefix,
    };
    if let Some(p) = &prefix
        && !grammar::is_valid_name(p)
    {
        anyhow::bail!("--repo-prefix {p:?} is not a repository name");
    }
    Ok(Source {
        upstream: Upstream::new(&settings)?,
        prefix,
        origin,
    })
}

fn read_password(file: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("--password-file {}: {e}", file.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// `NAME`, `NAME:TAG` or `NAME@DIGEST`.
fn parse_ref(text: &str) -> anyhow::Result<(String, Option<Reference>)> {
    let bad = |why: &str| anyhow::anyhow!("{text:?}: {why} (NAME, NAME:TAG or NAME@DIGEST)");
    let (name, reference) = if let Some((name, digest)) = text.split_once('@') {
        let digest = Digest::parse(digest).map_err(|e| bad(e.describe()))?;
        (name, Some(Reference::Digest(digest)))
    } else {
        // A colon after the last slash separates the tag.
        let slash = text.rfind('/').map_or(0, |i| i + 1);
        match text[slash..].rfind(':') {
            Some(i) => {
                let tag = &text[slash + i + 1..];
                if !grammar::is_valid_tag(tag) {
                    return Err(bad("not a tag"));
                }
                (&text[..slash + i], Some(Reference::Tag(tag.to_owned())))
            }
            None => (text, None),
        }
    };
    if !grammar::is_valid_name(name) {
        return Err(bad("not a repository name"));
    }
    Ok((name.to_owned(), reference))
}

fn show(reference: &Reference) -> String {
    match reference {
        Reference::Tag(tag) => format!(":{tag}"),
        Reference::Digest(digest) => format!("@{digest}"),
    }
}

/// One run's state.
struct Sync<'a> {
    upstream: &'a Upstream,
    writer: StoreWriter,
    backends: &'a Backends,
    origin: Option<&'a str>,
    referrers: bool,
    progress: Progress,
    /// Bytes fetched from the upstream, and bytes the store already held.
    fetched: u64,
    present: u64,
}

impl Sync<'_> {
    /// Copies the image `reference` names (its index, every platform, and
    /// the referrers) from `name` upstream to `local`; its digest.
    async fn image(
        &mut self,
        name: &str,
        local: &str,
        reference: &Reference,
    ) -> Result<Digest, SyncError> {
        if let Some(origin) = self.origin {
            self.backends
                .metadata
                .set_origin(local, origin)
                .await
                .map_err(|source| SyncError::Origin {
                    repo: local.to_owned(),
                    source,
                })?;
        }
        let tags: Vec<String> = match reference {
            Reference::Tag(tag) => vec![tag.clone()],
            Reference::Digest(_) => Vec::new(),
        };
        let mut seen = HashSet::new();
        self.manifest(name, local, reference, &tags, &mut seen)
            .await
    }

    /// Stores the manifest `reference` names and everything it needs,
    /// children and blobs first, then its referrers.
    async fn manifest(
        &mut self,
        name: &str,
        local: &str,
        reference: &Reference,
        tags: &[String],
        seen: &mut HashSet<Digest>,
    ) -> Result<Digest, SyncError> {
        let fetched = self
            .upstream
            .manifest_get(name, reference, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)
            .await?;
        seen.insert(fetched.digest.clone());
        let manifest = Manifest::parse(Some(&fetched.media_type), fetched.bytes)?;
        let parsed = &manifest.parsed;
        match parsed.kind {
            Kind::Index => {
                for child in &parsed.required {
                    if seen.contains(child) {
                        continue;
                    }
                    let child = Reference::Digest(child.clone());
                    Box::pin(self.manifest(name, local, &child, &[], seen)).await?;
                }
            }
            Kind::Image => {
                for blob in &parsed.required {
                    self.blob(name, local, blob).await?;
                }
            }
        }
        self.writer.put_manifest(local, &manifest, tags).await?;
        let digest = manifest.digest;
        if self.referrers {
            for referrer in self.upstream.referrers(name, &digest).await? {
                let Ok(referrer) = Digest::parse(&referrer.digest) else {
                    continue;
                };
                if seen.contains(&referrer) {
                    continue;
                }
                let referrer = Reference::Digest(referrer);
                Box::pin(self.manifest(name, local, &referrer, &[], seen)).await?;
            }
        }
        Ok(digest)
    }

    /// Stores and links one blob, fetching it only when the store lacks it.
    async fn blob(&mut self, name: &str, local: &str, digest: &Digest) -> Result<(), SyncError> {
        if let Some(size) = self.writer.hold_existing(digest).await? {
            self.present += size;
        } else {
            let stream = self.upstream.blob_get(name, digest).await?;
            let progress = self.progress.clone();
            let body = stream
                .body
                .inspect_ok(move |chunk| progress.add(chunk.len() as u64))
                .map_err(std::io::Error::other);
            let reader = tokio_util::io::StreamReader::new(body);
            let size = self.writer.put_blob(digest, stream.length, reader).await?;
            self.fetched += size;
        }
        self.writer.link(local, digest).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_registry_clients_write_them() {
        let (name, reference) = parse_ref("library/busybox:1.36").expect("tag");
        assert_eq!(name, "library/busybox");
        assert_eq!(reference, Some(Reference::Tag("1.36".into())));
        let (name, reference) = parse_ref("library/busybox").expect("name");
        assert_eq!((name.as_str(), reference), ("library/busybox", None));
        let digest = format!("sha256:{}", "a".repeat(64));
        let (name, reference) = parse_ref(&format!("app@{digest}")).expect("digest");
        assert_eq!(name, "app");
        assert_eq!(
            reference,
            Some(Reference::Digest(Digest::parse(&digest).expect("digest")))
        );
        assert!(parse_ref("Upper:1").is_err());
        assert!(parse_ref("app:bad tag").is_err());
        assert!(parse_ref("app@sha256:short").is_err());
    }
}
