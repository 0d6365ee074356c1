//! containerd's mirror requests: with a `hosts.toml` mirror, containerd
//! asks `GET /v2/library/busybox/manifests/latest?ns=docker.io`, naming in
//! `ns` the registry it means. When a `[[proxy]]` with that `registry` has a
//! prefix, the request is for the prefixed name: the path is rewritten here,
//! before access rules are checked, so that the rules, the token scope and
//! the guest all see one name (`hub/library/busybox`).

use axum::extract::{Request, State};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// `registry` → `prefix`, for the proxies that have both.
#[derive(Clone, Default)]
pub struct Namespaces(Arc<Vec<(String, String)>>);

impl Namespaces {
    pub fn new(pairs: Vec<(String, String)>) -> Namespaces {
        Namespaces(Arc::new(pairs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The path and query `uri` means, when its `ns` names a prefixed
    /// upstream: `/v2/<prefix>/<rest>` with the query unchanged.
    fn rewrite(&self, uri: &Uri) -> Option<String> {
        let query = uri.query()?;
        let ns = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("ns="))
            .and_then(berth_oci::route::percent_decode)?;
        let (_, prefix) = self
            .0
            .iter()
            .find(|(registry, _)| registry.eq_ignore_ascii_case(&ns))?;
        let rest = uri.path().strip_prefix("/v2/")?;
        // `/v2/` itself and the catalog name no repository.
        if rest.is_empty() || rest.starts_with("_catalog") {
            return None;
        }
        Some(format!("/v2/{prefix}/{rest}?{query}"))
    }
}

/// The middleware: rewrites the request's path when its `ns` asks for it.
pub async fn map(State(namespaces): State<Namespaces>, mut req: Request, next: Next) -> Response {
    if let Some(target) = namespaces.rewrite(req.uri())
        && let Ok(uri) = target.parse::<Uri>()
    {
        *req.uri_mut() = uri;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Namespaces {
        Namespaces::new(vec![("docker.io".into(), "hub".into())])
    }

    fn rewrite(target: &str) -> Option<String> {
        hub().rewrite(&target.parse().expect("uri"))
    }

    #[test]
    fn a_known_registry_becomes_its_prefix() {
        assert_eq!(
            rewrite("/v2/library/busybox/manifests/latest?ns=docker.io").as_deref(),
            Some("/v2/hub/library/busybox/manifests/latest?ns=docker.io")
        );
        assert_eq!(
            rewrite("/v2/library/busybox/blobs/sha256:ab?ns=Docker.IO").as_deref(),
            Some("/v2/hub/library/busybox/blobs/sha256:ab?ns=Docker.IO")
        );
    }

    #[test]
    fn other_requests_are_left_alone() {
        assert_eq!(rewrite("/v2/library/busybox/manifests/latest"), None);
        assert_eq!(
            rewrite("/v2/library/busybox/manifests/latest?ns=quay.io"),
            None
        );
        assert_eq!(rewrite("/v2/?ns=docker.io"), None);
        assert_eq!(rewrite("/v2/_catalog?ns=docker.io"), None);
        assert_eq!(rewrite("/health?ns=docker.io"), None);
    }
}
