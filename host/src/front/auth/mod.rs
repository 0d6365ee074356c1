//! Who may do what: htpasswd users, Docker registry bearer tokens (Berth's
//! own, from `/auth/token`, or an external issuer's), access rules per
//! repository. A middleware in front of the guest; the guest never sees a
//! request the caller may not make.

mod caller;
pub mod endpoint;
pub mod htpasswd;
mod need;
pub mod rules;
mod scope;
pub mod token;

pub use caller::Caller;
pub use rules::Identity;

use crate::config::{Action, AuthConfig, AuthMode};
use crate::front::client::ClientInfo;
use crate::sandbox::context::{CatalogFilter, RequestContext};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use need::Need;
use rules::Policy;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error(transparent)]
    Htpasswd(#[from] htpasswd::HtpasswdError),
    #[error(transparent)]
    Token(#[from] token::TokenError),
}

/// The configured authentication, shared by every request.
pub struct Auth {
    mode: AuthMode,
    basic_realm: String,
    token_realm: Option<String>,
    service: String,
    https: bool,
    users: Option<htpasswd::Htpasswd>,
    policy: Policy,
    issuer: Option<token::Issuer>,
    verifier: token::Verifier,
}

impl Auth {
    /// `None` when authentication is off. Berth issues tokens itself when
    /// it has users and runs in token mode; its signing key lives in
    /// `<root>/auth/`.
    pub fn from_config(
        config: &AuthConfig,
        root: &Path,
        https: bool,
    ) -> Result<Option<Arc<Self>>, AuthSetupError> {
        if !config.enabled() {
            return Ok(None);
        }
        let users = config
            .htpasswd
            .as_deref()
            .map(htpasswd::Htpasswd::load)
            .transpose()?;
        let issues = users.is_some() && config.mode == AuthMode::Token;
        let key_dir = root.join("auth");
        let (issuer, verifier) = token::load(&config.token, issues.then_some(key_dir.as_path()))?;
        Ok(Some(Arc::new(Self {
            mode: config.mode,
            basic_realm: config.realm.clone(),
            token_realm: config.token.realm.clone(),
            service: config.token.service.clone(),
            https,
            users,
            policy: Policy::from_config(config),
            issuer,
            verifier,
        })))
    }

    /// Whether `/auth/token` is served.
    pub fn issues_tokens(&self) -> bool {
        self.issuer.is_some()
    }

    /// Whether the caller may take `action` on `repository`.
    fn may(&self, caller: &Caller, repository: &str, action: Action) -> bool {
        match &caller.token_access {
            Some(access) => access.iter().any(|a| a.grants(repository, action.as_str())),
            None => self
                .policy
                .allowed(&caller.identity, repository)
                .contains(&action),
        }
    }

    /// Whether the catalog shows `repository` to the caller: what the rules
    /// let their identity pull, or what their token grants.
    fn may_list(&self, caller: &Caller, repository: &str) -> bool {
        // Without a token `may` is the rules already; ask them once.
        let token_grants = caller
            .token_access
            .as_ref()
            .is_some_and(|access| access.iter().any(|a| a.grants(repository, "pull")));
        token_grants
            || self
                .policy
                .allowed(&caller.identity, repository)
                .contains(&Action::Pull)
    }

    /// Whether the caller may reach endpoints that name no repository.
    fn lets_in(&self, caller: &Caller) -> bool {
        match self.mode {
            // Clients learn the realm from the challenge, so they must see
            // one before any token, even an anonymous one.
            AuthMode::Token => caller.presented,
            AuthMode::Basic => caller.presented || self.policy.anonymous_has_access(),
        }
    }
}

/// Why a request is refused.
enum Refusal {
    /// No credentials, or ones that did not check out.
    Unauthenticated,
    /// Valid credentials without the needed access.
    Insufficient,
}

/// The middleware in front of the guest: checks the caller against what
/// the request needs, then lets it through with a [`RequestContext`].
pub async fn authorize(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let need = Need::of(req.method(), req.uri());
    admit(auth, req, need, next).await
}

/// The middleware in front of Berth's own endpoints that need a named
/// user (`front::routes` says which).
pub async fn authorize_named_user(
    State(auth): State<Arc<Auth>>,
    req: Request,
    next: Next,
) -> Response {
    admit(auth, req, Need::Admin, next).await
}

async fn admit(auth: Arc<Auth>, mut req: Request, need: Need, next: Next) -> Response {
    let Ok(caller) = Caller::identify(&auth, req.headers()).await else {
        return challenge(&auth, &req, &need, Refusal::Unauthenticated);
    };
    let refusal = if caller.presented {
        Refusal::Insufficient
    } else {
        Refusal::Unauthenticated
    };
    match &need {
        Need::Login | Need::Catalog if !auth.lets_in(&caller) => {
            return challenge(&auth, &req, &need, Refusal::Unauthenticated);
        }
        Need::Admin if caller.identity == Identity::Anonymous => {
            return challenge(&auth, &req, &need, refusal);
        }
        Need::Repository { name, action, .. } if !auth.may(&caller, name, *action) => {
            return challenge(&auth, &req, &need, refusal);
        }
        Need::Repository {
            mount_from: Some(from),
            ..
        } if !auth.may(&caller, from, Action::Pull) => {
            // registry:2 answers a mount it cannot do with a plain upload;
            // the caller cannot read `from`, so neither may the mount.
            need::strip_mount(&mut req);
        }
        _ => {}
    }
    let mut context = RequestContext {
        caller: caller.identity.name().map(str::to_owned),
        may_list: None,
    };
    if matches!(need, Need::Catalog) {
        // The guest asks this while it pages, so neither the page nor its
        // Link names a repository the caller may not pull.
        let filter = move |repository: &str| auth.may_list(&caller, repository);
        context.may_list = Some(CatalogFilter(Arc::new(filter)));
    }
    if let (Some(slot), Some(name)) = (
        req.extensions().get::<crate::front::client::CallerName>(),
        &context.caller,
    ) {
        slot.set(name);
    }
    req.extensions_mut().insert(context);
    next.run(req).await
}

/// A 401 with the challenge clients answer by logging in (basic) or by
/// fetching a token for the scope (bearer); a 403 when logging in again
/// cannot help.
fn challenge(auth: &Auth, req: &Request, need: &Need, refusal: Refusal) -> Response {
    let (status, code, message) = match refusal {
        Refusal::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        ),
        Refusal::Insufficient if auth.mode == AuthMode::Basic => (
            StatusCode::FORBIDDEN,
            "DENIED",
            "requested access to the resource is denied",
        ),
        Refusal::Insufficient => (
            StatusCode::UNAUTHORIZED,
            "DENIED",
            "requested access to the resource is denied",
        ),
    };
    let mut resp = crate::error_body::error_response(status, code, message);
    if status == StatusCode::FORBIDDEN {
        return resp;
    }
    let value = match auth.mode {
        AuthMode::Basic => format!("Basic realm=\"{}\"", quoted(&auth.basic_realm)),
        AuthMode::Token => {
            let realm = auth.token_realm.clone().unwrap_or_else(|| {
                let client = req.extensions().get::<ClientInfo>().cloned();
                // The router always resolves the client; without it (a
                // router driven without the front), the connection's view.
                let client = client.unwrap_or_else(|| {
                    ClientInfo::direct(None, req.headers(), req.uri(), auth.https)
                });
                endpoint::default_realm(&client)
            });
            let mut value = format!(
                "Bearer realm=\"{}\",service=\"{}\"",
                quoted(&realm),
                quoted(&auth.service)
            );
            if let Some(scope) = need.scope() {
                value.push_str(&format!(",scope=\"{}\"", quoted(&scope)));
            }
            if matches!(refusal, Refusal::Insufficient) {
                value.push_str(",error=\"insufficient_scope\"");
            }
            value
        }
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    resp
}

/// Keeps a value from ending its quoted-string early.
fn quoted(value: &str) -> String {
    value.replace(['"', '\\'], "")
}
