//! `GET /v2/<name>/tags/list` (end-8) and `GET /v2/_catalog`, both paged with
//! `n` and `last`, with an RFC 5988 `Link` header when more remain.

use super::Call;
use crate::error;
use crate::http::Response;
use crate::storage::catalog;
use crate::storage::metadata::{self, Page};
use berth_oci::ApiError;
use berth_oci::route::{Query, percent_encode};
use serde::Serialize;

/// Largest page served even when a client asks for more; the `Link` header
/// makes the shortfall explicit, as the spec requires.
const MAX_PAGE: u32 = 1000;

/// `n` and `last` from the query. A non-numeric or negative `n` is a 400.
/// registry:2 names that PAGINATION_NUMBER_INVALID; we answer UNSUPPORTED,
/// because the spec requires codes from its table.
fn page(query: &Query) -> Result<(Option<u32>, Option<String>), ApiError> {
    let n = match query.get("n") {
        None => None,
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            // Huge (but numeric) values are simply "as many as allowed".
            Some(
                s.parse::<u64>()
                    .map_or(MAX_PAGE, |n| n.min(u64::from(MAX_PAGE)) as u32),
            )
        }
        Some(_) => return Err(ApiError::PaginationInvalid),
    };
    let last = query
        .get("last")
        .filter(|l| !l.is_empty())
        .map(str::to_owned);
    Ok((n, last))
}

/// Asks storage for one more than `n`, to learn whether a next page exists.
fn storage_page(n: Option<u32>, last: Option<String>) -> Page {
    Page {
        last,
        n: n.map(|n| if n == 0 { 0 } else { n + 1 }),
    }
}

/// Trims the extra item; returns whether there was one.
fn trim(items: &mut Vec<String>, n: Option<u32>) -> bool {
    match n {
        Some(n) if items.len() > n as usize => {
            items.truncate(n as usize);
            true
        }
        _ => false,
    }
}

/// The `Link` header for the page after `items` (empty when none follows).
/// `n == 0` never links: the spec says an empty list and no `Link`.
fn link(path: &str, items: &[String], n: Option<u32>, more: bool) -> Option<String> {
    let (n, last) = (n?, items.last()?);
    (more && n > 0).then(|| format!("<{path}?last={}&n={n}>; rel=\"next\"", percent_encode(last)))
}

fn respond<T: Serialize>(body: &T, link: Option<String>) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| error::internal("listing json", e))?;
    let resp = Response::json(200, bytes);
    Ok(match link {
        Some(l) => resp.header("link", l),
        None => resp,
    })
}

/// `GET /v2/<name>/tags/list`.
pub fn tags(call: &Call) -> Result<Response, ApiError> {
    let name = call.name()?;
    #[derive(Serialize)]
    struct Tags<'a> {
        name: &'a str,
        tags: &'a [String],
    }
    let (n, last) = page(&call.query)?;
    let mut tags =
        metadata::list_tags(name, &storage_page(n, last))?.ok_or(ApiError::NameUnknown)?;
    let more = trim(&mut tags, n);
    let link = link(&format!("/v2/{name}/tags/list"), &tags, n, more);
    respond(&Tags { name, tags: &tags }, link)
}

/// Repository names are read from storage at least this many at a time, so
/// a caller who may see few of them does not cost a storage call per page.
const CATALOG_BATCH: u32 = 100;

/// `GET /v2/_catalog`.
pub fn catalog(call: &Call) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct Catalog<'a> {
        repositories: &'a [String],
    }
    let (n, last) = page(&call.query)?;
    let mut repositories = listed_repositories(n, last)?;
    let more = trim(&mut repositories, n);
    let link = link("/v2/_catalog", &repositories, n, more);
    respond(
        &Catalog {
            repositories: &repositories,
        },
        link,
    )
}

/// Up to `n + 1` repositories after `last` that the caller may see (all of
/// them when `n` is none). Hidden ones are skipped here rather than cut
/// from a finished page, so the page and its `Link` name only what the
/// caller may see, and a page is short only at the end.
fn listed_repositories(n: Option<u32>, mut last: Option<String>) -> Result<Vec<String>, ApiError> {
    if n == Some(0) {
        return Ok(Vec::new());
    }
    let want = n.map(|n| n as usize + 1);
    let batch = n.map(|n| (n + 1).max(CATALOG_BATCH));
    let mut shown = Vec::new();
    loop {
        let names = metadata::list_repositories(&Page {
            last: last.take(),
            n: batch,
        })?;
        let exhausted = batch.is_none_or(|b| names.len() < b as usize);
        last = names.last().cloned();
        for name in names {
            if catalog::may_list(&name) {
                shown.push(name);
                if want.is_some_and(|w| shown.len() >= w) {
                    return Ok(shown);
                }
            }
        }
        if exhausted {
            return Ok(shown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(s)
    }

    #[test]
    fn page_params() {
        assert_eq!(page(&q("")), Ok((None, None)));
        assert_eq!(page(&q("n=5&last=b")), Ok((Some(5), Some("b".into()))));
        assert_eq!(page(&q("n=0")), Ok((Some(0), None)));
        assert_eq!(
            page(&q("n=99999999999999999999999")),
            Ok((Some(MAX_PAGE), None))
        );
        assert_eq!(page(&q("n=5000")), Ok((Some(MAX_PAGE), None)));
        for bad in ["n=", "n=-1", "n=abc", "n=1.5", "n=+3"] {
            assert_eq!(page(&q(bad)), Err(ApiError::PaginationInvalid), "{bad}");
        }
    }

    #[test]
    fn paging() {
        assert_eq!(storage_page(Some(2), None).n, Some(3));
        assert_eq!(storage_page(Some(0), None).n, Some(0));
        assert_eq!(storage_page(None, None).n, None);
        let mut items: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        assert!(trim(&mut items, Some(2)));
        assert_eq!(items, ["a", "b"]);
        assert!(!trim(&mut items, Some(2)));
        assert!(!trim(&mut items, None));
        assert_eq!(
            link("/v2/x/tags/list", &items, Some(2), true).as_deref(),
            Some("</v2/x/tags/list?last=b&n=2>; rel=\"next\"")
        );
        assert_eq!(link("/v2/x/tags/list", &items, Some(2), false), None);
        assert_eq!(link("/v2/_catalog", &[], Some(0), true), None);
    }
}
