//! `berth export`: the images named, read from the store, written as an
//! OCI image layout (directory or tar) or as `docker load` takes them.
//!
//! First every manifest is read and walked (an index's children, each
//! image's config and layers, and, unless `--no-referrers`, the referrers
//! of every manifest, recursively), so that the whole content is known
//! before a byte is written: `index.json` (or `manifest.json`) goes first,
//! and each blob once however many images share it. Blobs then stream
//! from the store to the writing thread in chunks.

mod plan;

use crate::cli::{ExportArgs, ExportFormat};
use crate::config::Config;
use crate::maintenance::usage::human;
use crate::store_root;
use crate::transfer::archive::detect;
use crate::transfer::archive::layout;
use crate::transfer::archive::sink::{Sink, SinkError};
use crate::transfer::progress::Progress;
use berth_oci::Digest;
use berth_storage::{BlobStore, StorageError};
use futures::StreamExt as _;
use plan::{File, Plan};
use std::time::Instant;

/// What stops an export.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}: no such tag")]
    NoTag(String),
    #[error("{0}: no such manifest in the repository")]
    NoManifest(String),
    #[error("{0}: no such repository, or it has no tags")]
    NoRepository(String),
    #[error("{0}")]
    BadRef(#[from] layout::NameError),
    #[error("the store holds no tagged image")]
    Empty,
    #[error("{image}: {what} {digest} is not in the store (run `berth fsck`)")]
    Missing {
        image: String,
        what: &'static str,
        digest: String,
    },
    #[error("{image}: manifest {digest}: {why}")]
    BadManifest {
        image: String,
        digest: String,
        why: String,
    },
    #[error("{image}: no manifest for platform {platform} (it has {available})")]
    NoPlatform {
        image: String,
        platform: String,
        available: String,
    },
    #[error("writing {what}: {why}")]
    Encode { what: &'static str, why: String },
    #[error("--platform {0:?}: expected OS/ARCH or OS/ARCH/VARIANT")]
    BadPlatform(String),
    #[error("reading {what} {digest} from the store: {source}")]
    Storage {
        what: &'static str,
        digest: String,
        source: StorageError,
    },
    #[error("reading blob {digest} from the store: {source}")]
    Read {
        digest: String,
        source: std::io::Error,
    },
    #[error("blob {digest}: the store gave {actual} bytes of {expected}")]
    Short {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error(transparent)]
    Sink(#[from] SinkError),
}

pub async fn run(config: &Config, args: &ExportArgs) -> anyhow::Result<()> {
    let store = store_root::open_existing(config).await?;
    let started = Instant::now();
    let roots = plan::roots(&store, args).await?;
    let plan = match args.format {
        ExportFormat::Oci => plan::oci(&store, &roots, !args.no_referrers).await?,
        ExportFormat::Docker => {
            let platform =
                plan::Platform::parse(args.platform.as_deref().unwrap_or("linux/amd64"))?;
            plan::docker(&store, &roots, &platform).await?
        }
    };
    let total = plan.bytes();
    let progress = Progress::new(Some(total), args.progress.quiet, "export");
    let sink = Sink::open(&args.output, detect::output(&args.output), progress.clone())?;
    if let Err(e) = write(store.blobs.as_ref(), &sink, &plan).await {
        // The writer's own error says more than "it stopped".
        return Err(match (e, sink.abort().await) {
            (ExportError::Sink(_), Err(own)) => own.into(),
            (e, _) => e.into(),
        });
    }
    sink.finish().await?;
    for line in &plan.notes {
        progress.note(line);
    }
    progress.finish(&format!(
        "exported {} ({}, {}, {}) to {} in {:.1?}",
        count(plan.images, "image"),
        count(plan.manifests, "manifest"),
        count(plan.blobs, "other blob"),
        human(total),
        args.output.display(),
        started.elapsed()
    ));
    Ok(())
}

/// Every file of the plan, in order.
async fn write(blobs: &dyn BlobStore, sink: &Sink, plan: &Plan) -> Result<(), ExportError> {
    for file in &plan.files {
        match file {
            File::Bytes { path, bytes } => sink.small(path, bytes.clone()).await?,
            File::Blob { digest, size } => {
                sink.start(&layout::blob_path(digest), *size).await?;
                copy_blob(blobs, sink, digest, *size).await?;
            }
        }
    }
    Ok(())
}

async fn copy_blob(
    blobs: &dyn BlobStore,
    sink: &Sink,
    digest: &Digest,
    size: u64,
) -> Result<(), ExportError> {
    let mut reader = blobs
        .read(digest, 0, size)
        .await
        .map_err(|source| ExportError::Storage {
            what: "blob",
            digest: digest.to_string(),
            source,
        })?;
    let mut copied = 0u64;
    while let Some(chunk) = reader.next().await {
        let chunk = chunk.map_err(|source| ExportError::Read {
            digest: digest.to_string(),
            source,
        })?;
        copied += chunk.len() as u64;
        sink.chunk(chunk).await?;
    }
    if copied != size {
        return Err(ExportError::Short {
            digest: digest.to_string(),
            expected: size,
            actual: copied,
        });
    }
    Ok(())
}

/// `1 image`, `2 images`.
pub(crate) fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
