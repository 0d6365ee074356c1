//! `GET /auth/token`: Berth's own token server, for `docker login`,
//! `podman login` and `skopeo login` against Berth alone. Clients send
//! basic credentials (or none, for anonymous access) and the scopes they
//! want; the token grants the part of each scope the rules allow.

use super::caller::basic_credentials;
use super::scope::ResourceActions;
use super::{Auth, Identity};
use crate::config::Action;
use crate::front::client::ClientInfo;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_oci::route::Query;
use std::sync::Arc;

pub async fn token(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(issuer) = &auth.issuer else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let query = Query::parse(query.as_deref().unwrap_or(""));
    if query.get("service").is_some_and(|s| s != auth.service) {
        return crate::error_body::error_response(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            "this token server issues tokens for another service",
        );
    }
    let identity = match login(&auth, &headers).await {
        Ok(identity) => identity,
        Err(()) => {
            let mut resp = crate::error_body::error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "incorrect username or password",
            );
            let realm = format!("Basic realm=\"{}\"", super::quoted(&auth.basic_realm));
            if let Ok(value) = HeaderValue::from_str(&realm) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
            return resp;
        }
    };
    let requested: Vec<ResourceActions> = query
        .all("scope")
        .flat_map(str::split_whitespace)
        .filter_map(ResourceActions::parse)
        .collect();
    let access = grant(&auth, &identity, &requested);
    let subject = identity.name().unwrap_or("");
    match issuer.issue(subject, &access) {
        Ok(token) => {
            tracing::info!(
                user = subject,
                scopes = access.len(),
                "issued a registry token"
            );
            axum::Json(serde_json::json!({
                "token": token,
                "access_token": token,
                "expires_in": issuer.lifetime().as_secs(),
            }))
            .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot issue a token");
            crate::error_body::internal_error()
        }
    }
}

async fn login(auth: &Auth, headers: &HeaderMap) -> Result<Identity, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Identity::Anonymous);
    };
    let value = value.to_str().map_err(|_| ())?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or(())?;
    let (user, password) = basic_credentials(encoded.trim()).ok_or(())?;
    let users = auth.users.as_ref().ok_or(())?;
    if users.verify(&user, &password).await {
        Ok(Identity::User(user))
    } else {
        Err(())
    }
}

/// Each requested scope cut down to what the rules allow `identity`.
fn grant(auth: &Auth, identity: &Identity, requested: &[ResourceActions]) -> Vec<ResourceActions> {
    requested
        .iter()
        .filter_map(|scope| match scope.kind.as_str() {
            "repository" => {
                let allowed = auth.policy.allowed(identity, &scope.name);
                let actions: Vec<String> = allowed
                    .iter()
                    .filter(|a| {
                        scope
                            .actions
                            .iter()
                            .any(|r| r == "*" || Action::parse(r) == Some(**a))
                    })
                    .map(|a| a.as_str().to_string())
                    .collect();
                (!actions.is_empty()).then(|| ResourceActions {
                    kind: scope.kind.clone(),
                    name: scope.name.clone(),
                    actions,
                })
            }
            // The catalog is filtered per caller, so asking is harmless.
            "registry" if scope.name == "catalog" => Some(ResourceActions {
                kind: scope.kind.clone(),
                name: scope.name.clone(),
                actions: vec!["*".into()],
            }),
            _ => None,
        })
        .collect()
}

/// `<scheme>://<host>/auth/token` for the URL the client used: our own
/// scheme and `Host`, or what a trusted load balancer forwarded
/// (`front::client`).
pub fn default_realm(client: &ClientInfo) -> String {
    let host = client.host.as_deref().unwrap_or("localhost");
    format!("{}://{host}/auth/token", client.scheme.as_str())
}
