//! The outbox as files, for metadata stores that keep none (`layout`):
//! `<root>/.notifications/`.
//!
//! Events are lines `<seq> <payload>\n` appended to segment files named
//! after their first sequence number (`00000000000000000001.events`),
//! fsynced before an append returns. A new segment starts once the active
//! one passes [`SEGMENT_BYTES`]; a trim deletes whole segments every
//! endpoint has passed, never the active one, whose name and last line
//! carry the numbering across restarts. A crash mid-append leaves at most
//! a line without its newline, cut off at the next open; it was never
//! acknowledged. Cursors are one small file per endpoint under `cursors/`
//! (the name hex-encoded), replaced atomically.
//!
//! One process owns a spool, holding an exclusive `flock` on its `lock`
//! file (a second server on the same root refuses to start rather than
//! interleave lines); within it, appends and reads take the same mutex, so
//! a reader never sees a line before it is on disk.

use berth_storage::outbox::{Outbox, OutboxEntry};
use berth_storage::{Result, StorageError};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// When the active segment is closed and a new one started.
const SEGMENT_BYTES: u64 = 1 << 20;
const SUFFIX: &str = ".events";

/// A file outbox under one directory.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    state: Mutex<State>,
    /// Locked for as long as the spool is open.
    _owner: File,
}

struct State {
    /// The active segment, open for appending.
    file: File,
    len: u64,
    /// The newest sequence number written.
    head: u64,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn segment_name(first: u64) -> String {
    format!("{first:020}{SUFFIX}")
}

/// The segments, oldest first, by first sequence number.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        found.push((first, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// The complete lines of a segment: `(seq, payload)`.
fn records(bytes: &[u8]) -> impl Iterator<Item = (u64, &str)> {
    let complete = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(&bytes[..0], |end| &bytes[..=end]);
    complete
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(|line| {
            let (seq, payload) = line.split_once(' ')?;
            Some((seq.parse().ok()?, payload))
        })
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl Spool {
    /// Opens (creating) the spool in `dir`, cutting off a torn last line.
    pub fn open(dir: &Path) -> Result<Spool> {
        fs::create_dir_all(dir.join("cursors"))?;
        let owner = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        match owner.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Conflict(
                    "another Berth process is sending notifications from this spool".into(),
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let mut existing = segments(dir)?;
        let (first, path) = match existing.pop() {
            Some(last) => last,
            None => {
                let path = dir.join(segment_name(1));
                File::create(&path)?.sync_all()?;
                sync_dir(dir)?;
                (1, path)
            }
        };
        let bytes = fs::read(&path)?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let head = records(&bytes).last().map_or(first - 1, |(seq, _)| seq);
        let file = OpenOptions::new().append(true).open(&path)?;
        if complete < bytes.len() {
            tracing::warn!(
                segment = %path.display(),
                bytes = bytes.len() - complete,
                "notifications spool: cutting off an event half written before a crash"
            );
            file.set_len(complete as u64)?;
            file.sync_all()?;
        }
        Ok(Spool {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                _owner: owner,
                state: Mutex::new(State {
                    file,
                    len: complete as u64,
                    head,
                }),
            }),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StorageError::Backend(format!("blocking task failed: {e}")))?
    }
}

impl Inner {
    /// Makes a new, empty segment the active one, named for the next
    /// sequence number, durably in the directory.
    fn start_segment(&self, state: &mut State) -> Result<()> {
        let path = self.dir.join(segment_name(state.head + 1));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        sync_dir(&self.dir)?;
        state.file = file;
        state.len = 0;
        Ok(())
    }

    fn cursor_path(&self, endpoint: &str) -> PathBuf {
        self.dir.join("cursors").join(hex::encode(endpoint))
    }

    fn read_cursor(&self, endpoint: &str) -> Result<Option<u64>> {
        match fs::read_to_string(self.cursor_path(endpoint)) {
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn append(&self, payloads: &[String]) -> Result<u64> {
        let mut state = lock(&self.state);
        if payloads.is_empty() {
            return Ok(state.head);
        }
        let mut text = String::new();
        let mut seq = state.head;
        for payload in payloads {
            if payload.contains('\n') {
                return Err(StorageError::Invalid(
                    "an outbox payload holds a newline".into(),
                ));
            }
            seq += 1;
            text.push_str(&format!("{seq} {payload}\n"));
        }
        if state.len >= SEGMENT_BYTES {
            self.start_segment(&mut state)?;
        }
        let written = state
            .file
            .write_all(text.as_bytes())
            .and_then(|()| state.file.sync_data());
        if let Err(e) = written {
            // Whatever part reached the file is cut off at the next open
            // or overwritten in sequence: nothing was acknowledged.
            let len = state.len;
            let _ = state.file.set_len(len);
            return Err(e.into());
        }
        state.len += text.len() as u64;
        state.head = seq;
        Ok(seq)
    }

    fn read_after(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>> {
        let _state = lock(&self.state);
        let all = segments(&self.dir)?;
        let mut out = Vec::new();
        for (i, (_, path)) in all.iter().enumerate() {
            // Skip segments that end at or before `after`.
            if all.get(i + 1).is_some_and(|(next, _)| *next <= after + 1) {
                continue;
            }
            let bytes = fs::read(path)?;
            for (seq, payload) in records(&bytes) {
                if seq <= after {
                    continue;
                }
                out.push(OutboxEntry {
                    seq,
                    payload: payload.to_owned(),
                });
                if out.len() >= limit as usize {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    fn save_cursor(&self, endpoint: &str, seq: u64) -> Result<()> {
        if self
            .read_cursor(endpoint)?
            .is_some_and(|saved| saved >= seq)
        {
            return Ok(());
        }
        let path = self.cursor_path(endpoint);
        let tmp = path.with_extension("tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(format!("{seq}\n").as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir.join("cursors"))
    }

    fn trim(&self, upto: u64) -> Result<u64> {
        let mut state = lock(&self.state);
        let mut gone = 0;
        if upto >= state.head && state.len > 0 {
            // Everything passed: a fresh active segment carries the
            // numbering on, and the old one goes with the others below.
            self.start_segment(&mut state)?;
        }
        let all = segments(&self.dir)?;
        for pair in all.windows(2) {
            let [(first, path), (next, _)] = pair else {
                continue;
            };
            if next - 1 <= upto {
                fs::remove_file(path)?;
                gone += next - first;
            }
        }
        if gone > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(gone)
    }
}

#[async_trait::async_trait]
impl Outbox for Spool {
    async fn append(&self, payloads: &[String]) -> Result<u64> {
        let payloads = payloads.to_vec();
        self.blocking(move |inner| inner.append(&payloads)).await
    }

    async fn read_after(&self, after: u64, limit: u32) -> Result<Vec<OutboxEntry>> {
        self.blocking(move |inner| inner.read_after(after, limit))
            .await
    }

    async fn head(&self) -> Result<u64> {
        Ok(lock(&self.inner.state).head)
    }

    async fn cursor(&self, endpoint: &str) -> Result<Option<u64>> {
        let endpoint = endpoint.to_owned();
        self.blocking(move |inner| inner.read_cursor(&endpoint))
            .await
    }

    async fn save_cursor(&self, endpoint: &str, seq: u64) -> Result<()> {
        let endpoint = endpoint.to_owned();
        self.blocking(move |inner| inner.save_cursor(&endpoint, seq))
            .await
    }

    async fn trim(&self, upto: u64) -> Result<u64> {
        self.blocking(move |inner| inner.trim(upto)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_spool_passes_the_outbox_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).expect("open");
        berth_storage::outbox::conformance::run(&spool).await;
        drop(spool);
        let spool = Spool::open(dir.path()).expect("reopen");
        berth_storage::outbox::conformance::after_reopen(&spool).await;
        berth_storage::outbox::conformance::concurrent(Arc::new(spool)).await;
    }

    #[tokio::test]
    async fn one_process_owns_a_spool() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).expect("open");
        let again = Spool::open(dir.path());
        assert!(
            matches!(again, Err(StorageError::Conflict(_))),
            "a second owner got in"
        );
        drop(spool);
        Spool::open(dir.path()).expect("free again once closed");
    }

    #[tokio::test]
    async fn segments_roll_and_trim_and_a_torn_line_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).expect("open");
        let big = format!("\"{}\"", "x".repeat(300_000));
        for _ in 0..8 {
            spool
                .append(std::slice::from_ref(&big))
                .await
                .expect("append");
        }
        let count = segments(dir.path()).expect("segments").len();
        assert!(count >= 2, "expected several segments, got {count}");
        let all = spool.read_after(0, 100).await.expect("read");
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=8).collect::<Vec<_>>()
        );
        let from5 = spool.read_after(5, 100).await.expect("read");
        assert_eq!(from5.iter().map(|e| e.seq).collect::<Vec<_>>(), [6, 7, 8]);
        // Part passed: whole segments up to it go, nothing after it.
        let gone = spool.trim(5).await.expect("trim");
        assert!(gone > 0 && gone <= 5, "trim(5) took {gone}");
        let left = spool.read_after(0, 100).await.expect("read");
        assert_eq!(left.last().map(|e| e.seq), Some(8));
        assert!(left.len() >= 3);
        // Everything passed: one empty active segment is left.
        spool.trim(8).await.expect("trim");
        assert_eq!(segments(dir.path()).expect("segments").len(), 1);
        assert!(spool.read_after(0, 100).await.expect("read").is_empty());
        spool.append(&["{}".into()]).await.expect("append");
        assert_eq!(spool.head().await.expect("head"), 9);
        spool.trim(9).await.expect("trim");
        assert!(spool.read_after(0, 100).await.expect("read").is_empty());
        drop(spool);

        // A crash mid-append: the half line is cut, numbering goes on.
        let (_, active) = segments(dir.path())
            .expect("segments")
            .pop()
            .expect("active");
        let mut file = OpenOptions::new().append(true).open(&active).expect("open");
        file.write_all(b"10 {\"half").expect("torn write");
        drop(file);
        let spool = Spool::open(dir.path()).expect("reopen");
        assert_eq!(spool.head().await.expect("head"), 9);
        assert_eq!(spool.append(&["{}".into()]).await.expect("append"), 10);
        let last = spool.read_after(9, 10).await.expect("read");
        assert_eq!(
            last,
            [OutboxEntry {
                seq: 10,
                payload: "{}".into()
            }]
        );
    }
}
