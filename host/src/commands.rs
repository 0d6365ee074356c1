//! The maintenance commands: `berth gc`, `berth fsck`, `berth du`. Each opens
//! the store the configuration names, like `serve`, and may run while a
//! server uses it.

use crate::backends;
use crate::config::Config;
use crate::maintenance::{fsck, gc, usage};
use std::io::Write as _;
use std::time::Instant;

/// One garbage-collection pass, printing each removal as it happens.
pub async fn gc(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let store = backends::open(config)?;
    let started = Instant::now();
    let verb = if dry_run { "would remove" } else { "removed" };
    let report = gc::run_pass(
        &store,
        gc::GcPass::from_config(&config.gc, dry_run),
        |d, size| {
            println!("{verb} blob {d} ({size} bytes)");
            let _ = std::io::stdout().flush();
        },
    )
    .await?;
    for (repo, digest) in &report.manifests {
        println!("{verb} untagged manifest {repo}@{digest}");
    }
    for id in &report.uploads {
        println!("{verb} upload session {id}");
    }
    println!(
        "{} {} blobs, {} bytes freed, {} untagged manifests, {} upload sessions; \
         {} adopted, {} resumed; {:.2?}",
        if dry_run { "would remove" } else { "removed" },
        report.blobs.len(),
        report.bytes_freed(),
        report.manifests.len(),
        report.uploads.len(),
        report.adopted,
        report.resumed,
        started.elapsed()
    );
    Ok(())
}

/// Checks (and with `repair`, fixes) the store; fails when problems remain.
pub async fn fsck(config: &Config, repair: bool) -> anyhow::Result<()> {
    let store = backends::open(config)?;
    let started = Instant::now();
    let report = fsck::run(&store, repair, true).await?;
    let fixed = if repair { " (quarantined)" } else { "" };
    for (digest, actual) in &report.corrupt {
        println!("corrupt blob {digest}: content hashes to {actual}{fixed}");
    }
    for reference in &report.dangling {
        // A reference goes with the manifest holding it, as a delete would.
        let fixed = match reference {
            _ if !repair => "",
            berth_storage::Reference::Ref { .. } => " (dropped, with its manifest and tags)",
            _ => " (dropped)",
        };
        println!("dangling {reference}{fixed}");
    }
    println!(
        "checked {} blobs ({} bytes) in {:.2?}: {} corrupt, {} dangling references",
        report.blobs_checked,
        report.bytes_checked,
        started.elapsed(),
        report.corrupt.len(),
        report.dangling.len()
    );
    if !report.is_clean() && !repair {
        anyhow::bail!("the store has problems; `berth fsck --repair` fixes them");
    }
    Ok(())
}

pub async fn du(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = backends::open(config)?;
    let usage = usage::compute(&store).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&usage)?);
    } else {
        print!("{}", usage::render(&usage));
    }
    Ok(())
}

/// `berth guest export [--standalone] FILE`: the guest the binary embeds,
/// or the guest composed with the wasi:filesystem storage component.
pub fn export_guest(file: &std::path::Path, standalone: bool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let bytes = if standalone {
        crate::sandbox::runtime::STANDALONE_GUEST
    } else {
        crate::sandbox::runtime::EMBEDDED_GUEST
    };
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
    println!("{}: {} bytes", file.display(), bytes.len());
    Ok(())
}
