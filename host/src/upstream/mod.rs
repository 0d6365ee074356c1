//! The client for upstream registries: what the pull-through cache (and a
//! later `berth sync`) fetch manifests and blobs with; [`mirrors`] is the
//! set `serve` caches, [`flight`] the blob fetches in progress.
//!
//! One [`Upstream`] per configured registry. It authenticates as registry
//! clients do (anonymous, HTTP basic, or the Docker token flow: a 401 with
//! a `Bearer` challenge, a token from the realm, one retry), caches tokens
//! per scope until shortly before they expire, follows redirects (Docker
//! Hub sends layers to a CDN; reqwest drops `Authorization` when a redirect
//! leaves the host), and bounds everything: connect and idle-read timeouts,
//! manifests read with a size limit, blobs handed out as a stream.
//!
//! Invariants: a request only ever goes to the configured base URL (and
//! where it redirects or its token realm points); repository names and
//! references are checked against the distribution grammar before they
//! enter a URL, so no caller input can change the host or the path shape.
//! Names are passed through unchanged: mapping a local prefix to the
//! upstream's name is the caller's job.

mod auth;
mod challenge;
mod error;
pub mod flight;
pub mod listing;
pub mod mirrors;
mod tokens;

pub use error::UpstreamError;

use berth_oci::Digest;
use berth_oci::grammar;
use berth_oci::media_types::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use berth_oci::route::Reference;
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode, Url};
use reqwest_upstream as reqwest;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokens::TokenCache;

/// The manifest types a registry client accepts, most specific first: what
/// docker and containerd send, so that a multi-arch tag answers its index.
pub const MANIFEST_ACCEPT: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// The most an upstream's token answer or error body may be; more is not a
/// token service.
const SMALL_BODY_LIMIT: u64 = 64 << 10;

/// How one upstream registry is reached.
#[derive(Clone)]
pub struct UpstreamSettings {
    /// `https://registry-1.docker.io`: scheme, host and optional port (and
    /// path prefix); `/v2/...` is appended.
    pub url: String,
    /// Basic credentials, for the registry itself or its token realm.
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of extra CAs to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification altogether.
    pub insecure: bool,
    /// How long establishing a connection (TCP and TLS) may take.
    pub connect_timeout: Duration,
    /// How long a response may go without sending a byte.
    pub read_timeout: Duration,
}

impl UpstreamSettings {
    /// An anonymous upstream at `url`, with the default timeouts.
    pub fn new(url: &str) -> UpstreamSettings {
        UpstreamSettings {
            url: url.to_owned(),
            username: None,
            password: None,
            ca_file: None,
            insecure: false,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
        }
    }
}

impl UpstreamSettings {
    /// How a `[[proxy]]` entry reaches its upstream. Reads the password
    /// file now, so a bad one fails here.
    pub fn from_proxy(proxy: &crate::config::ProxyConfig) -> Result<Self, UpstreamError> {
        let password = proxy.password().map_err(|e| UpstreamError::Config {
            upstream: proxy.url.clone(),
            reason: format!("reading its password file: {e}"),
        })?;
        if proxy.insecure {
            tracing::warn!(
                upstream = %proxy.url,
                "certificates of this upstream are NOT verified (proxy insecure = true)"
            );
        }
        Ok(UpstreamSettings {
            username: proxy.username.clone(),
            password,
            ca_file: proxy.ca_file.clone(),
            insecure: proxy.insecure,
            ..UpstreamSettings::new(&proxy.url)
        })
    }
}

impl std::fmt::Debug for UpstreamSettings {
    // The password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish()
    }
}

/// What `HEAD` on a manifest says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A manifest's exact bytes, as the upstream sent them.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub media_type: String,
    /// The sha256 of `bytes` (checked against the reference when that is a
    /// digest, and against `Docker-Content-Digest` when the upstream sent one).
    pub digest: Digest,
}

/// A blob's body as it arrives. The caller verifies the digest while it
/// reads; nothing here holds the whole blob.
pub struct BlobStream {
    /// `Content-Length`, when the upstream declared it.
    pub length: Option<u64>,
    pub body: BoxStream<'static, Result<Bytes, UpstreamError>>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// A client for one upstream registry. Cheap to share behind an `Arc`;
/// its connection pool and token cache serve every caller.
pub struct Upstream {
    /// The configured URL, as errors name it.
    name: String,
    /// The base with a trailing `/`, for joining `v2/...`.
    base: Url,
    client: reqwest::Client,
    credentials: Option<(String, String)>,
    tokens: TokenCache,
    /// Set once the upstream asked for `Basic`: later requests send the
    /// credentials straight away instead of collecting a 401 first.
    wants_basic: AtomicBool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.name)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the client; reads `ca_file` now, so a bad file fails here and
    /// not on the first pull.
    pub fn new(settings: &UpstreamSettings) -> Result<Upstream, UpstreamError> {
        let name = settings.url.trim_end_matches('/').to_owned();
        let config = |reason: String| UpstreamError::Config {
            upstream: name.clone(),
            reason,
        };
        let mut base = Url::parse(&name).map_err(|e| config(format!("invalid URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(config(
                "the URL must be http:// or https:// with a host".into(),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() {
            return Err(config(
                "the URL may not carry a query, fragment or credentials".into(),
            ));
        }
        let path = format!("{}/", base.path().trim_end_matches('/'));
        base.set_path(&path);

        let mut builder = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            // No environment proxies: with `default-features = false` there
            // is no system-proxy lookup either; say so explicitly.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::limited(10));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| config(format!("ca_file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| config(format!("ca_file {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(config(format!(
                    "ca_file {}: no PEM certificate in it",
                    path.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if settings.insecure {
            tracing::warn!(
                upstream = %name,
                "upstream TLS certificates are NOT verified (insecure = true): \
                 anyone on the path can impersonate this registry"
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| config(error::chain(&e)))?;
        let credentials = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (Some(user), None) => Some((user.clone(), String::new())),
            _ => None,
        };
        Ok(Upstream {
            name,
            base,
            client,
            credentials,
            tokens: TokenCache::default(),
            wants_basic: AtomicBool::new(false),
        })
    }

    /// The configured URL, as errors name it.
    pub fn url(&self) -> &str {
        &self.name
    }

    /// `HEAD` a manifest: its digest, media type and size, or `None` when
    /// the upstream does not have it.
    pub async fn manifest_head(
        &self,
        repo: &str,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<Option<ManifestHead>, UpstreamError> {
        let what = format!("manifest {repo}:{}", show(reference));
        let url = self.manifest_url(repo, reference)?;
        let resp = self
            .send(Method::HEAD, url, Some(&accept.join(", ")), repo, &what)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = self.expect_ok(resp, &what).await?;
        let headers = resp.headers();
        let digest = match (header_digest(headers), reference) {
            (Some(digest), _) => digest,
            // Some registries leave the header off; a digest reference is
            // its own answer.
            (None, Reference::Digest(digest)) => digest.clone(),
            (None, Reference::Tag(_)) => {
                return Err(self.protocol(format!(
                    "{what}: HEAD without a sha256 Docker-Content-Digest"
                )));
            }
        };
        if let Reference::Digest(wanted) = reference
            && *wanted != digest
        {
            return Err(self.protocol(format!("{what}: HEAD names digest {digest}")));
        }
        let media_type = content_type(headers)
            .ok_or_else(|| self.protocol(format!("{what}: HEAD without Content-Type")))?;
        // The header itself: reqwest's `content_length()` is the body's
        // size hint, which for a HEAD is 0.
        let size = header_u64(headers, header::CONTENT_LENGTH)
            .ok_or_else(|| self.protocol(format!("{what}: HEAD without Content-Length")))?;
        Ok(Some(ManifestHead {
            digest,
            media_type,
            size,
        }))
    }

    /// `GET` a manifest, refusing more than `max_bytes` (read with that
    /// limit, never buffered beyond it).
    pub async fn manifest_get(
        &self,
        repo: &str,
        reference: &Reference,
        accept: &[&str],
        max_bytes: u64,
    ) -> Result<FetchedManifest, UpstreamError> {
        let what = format!("manifest {repo}:{}", show(reference));
        let url = self.manifest_url(repo, reference)?;
        let resp = self
            .send(Method::GET, url, Some(&accept.join(", ")), repo, &what)
            .await?;
        let resp = self.expect_ok(resp, &what).await?;
        let headers = resp.headers().clone();
        let bytes = self.read_limited(resp, max_bytes, &what).await?;
        let digest = Digest::of(&bytes);
        if let Reference::Digest(wanted) = reference
            && *wanted != digest
        {
            return Err(self.protocol(format!("{what}: the bytes sent hash to {digest}")));
        }
        if let Some(declared) = header_digest(&headers)
            && declared != digest
        {
            return Err(self.protocol(format!(
                "{what}: Docker-Content-Digest says {declared}, the bytes hash to {digest}"
            )));
        }
        let media_type = content_type(&headers)
            .filter(|t| t != "application/octet-stream")
            .or_else(|| media_type_field(&bytes))
            .ok_or_else(|| self.protocol(format!("{what}: no media type")))?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `GET` a blob, following redirects; the body arrives as a stream of
    /// chunks, and a body that stalls longer than the read timeout ends in
    /// an error.
    pub async fn blob_get(&self, repo: &str, digest: &Digest) -> Result<BlobStream, UpstreamError> {
        let what = format!("blob {repo}@{digest}");
        self.check_name(repo)?;
        let url = self.join(&format!("v2/{repo}/blobs/{digest}"))?;
        let resp = self.send(Method::GET, url, None, repo, &what).await?;
        let resp = self.expect_ok(resp, &what).await?;
        let length = resp.content_length();
        let upstream = self.name.clone();
        let body = resp
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| UpstreamError::transport(&upstream, &e)))
            .boxed();
        Ok(BlobStream { length, body })
    }

    /// `HEAD` a blob, following redirects: its size, from `Content-Length`
    /// (`NotFound` when the upstream does not have it).
    pub async fn blob_head(&self, repo: &str, digest: &Digest) -> Result<u64, UpstreamError> {
        let what = format!("blob {repo}@{digest}");
        self.check_name(repo)?;
        let url = self.join(&format!("v2/{repo}/blobs/{digest}"))?;
        let resp = self.send(Method::HEAD, url, None, repo, &what).await?;
        let resp = self.expect_ok(resp, &what).await?;
        // The header itself, as for manifests: a HEAD's body is empty.
        header_u64(resp.headers(), header::CONTENT_LENGTH)
            .ok_or_else(|| self.protocol(format!("{what}: HEAD without Content-Length")))
    }

    fn check_name(&self, repo: &str) -> Result<(), UpstreamError> {
        if grammar::is_valid_name(repo) {
            Ok(())
        } else {
            Err(UpstreamError::Invalid {
                upstream: self.name.clone(),
                reason: format!("{repo:?} is not a repository name"),
            })
        }
    }

    fn manifest_url(&self, repo: &str, reference: &Reference) -> Result<Url, UpstreamError> {
        self.check_name(repo)?;
        let reference = match reference {
            Reference::Digest(digest) => digest.as_str(),
            Reference::Tag(tag) if grammar::is_valid_tag(tag) => tag.as_str(),
            Reference::Tag(tag) => {
                return Err(UpstreamError::Invalid {
                    upstream: self.name.clone(),
                    reason: format!("{tag:?} is not a tag"),
                });
            }
        };
        self.join(&format!("v2/{repo}/manifests/{reference}"))
    }

    fn join(&self, path: &str) -> Result<Url, UpstreamError> {
        self.base.join(path).map_err(|e| UpstreamError::Invalid {
            upstream: self.name.clone(),
            reason: format!("{path}: {e}"),
        })
    }

    /// The response when it is a 2xx; the matching error otherwise.
    async fn expect_ok(&self, resp: Response, what: &str) -> Result<Response, UpstreamError> {
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => Err(UpstreamError::NotFound {
                upstream: self.name.clone(),
                what: what.to_owned(),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(self.unauthorized(resp, what).await)
            }
            _ => Err(self.status_error(resp, what).await),
        }
    }

    async fn unauthorized(&self, resp: Response, what: &str) -> UpstreamError {
        let status = resp.status().as_u16();
        let body = self.error_detail(resp).await;
        let who = if self.credentials.is_some() {
            "with the configured credentials"
        } else {
            "anonymously (no credentials configured)"
        };
        UpstreamError::Unauthorized {
            upstream: self.name.clone(),
            what: what.to_owned(),
            detail: format!("{status} {who}{body}"),
        }
    }

    async fn status_error(&self, resp: Response, what: &str) -> UpstreamError {
        let status = resp.status().as_u16();
        UpstreamError::Status {
            upstream: self.name.clone(),
            status,
            what: what.to_owned(),
            detail: self.error_detail(resp).await,
        }
    }

    /// `: CODE message` from a distribution error body, or empty.
    async fn error_detail(&self, resp: Response) -> String {
        #[derive(serde::Deserialize)]
        struct Body {
            errors: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let Ok(bytes) = self
            .read_limited(resp, SMALL_BODY_LIMIT, "error body")
            .await
        else {
            return String::new();
        };
        match serde_json::from_slice::<Body>(&bytes) {
            Ok(body) => body
                .errors
                .first()
                .map(|e| format!(": {} {}", e.code, e.message).trim_end().to_owned())
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The body, refusing more than `limit` bytes (by `Content-Length`
    /// first, then while reading).
    async fn read_limited(
        &self,
        resp: Response,
        limit: u64,
        what: &str,
    ) -> Result<Bytes, UpstreamError> {
        let too_large = || UpstreamError::TooLarge {
            upstream: self.name.clone(),
            what: what.to_owned(),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = BytesMut::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| UpstreamError::transport(&self.name, &e))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    fn protocol(&self, reason: String) -> UpstreamError {
        UpstreamError::Protocol {
            upstream: self.name.clone(),
            reason,
        }
    }
}

fn show(reference: &Reference) -> &str {
    match reference {
        Reference::Tag(tag) => tag,
        Reference::Digest(digest) => digest.as_str(),
    }
}

/// `Docker-Content-Digest`, when it is a sha256 digest (other algorithms
/// cannot be compared with what we compute, so they are ignored).
fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    let value = headers.get("docker-content-digest")?.to_str().ok()?;
    Digest::parse(value.trim()).ok()
}

/// `Content-Type` without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media_type = value.split(';').next()?.trim();
    (!media_type.is_empty()).then(|| media_type.to_owned())
}

fn header_u64(headers: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The manifest's own `mediaType`, for upstreams that answer without a
/// useful `Content-Type`.
fn media_type_field(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Typed>(bytes).ok()?.media_type
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str) -> Result<Upstream, UpstreamError> {
        Upstream::new(&UpstreamSettings::new(url))
    }

    #[test]
    fn urls_are_checked_and_joined_under_the_base() {
        for bad in [
            "ftp://host",
            "not a url",
            "https://h/?q=1",
            "https://u:p@h",
            "unix:/x",
        ] {
            assert!(
                matches!(upstream(bad), Err(UpstreamError::Config { .. })),
                "{bad}"
            );
        }
        let up = upstream("https://mirror.example/prefix/").expect("client");
        assert_eq!(up.url(), "https://mirror.example/prefix");
        let digest = Digest::of(b"x");
        let url = up
            .manifest_url("library/nginx", &Reference::Digest(digest.clone()))
            .expect("url");
        assert_eq!(
            url.as_str(),
            format!("https://mirror.example/prefix/v2/library/nginx/manifests/{digest}")
        );
        for (repo, tag) in [("a/../b", "v1"), ("/etc", "v1"), ("a", "../x"), ("a", "")] {
            assert!(
                matches!(
                    up.manifest_url(repo, &Reference::Tag(tag.into())),
                    Err(UpstreamError::Invalid { .. })
                ),
                "{repo}:{tag}"
            );
        }
    }

    #[test]
    fn operations_can_run_on_any_thread() {
        fn is_send<T: Send>(_: &T) {}
        fn is_shared<T: Send + Sync>() {}
        is_shared::<Upstream>();
        let up = upstream("http://127.0.0.1:1").expect("client");
        let tag = Reference::Tag("v1".into());
        is_send(&up.manifest_head("a", &tag, MANIFEST_ACCEPT));
        is_send(&up.manifest_get("a", &tag, MANIFEST_ACCEPT, 1));
        is_send(&up.blob_get("a", &Digest::of(b"")));
        is_send(&up.blob_head("a", &Digest::of(b"")));
    }

    #[test]
    fn media_type_from_header_or_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "application/vnd.oci.image.index.v1+json; charset=utf-8"
                .parse()
                .expect("header"),
        );
        assert_eq!(content_type(&headers).as_deref(), Some(OCI_INDEX));
        assert_eq!(
            media_type_field(br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#)
                .as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(media_type_field(b"not json"), None);
    }
}
