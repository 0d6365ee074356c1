//! How a request authenticates, as registry clients do: a cached bearer
//! token for the scope, basic credentials once the upstream asked for
//! them, or, on a 401, the challenge answered (a token fetched from the
//! realm, or basic credentials) and the request sent once more.

use super::challenge::{self, Challenge};
use super::tokens::TokenResponse;
use super::{SMALL_BODY_LIMIT, Upstream, UpstreamError};
use reqwest::header;
use reqwest::{Method, Response, StatusCode, Url};
use reqwest_upstream as reqwest;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Upstream {
    /// Sends a request with whatever authentication the upstream wants:
    /// a cached token, basic credentials once it asked for them, or, on a
    /// 401, the challenge answered and the request sent once more.
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        accept: Option<&str>,
        repo: &str,
        what: &str,
    ) -> Result<Response, UpstreamError> {
        let scope = format!("repository:{repo}:pull");
        let first_auth = match self.tokens.get(&scope, Instant::now()) {
            Some(token) => Some(format!("Bearer {token}")),
            None => self.basic_if_wanted(),
        };
        let used_token = first_auth
            .as_deref()
            .is_some_and(|a| a.starts_with("Bearer"));
        let resp = self
            .attempt(method.clone(), url.clone(), accept, first_auth.as_deref())
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        if used_token {
            self.tokens.forget(&scope);
        }
        let challenges: Vec<Challenge> = resp
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(challenge::parse)
            .collect();
        let retry_auth = if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(bearer, &scope, what).await?;
            format!("Bearer {token}")
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            match self.basic() {
                Some(basic) if first_auth.as_deref() != Some(basic.as_str()) => {
                    self.wants_basic.store(true, Ordering::Relaxed);
                    basic
                }
                _ => return Err(self.unauthorized(resp, what).await),
            }
        } else {
            return Err(self.unauthorized(resp, what).await);
        };
        let resp = self.attempt(method, url, accept, Some(&retry_auth)).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.tokens.forget(&scope);
            return Err(self.unauthorized(resp, what).await);
        }
        Ok(resp)
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        accept: Option<&str>,
        auth: Option<&str>,
    ) -> Result<Response, UpstreamError> {
        let mut req = self.client.request(method, url);
        if let Some(accept) = accept {
            req = req.header(header::ACCEPT, accept);
        }
        if let Some(auth) = auth {
            req = req.header(header::AUTHORIZATION, auth);
        }
        req.send()
            .await
            .map_err(|e| UpstreamError::transport(&self.name, &e))
    }

    /// Asks the challenge's realm for a token for `scope` (the challenge's
    /// own scope when it names one), with the basic credentials when
    /// configured, and caches it.
    async fn fetch_token(
        &self,
        bearer: &Challenge,
        scope: &str,
        what: &str,
    ) -> Result<String, UpstreamError> {
        let realm = bearer
            .param("realm")
            .ok_or_else(|| self.protocol(format!("{what}: Bearer challenge without a realm")))?;
        let mut realm_url = Url::parse(realm)
            .map_err(|e| self.protocol(format!("{what}: token realm {realm:?}: {e}")))?;
        // Credentials go wherever the realm says (Docker Hub's is another
        // host), as docker's client does; but never down from HTTPS to
        // plain HTTP.
        let allowed = match self.base.scheme() {
            "https" => realm_url.scheme() == "https",
            _ => matches!(realm_url.scheme(), "http" | "https"),
        };
        if !allowed {
            return Err(self.protocol(format!(
                "{what}: token realm {realm:?} is not HTTPS like the upstream"
            )));
        }
        {
            let mut query = realm_url.query_pairs_mut();
            if let Some(service) = bearer.param("service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", bearer.param("scope").unwrap_or(scope));
        }
        let mut req = self.client.get(realm_url);
        if let Some((user, password)) = &self.credentials {
            req = req.basic_auth(user, Some(password));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| UpstreamError::transport(&self.name, &e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(resp, what).await);
        }
        if !status.is_success() {
            return Err(self
                .status_error(resp, &format!("the token for {what}"))
                .await);
        }
        let body = self
            .read_limited(resp, SMALL_BODY_LIMIT, "token answer")
            .await?;
        let answer: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| self.protocol(format!("{what}: unreadable token answer: {e}")))?;
        let token = answer
            .bearer()
            .ok_or_else(|| self.protocol(format!("{what}: token answer without a token")))?
            .to_owned();
        self.tokens
            .put(scope, token.clone(), answer.usable_for(), Instant::now());
        Ok(token)
    }

    fn basic(&self) -> Option<String> {
        use base64::Engine as _;
        let (user, password) = self.credentials.as_ref()?;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Some(format!("Basic {encoded}"))
    }

    fn basic_if_wanted(&self) -> Option<String> {
        if self.wants_basic.load(Ordering::Relaxed) {
            self.basic()
        } else {
            None
        }
    }
}
