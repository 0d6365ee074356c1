//! `manifest::parse`: any body pushed with any of a few `Content-Type`s.
//! The first input byte picks the `Content-Type`, the rest is the body.

#![no_main]

use berth_oci::error::ApiError;
use berth_oci::Digest;
use berth_oci::digest;
use berth_oci::manifest::{self, Kind};
use berth_oci::media_types::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some(OCI_MANIFEST),
    Some(OCI_INDEX),
    Some(DOCKER_MANIFEST),
    Some(DOCKER_LIST),
    Some("application/json"),
    Some(""),
    Some("Application/VND.oci.image.manifest.v1+json; charset=utf-8"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()];
    let parsed = manifest::parse(content_type, body);
    // Deterministic: the same input is judged the same way twice.
    assert_eq!(parsed, manifest::parse(content_type, body));
    let p = match parsed {
        Ok(p) => p,
        // Only the two manifest codes may come out of parsing.
        Err(ApiError::ManifestInvalid(_) | ApiError::ManifestBlobUnknown(_)) => return,
        Err(other) => panic!("unexpected error {other:?}"),
    };

    // An accepted manifest is a JSON object (not an array of its fields).
    let first = body.iter().find(|b| !b" \t\n\r".contains(b));
    assert_eq!(first, Some(&b'{'), "accepted a non-object");
    // Stored under one of the four types, with the matching kind.
    let index = matches!(p.media_type, OCI_INDEX | DOCKER_LIST);
    assert!(index || matches!(p.media_type, OCI_MANIFEST | DOCKER_MANIFEST));
    assert_eq!(p.kind == Kind::Index, index);
    // What must be present is sha256 digests that re-parse to themselves,
    // without duplicates; an image always requires at least its config.
    for (i, d) in p.required.iter().enumerate() {
        assert_eq!(Digest::parse(d.as_str()).as_ref(), Ok(d));
        assert!(!p.required[..i].contains(d), "duplicate {d}");
    }
    if p.kind == Kind::Image {
        assert!(!p.required.is_empty(), "image without config");
    }
    if let Some(subject) = &p.subject {
        assert!(digest::is_digest_syntax(subject), "subject {subject:?}");
    }
    if let Some(a) = &p.annotations {
        // Sorted by key, each key once.
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0), "annotations {a:?}");
    }
    // The declared Content-Type wins and must agree with the body; without
    // one, a known `mediaType` field decides.
    if let Ok(serde_json::Value::Object(doc)) = serde_json::from_slice(body) {
        // Descriptors are objects too (serde would also take an array of
        // their fields).
        let is_object = |v: &serde_json::Value| v.is_object() || v.is_null();
        for key in ["config", "subject"] {
            assert!(doc.get(key).is_none_or(is_object), "{key} not an object");
        }
        for key in ["layers", "manifests"] {
            if let Some(serde_json::Value::Array(list)) = doc.get(key) {
                assert!(
                    list.iter().all(|v| v.is_object()),
                    "{key} entry not an object"
                );
            }
        }
        let field = doc.get("mediaType").and_then(|v| v.as_str());
        match content_type.map(str::trim).filter(|c| !c.is_empty()) {
            Some(_) => assert!(field.is_none_or(|f| f == p.media_type), "{field:?}"),
            None => assert!(
                field.is_some_and(|f| f
                    .split(';')
                    .next()
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case(p.media_type))),
                "{field:?}"
            ),
        }
    }
});
