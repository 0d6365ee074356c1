//! What a request needs from its caller, read with the guest's own route
//! parser so that the host checks exactly the repository the guest acts on.

use super::scope::repository_scope;
use crate::config::Action;
use axum::extract::Request;
use axum::http::{Method, Uri};
use berth_oci::route::{self, Route};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// `/v2/` and anything the guest will refuse anyway: a login.
    Login,
    /// `/v2/_catalog`: a login; the answer is filtered.
    Catalog,
    /// Berth's own endpoints that `front::routes` marks so: a named user.
    Admin,
    Repository {
        name: String,
        action: Action,
        /// A cross-repository mount reads from here.
        mount_from: Option<String>,
    },
}

impl Need {
    pub fn of(method: &Method, uri: &Uri) -> Need {
        let Ok(route) = route::parse(uri.path()) else {
            return Need::Login;
        };
        let reading = *method == Method::GET || *method == Method::HEAD;
        let repository = |name: String, action: Action| Need::Repository {
            name,
            action,
            mount_from: None,
        };
        match route {
            Route::Base => Need::Login,
            Route::Catalog => Need::Catalog,
            Route::Tags { name } | Route::Referrers { name, .. } => repository(name, Action::Pull),
            Route::Manifest { name, .. } | Route::Blob { name, .. } if reading => {
                repository(name, Action::Pull)
            }
            Route::Manifest { name, .. } | Route::Blob { name, .. }
                if *method == Method::DELETE =>
            {
                repository(name, Action::Delete)
            }
            Route::Manifest { name, .. } | Route::Blob { name, .. } => {
                repository(name, Action::Push)
            }
            Route::UploadStart { name } => {
                let query = route::Query::parse(uri.query().unwrap_or(""));
                let mount_from = query
                    .get("mount")
                    .and(query.get("from"))
                    .map(str::to_string);
                Need::Repository {
                    name,
                    action: Action::Push,
                    mount_from,
                }
            }
            Route::Upload { name, .. } => repository(name, Action::Push),
        }
    }

    /// The token scope that would satisfy this need.
    pub fn scope(&self) -> Option<String> {
        match self {
            Need::Repository { name, action, .. } => Some(match action {
                Action::Pull => repository_scope(name, &["pull"]),
                Action::Push => repository_scope(name, &["pull", "push"]),
                Action::Delete => repository_scope(name, &["delete"]),
            }),
            Need::Catalog => Some("registry:catalog:*".into()),
            Need::Login | Need::Admin => None,
        }
    }
}

/// Removes `mount` and `from` from an upload start, leaving a plain upload.
pub fn strip_mount(req: &mut Request) {
    let uri = req.uri();
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && key != "mount" && key != "from"
        })
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(new) = Uri::from_parts(parts) {
            *req.uri_mut() = new;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(method: Method, uri: &str) -> Need {
        Need::of(&method, &uri.parse().expect("uri"))
    }

    #[test]
    fn maps_routes_to_actions() {
        let repo = |name: &str, action| Need::Repository {
            name: name.into(),
            action,
            mount_from: None,
        };
        assert_eq!(need(Method::GET, "/v2/"), Need::Login);
        assert_eq!(need(Method::GET, "/v2/_catalog?n=1"), Need::Catalog);
        assert_eq!(
            need(Method::GET, "/v2/a/b/manifests/1"),
            repo("a/b", Action::Pull)
        );
        assert_eq!(
            need(Method::PUT, "/v2/a/manifests/1"),
            repo("a", Action::Push)
        );
        assert_eq!(
            need(Method::DELETE, "/v2/a/manifests/1"),
            repo("a", Action::Delete)
        );
        assert_eq!(
            need(Method::PATCH, "/v2/x/blobs/uploads/abc"),
            repo("x", Action::Push)
        );
        assert_eq!(
            need(Method::GET, "/v2/a/manifests/x/tags/list"),
            repo("a/manifests/x", Action::Pull)
        );
        assert_eq!(
            need(
                Method::POST,
                "/v2/x/blobs/uploads/?mount=sha256:00&from=other/repo"
            ),
            Need::Repository {
                name: "x".into(),
                action: Action::Push,
                mount_from: Some("other/repo".into()),
            }
        );
        assert_eq!(need(Method::GET, "/v2/../x/manifests/1"), Need::Login);
    }

    #[test]
    fn strips_mounts() {
        let mut req = Request::builder()
            .uri("/v2/x/blobs/uploads/?mount=sha256:00&from=y&digest=d")
            .body(axum::body::Body::empty())
            .expect("request");
        strip_mount(&mut req);
        assert_eq!(req.uri().to_string(), "/v2/x/blobs/uploads/?digest=d");
    }
}
