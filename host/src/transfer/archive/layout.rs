//! The OCI image layout (image-spec `image-layout.md`): an `oci-layout`
//! file, `index.json` naming the images, and every blob at
//! `blobs/<algorithm>/<encoded>`; and the names images carry in
//! `index.json`'s annotations.

use berth_oci::Digest;
use berth_oci::grammar::{is_valid_name, is_valid_tag};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const OCI_LAYOUT: &str = "oci-layout";
pub const OCI_LAYOUT_BODY: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
pub const INDEX_JSON: &str = "index.json";
/// The name skopeo's and podman's `oci:DIR:NAME` look an image up by.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The whole image name containerd and `docker save` (Docker 25+) write.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// `index.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Entry>,
}

/// One manifest `index.json` names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    pub fn new(manifests: Vec<Entry>) -> Self {
        Self {
            schema_version: 2,
            media_type: Some(berth_oci::media_types::OCI_INDEX.to_owned()),
            manifests,
        }
    }
}

/// Where blob `digest` lives in a layout.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.encoded())
}

/// The digest a layout path names (`blobs/sha256/<hex>`, `./` allowed),
/// `None` for any other path or an algorithm Berth does not store.
pub fn blob_digest(path: &str) -> Option<Digest> {
    let rest = path.trim_start_matches("./").strip_prefix("blobs/")?;
    let (algorithm, encoded) = rest.split_once('/')?;
    Digest::parse(&format!("{algorithm}:{encoded}")).ok()
}

/// A path inside an archive, as the reader compares them: no leading
/// `./` or `/`.
pub fn normalize(path: &str) -> String {
    let mut p = path;
    loop {
        let trimmed = p.trim_start_matches("./").trim_start_matches('/');
        if trimmed == p {
            return p.to_owned();
        }
        p = trimmed;
    }
}

/// An image name: `repo:tag`, `repo@digest`, or `repo` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Why a name cannot name an image in Berth.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{0:?} is not a repository name Berth accepts")]
    Repo(String),
    #[error("{0:?} is not a valid tag")]
    Tag(String),
    #[error("{0:?} is not a sha256 digest")]
    Digest(String),
}

impl ImageName {
    /// `repo:tag` (or `repo@digest`, or `repo`) as written on the command
    /// line: no registry host.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                Digest::parse(digest).map_err(|_| NameError::Digest(digest.to_owned()))?;
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        // A tag follows the last ':' after the last '/'.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repo, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        if !is_valid_name(repo) {
            return Err(NameError::Repo(repo.to_owned()));
        }
        if let Some(tag) = tag
            && !is_valid_tag(tag)
        {
            return Err(NameError::Tag(tag.to_owned()));
        }
        Ok(Self {
            repo: repo.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// A full image reference as other tools write it, the registry host
    /// dropped: `docker.io/library/busybox:latest` is
    /// `library/busybox:latest`, `localhost:5000/app:1` is `app:1`.
    pub fn parse_reference(text: &str) -> Result<Self, NameError> {
        Self::parse(strip_registry(text))
    }

    /// `repo:tag`, `repo@digest` or `repo`.
    pub fn display(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => format!("{}:{tag}", self.repo),
            (None, Some(digest)) => format!("{}@{digest}", self.repo),
            (None, None) => self.repo.clone(),
        }
    }
}

/// `reference` without its registry host: the first component, when
/// another follows and it looks like a host (a `.` or `:` in it, or
/// `localhost`), as docker decides.
pub fn strip_registry(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            rest
        }
        _ => reference,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(repo: &str, tag: Option<&str>) -> ImageName {
        ImageName {
            repo: repo.into(),
            tag: tag.map(Into::into),
            digest: None,
        }
    }

    #[test]
    fn names_split_at_the_last_colon_after_the_last_slash() {
        assert_eq!(ImageName::parse("app:1"), Ok(name("app", Some("1"))));
        assert_eq!(ImageName::parse("a/b/c"), Ok(name("a/b/c", None)));
        let d = format!("sha256:{}", "a".repeat(64));
        let by_digest = ImageName::parse(&format!("team/app@{d}")).expect("digest");
        assert_eq!(by_digest.repo, "team/app");
        assert_eq!(by_digest.digest.as_deref(), Some(d.as_str()));
        assert!(matches!(
            ImageName::parse("Upper:1"),
            Err(NameError::Repo(_))
        ));
        assert!(matches!(ImageName::parse("app:-x"), Err(NameError::Tag(_))));
        assert!(matches!(
            ImageName::parse("app@sha256:zz"),
            Err(NameError::Digest(_))
        ));
    }

    #[test]
    fn registry_hosts_are_dropped() {
        let parse = |s| ImageName::parse_reference(s).expect(s).display();
        assert_eq!(
            parse("docker.io/library/busybox:latest"),
            "library/busybox:latest"
        );
        assert_eq!(parse("localhost:5000/app:1"), "app:1");
        assert_eq!(parse("localhost/app:1"), "app:1");
        assert_eq!(parse("team/app:1"), "team/app:1");
        assert_eq!(parse("busybox:latest"), "busybox:latest");
    }

    #[test]
    fn blob_paths_round_trip() {
        let d = Digest::of(b"x");
        assert_eq!(blob_digest(&blob_path(&d)), Some(d.clone()));
        assert_eq!(blob_digest(&format!("./{}", blob_path(&d))), Some(d));
        assert_eq!(blob_digest("blobs/sha256/short"), None);
        assert_eq!(blob_digest("index.json"), None);
        assert_eq!(normalize("./blobs/x"), "blobs/x");
        assert_eq!(normalize("/./a"), "a");
    }
}
