//! The maintenance commands: `berth gc`, `berth fsck`, `berth du`. Each opens
//! the store the configuration names, like `serve`, and may run while a
//! server uses it; unlike `serve`, none creates a store (`store_root.rs`).

use crate::config::Config;
use crate::health_probe;
use crate::maintenance::{fsck, gc, usage};
use crate::store_root;
use std::io::Write as _;
use std::time::{Duration, Instant};

/// One garbage-collection pass, printing each removal as it happens.
pub async fn gc(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let store = store_root::open_existing(config).await?;
    let started = Instant::now();
    let verb = if dry_run { "would remove" } else { "removed" };
    let pass = gc::GcPass::from_config(&config.gc, dry_run);
    let report = gc::run_pass(&store, pass, |d, size| {
        println!("{verb} blob {d} ({size} bytes)");
        let _ = std::io::stdout().flush();
    })
    .await?;
    for (repo, digest) in &report.manifests {
        println!("{verb} untagged manifest {repo}@{digest}");
    }
    for id in &report.uploads {
        println!("{verb} upload session {id}");
    }
    print!("{}", gc_summary(&report, pass, started.elapsed()));
    Ok(())
}

/// What a pass did (or would do) and what it left for later, in words.
fn gc_summary(report: &gc::GcReport, pass: gc::GcPass, took: Duration) -> String {
    let dry = pass.dry_run;
    let verb = if dry { "would remove" } else { "removed" };
    let uploads = format!(
        "{} upload sessions idle longer than gc.upload_max_age ({})",
        report.uploads.len(),
        span(pass.upload_max_age)
    );
    let stale = match report.stale_owners {
        0 => String::new(),
        n => format!(
            "{} {n} upload owner records whose sessions were already gone.\n",
            if dry { "Would forget" } else { "Forgot" }
        ),
    };
    if !report.collects_blobs {
        return format!(
            "{verb} {uploads} in {took:.2?}.\n{stale}Blobs are not collected: layout metadata \
             keeps no review queue (registry:2's offline garbage-collect can collect them; see \
             docs/GC.md).\n"
        );
    }
    let freed = report.bytes_freed();
    let mut out = format!(
        "{verb} {} blobs, freeing {freed} bytes ({}), {} untagged manifests and {uploads} \
         in {took:.2?}.\n",
        report.blobs.len(),
        usage::human(freed),
        report.manifests.len(),
    );
    let grace = format!(
        "gc.grace ({}) or gc.upload_grace ({})",
        span(pass.grace.unreferenced),
        span(pass.grace.uploaded)
    );
    out += &stale;
    let waiting = &report.waiting;
    match waiting.next_due {
        None => out += &format!("No unreferenced blob is waiting out {grace}.\n"),
        Some(due) => {
            let now = gc::now();
            out += &format!(
                "{} unreferenced blobs ({}) are waiting out {grace}; the first becomes \
                 collectable at {} (in {}).\n",
                waiting.blobs,
                usage::human(waiting.bytes),
                crate::clock::utc_seconds(due),
                span(due.saturating_sub(now))
            );
        }
    }
    if !dry {
        out += &format!(
            "Also resumed {} deletions an interrupted pass had left, and queued {} blobs the \
             metadata did not know (their upload grace counts from when they were written).\n",
            report.resumed, report.adopted
        );
    }
    out
}

/// Checks (and with `repair`, fixes) the store; fails when problems remain.
pub async fn fsck(config: &Config, repair: bool) -> anyhow::Result<()> {
    let store = store_root::open_existing(config).await?;
    let started = Instant::now();
    let report = fsck::run(&store, repair, true).await?;
    for (digest, actual) in &report.corrupt {
        let what = if actual == "unreadable" {
            format!("blob {digest} cannot be read back whole")
        } else {
            format!("blob {digest} is corrupt: its bytes hash to {actual}")
        };
        let done = if repair {
            "moved it to quarantine/ (no longer served)"
        } else {
            "--repair moves it to quarantine/ (no longer served)"
        };
        println!("{what}; {done}");
    }
    for problem in &report.problems {
        println!("{}", problem.describe(repair));
    }
    let entries = match report.entries_checked {
        Some(n) => format!("{n} metadata entries"),
        None => "no metadata entries (this metadata store cannot list them)".to_owned(),
    };
    let outcome = match (report.is_clean(), repair) {
        (true, _) => "nothing is wrong",
        (false, true) => "repaired as listed above",
        (false, false) => "`berth fsck --repair` fixes them as listed above",
    };
    println!(
        "checked {} blobs ({}) and {entries} in {:.2?}: {} corrupt, {} dangling references; \
         {outcome}",
        report.blobs_checked,
        usage::human(report.bytes_checked),
        started.elapsed(),
        report.corrupt.len(),
        report.problems.len(),
    );
    if !report.is_clean() && !repair {
        anyhow::bail!("the store has problems; `berth fsck --repair` fixes them as listed above");
    }
    Ok(())
}

pub async fn du(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = store_root::open_existing(config).await?;
    let usage = usage::compute(&store).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&usage)?);
    } else {
        print!("{}", usage::render(&usage));
    }
    Ok(())
}

/// A duration in seconds as people write it: `1h`, `1d 2h`, `59m 10s`.
fn span(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    if secs >= 100 * 365 * 86_400 {
        return "ever".to_owned();
    }
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
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

/// `berth health`: whether the server the configuration describes (or
/// `url`) answers 200 on /health; one line either way, for a container's
/// HEALTHCHECK log.
pub async fn health(config: &Config, url: Option<&str>) -> std::process::ExitCode {
    let url = health_probe::url(config, url);
    match health_probe::probe(&url).await {
        Ok(answer) if answer.healthy() => {
            println!("healthy: {url} answered {}", answer.status);
            std::process::ExitCode::SUCCESS
        }
        Ok(answer) => {
            let why = match answer.detail.as_str() {
                "" => String::new(),
                detail => format!(": {detail}"),
            };
            eprintln!("unhealthy: {url} answered {}{why}", answer.status);
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn times_in_words() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(3600), "1h");
        assert_eq!(span(86_400 + 7200 + 5), "1d 2h");
        assert_eq!(span(3550), "59m 10s");
        assert_eq!(span(u64::MAX), "ever");
    }
}
