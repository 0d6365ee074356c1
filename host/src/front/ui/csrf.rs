//! Cross-site request forgery on deletes: a double-submit token (a random
//! value in a `SameSite=Strict` cookie that every delete form repeats in a
//! hidden field) and, when the browser names one, an `Origin` that must be
//! this registry's own. A page elsewhere can neither read the cookie nor
//! make the browser send it along.

use super::error::UiError;
use crate::front::client::{ClientInfo, Scheme};
use axum::http::{HeaderMap, HeaderValue, header};

/// The cookie holding the token.
const COOKIE: &str = "berth_csrf";

/// The token for the forms of one page, and the cookie to set when the
/// browser had none yet.
pub(crate) struct Token {
    pub value: String,
    pub set_cookie: Option<HeaderValue>,
}

/// The browser's token, or a new one.
pub(crate) fn token(headers: &HeaderMap, client: Option<&ClientInfo>) -> Token {
    if let Some(value) = cookie(headers) {
        return Token {
            value,
            set_cookie: None,
        };
    }
    let value = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let secure = client.is_some_and(|c| c.scheme == Scheme::Https);
    let cookie = format!(
        "{COOKIE}={value}; Path=/ui; SameSite=Strict; HttpOnly{}",
        if secure { "; Secure" } else { "" }
    );
    Token {
        set_cookie: HeaderValue::from_str(&cookie).ok(),
        value,
    }
}

/// Refuses a form that does not carry the cookie's token, or that a page
/// of another origin sent.
pub(crate) fn check(
    headers: &HeaderMap,
    submitted: &str,
    client: Option<&ClientInfo>,
) -> Result<(), UiError> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| UiError::Csrf("bad Origin"))?;
        if Some(origin) != own_origin(headers, client).as_deref() {
            tracing::warn!(origin, "ui: refused a form from another origin");
            return Err(UiError::Csrf("another origin"));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(UiError::Csrf("another site"));
    }
    let Some(expected) = cookie(headers) else {
        return Err(UiError::Csrf("no token cookie"));
    };
    if submitted.is_empty() || !same(expected.as_bytes(), submitted.as_bytes()) {
        return Err(UiError::Csrf("wrong token"));
    }
    Ok(())
}

/// `scheme://host[:port]` as this request reached us.
fn own_origin(headers: &HeaderMap, client: Option<&ClientInfo>) -> Option<String> {
    let scheme = client.map_or("http", |c| c.scheme.as_str());
    let host = client.and_then(|c| c.host.clone()).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    })?;
    Some(format!("{scheme}://{host}"))
}

/// The token cookie's value, when it looks like one of ours.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header"));
        }
        map
    }

    #[test]
    fn needs_the_cookie_token_and_our_origin() {
        let token = "ab".repeat(32);
        let cookie = format!("x=1; berth_csrf={token}");
        let ok = headers(&[
            ("cookie", &cookie),
            ("host", "reg.example:5000"),
            ("origin", "http://reg.example:5000"),
        ]);
        assert!(check(&ok, &token, None).is_ok());
        assert!(check(&ok, "", None).is_err());
        assert!(check(&ok, &"cd".repeat(32), None).is_err());
        let foreign = headers(&[
            ("cookie", &cookie),
            ("host", "reg.example:5000"),
            ("origin", "http://evil.example"),
        ]);
        assert!(check(&foreign, &token, None).is_err());
        let no_cookie = headers(&[("host", "reg.example:5000")]);
        assert!(check(&no_cookie, &token, None).is_err());
    }
}
