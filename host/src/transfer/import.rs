//! `berth import`: the images of an OCI image layout (a directory, or a
//! tar plain, gzip or zstd) or of a `docker save` archive, into the store,
//! every digest verified, each image visible only once all of its content
//! is committed (docs/TRANSFER.md).
//!
//! A tar is read once (`stage.rs`): blobs are committed as they come by,
//! since `index.json` may come last; blobs the store already holds are
//! not read again, which is how a second run after an interruption
//! resumes. Then the images are made visible (`place.rs`), each named as
//! `names.rs` decides. A directory needs no first pass: its blobs are
//! opened only when the store lacks them.

mod names;
mod place;
mod refusal;
mod source;
mod stage;

use crate::backends;
use crate::cli::ImportArgs;
use crate::config::Config;
use crate::maintenance::usage::human;
use crate::store_root;
use crate::transfer::export::count;
use crate::transfer::progress::Progress;
use crate::transfer::store::StoreWriter;
use anyhow::Context as _;
use source::{Blobs, Checked, Source};
use std::path::Path;
use std::time::Instant;

/// Some images were refused; what and why is printed above.
#[derive(Debug, thiserror::Error)]
#[error("{refused} of {total} images refused (see above); the others {verb}")]
pub struct Refused {
    refused: usize,
    total: usize,
    verb: &'static str,
}

pub async fn run(config: &Config, args: &ImportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let input = args.input.clone();
    let meta = std::fs::metadata(&input).with_context(|| format!("reading {}", input.display()))?;
    let verify = args.verify_only;
    // --verify-only writes nothing, not even an empty store.
    let store = if verify {
        None
    } else {
        store_root::check(config, true)?;
        Some(backends::open(config).await?)
    };
    let mut writer = store.as_ref().map(StoreWriter::new);
    let label = if verify { "verify" } else { "import" };
    let quiet = args.progress.quiet;
    let (source, progress) = if meta.is_dir() {
        let progress = Progress::new(Some(layout_bytes(&input)), quiet, label);
        (Source::Dir(input.clone()), progress)
    } else {
        let progress = Progress::new(Some(meta.len()), quiet, label);
        let handle = tokio::runtime::Handle::current();
        let (path, shown) = (input.clone(), progress.clone());
        let (back, staged) =
            tokio::task::spawn_blocking(move || stage::stage(&path, handle, writer, &shown))
                .await
                .context("reading the archive")?;
        if back.is_none() && !verify {
            return Err(refusal::ImportError::WriterLost {
                input: input.display().to_string(),
            }
            .into());
        }
        writer = back;
        (Source::Tar(Box::new(staged)), progress)
    };
    let naming = names::Naming {
        repo: args.repo.as_deref(),
        prefix: args.repo_prefix.as_deref(),
    };
    let mut blobs = Blobs {
        source,
        writer,
        store: store.as_ref().map(|s| s.blobs.clone()),
        progress: progress.clone(),
        checked: Checked::default(),
        made: Default::default(),
    };
    let placed = place::all(&mut blobs, &naming, &input.display().to_string()).await;
    if let Some(writer) = blobs.writer.take() {
        writer.finish().await;
    }
    let report = placed?;
    let (stored, skipped) = match &blobs.source {
        Source::Tar(staged) => (staged.stored, staged.skipped),
        Source::Dir(_) => (blobs.checked.stored, blobs.checked.skipped),
    };
    let total = report.done.len() + report.refused.len();
    let summary = if verify {
        format!(
            "verified {} of {} in {} in {:.1?}",
            report.done.len(),
            count(total, "image"),
            input.display(),
            started.elapsed()
        )
    } else {
        format!(
            "imported {} of {} from {} ({} stored, {} already there; {} read) in {:.1?}",
            report.done.len(),
            count(total, "image"),
            input.display(),
            count(stored, "blob"),
            skipped,
            human(input_bytes(&input, &meta)),
            started.elapsed()
        )
    };
    progress.finish(&summary);
    if report.refused.is_empty() && !report.unused_bad.is_empty() {
        return Err(refusal::ImportError::DamagedBlobs {
            count: report.unused_bad.len(),
        }
        .into());
    }
    if !report.refused.is_empty() {
        return Err(Refused {
            refused: report.refused.len(),
            total,
            verb: if verify { "are good" } else { "were imported" },
        }
        .into());
    }
    Ok(())
}

/// The bytes of a layout directory's blobs, for the progress total.
fn layout_bytes(root: &Path) -> u64 {
    let dir = root.join("blobs").join("sha256");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn input_bytes(input: &Path, meta: &std::fs::Metadata) -> u64 {
    if meta.is_dir() {
        layout_bytes(input)
    } else {
        meta.len()
    }
}
