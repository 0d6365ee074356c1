//! What `berth sync` asks an upstream besides manifests and blobs: the
//! tags of a repository, and the referrers of a manifest.

use super::{MANIFEST_ACCEPT, Upstream, UpstreamError};
use berth_oci::Digest;
use berth_oci::media_types::OCI_INDEX;
use berth_oci::route::Reference;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use reqwest_upstream as reqwest;

/// The most one page of a tag or referrers listing may be.
const LISTING_LIMIT: u64 = 4 << 20;

/// The most pages of tags followed: a registry that keeps answering with
/// a next page is not listing anything real.
const MAX_TAG_PAGES: usize = 1000;

/// One manifest that names another as its subject, as a referrers
/// listing gives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Referrer {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(rename = "artifactType", default)]
    pub artifact_type: Option<String>,
}

#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct ReferrerIndex {
    #[serde(default)]
    manifests: Vec<Referrer>,
}

impl Upstream {
    /// Every tag of `repo`, following the `Link` header's next pages.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, UpstreamError> {
        let what = format!("tags of {repo}");
        self.check_name(repo)?;
        let mut url = self.join(&format!("v2/{repo}/tags/list"))?;
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .send(Method::GET, url.clone(), None, repo, &what)
                .await?;
            let resp = self.expect_ok(resp, &what).await?;
            let next = next_page(resp.headers());
            let bytes = self.read_limited(resp, LISTING_LIMIT, &what).await?;
            let page: TagList = serde_json::from_slice(&bytes)
                .map_err(|e| self.protocol(format!("{what}: not a tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                // Relative to the registry, like every Link a registry sends;
                // joined to the base, so it cannot leave the configured host.
                Some(next) => url = self.join(path_of(&next).trim_start_matches('/'))?,
                None => return Ok(tags),
            }
        }
        Err(self.protocol(format!("{what}: more than {MAX_TAG_PAGES} pages")))
    }

    /// The manifests naming `digest` in `repo` as their subject: the
    /// referrers API where the upstream has it, else the tag schema's
    /// `sha256-<hex>` index. Empty when there are none.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Vec<Referrer>, UpstreamError> {
        let what = format!("referrers of {repo}@{digest}");
        self.check_name(repo)?;
        let url = self.join(&format!("v2/{repo}/referrers/{digest}"))?;
        let resp = self
            .send(Method::GET, url, Some(OCI_INDEX), repo, &what)
            .await?;
        let bytes = if resp.status() == StatusCode::NOT_FOUND {
            // No referrers API: the fallback tag, when someone pushed one.
            let tag = Reference::Tag(format!("{}-{}", digest.algorithm(), digest.hex()));
            match self
                .manifest_get(repo, &tag, MANIFEST_ACCEPT, LISTING_LIMIT)
                .await
            {
                Ok(index) => index.bytes,
                Err(UpstreamError::NotFound { .. }) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        } else {
            let resp = self.expect_ok(resp, &what).await?;
            self.read_limited(resp, LISTING_LIMIT, &what).await?
        };
        let index: ReferrerIndex = serde_json::from_slice(&bytes)
            .map_err(|e| self.protocol(format!("{what}: not an index: {e}")))?;
        Ok(index.manifests)
    }
}

/// The target of a `Link: <...>; rel="next"` header.
fn next_page(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|link| link.contains("rel=\"next\"") || link.contains("rel=next"))
        .and_then(|link| {
            let start = link.find('<')? + 1;
            let end = link[start..].find('>')? + start;
            Some(link[start..end].to_owned())
        })
}

/// The path and query of a link, absolute or not: a listing can never
/// send the client to another host.
fn path_of(link: &str) -> &str {
    match link.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => link,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest_upstream::header::HeaderValue;

    #[test]
    fn next_page_reads_the_link_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LINK,
            HeaderValue::from_static("</v2/a/tags/list?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            next_page(&headers).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(next_page(&HeaderMap::new()), None);
        assert_eq!(path_of("https://evil.example/v2/x?n=1"), "/v2/x?n=1");
        assert_eq!(path_of("/v2/x"), "/v2/x");
    }
}
