//! Users from an htpasswd file (bcrypt entries, as `htpasswd -B` writes).
//! The file is read at start, where an error stops the server, and again
//! when it changes, so users can be added or removed without a restart.

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// Each error starts with the setting that names the file.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("auth.htpasswd: cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "auth.htpasswd: {path}:{line}: not a bcrypt entry `user:$2y$...` (create users with `htpasswd -B`)"
    )]
    NotBcrypt { path: String, line: usize },
}

/// The user names in the file at `path`, read and checked as the server
/// reads it at start; nothing is kept.
pub fn user_names(path: &Path) -> Result<Vec<String>, HtpasswdError> {
    let mut names: Vec<String> = read(path)?.into_keys().collect();
    names.sort();
    Ok(names)
}

/// bcrypt is slow on purpose (tens of milliseconds); a registry client
/// sends its credentials on every request, so a verified pair is
/// remembered for a while, by a hash of it, never in clear. The hash it
/// was checked against is part of the key, so a changed or removed entry
/// no longer matches.
const REMEMBER_FOR: Duration = Duration::from_secs(60);

/// How often the file is looked at for changes (one `stat`).
const RECHECK_EVERY: Duration = Duration::from_secs(2);

/// What identifies one version of the file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

/// The file as last read.
struct Loaded {
    users: HashMap<String, String>,
    stamp: Option<Stamp>,
    checked: Instant,
}

pub struct Htpasswd {
    path: PathBuf,
    recheck_every: Duration,
    loaded: RwLock<Loaded>,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Self, HtpasswdError> {
        let stamp = Stamp::of(path).ok();
        let users = read(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            recheck_every: RECHECK_EVERY,
            loaded: RwLock::new(Loaded {
                users,
                stamp,
                checked: Instant::now(),
            }),
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `password` is `user`'s. Runs bcrypt on a blocking thread
    /// unless the pair was verified recently.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        self.reload_if_changed();
        let Some(hash) = self
            .loaded
            .read()
            .ok()
            .and_then(|loaded| loaded.users.get(user).cloned())
        else {
            return false;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if self.recently_verified(&key) {
            return true;
        }
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok && let Ok(mut verified) = self.verified.lock() {
            let now = Instant::now();
            verified.retain(|_, at| now.duration_since(*at) < REMEMBER_FOR);
            verified.insert(key, now);
        }
        ok
    }

    /// Rereads the file when it changed since the last look (at most one
    /// look per `recheck_every`). A file that cannot be read or parsed now
    /// leaves the users as they were, with an error in the log: a half
    /// written file must not lock everyone out.
    fn reload_if_changed(&self) {
        let due = |loaded: &Loaded| loaded.checked.elapsed() >= self.recheck_every;
        if !self.loaded.read().is_ok_and(|loaded| due(&loaded)) {
            return;
        }
        let Ok(mut loaded) = self.loaded.write() else {
            return;
        };
        // Another request may have looked while this one waited.
        if !due(&loaded) {
            return;
        }
        loaded.checked = Instant::now();
        let stamp = Stamp::of(&self.path).ok();
        if stamp == loaded.stamp {
            return;
        }
        loaded.stamp = stamp;
        match read(&self.path) {
            Ok(users) => {
                tracing::info!(path = %self.path.display(), users = users.len(), "htpasswd file reloaded");
                loaded.users = users;
            }
            Err(error) => {
                tracing::error!(%error, "htpasswd file changed but cannot be used; keeping the users read before");
            }
        }
    }

    fn recently_verified(&self, key: &[u8; 32]) -> bool {
        self.verified.lock().is_ok_and(|verified| {
            verified
                .get(key)
                .is_some_and(|at| at.elapsed() < REMEMBER_FOR)
        })
    }
}

fn read(path: &Path) -> Result<HashMap<String, String>, HtpasswdError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&shown, &text)
}

fn parse(path: &str, text: &str) -> Result<HashMap<String, String>, HtpasswdError> {
    let mut users = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let not_bcrypt = || HtpasswdError::NotBcrypt {
            path: path.to_string(),
            line: index + 1,
        };
        let (user, hash) = line.split_once(':').ok_or_else(not_bcrypt)?;
        if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
            return Err(not_bcrypt());
        }
        users.insert(user.to_string(), hash.to_string());
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(user: &str, password: &str) -> String {
        format!("{user}:{}\n", bcrypt::hash(password, 4).expect("hash"))
    }

    /// `text` as an htpasswd file, rechecked on every verify.
    fn file(dir: &tempfile::TempDir, text: &str) -> Htpasswd {
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, text).expect("write");
        let mut users = Htpasswd::load(&path).expect("loads");
        users.recheck_every = Duration::ZERO;
        users
    }

    /// Replaces the file the way editors and `htpasswd` may: a new inode.
    fn replace(dir: &tempfile::TempDir, text: &str) {
        let next = dir.path().join("htpasswd.new");
        std::fs::write(&next, text).expect("write");
        std::fs::rename(&next, dir.path().join("htpasswd")).expect("rename");
    }

    #[tokio::test]
    async fn verifies_bcrypt_entries() {
        let dir = tempfile::tempdir().expect("tmp");
        let users = file(&dir, &format!("# comment\n{}", entry("alice", "s3cret")));
        assert!(users.verify("alice", "s3cret").await);
        assert!(users.verify("alice", "s3cret").await, "cached");
        assert!(!users.verify("alice", "wrong").await);
        assert!(!users.verify("bob", "s3cret").await);
    }

    #[tokio::test]
    async fn a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let users = file(&dir, &entry("alice", "s3cret"));
        assert!(users.verify("alice", "s3cret").await);

        // bob added, alice removed: her remembered password goes with her.
        replace(&dir, &entry("bob", "hunter2"));
        assert!(users.verify("bob", "hunter2").await);
        assert!(!users.verify("alice", "s3cret").await);

        // A new password for bob replaces the old one at once.
        replace(&dir, &entry("bob", "n3w"));
        assert!(users.verify("bob", "n3w").await);
        assert!(!users.verify("bob", "hunter2").await);

        // A broken or missing file keeps the users read before.
        replace(&dir, "bob:{SHA}abc\n");
        assert!(users.verify("bob", "n3w").await);
        std::fs::remove_file(dir.path().join("htpasswd")).expect("rm");
        assert!(users.verify("bob", "n3w").await);
    }

    #[tokio::test]
    async fn changes_are_looked_for_only_so_often() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut users = file(&dir, &entry("alice", "s3cret"));
        users.recheck_every = Duration::from_secs(3600);
        replace(&dir, &entry("bob", "hunter2"));
        assert!(!users.verify("bob", "hunter2").await, "not looked at yet");
        assert!(users.verify("alice", "s3cret").await);
    }

    #[test]
    fn refuses_other_hashes() {
        let err = parse("f", "alice:{SHA}abc\n").expect_err("error");
        assert!(err.to_string().starts_with("auth.htpasswd: f:1:"), "{err}");
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "alice:{SHA}abc\n").expect("write");
        assert!(Htpasswd::load(&path).is_err(), "at start it is an error");
        assert!(user_names(&path).is_err());
        let missing = user_names(&dir.path().join("absent")).expect_err("missing");
        assert!(
            missing
                .to_string()
                .starts_with("auth.htpasswd: cannot read "),
            "{missing}"
        );
        std::fs::write(&path, entry("bob", "x") + &entry("alice", "y")).expect("write");
        assert_eq!(user_names(&path).expect("users"), ["alice", "bob"]);
    }
}
