//! Progress of a transfer command (`export`, `import`, `sync`): a bar with
//! bytes, rate and time left on a terminal; plain lines every few seconds
//! and at the end when stderr is not one (a log file, CI); nothing but the
//! summary with `--quiet`.
//!
//! Progress goes to stderr. Notes (one line per image done or refused)
//! and the summary go to stdout, printed above the bar so it does not tear.
//! A [`Progress`] is cheap to clone and may be fed from any thread
//! (tokio tasks and the blocking threads that read and write archives).

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a plain progress line is printed when stderr is no terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The progress of one command.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

enum Inner {
    Bar(ProgressBar, Unit),
    Plain(Plain),
    Quiet,
}

struct Plain {
    label: String,
    unit: Unit,
    total: AtomicU64,
    done: AtomicU64,
    started: Instant,
    /// When the last line was printed.
    last: Mutex<Instant>,
}

/// What a [`Progress`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Records of some kind (`berth metadata migrate`'s entries), named.
    Items(&'static str),
}

/// `u64::MAX` stands for "no total known" in [`Plain::total`].
const NO_TOTAL: u64 = u64::MAX;

impl Progress {
    /// Progress over `total_bytes` (when known), shown as `label`.
    pub fn new(total_bytes: Option<u64>, quiet: bool, label: &str) -> Self {
        Self::counting(Unit::Bytes, total_bytes, quiet, label)
    }

    /// Progress over `total` of `unit` (when known), shown as `label`.
    pub fn counting(unit: Unit, total: Option<u64>, quiet: bool, label: &str) -> Self {
        let inner = if quiet {
            Inner::Quiet
        } else if std::io::stderr().is_terminal() {
            Inner::Bar(bar(unit, total, label), unit)
        } else {
            let now = Instant::now();
            Inner::Plain(Plain {
                label: label.to_owned(),
                unit,
                total: AtomicU64::new(total.unwrap_or(NO_TOTAL)),
                done: AtomicU64::new(0),
                started: now,
                last: Mutex::new(now),
            })
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Progress that shows nothing, for tests and library callers.
    pub fn hidden() -> Self {
        Self {
            inner: Arc::new(Inner::Quiet),
        }
    }

    /// `bytes` more were moved (or skipped because already there).
    pub fn add(&self, bytes: u64) {
        match &*self.inner {
            Inner::Bar(bar, _) => bar.inc(bytes),
            Inner::Plain(plain) => {
                plain.done.fetch_add(bytes, Ordering::Relaxed);
                plain.maybe_print();
            }
            Inner::Quiet => {}
        }
    }

    /// The total became known, or changed.
    pub fn set_total(&self, total_bytes: u64) {
        match &*self.inner {
            Inner::Bar(bar, unit) => {
                bar.set_length(total_bytes);
                bar.set_style(bar_style(*unit, true));
            }
            Inner::Plain(plain) => plain.total.store(total_bytes, Ordering::Relaxed),
            Inner::Quiet => {}
        }
    }

    /// One line about what happened (an image stored, a blob skipped), on
    /// stdout above the bar; nothing with `--quiet`.
    pub fn note(&self, line: &str) {
        match &*self.inner {
            Inner::Bar(bar, _) => bar.suspend(|| println!("{line}")),
            Inner::Plain(_) => println!("{line}"),
            Inner::Quiet => {}
        }
    }

    /// A problem, on stderr whatever `--quiet` says.
    pub fn warn(&self, line: &str) {
        match &*self.inner {
            Inner::Bar(bar, _) => bar.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }

    /// Ends the progress (a last plain line when not on a terminal) and
    /// prints `summary` on stdout, also with `--quiet`.
    pub fn finish(&self, summary: &str) {
        match &*self.inner {
            Inner::Bar(bar, _) => bar.finish_and_clear(),
            Inner::Plain(plain) => plain.print(true),
            Inner::Quiet => {}
        }
        println!("{summary}");
    }
}

fn bar(unit: Unit, total: Option<u64>, label: &str) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    bar.set_style(bar_style(unit, total.is_some()));
    bar.set_message(label.to_owned());
    if let Unit::Items(name) = unit {
        bar.set_prefix(name);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

const WITH_TOTAL: &str =
    "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta} left";
const WITHOUT_TOTAL: &str = "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec} {elapsed}";
const ITEMS_WITH_TOTAL: &str = "{msg} [{wide_bar}] {pos}/{len} {prefix} {eta} left";
const ITEMS_WITHOUT_TOTAL: &str = "{spinner} {msg} {pos} {prefix} {elapsed}";

fn bar_style(unit: Unit, total_known: bool) -> ProgressStyle {
    let template = match (unit, total_known) {
        (Unit::Bytes, true) => WITH_TOTAL,
        (Unit::Bytes, false) => WITHOUT_TOTAL,
        (Unit::Items(_), true) => ITEMS_WITH_TOTAL,
        (Unit::Items(_), false) => ITEMS_WITHOUT_TOTAL,
    };
    // The templates are constants; a bad one is a bug caught by the tests.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Plain {
    fn maybe_print(&self) {
        let Ok(mut last) = self.last.try_lock() else {
            // Someone else is printing right now.
            return;
        };
        if last.elapsed() >= PLAIN_EVERY {
            *last = Instant::now();
            drop(last);
            self.print(false);
        }
    }

    /// A line; the last one says how long it all took, not what is left
    /// (an archive's last bytes may be padding nobody reads).
    fn print(&self, last: bool) {
        let total = Some(self.total.load(Ordering::Relaxed)).filter(|&t| t != NO_TOTAL && !last);
        eprintln!(
            "{}",
            plain_line(
                &self.label,
                self.unit,
                self.done.load(Ordering::Relaxed),
                total,
                self.started.elapsed(),
            )
        );
    }
}

/// `label: 12.0 MiB of 100.0 MiB (12%), 4.0 MiB/s, 22s left`.
/// `label: 120 of 400 entries (30%), 60 entries/s, 5s left` for items.
fn plain_line(label: &str, unit: Unit, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    let amount = |n: u64| match unit {
        Unit::Bytes => HumanBytes(n).to_string(),
        Unit::Items(_) => n.to_string(),
    };
    let name = match unit {
        Unit::Bytes => String::new(),
        Unit::Items(name) => format!(" {name}"),
    };
    let mut line = format!("{label}: {}", amount(done));
    if let Some(total) = total {
        let percent = (done.min(total) * 100).checked_div(total).unwrap_or(100);
        line += &format!(" of {}{name} ({percent}%)", amount(total));
    } else {
        line += &name;
    }
    line += &format!(", {}{name}/s", amount(rate as u64));
    match total {
        Some(total) if total > done && rate >= 1.0 => {
            let left = ((total - done) as f64 / rate).ceil() as u64;
            line += &format!(", {left}s left");
        }
        _ => line += &format!(", {:.1}s", elapsed.as_secs_f64()),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_bytes_rate_and_time_left() {
        let line = plain_line(
            "import",
            Unit::Bytes,
            10 << 20,
            Some(40 << 20),
            Duration::from_secs(2),
        );
        assert_eq!(
            line,
            "import: 10.00 MiB of 40.00 MiB (25%), 5.00 MiB/s, 6s left"
        );
        let open = plain_line("sync", Unit::Bytes, 3 << 20, None, Duration::from_secs(3));
        assert_eq!(open, "sync: 3.00 MiB, 1.00 MiB/s, 3.0s");
        let done = plain_line("export", Unit::Bytes, 40, Some(40), Duration::from_secs(1));
        assert!(done.starts_with("export: 40 B of 40 B (100%)"), "{done}");
        let items = Unit::Items("entries");
        let line = plain_line("migrate", items, 120, Some(400), Duration::from_secs(2));
        assert_eq!(
            line,
            "migrate: 120 of 400 entries (30%), 60 entries/s, 5s left"
        );
    }

    #[test]
    fn bar_templates_parse() {
        for template in [WITH_TOTAL, WITHOUT_TOTAL] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
        let p = Progress::hidden();
        p.add(5);
        p.set_total(10);
    }
}
