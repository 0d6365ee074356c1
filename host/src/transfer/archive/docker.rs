//! `docker save`'s `manifest.json` (the legacy format `docker load`
//! reads: per image a config file, its tags and its layer files), and
//! turning an image of that format into an OCI image manifest.

use berth_oci::Digest;
use serde::{Deserialize, Serialize};

pub const MANIFEST_JSON: &str = "manifest.json";
/// The config's media type in the manifests made from a legacy archive.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `layer.tar` files are uncompressed tars.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// One image of `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    /// Path of the config file in the archive.
    pub config: String,
    /// `repo:tag` names, possibly with a registry host; none for an
    /// untagged image.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Paths of the layer files, base first.
    pub layers: Vec<String>,
}

/// Reads `manifest.json`.
pub fn parse_manifest(bytes: &[u8]) -> Result<Vec<Image>, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{MANIFEST_JSON} is not valid: {e}"))
}

/// The part of an image config that says which layers it is made of.
#[derive(Deserialize)]
struct Config {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// Why a legacy image cannot become an OCI manifest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LegacyError {
    #[error("the config is not valid: {0}")]
    Config(String),
    #[error("the config names {config} layers, manifest.json {listed}")]
    LayerCount { config: usize, listed: usize },
    /// Layer `index` (from 0) does not hash to the config's diff_id.
    #[error("layer {} hashes to {actual}, the config says {expected}", .index + 1)]
    Layer {
        index: usize,
        actual: String,
        expected: String,
    },
}

/// The OCI image manifest for a legacy image whose config is
/// `config` and whose layer files hash to `layers` (digest, size), in
/// order. The config's `rootfs.diff_ids` name the uncompressed layers,
/// which `layer.tar` files are: each must match, which verifies them.
pub fn oci_manifest(config: &[u8], layers: &[(Digest, u64)]) -> Result<Vec<u8>, LegacyError> {
    let parsed: Config =
        serde_json::from_slice(config).map_err(|e| LegacyError::Config(e.to_string()))?;
    let diff_ids = parsed.rootfs.diff_ids;
    if diff_ids.len() != layers.len() {
        return Err(LegacyError::LayerCount {
            config: diff_ids.len(),
            listed: layers.len(),
        });
    }
    for (index, ((digest, _), diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
        if digest.as_str() != diff_id {
            return Err(LegacyError::Layer {
                index,
                actual: digest.to_string(),
                expected: diff_id.clone(),
            });
        }
    }
    let descriptor = |media_type, digest: &Digest, size| serde_json::json!({"mediaType": media_type, "digest": digest.as_str(), "size": size});
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_oci::media_types::OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &Digest::of(config), config.len() as u64),
        "layers": layers.iter().map(|(d, s)| descriptor(OCI_LAYER_TAR, d, *s)).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&manifest).map_err(|e| LegacyError::Config(e.to_string()))
}

/// Where a symlink at `link` pointing at `target` leads, inside the
/// archive (legacy `docker save` links a repeated layer to its first
/// copy: `<id>/layer.tar -> ../<other>/layer.tar`).
pub fn resolve_link(link: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        link.split('/').collect()
    };
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_images_become_oci_manifests_checked_against_diff_ids() {
        let layer = Digest::of(b"layer");
        let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#);
        let bytes = oci_manifest(config.as_bytes(), &[(layer.clone(), 5)]).expect("manifest");
        let parsed = berth_oci::manifest::parse(None, &bytes).expect("parses");
        assert_eq!(parsed.required[0], Digest::of(config.as_bytes()));
        assert_eq!(parsed.descriptors[1].media_type, OCI_LAYER_TAR);
        let wrong = oci_manifest(config.as_bytes(), &[(Digest::of(b"other"), 5)]);
        assert!(matches!(wrong, Err(LegacyError::Layer { index: 0, .. })));
        assert!(oci_manifest(config.as_bytes(), &[]).is_err());
    }

    #[test]
    fn links_resolve_inside_the_archive() {
        assert_eq!(resolve_link("b/layer.tar", "../a/layer.tar"), "a/layer.tar");
        assert_eq!(resolve_link("b/layer.tar", "x.tar"), "b/x.tar");
        assert_eq!(resolve_link("layer.tar", "/a/x"), "a/x");
    }

    #[test]
    fn manifest_json_reads() {
        let images =
            parse_manifest(br#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l/layer.tar"]}]"#)
                .expect("parses");
        assert_eq!(images[0].layers, ["l/layer.tar"]);
        assert!(parse_manifest(b"{}").is_err());
    }
}
