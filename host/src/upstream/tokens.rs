//! Bearer tokens from an upstream's token service, kept per scope until
//! shortly before they expire.
//!
//! The token spec says `expires_in` defaults to 60 seconds and that no
//! token should live less than that; a token is dropped [`MARGIN`] before
//! its end (at most half its life), so that a request never leaves with a
//! token that expires on the way.

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the token spec assumes when `expires_in` is missing.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// How long before its expiry a token stops being used.
pub const MARGIN: Duration = Duration::from_secs(10);

/// The token endpoint's answer: `token`, or OAuth2's `access_token`.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token to send (`token` first, as Docker's client prefers it).
    pub fn bearer(&self) -> Option<&str> {
        self.token
            .as_deref()
            .or(self.access_token.as_deref())
            .filter(|t| !t.is_empty())
    }

    /// How long the token may be used from when it was received.
    pub fn usable_for(&self) -> Duration {
        let lifetime = self
            .expires_in
            .filter(|&s| s > 0)
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        lifetime - MARGIN.min(lifetime / 2)
    }
}

/// Tokens by scope (`repository:library/nginx:pull`).
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    /// The token for `scope`, if one is cached and still usable at `now`.
    pub fn get(&self, scope: &str, now: Instant) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(scope)
            .filter(|(_, until)| now < *until)
            .map(|(token, _)| token.clone())
    }

    /// Keeps `token` for `scope` until `now + usable_for`; drops tokens that
    /// have expired, so the map holds only scopes in recent use.
    pub fn put(&self, scope: &str, token: String, usable_for: Duration, now: Instant) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, (_, until)| now < *until);
            tokens.insert(scope.to_owned(), (token, now + usable_for));
        }
    }

    /// Forgets the token for `scope` (the upstream refused it).
    pub fn forget(&self, scope: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(scope);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(json: &str) -> TokenResponse {
        serde_json::from_str(json).expect("token json")
    }

    #[test]
    fn token_or_access_token() {
        assert_eq!(
            response(r#"{"token":"a","access_token":"b"}"#).bearer(),
            Some("a")
        );
        assert_eq!(response(r#"{"access_token":"b"}"#).bearer(), Some("b"));
        assert_eq!(response(r#"{"token":""}"#).bearer(), None);
        assert_eq!(response(r#"{}"#).bearer(), None);
    }

    #[test]
    fn lifetime_defaults_to_60s_minus_margin() {
        assert_eq!(
            response(r#"{"token":"a"}"#).usable_for(),
            Duration::from_secs(50)
        );
        assert_eq!(
            response(r#"{"token":"a","expires_in":0}"#).usable_for(),
            Duration::from_secs(50)
        );
        assert_eq!(
            response(r#"{"token":"a","expires_in":300}"#).usable_for(),
            Duration::from_secs(290)
        );
        // A short-lived token keeps half its life rather than none.
        assert_eq!(
            response(r#"{"token":"a","expires_in":4}"#).usable_for(),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn cached_until_expiry_per_scope() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        cache.put(
            "repository:a:pull",
            "ta".into(),
            Duration::from_secs(50),
            t0,
        );
        assert_eq!(cache.get("repository:a:pull", t0).as_deref(), Some("ta"));
        assert_eq!(cache.get("repository:b:pull", t0), None);
        let later = t0 + Duration::from_secs(49);
        assert_eq!(cache.get("repository:a:pull", later).as_deref(), Some("ta"));
        let expired = t0 + Duration::from_secs(50);
        assert_eq!(cache.get("repository:a:pull", expired), None);
        // Putting another scope after expiry prunes the stale one.
        cache.put(
            "repository:b:pull",
            "tb".into(),
            Duration::from_secs(50),
            expired,
        );
        assert_eq!(cache.tokens.lock().expect("lock").len(), 1);
        cache.forget("repository:b:pull");
        assert_eq!(cache.get("repository:b:pull", expired), None);
    }
}
