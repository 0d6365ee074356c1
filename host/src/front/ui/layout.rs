//! The frame every page shares, and how values are shown: sizes, times,
//! digests, query strings. maud escapes every `(value)`; nothing here
//! writes raw HTML.

use maud::{DOCTYPE, Markup, html};

/// Who is looking, as the navigation shows it.
pub(crate) struct Who<'a> {
    /// The named user, when logged in.
    pub user: Option<&'a str>,
    /// Whether logins are on at all.
    pub logins: bool,
}

/// A whole page: head, navigation (with who is logged in), `body`.
pub(crate) fn page(title: &str, viewer: Option<Who<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Berth" }
                link rel="stylesheet" href="/ui/static/style.css";
                script src="/ui/static/copy.js" defer {}
            }
            body {
                header {
                    nav {
                        a.brand href="/ui/" { "Berth" }
                        a href="/ui/" { "Repositories" }
                        a href="/ui/storage" { "Storage" }
                        @if let Some(viewer) = viewer {
                            span.who {
                                @if let Some(user) = viewer.user {
                                    "Logged in as " strong { (user) }
                                } @else if viewer.logins {
                                    "Anonymous · " a href="/ui/login" { "Log in" }
                                }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// Bytes in binary units.
pub(crate) fn size(bytes: u64) -> String {
    crate::maintenance::usage::human(bytes)
}

/// Unix seconds as `2026-12-05 15:32 UTC`.
pub(crate) fn time(unix: u64) -> String {
    crate::clock::utc_minutes(unix)
}

/// `sha256:0123456789ab…`, for tables; the full digest goes in `title`.
pub(crate) fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) if hex.len() > 12 => format!("{algorithm}:{}…", &hex[..12]),
        _ => digest.to_owned(),
    }
}

/// A query-string value, percent-encoded (everything but unreserved
/// characters).
pub(crate) fn query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The link to a manifest page.
pub(crate) fn manifest_link(repository: &str, reference: &str) -> String {
    format!("/ui/manifest/{repository}?ref={}", query_value(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_and_values() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(1_796_484_720), "2026-12-05 15:32 UTC");
        assert_eq!(query_value("a b&<x>"), "a%20b%26%3Cx%3E");
        assert_eq!(short("sha256:0123456789abcdef"), "sha256:0123456789ab…");
    }
}
