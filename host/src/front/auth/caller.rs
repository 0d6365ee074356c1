//! Reading the caller's credentials: HTTP basic (htpasswd) or a bearer
//! token.

use super::scope::ResourceActions;
use super::{Auth, Identity};
use axum::http::{HeaderMap, header};
use base64::Engine as _;

/// The checked caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    /// What a bearer token grants; `None` when the rules decide.
    pub token_access: Option<Vec<ResourceActions>>,
    /// Whether the caller presented valid credentials (an anonymous token
    /// counts).
    pub presented: bool,
}

/// Credentials were sent and did not check out.
#[derive(Debug)]
pub struct BadCredentials;

impl Caller {
    pub async fn identify(auth: &Auth, headers: &HeaderMap) -> Result<Caller, BadCredentials> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Caller {
                identity: Identity::Anonymous,
                token_access: None,
                presented: false,
            });
        };
        let value = value.to_str().map_err(|_| BadCredentials)?;
        let (scheme, rest) = value.split_once(' ').ok_or(BadCredentials)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, password) = basic_credentials(rest).ok_or(BadCredentials)?;
            let users = auth.users.as_ref().ok_or(BadCredentials)?;
            if !users.verify(&user, &password).await {
                return Err(BadCredentials);
            }
            Ok(Caller {
                identity: Identity::User(user),
                token_access: None,
                presented: true,
            })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let claims = auth.verifier.verify(rest).ok_or(BadCredentials)?;
            let identity = if claims.sub.is_empty() {
                Identity::Anonymous
            } else {
                Identity::User(claims.sub)
            };
            Ok(Caller {
                identity,
                token_access: Some(claims.access),
                presented: true,
            })
        } else {
            Err(BadCredentials)
        }
    }
}

/// `user:password` from the base64 of a basic `Authorization` header.
pub fn basic_credentials(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_basic() {
        assert_eq!(
            basic_credentials("YWxpY2U6czNjcjp0"),
            Some(("alice".into(), "s3cr:t".into()))
        );
        assert_eq!(basic_credentials("!!"), None);
        assert_eq!(basic_credentials("YWxpY2U="), None);
    }
}
