//! The one manifest parser: decides a manifest's media type, checks its
//! schema, and extracts what a registry records about it (descriptors,
//! required content, subject, artifact type, annotations). The guest
//! validates pushes with [`parse`]; stores that keep only the bytes (the
//! registry:2 layout) read them back with [`describe`], over the same
//! document model.

use crate::digest::{Digest, is_digest_syntax};
use crate::error::ApiError;
use crate::media_types::{
    DOCKER_LIST, DOCKER_MANIFEST, DOCKER_V1_SIGNED, FOREIGN_LAYER_TYPES, OCI_INDEX, OCI_MANIFEST,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Largest manifest accepted. The spec asks registries to take at least
/// 4 MB; registry:2 also stops at 4 MiB.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// The two shapes a manifest can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Image manifest (OCI or Docker schema2): config + layers are blobs.
    Image,
    /// Index / manifest list: children are manifests.
    Index,
}

/// A platform an index entry is for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// One validated descriptor of a pushed manifest: its config and layers,
/// or an index's children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub urls: Vec<String>,
    pub platform: Option<Platform>,
}

/// What the registry needs to know about a pushed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub kind: Kind,
    /// The media type it is stored and served under.
    pub media_type: &'static str,
    /// Content that must already be in the repository: blobs (config and
    /// layers) for an image, manifests for an index. In document order,
    /// duplicates removed.
    pub required: Vec<Digest>,
    /// Config then layers for an image, the children of an index, in
    /// document order (foreign layers included).
    pub descriptors: Vec<Descriptor>,
    /// `artifactType`, else the config's media type for image manifests.
    pub artifact_type: Option<String>,
    /// Digest named by `subject`; deliberately not in `required` (the spec
    /// says a subject may be pushed after its referrers).
    pub subject: Option<String>,
    /// The `annotations` object, none when the manifest has no such field.
    pub annotations: Option<Annotations>,
}

/// What a stored manifest's bytes say about it, leniently: whatever a
/// registry stored (schema 1 included) is described, not judged.
#[derive(Debug, PartialEq, Eq)]
pub struct Described {
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
    pub annotations: Option<String>,
}

/// A manifest's top-level annotations as the WIT contract carries them:
/// key/value pairs sorted by key, each key once.
pub type Annotations = Vec<(String, String)>;

/// `annotations` as the text metadata stores record: a compact JSON object
/// with sorted keys, the same text [`describe`] gives for the same object.
pub fn annotations_to_json(annotations: &[(String, String)]) -> String {
    let map: BTreeMap<&str, &str> = annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // A map of strings serialises infallibly.
    serde_json::to_string(&map).unwrap_or_default()
}

/// Recorded annotations text back to pairs sorted by key; none when the
/// text is not a JSON object of strings, which no manifest we accept has.
pub fn annotations_from_json(text: &str) -> Option<Annotations> {
    let map = serde_json::from_str::<BTreeMap<String, String>>(text).ok()?;
    Some(map.into_iter().collect())
}

/// A descriptor as written; [`parse`] insists on the fields, [`describe`]
/// reads what is there.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    // A JSON integer ≥ 0 when present.
    size: Option<u64>,
    #[serde(default)]
    urls: Vec<String>,
    platform: Option<Platform>,
}

/// Fields of both shapes; which are required depends on the kind.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Object<RawDescriptor>>,
    layers: Option<Vec<Object<RawDescriptor>>>,
    manifests: Option<Vec<Object<RawDescriptor>>>,
    subject: Option<Object<RawDescriptor>>,
    annotations: Option<BTreeMap<String, serde_json::Value>>,
    /// Schema 1's layers (`{"blobSum": ...}`), read back from old stores.
    fs_layers: Option<Vec<Object<FsLayer>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsLayer {
    blob_sum: Option<String>,
}

impl Document {
    fn read(bytes: &[u8]) -> Result<Document, String> {
        serde_json::from_slice::<Object<Document>>(bytes)
            .map(|Object(doc)| doc)
            .map_err(|e| format!("invalid JSON: {e}"))
    }

    fn config_type(&self) -> Option<&str> {
        self.config
            .as_ref()
            .and_then(|c| c.media_type.as_deref())
            .filter(|m| !m.is_empty())
    }

    fn artifact_type(&self) -> Option<&str> {
        self.artifact_type.as_deref().filter(|a| !a.is_empty())
    }

    fn subject_digest(&self) -> Option<&str> {
        self.subject.as_ref().and_then(|s| s.digest.as_deref())
    }

    /// The annotations as compact JSON with sorted keys: the text a
    /// metadata store records and compares.
    fn annotations_text(&self) -> Option<String> {
        let map = self.annotations.as_ref()?;
        // A map of strings and JSON values serialises infallibly.
        serde_json::to_string(map).ok()
    }
}

/// A struct that must be written as a JSON object. serde's derived structs
/// also accept an array of the field values in declaration order, which no
/// other registry or client reads as a manifest or descriptor.
struct Object<T>(T);

impl<T> std::ops::Deref for Object<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapOnly<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for MapOnly<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(MapOnly(std::marker::PhantomData))
            .map(Object)
    }
}

fn invalid(why: impl Into<String>) -> ApiError {
    ApiError::ManifestInvalid(why.into())
}

/// Maps a media type string to one we store, ignoring parameters and case.
fn known_type(value: &str) -> Option<&'static str> {
    let essence = value.split(';').next().unwrap_or("").trim();
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST]
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(essence))
}

/// Parses and validates `bytes` pushed with `content_type`.
///
/// The `Content-Type` decides the type (spec: clients MUST set it to the
/// manifest's `mediaType`); a `mediaType` field that disagrees is invalid.
/// Without a `Content-Type` we fall back to the `mediaType` field, as
/// registry:2 does.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Parsed, ApiError> {
    let mut doc = Document::read(bytes).map_err(invalid)?;

    let media_type = match content_type.map(str::trim).filter(|c| !c.is_empty()) {
        Some(ct) => {
            let t = known_type(ct)
                .ok_or_else(|| invalid(format!("unsupported manifest media type {ct:?}")))?;
            if let Some(field) = &doc.media_type
                && field != t
            {
                return Err(invalid(format!(
                    "mediaType {field:?} does not match Content-Type {t:?}"
                )));
            }
            t
        }
        None => doc
            .media_type
            .as_deref()
            .and_then(known_type)
            .ok_or_else(|| invalid("no Content-Type and no known mediaType"))?,
    };

    if doc.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    // Docker schema2 documents always carry their mediaType.
    if matches!(media_type, DOCKER_MANIFEST | DOCKER_LIST) && doc.media_type.is_none() {
        return Err(invalid("Docker manifests must include mediaType"));
    }

    let kind = if matches!(media_type, OCI_INDEX | DOCKER_LIST) {
        Kind::Index
    } else {
        Kind::Image
    };
    let mut required: Vec<Digest> = Vec::new();
    let mut descriptors: Vec<Descriptor> = Vec::new();
    let mut take = |raw: &RawDescriptor, must_be_here: bool| -> Result<(), ApiError> {
        let d = complete(raw)?;
        if must_be_here {
            let digest = Digest::parse(&d.digest)
                // Any well-formed digest is valid JSON-wise, but only sha256
                // content can be stored here: another algorithm names
                // content this registry cannot hold.
                .map_err(|_| ApiError::ManifestBlobUnknown(d.digest.clone()))?;
            if !required.contains(&digest) {
                required.push(digest);
            }
        }
        descriptors.push(d);
        Ok(())
    };

    let artifact_type = match kind {
        Kind::Image => {
            if doc.manifests.is_some() {
                return Err(invalid("an image manifest has no manifests field"));
            }
            let config = doc
                .config
                .as_ref()
                .ok_or_else(|| invalid("missing config"))?;
            let layers = doc
                .layers
                .as_ref()
                .ok_or_else(|| invalid("missing layers"))?;
            take(config, true)?;
            for layer in layers {
                // Hosted elsewhere: need not (and usually cannot) be pushed
                // here, so it is neither checked nor referenced.
                let foreign = !layer.urls.is_empty()
                    && layer
                        .media_type
                        .as_deref()
                        .is_some_and(|t| FOREIGN_LAYER_TYPES.contains(&t));
                take(layer, !foreign)?;
            }
            doc.artifact_type().or(doc.config_type())
        }
        Kind::Index => {
            if doc.config.is_some() || doc.layers.is_some() {
                return Err(invalid("an index has no config or layers"));
            }
            let manifests = doc
                .manifests
                .as_ref()
                .ok_or_else(|| invalid("missing manifests"))?;
            for child in manifests {
                take(child, true)?;
            }
            doc.artifact_type()
        }
    };

    let artifact_type = artifact_type.map(str::to_owned);
    let subject = match &doc.subject {
        Some(s) => Some(complete(s)?.digest),
        None => None,
    };
    let annotations = match doc.annotations.take() {
        None => None,
        Some(map) => Some(
            map.into_iter()
                .map(|(key, value)| match value {
                    serde_json::Value::String(value) => Ok((key, value)),
                    _ => Err(invalid("annotation values must be strings")),
                })
                .collect::<Result<Annotations, ApiError>>()?,
        ),
    };

    Ok(Parsed {
        kind,
        media_type,
        required,
        descriptors,
        artifact_type,
        subject,
        annotations,
    })
}

/// A descriptor with every field the spec requires, its digest well formed.
fn complete(raw: &RawDescriptor) -> Result<Descriptor, ApiError> {
    let missing = |field: &str| invalid(format!("descriptor without {field}"));
    let media_type = raw.media_type.clone().ok_or_else(|| missing("mediaType"))?;
    let digest = raw.digest.clone().ok_or_else(|| missing("digest"))?;
    let size = raw.size.ok_or_else(|| missing("size"))?;
    if !is_digest_syntax(&digest) {
        return Err(invalid(format!("invalid descriptor digest {digest:?}")));
    }
    Ok(Descriptor {
        media_type,
        digest,
        size,
        urls: raw.urls.clone(),
        platform: raw.platform.clone(),
    })
}

/// Reads back a stored manifest. Without `mediaType`, the type is inferred
/// as registry:2 and the OCI spec do: the fields present decide (OCI
/// documents may omit it; schema 1 never has it).
pub fn describe(bytes: &[u8]) -> Result<Described, String> {
    let doc = Document::read(bytes)?;
    let media_type = match doc.media_type.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => t,
        None if doc.schema_version == Some(1) => DOCKER_V1_SIGNED,
        None if doc.manifests.is_some() => OCI_INDEX,
        None if doc.config.is_some() || doc.layers.is_some() => OCI_MANIFEST,
        None => return Err("no recognisable media type".to_owned()),
    };
    let is_image = matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST);
    let artifact_type = doc
        .artifact_type()
        .or(if is_image { doc.config_type() } else { None });
    Ok(Described {
        media_type: media_type.to_owned(),
        artifact_type: artifact_type.map(str::to_owned),
        subject: doc
            .subject_digest()
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        annotations: doc.annotations_text(),
    })
}

/// The digests a stored manifest needs in the store, read leniently as
/// registry:2's collector reads them: an image's config and layers (layers
/// hosted elsewhere aside, as a push does), an index's children, a schema
/// 1 manifest's layers; in document order, each once. Entries without a
/// valid digest are skipped; bytes that are not a JSON object name nothing.
pub fn stored_references(bytes: &[u8]) -> Vec<String> {
    let Ok(doc) = Document::read(bytes) else {
        return Vec::new();
    };
    let hosted_elsewhere = |d: &RawDescriptor| {
        !d.urls.is_empty()
            && d.media_type
                .as_deref()
                .is_some_and(|t| FOREIGN_LAYER_TYPES.contains(&t))
    };
    let descriptors = doc
        .config
        .iter()
        .chain(doc.layers.iter().flatten().filter(|d| !hosted_elsewhere(d)));
    let digests = descriptors
        .chain(doc.manifests.iter().flatten())
        .filter_map(|d| d.digest.as_deref())
        .chain(
            doc.fs_layers
                .iter()
                .flatten()
                .filter_map(|l| l.blob_sum.as_deref()),
        );
    let mut out: Vec<String> = Vec::new();
    for digest in digests {
        if Digest::parse_any(digest).is_ok() && !out.iter().any(|d| d == digest) {
            out.push(digest.to_owned());
        }
    }
    out
}

/// Whether a manifest stored as `media_type` may be served to a client that
/// sent these `Accept` header values. No `Accept` (or an empty one) accepts
/// anything; otherwise a listed type, `*/*` or `application/*` must match.
/// Entries with `q=0` are refusals (RFC 9110 §12.4.2) and never match.
pub fn accepts<'a>(accept_headers: impl IntoIterator<Item = &'a str>, media_type: &str) -> bool {
    let mut any_listed = false;
    for header in accept_headers {
        for entry in header.split(',') {
            let mut parts = entry.split(';');
            let range = parts.next().unwrap_or("").trim();
            if range.is_empty() {
                continue;
            }
            any_listed = true;
            let refused = parts.any(|p| {
                let p = p.trim();
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q")
                        && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                })
            });
            if refused {
                continue;
            }
            let matches = range == "*/*"
                || range.eq_ignore_ascii_case(media_type)
                || (range.eq_ignore_ascii_case("application/*")
                    && media_type.starts_with("application/"));
            if matches {
                return true;
            }
        }
    }
    !any_listed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}},
                      {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}}]
            {extra}}}"#,
            hex('a'),
            hex('b'),
            hex('a')
        )
    }

    #[test]
    fn image_manifest() {
        let extra = format!(
            r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}},"annotations":{{"b":"2","a":"1"}}"#,
            hex('c')
        );
        let p = parse(Some(OCI_MANIFEST), image(&extra).as_bytes()).unwrap();
        assert_eq!(p.kind, Kind::Image);
        assert_eq!(p.media_type, OCI_MANIFEST);
        let req: Vec<_> = p.required.iter().map(|d| d.as_str().to_owned()).collect();
        assert_eq!(req, [hex('a'), hex('b')]);
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(p.subject, Some(hex('c')));
        let pairs = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
        assert_eq!(p.annotations, Some(pairs));
        let none = parse(Some(OCI_MANIFEST), image("").as_bytes()).unwrap();
        assert_eq!(none.annotations, None);
        let empty = parse(Some(OCI_MANIFEST), image(r#","annotations":{}"#).as_bytes()).unwrap();
        assert_eq!(empty.annotations, Some(Vec::new()));
    }

    #[test]
    fn annotations_text_round_trip() {
        let pairs = vec![("a".into(), "1".into()), ("b\"".into(), "2".into())];
        let text = annotations_to_json(&pairs);
        assert_eq!(text, r#"{"a":"1","b\"":"2"}"#);
        assert_eq!(annotations_from_json(&text), Some(pairs));
        assert_eq!(annotations_to_json(&[]), "{}");
        assert_eq!(annotations_from_json("{}"), Some(Vec::new()));
        // The text a stored manifest's bytes give is the text pairs give.
        let body = image(r#","annotations":{"b":"2","a":"1"}"#);
        let parsed = parse(Some(OCI_MANIFEST), body.as_bytes()).unwrap();
        let pairs = parsed.annotations.expect("annotations");
        assert_eq!(d(&body).annotations, Some(annotations_to_json(&pairs)));
        for bad in ["not json", "[]", r#"{"a":1}"#] {
            assert_eq!(annotations_from_json(bad), None, "{bad}");
        }
    }

    #[test]
    fn artifact_type_wins() {
        let p = parse(
            Some(OCI_MANIFEST),
            image(r#","artifactType":"application/x.sbom""#).as_bytes(),
        )
        .unwrap();
        assert_eq!(p.artifact_type.as_deref(), Some("application/x.sbom"));
    }

    #[test]
    fn content_type_rules() {
        let body = image("");
        // Parameters and case are ignored.
        assert!(
            parse(
                Some("Application/VND.oci.image.manifest.v1+json; charset=utf-8"),
                body.as_bytes()
            )
            .is_ok()
        );
        // Disagreeing mediaType.
        assert!(matches!(
            parse(Some(OCI_INDEX), body.as_bytes()),
            Err(ApiError::ManifestInvalid(_))
        ));
        // Unknown Content-Type.
        assert!(matches!(
            parse(Some("application/json"), body.as_bytes()),
            Err(ApiError::ManifestInvalid(_))
        ));
        // No Content-Type: fall back to mediaType.
        assert_eq!(
            parse(None, body.as_bytes()).unwrap().media_type,
            OCI_MANIFEST
        );
        let no_media_type = body.replace(&format!(r#""mediaType":"{OCI_MANIFEST}","#), "");
        assert!(parse(Some(OCI_MANIFEST), no_media_type.as_bytes()).is_ok());
        assert!(parse(None, no_media_type.as_bytes()).is_err());
        // Docker types require the field.
        assert!(parse(Some(DOCKER_MANIFEST), no_media_type.as_bytes()).is_err());
        let docker = body.replace(OCI_MANIFEST, DOCKER_MANIFEST);
        assert_eq!(
            parse(Some(DOCKER_MANIFEST), docker.as_bytes())
                .unwrap()
                .media_type,
            DOCKER_MANIFEST
        );
    }

    #[test]
    fn invalid_documents() {
        for bad in [
            "not json".to_owned(),
            image("").replace(r#""schemaVersion":2"#, r#""schemaVersion":1"#),
            image("").replace(r#""schemaVersion":2,"#, ""),
            image("").replace(r#""size":2"#, r#""size":-2"#),
            image("").replace(r#""size":2"#, r#""size":"2""#),
            image("").replace(&hex('b'), "sha256:not/hex"),
            format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","layers":[]}}"#),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{}","size":1}}}}"#,
                hex('a')
            ),
            image(r#","annotations":{"a":1}"#),
            image(r#","subject":{"mediaType":"x","digest":"bad","size":1}"#),
        ] {
            assert!(
                matches!(
                    parse(Some(OCI_MANIFEST), bad.as_bytes()),
                    Err(ApiError::ManifestInvalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn arrays_are_not_objects() {
        // serde's derived structs also accept a JSON array of the fields in
        // declaration order; no other registry or client reads that as a
        // manifest.
        let desc = format!(r#"{{"mediaType":"x","digest":"{}","size":2}}"#, hex('a'));
        let whole = format!(r#"[2,"{OCI_MANIFEST}",null,{desc},[],null,null,null]"#);
        let config = image("").replacen(
            &format!(r#""config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}}"#, hex('a')),
            &format!(r#""config":["x","{}",2]"#, hex('a')),
            1,
        );
        assert_ne!(config, image(""));
        let layer = image("").replacen(
            &format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}}"#, hex('b')),
            &format!(r#"["x","{}",3]"#, hex('b')),
            1,
        );
        assert_ne!(layer, image(""));
        let subject = image(&format!(r#","subject":["x","{}",9]"#, hex('c')));
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[["x","{}",5]]}}"#,
            hex('d')
        );
        for (content_type, bad) in [
            (OCI_MANIFEST, whole),
            (OCI_MANIFEST, config),
            (OCI_MANIFEST, layer),
            (OCI_MANIFEST, subject),
            (OCI_INDEX, index),
        ] {
            assert!(
                matches!(
                    parse(Some(content_type), bad.as_bytes()),
                    Err(ApiError::ManifestInvalid(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unsupported_algorithm_is_unknown_content() {
        let body = image("").replace(&hex('b'), &format!("sha512:{}", "b".repeat(128)));
        assert!(matches!(
            parse(Some(OCI_MANIFEST), body.as_bytes()),
            Err(ApiError::ManifestBlobUnknown(_))
        ));
    }

    #[test]
    fn foreign_layers_are_not_required() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
            "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":2}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":3,"urls":["https://example.com/x"]}}]}}"#,
            hex('a'),
            hex('f')
        );
        let p = parse(Some(DOCKER_MANIFEST), body.as_bytes()).unwrap();
        assert_eq!(p.required.len(), 1);
    }

    #[test]
    fn index() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            hex('d')
        );
        let p = parse(Some(OCI_INDEX), body.as_bytes()).unwrap();
        assert_eq!(p.kind, Kind::Index);
        assert_eq!(p.required[0].as_str(), hex('d'));
        assert_eq!(p.artifact_type, None);
        let list = body.replace(OCI_INDEX, DOCKER_LIST);
        assert_eq!(
            parse(Some(DOCKER_LIST), list.as_bytes()).unwrap().kind,
            Kind::Index
        );
        // An index is not an image manifest.
        assert!(
            parse(
                Some(OCI_MANIFEST),
                body.replace(OCI_INDEX, OCI_MANIFEST).as_bytes()
            )
            .is_err()
        );
        let missing = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"}}"#);
        assert!(parse(Some(OCI_INDEX), missing.as_bytes()).is_err());
    }

    #[test]
    fn too_big_is_not_parsed_here() {
        // The size limit is enforced while reading the body (manifests.rs);
        // parse itself is size-agnostic.
        assert_eq!(MAX_MANIFEST_BYTES, 4 * 1024 * 1024);
    }

    #[test]
    fn accept_negotiation() {
        assert!(accepts([], OCI_MANIFEST));
        assert!(accepts([""], OCI_MANIFEST));
        assert!(accepts(["*/*"], OCI_MANIFEST));
        assert!(accepts(["application/*"], OCI_MANIFEST));
        assert!(accepts([DOCKER_MANIFEST, OCI_MANIFEST], OCI_MANIFEST));
        assert!(accepts(
            [&format!("{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.5")[..]],
            OCI_MANIFEST
        ));
        assert!(!accepts([DOCKER_MANIFEST], OCI_MANIFEST));
        assert!(!accepts([&format!("{OCI_MANIFEST};q=0")[..]], OCI_MANIFEST));
        assert!(!accepts(["text/*"], OCI_MANIFEST));
    }

    // `describe`: what stored bytes say.

    fn d(json: &str) -> Described {
        describe(json.as_bytes()).expect("describe")
    }

    #[test]
    fn described_image_manifest_with_everything() {
        let got = d(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":2},
            "layers":[],"subject":{"mediaType":"x","digest":"sha256:s","size":1},
            "annotations":{"b":"2","a":"1"}}"#,
        );
        assert_eq!(
            got,
            Described {
                media_type: OCI_MANIFEST.into(),
                artifact_type: Some("application/vnd.oci.image.config.v1+json".into()),
                subject: Some("sha256:s".into()),
                annotations: Some(r#"{"a":"1","b":"2"}"#.into()),
            }
        );
    }

    #[test]
    fn described_artifact_type_wins_over_config() {
        let got = d(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "artifactType":"application/x.sig","config":{"mediaType":"application/vnd.oci.empty.v1+json"},"layers":[]}"#,
        );
        assert_eq!(got.artifact_type.as_deref(), Some("application/x.sig"));
    }

    #[test]
    fn docker_image_uses_config_type_but_index_does_not() {
        let docker = d(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json"},"layers":[]}"#,
        );
        assert_eq!(
            docker.artifact_type.as_deref(),
            Some("application/vnd.docker.container.image.v1+json")
        );
        let index = d(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        );
        assert_eq!(index.artifact_type, None);
        assert_eq!(index.annotations, None);
    }

    #[test]
    fn media_type_inferred_when_absent() {
        assert_eq!(
            d(r#"{"schemaVersion":2,"manifests":[]}"#).media_type,
            OCI_INDEX
        );
        let image = d(r#"{"schemaVersion":2,"config":{"mediaType":"a/b"},"layers":[]}"#);
        assert_eq!(image.media_type, OCI_MANIFEST);
        assert_eq!(image.artifact_type.as_deref(), Some("a/b"));
        assert_eq!(
            d(r#"{"schemaVersion":1,"name":"x","fsLayers":[],"signatures":[]}"#).media_type,
            DOCKER_V1_SIGNED
        );
    }

    #[test]
    fn described_not_a_manifest() {
        for bad in ["", "[]", "not json", r#"{"schemaVersion":2}"#] {
            assert!(describe(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stored_references_read_leniently() {
        let image = br#"{"schemaVersion":2,"config":{"digest":"sha256:c0"},
            "layers":[{"digest":"sha256:11"},{"digest":"sha256:11"},{"nodigest":1},
                      {"digest":"not a digest"},
                      {"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                       "digest":"sha256:f0","urls":["https://elsewhere"]}]}"#;
        assert_eq!(stored_references(image), ["sha256:c0", "sha256:11"]);
        let index = br#"{"manifests":[{"digest":"sha256:a1"},{"digest":"sha256:a2"}]}"#;
        assert_eq!(stored_references(index), ["sha256:a1", "sha256:a2"]);
        let schema1 = br#"{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:b1"}]}"#;
        assert_eq!(stored_references(schema1), ["sha256:b1"]);
        assert!(stored_references(b"not json").is_empty());
        assert!(stored_references(b"[1,2]").is_empty());
    }
}
