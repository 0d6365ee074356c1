//! `GET /v2/<name>/referrers/<digest>[?artifactType=]` (end-12): an image
//! index of the manifests whose `subject` is `<digest>`.

use super::Call;
use crate::error;
use crate::http::{Body, Response};
use crate::storage::metadata::{self, ManifestInfo};
use berth_oci::ApiError;
use berth_oci::media_types::OCI_INDEX;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    /// A JSON object, `{}` when the manifest's was empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<&'a str, &'a str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<Descriptor<'a>>,
}

/// The referrers index. An unknown subject (or repository) is an empty
/// index, never a 404: the spec reads a 404 as "referrers API unsupported".
pub fn list(call: &Call) -> Result<Response, ApiError> {
    let (name, digest) = (call.name()?, call.digest()?);
    let filter = call.query.get("artifactType").filter(|a| !a.is_empty());
    let found = metadata::list_referrers(name, digest.as_str(), filter)?;
    let body = index_json(&found).map_err(|e| error::internal("referrers json", e))?;
    let resp = Response::new(200)
        .header("content-type", OCI_INDEX)
        .body(Body::Bytes(body));
    Ok(match filter {
        Some(_) => resp.header("oci-filters-applied", "artifactType"),
        None => resp,
    })
}

fn index_json(found: &[ManifestInfo]) -> serde_json::Result<Vec<u8>> {
    let manifests = found
        .iter()
        .map(|m| Descriptor {
            media_type: &m.media_type,
            digest: &m.digest,
            size: m.size,
            artifact_type: m.artifact_type.as_deref().filter(|a| !a.is_empty()),
            annotations: m.annotations.as_ref().map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect()
            }),
        })
        .collect();
    serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_shape() {
        let found = vec![
            ManifestInfo {
                digest: "sha256:aa".into(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 10,
                artifact_type: Some("application/x.sbom".into()),
                subject: Some("sha256:bb".into()),
                annotations: Some(vec![("k".into(), "v".into())]),
            },
            ManifestInfo {
                digest: "sha256:cc".into(),
                media_type: OCI_INDEX.into(),
                size: 5,
                artifact_type: None,
                subject: Some("sha256:bb".into()),
                annotations: None,
            },
            ManifestInfo {
                digest: "sha256:dd".into(),
                media_type: OCI_INDEX.into(),
                size: 5,
                artifact_type: None,
                subject: Some("sha256:bb".into()),
                annotations: Some(Vec::new()),
            },
        ];
        let v: serde_json::Value = serde_json::from_slice(&index_json(&found).unwrap()).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], OCI_INDEX);
        assert_eq!(v["manifests"][0]["artifactType"], "application/x.sbom");
        assert_eq!(v["manifests"][0]["annotations"]["k"], "v");
        assert_eq!(v["manifests"][0]["size"], 10);
        assert!(v["manifests"][1].get("artifactType").is_none());
        assert!(v["manifests"][1].get("annotations").is_none());
        assert_eq!(v["manifests"][2]["annotations"], serde_json::json!({}));
        let empty: serde_json::Value = serde_json::from_slice(&index_json(&[]).unwrap()).unwrap();
        assert_eq!(empty["manifests"], serde_json::json!([]));
    }
}
