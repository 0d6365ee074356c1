//! What a stored manifest's bytes say about it: registry:2 records nothing
//! but the bytes, so media type, artifact type, subject and annotations are
//! read back from the JSON, the way the guest derived them at push.

use crate::{Result, StorageError};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The fields of `ManifestInfo` that come from the manifest's content.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Described {
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<String>,
    pub annotations: Option<String>,
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Reads a manifest; `what` names it in the error for bytes that are not a
/// JSON object (a corrupt or foreign blob behind a revision link).
pub(super) fn describe(bytes: &[u8], what: &str) -> Result<Described> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| StorageError::Backend(format!("manifest {what} is not JSON: {e}")))?;
    let Value::Object(obj) = doc else {
        return Err(StorageError::Backend(format!(
            "manifest {what} is not a JSON object"
        )));
    };
    // Without `mediaType`, infer as registry:2 and the OCI spec do: the
    // fields present decide (OCI documents may omit it; schema 1 never has it).
    let media_type = match text(&obj, "mediaType") {
        Some(t) => t,
        None if obj.get("schemaVersion").and_then(Value::as_i64) == Some(1) => DOCKER_V1_SIGNED,
        None if obj.contains_key("manifests") => OCI_INDEX,
        None if obj.contains_key("config") || obj.contains_key("layers") => OCI_MANIFEST,
        None => {
            return Err(StorageError::Backend(format!(
                "manifest {what} has no recognisable media type"
            )));
        }
    };
    let is_image = matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST);
    let config_type = || {
        obj.get("config")
            .and_then(Value::as_object)
            .and_then(|c| text(c, "mediaType"))
    };
    let artifact_type = text(&obj, "artifactType")
        .or_else(|| if is_image { config_type() } else { None })
        .map(str::to_owned);
    let subject = obj
        .get("subject")
        .and_then(Value::as_object)
        .and_then(|s| text(s, "digest"))
        .map(str::to_owned);
    // Key order fixed (sorted), compact: the text the guest stores at push.
    let annotations = match obj.get("annotations").and_then(Value::as_object) {
        Some(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            Some(serde_json::to_string(&sorted).map_err(|e| StorageError::Backend(e.to_string()))?)
        }
        None => None,
    };
    Ok(Described {
        media_type: media_type.to_owned(),
        artifact_type,
        subject,
        annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(json: &str) -> Described {
        describe(json.as_bytes(), "test").expect("describe")
    }

    #[test]
    fn image_manifest_with_everything() {
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
    fn artifact_type_wins_over_config() {
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
    fn not_a_manifest() {
        for bad in ["", "[]", "not json", r#"{"schemaVersion":2}"#] {
            assert!(
                matches!(describe(bad.as_bytes(), "x"), Err(StorageError::Backend(_))),
                "{bad:?}"
            );
        }
    }
}
