//! Repository names, tags, digests, upload ids and request paths, checked
//! against the distribution-spec's regular expressions (an independent
//! implementation) and for round trips.

#![no_main]

use berth_oci::error::ApiError;
use berth_oci::digest::{self, Digest, DigestError};
use berth_oci::grammar;
use berth_oci::route::{self, Query, Reference, Route};
use libfuzzer_sys::fuzz_target;
use regex::Regex;
use std::sync::LazyLock;

const NAME: &str = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$";
const TAG: &str = r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$";
const DIGEST_SYNTAX: &str = r"^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$";
const SHA256: &str = r"^sha256:[a-f0-9]{64}$";

static RE: LazyLock<[Regex; 4]> =
    LazyLock::new(|| [NAME, TAG, DIGEST_SYNTAX, SHA256].map(|r| Regex::new(r).expect("regex")));

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let [name_re, tag_re, digest_re, sha256_re] = &*RE;

    assert_eq!(
        grammar::is_valid_name(s),
        name_re.is_match(s) && s.len() <= grammar::MAX_NAME_LEN,
        "name {s:?}"
    );
    assert_eq!(grammar::is_valid_tag(s), tag_re.is_match(s), "tag {s:?}");
    assert_eq!(digest::is_digest_syntax(s), digest_re.is_match(s), "{s:?}");
    match Digest::parse(s) {
        Ok(d) => {
            assert!(sha256_re.is_match(s), "digest {s:?}");
            // A digest that parses re-serialises identically.
            assert_eq!(d.as_str(), s);
            assert_eq!(d.to_string(), s);
            assert_eq!(Digest::parse(d.as_str()), Ok(d));
        }
        Err(DigestError::Unsupported) => {
            assert!(digest_re.is_match(s) && !s.starts_with("sha256:"), "{s:?}");
        }
        Err(DigestError::Malformed) => assert!(!sha256_re.is_match(s), "{s:?}"),
    }
    let of = Digest::of(data);
    assert_eq!(Digest::parse(of.as_str()), Ok(of));
    if grammar::is_valid_upload_id(s) {
        assert!(!s.is_empty() && s.len() <= 128 && !s.contains(['/', '?', '%', '#']));
    }

    // Percent-encoding round-trips.
    assert_eq!(
        route::percent_decode(&route::percent_encode(s)).as_deref(),
        Some(s)
    );
    let _ = Query::parse(s);

    // As a request path (and as a path of each endpoint, with the input as
    // the name or the last component): a parsed route's parts satisfy the
    // grammar and print back to a path that parses to the same route.
    let (path, _) = route::split_target(s);
    for candidate in [
        path.to_owned(),
        format!("/v2/{path}/tags/list"),
        format!("/v2/{path}/manifests/latest"),
        format!("/v2/library/x/manifests/{path}"),
        format!("/v2/library/x/blobs/{path}"),
        format!("/v2/library/x/blobs/uploads/{path}"),
    ] {
        check_route(&candidate);
    }
});

fn check_route(path: &str) {
    let route = match route::parse(path) {
        Ok(r) => r,
        Err(
            ApiError::NotFound
            | ApiError::NameInvalid
            | ApiError::TagInvalid
            | ApiError::DigestInvalid(_)
            | ApiError::BlobUploadUnknown,
        ) => return,
        Err(other) => panic!("{path:?}: unexpected error {other:?}"),
    };
    let printed = match &route {
        Route::Base => "/v2/".to_owned(),
        Route::Catalog => "/v2/_catalog".to_owned(),
        Route::Tags { name } => {
            assert!(grammar::is_valid_name(name));
            format!("/v2/{name}/tags/list")
        }
        Route::Manifest { name, reference } => {
            assert!(grammar::is_valid_name(name));
            let reference = match reference {
                Reference::Tag(t) => {
                    assert!(grammar::is_valid_tag(t));
                    t.clone()
                }
                Reference::Digest(d) => d.to_string(),
            };
            format!("/v2/{name}/manifests/{reference}")
        }
        Route::Blob { name, digest } => {
            assert!(grammar::is_valid_name(name));
            format!("/v2/{name}/blobs/{digest}")
        }
        Route::UploadStart { name } => {
            assert!(grammar::is_valid_name(name));
            format!("/v2/{name}/blobs/uploads/")
        }
        Route::Upload { name, id } => {
            assert!(grammar::is_valid_name(name) && grammar::is_valid_upload_id(id));
            format!("/v2/{name}/blobs/uploads/{id}")
        }
        Route::Referrers { name, digest } => {
            assert!(grammar::is_valid_name(name));
            format!("/v2/{name}/referrers/{digest}")
        }
    };
    assert_eq!(
        route::parse(&printed).as_ref(),
        Ok(&route),
        "{path:?} -> {printed:?}"
    );
}
