//! Turns a request target into a typed [`Route`], once, up front.
//!
//! Repository names may contain `/`, so the path is parsed from the right:
//! the trailing keywords (`tags/list`, `manifests/<ref>`, `blobs/<digest>`,
//! `blobs/uploads/[<id>]`, `referrers/<digest>`) fix the endpoint and
//! whatever precedes them is the name. Every component is checked against
//! the spec grammar here, so handlers only ever see valid names, tags,
//! digests and upload ids, and no storage call is made with anything else.

use crate::digest::Digest;
use crate::error::ApiError;
use crate::grammar;

/// HTTP methods the registry distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Other,
}

/// A manifest reference: `<tag-or-digest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

/// The endpoint a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/` (end-1).
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list` (end-8).
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>` (end-3, end-7, end-9).
    Manifest { name: String, reference: Reference },
    /// `/v2/<name>/blobs/<digest>` (end-2, end-10).
    Blob { name: String, digest: Digest },
    /// `/v2/<name>/blobs/uploads/` (end-4, end-11).
    UploadStart { name: String },
    /// `/v2/<name>/blobs/uploads/<id>` (end-5, end-6, end-13, end-14).
    Upload { name: String, id: String },
    /// `/v2/<name>/referrers/<digest>` (end-12).
    Referrers { name: String, digest: Digest },
}

impl Method {
    /// The method's name on the wire; `None` for [`Method::Other`], which
    /// stands for every method the registry does not serve.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Method::Get => Some("GET"),
            Method::Head => Some("HEAD"),
            Method::Post => Some("POST"),
            Method::Put => Some("PUT"),
            Method::Patch => Some("PATCH"),
            Method::Delete => Some("DELETE"),
            Method::Other => None,
        }
    }
}

/// A [`Route`] without its parameters: which endpoint, not which resource.
/// The guest's handler table is keyed by endpoint and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Base,
    Catalog,
    Tags,
    Manifest,
    Blob,
    UploadStart,
    Upload,
    Referrers,
}

impl Route {
    /// The endpoint this route addresses.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Route::Base => Endpoint::Base,
            Route::Catalog => Endpoint::Catalog,
            Route::Tags { .. } => Endpoint::Tags,
            Route::Manifest { .. } => Endpoint::Manifest,
            Route::Blob { .. } => Endpoint::Blob,
            Route::UploadStart { .. } => Endpoint::UploadStart,
            Route::Upload { .. } => Endpoint::Upload,
            Route::Referrers { .. } => Endpoint::Referrers,
        }
    }
}

/// Parses the path part of a request target (no query) into a route.
/// Unknown shapes are [`ApiError::NotFound`]; known shapes with an invalid
/// component are the matching 400 (or 404 for upload ids, which the client
/// cannot choose).
pub fn parse(path: &str) -> Result<Route, ApiError> {
    let path = percent_decode(path).ok_or(ApiError::NotFound)?;
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => return Ok(Route::Base),
        Some(rest) => rest.strip_prefix('/').ok_or(ApiError::NotFound)?,
        None => return Err(ApiError::NotFound),
    };
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags {
            name: name_of(name)?,
        });
    }
    let (head, last) = rest.rsplit_once('/').ok_or(ApiError::NotFound)?;
    let (name, keyword) = head.rsplit_once('/').ok_or(ApiError::NotFound)?;
    match keyword {
        "manifests" => {
            let name = name_of(name)?;
            Ok(Route::Manifest {
                name,
                reference: reference_of(last)?,
            })
        }
        // `<name>/blobs/uploads` without the trailing slash: accepted as the
        // upload endpoint (no digest can be "uploads").
        "blobs" if last == "uploads" => Ok(Route::UploadStart {
            name: name_of(name)?,
        }),
        "blobs" => {
            let name = name_of(name)?;
            Ok(Route::Blob {
                name,
                digest: digest_of(last)?,
            })
        }
        "referrers" => {
            let name = name_of(name)?;
            Ok(Route::Referrers {
                name,
                digest: digest_of(last)?,
            })
        }
        "uploads" => {
            let name = name.strip_suffix("/blobs").ok_or(ApiError::NotFound)?;
            let name = name_of(name)?;
            if last.is_empty() {
                Ok(Route::UploadStart { name })
            } else if grammar::is_valid_upload_id(last) {
                Ok(Route::Upload {
                    name,
                    id: last.to_owned(),
                })
            } else {
                Err(ApiError::BlobUploadUnknown)
            }
        }
        _ => Err(ApiError::NotFound),
    }
}

fn name_of(s: &str) -> Result<String, ApiError> {
    if grammar::is_valid_name(s) {
        Ok(s.to_owned())
    } else {
        Err(ApiError::NameInvalid)
    }
}

pub fn digest_of(s: &str) -> Result<Digest, ApiError> {
    Digest::parse(s).map_err(|e| ApiError::DigestInvalid(e.describe().to_owned()))
}

/// A reference containing `:` can only be a digest (tags cannot contain it).
fn reference_of(s: &str) -> Result<Reference, ApiError> {
    if s.contains(':') {
        Ok(Reference::Digest(digest_of(s)?))
    } else if grammar::is_valid_tag(s) {
        Ok(Reference::Tag(s.to_owned()))
    } else {
        Err(ApiError::TagInvalid)
    }
}

/// Decoded query parameters, in order, duplicates kept (`?tag=a&tag=b`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=1&b=2` with `application/x-www-form-urlencoded` rules
    /// (`+` is a space), as Go's `url.Query` does for registry:2. Pairs that
    /// do not decode are dropped.
    pub fn parse(query: &str) -> Query {
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        Query(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    Some((decode(k)?, decode(v)?))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a request target into path and query.
pub fn split_target(target: &str) -> (&str, &str) {
    target.split_once('?').unwrap_or((target, ""))
}

/// `%XX` decoding; `None` for truncated escapes or non-UTF-8 results.
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn digest() -> Digest {
        Digest::parse(D).unwrap()
    }

    #[test]
    fn base_and_catalog() {
        assert_eq!(parse("/v2/"), Ok(Route::Base));
        assert_eq!(parse("/v2"), Ok(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Ok(Route::Catalog));
        assert_eq!(parse("/v3/"), Err(ApiError::NotFound));
        assert_eq!(parse("/v2x"), Err(ApiError::NotFound));
        assert_eq!(parse("/"), Err(ApiError::NotFound));
        assert_eq!(parse("/v2/foo"), Err(ApiError::NotFound));
        assert_eq!(parse("/v2/foo/bar"), Err(ApiError::NotFound));
    }

    #[test]
    fn nested_names_parse_from_the_right() {
        assert_eq!(
            parse("/v2/a/b/c/tags/list"),
            Ok(Route::Tags {
                name: "a/b/c".into()
            })
        );
        // A name whose components are endpoint keywords.
        assert_eq!(
            parse("/v2/manifests/blobs/tags/list"),
            Ok(Route::Tags {
                name: "manifests/blobs".into()
            })
        );
        assert_eq!(
            parse("/v2/x/blobs/manifests/latest"),
            Ok(Route::Manifest {
                name: "x/blobs".into(),
                reference: Reference::Tag("latest".into())
            })
        );
        assert_eq!(
            parse(&format!("/v2/a/blobs/uploads/blobs/{D}")),
            Ok(Route::Blob {
                name: "a/blobs/uploads".into(),
                digest: digest()
            })
        );
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse(&format!("/v2/lib/ubuntu/manifests/{D}")),
            Ok(Route::Manifest {
                name: "lib/ubuntu".into(),
                reference: Reference::Digest(digest())
            })
        );
        assert_eq!(
            parse(&format!("/v2/a/blobs/{D}")),
            Ok(Route::Blob {
                name: "a".into(),
                digest: digest()
            })
        );
        assert_eq!(
            parse("/v2/a/b/blobs/uploads/"),
            Ok(Route::UploadStart { name: "a/b".into() })
        );
        assert_eq!(
            parse("/v2/a/b/blobs/uploads"),
            Ok(Route::UploadStart { name: "a/b".into() })
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/abc-123"),
            Ok(Route::Upload {
                name: "a".into(),
                id: "abc-123".into()
            })
        );
        assert_eq!(
            parse(&format!("/v2/a/referrers/{D}")),
            Ok(Route::Referrers {
                name: "a".into(),
                digest: digest()
            })
        );
        // Percent-encoded colon in a digest.
        assert_eq!(
            parse(&format!("/v2/a/blobs/{}", D.replace(':', "%3A"))),
            Ok(Route::Blob {
                name: "a".into(),
                digest: digest()
            })
        );
    }

    #[test]
    fn invalid_components() {
        assert_eq!(parse("/v2/A/tags/list"), Err(ApiError::NameInvalid));
        assert_eq!(parse("/v2//manifests/x"), Err(ApiError::NameInvalid));
        assert_eq!(parse("/v2/a//b/manifests/x"), Err(ApiError::NameInvalid));
        assert_eq!(parse("/v2/a/manifests/-bad"), Err(ApiError::TagInvalid));
        assert_eq!(parse("/v2/a/manifests/"), Err(ApiError::TagInvalid));
        assert!(matches!(
            parse("/v2/a/manifests/sha256:abc"),
            Err(ApiError::DigestInvalid(_))
        ));
        assert!(matches!(
            parse("/v2/a/blobs/notadigest"),
            Err(ApiError::DigestInvalid(_))
        ));
        assert!(matches!(
            parse(&format!("/v2/a/blobs/sha512:{}", "a".repeat(128))),
            Err(ApiError::DigestInvalid(_))
        ));
        assert!(matches!(
            parse("/v2/a/referrers/x"),
            Err(ApiError::DigestInvalid(_))
        ));
        assert_eq!(
            parse("/v2/a/blobs/uploads/a.b%20c"),
            Err(ApiError::BlobUploadUnknown)
        );
        assert_eq!(parse("/v2/a/uploads/x"), Err(ApiError::NotFound));
        assert_eq!(parse("/v2/a/tags/x"), Err(ApiError::NotFound));
        assert_eq!(parse("/v2/a/%zz/tags/list"), Err(ApiError::NotFound));
    }

    #[test]
    fn endpoints_and_methods() {
        assert_eq!(
            parse("/v2/a/blobs/uploads/x").unwrap().endpoint(),
            Endpoint::Upload
        );
        assert_eq!(Route::Base.endpoint(), Endpoint::Base);
        assert_eq!(Method::Patch.name(), Some("PATCH"));
        assert_eq!(Method::Other.name(), None);
    }

    #[test]
    fn queries() {
        let q = Query::parse(
            "n=10&last=a%2Fb&tag=1&tag=2&artifactType=application%2Fvnd.x%2Bjson&flag&x=a+b",
        );
        assert_eq!(q.get("n"), Some("10"));
        assert_eq!(q.get("last"), Some("a/b"));
        assert_eq!(q.all("tag").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(q.get("artifactType"), Some("application/vnd.x+json"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("missing"), None);
        assert_eq!(Query::parse(""), Query::default());
        assert_eq!(split_target("/v2/?a=b"), ("/v2/", "a=b"));
        assert_eq!(split_target("/v2/"), ("/v2/", ""));
        assert_eq!(percent_encode("a/b c+d"), "a/b%20c%2Bd");
    }
}
