//! Users from an htpasswd file (bcrypt entries, as `htpasswd -B` writes).

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a bcrypt entry (create users with `htpasswd -B`)")]
    NotBcrypt { path: String, line: usize },
}

/// bcrypt is slow on purpose (tens of milliseconds); a registry client
/// sends its credentials on every request, so a verified pair is
/// remembered for a while, by a hash of it, never in clear.
const REMEMBER_FOR: Duration = Duration::from_secs(60);

pub struct Htpasswd {
    users: HashMap<String, String>,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Self, HtpasswdError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&shown, &text)
    }

    fn parse(path: &str, text: &str) -> Result<Self, HtpasswdError> {
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
        Ok(Self {
            users,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Whether `password` is `user`'s. Runs bcrypt on a blocking thread
    /// unless the pair was verified recently.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user).cloned() else {
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

    fn recently_verified(&self, key: &[u8; 32]) -> bool {
        self.verified.lock().is_ok_and(|verified| {
            verified
                .get(key)
                .is_some_and(|at| at.elapsed() < REMEMBER_FOR)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_bcrypt_entries() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let users = Htpasswd::parse("test", &format!("# comment\nalice:{hash}\n")).expect("parses");
        assert!(users.verify("alice", "s3cret").await);
        assert!(users.verify("alice", "s3cret").await, "cached");
        assert!(!users.verify("alice", "wrong").await);
        assert!(!users.verify("bob", "s3cret").await);
    }

    #[test]
    fn refuses_other_hashes() {
        let err = Htpasswd::parse("f", "alice:{SHA}abc\n")
            .err()
            .expect("error");
        assert!(err.to_string().contains("f:1"), "{err}");
    }
}
