//! Which repository and tags each image of an archive goes to, from
//! `index.json`'s annotations (or `manifest.json`'s `RepoTags`), with the
//! registry host dropped and `--repo-prefix` put in front.

use crate::transfer::archive::layout::{self, CONTAINERD_NAME, ImageName, REF_NAME};
use berth_oci::grammar::{is_valid_name, is_valid_tag};

/// How names are given on the command line.
pub struct Naming<'a> {
    /// `--repo`: the repository of images named by a tag alone.
    pub repo: Option<&'a str>,
    /// `--repo-prefix`.
    pub prefix: Option<&'a str>,
}

/// Why an image cannot be named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    #[error(
        "its name {0:?} is only a tag and no {CONTAINERD_NAME} annotation names the \
         repository: give --repo NAME"
    )]
    TagOnly(String),
    #[error("it has no name: give --repo NAME")]
    NoName,
    #[error("its name: {0}")]
    Invalid(#[from] layout::NameError),
    #[error("{0:?} is not a repository name Berth accepts")]
    Repo(String),
}

/// Where an image goes: a repository, and a tag unless it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub repo: String,
    pub tag: Option<String>,
}

/// What an `index.json` entry's annotations say about its name.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    Image(Target),
    /// No name at all: a referrer (when its manifest has a subject), or an
    /// image `--repo` must name.
    Unnamed,
}

impl Naming<'_> {
    /// The name of an `index.json` entry.
    pub fn entry(&self, entry: &layout::Entry) -> Result<Named, NamingError> {
        let ref_name = entry.annotations.get(REF_NAME).map(String::as_str);
        let full = entry.annotations.get(CONTAINERD_NAME).map(String::as_str);
        match (ref_name, full) {
            // A tag alone (`oci:DIR:v1`, `docker save`'s `latest`).
            (Some(tag), _) if is_tag_only(tag) => match full {
                Some(full) => {
                    let name = parse(full)?;
                    let tag = name.tag.clone().unwrap_or_else(|| tag.to_owned());
                    self.target(&name.repo, Some(tag)).map(Named::Image)
                }
                None => match self.repo {
                    Some(repo) => self.target(repo, Some(tag.to_owned())).map(Named::Image),
                    None => Err(NamingError::TagOnly(tag.to_owned())),
                },
            },
            (Some(name), _) | (None, Some(name)) => {
                let name = parse(name)?;
                self.target(&name.repo, name.tag).map(Named::Image)
            }
            (None, None) => Ok(Named::Unnamed),
        }
    }

    /// An image without a name goes to `--repo`, untagged.
    pub fn unnamed(&self) -> Result<Target, NamingError> {
        match self.repo {
            Some(repo) => self.target(repo, None),
            None => Err(NamingError::NoName),
        }
    }

    /// A `docker save` `RepoTags` entry.
    pub fn repo_tag(&self, text: &str) -> Result<Target, NamingError> {
        let name = parse(text)?;
        self.target(&name.repo, name.tag)
    }

    fn target(&self, repo: &str, tag: Option<String>) -> Result<Target, NamingError> {
        let repo = match self.prefix.map(|p| p.trim_matches('/')) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}/{repo}"),
            _ => repo.to_owned(),
        };
        if !is_valid_name(&repo) {
            return Err(NamingError::Repo(repo));
        }
        Ok(Target { repo, tag })
    }
}

/// A full reference, its registry host dropped.
fn parse(text: &str) -> Result<ImageName, NamingError> {
    Ok(ImageName::parse_reference(text)?)
}

/// `v1`, `latest`: what skopeo writes for `oci-archive:x.tar:v1`.
fn is_tag_only(name: &str) -> bool {
    !name.contains('/') && !name.contains(':') && is_valid_tag(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn entry(annotations: &[(&str, &str)]) -> layout::Entry {
        layout::Entry {
            media_type: "m".into(),
            digest: "d".into(),
            size: 1,
            artifact_type: None,
            platform: None,
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn target(repo: &str, tag: &str) -> Named {
        Named::Image(Target {
            repo: repo.into(),
            tag: Some(tag.into()),
        })
    }

    #[test]
    fn names_come_from_ref_name_then_containerd_then_repo() {
        let plain = Naming {
            repo: None,
            prefix: None,
        };
        assert_eq!(
            plain.entry(&entry(&[(REF_NAME, "app:1")])),
            Ok(target("app", "1"))
        );
        assert_eq!(
            plain.entry(&entry(&[
                (REF_NAME, "latest"),
                (CONTAINERD_NAME, "docker.io/library/busybox:latest")
            ])),
            Ok(target("library/busybox", "latest"))
        );
        assert_eq!(
            plain.entry(&entry(&[(CONTAINERD_NAME, "localhost:5000/a/b:2")])),
            Ok(target("a/b", "2"))
        );
        let only_tag = plain.entry(&entry(&[(REF_NAME, "v1")]));
        assert_eq!(only_tag, Err(NamingError::TagOnly("v1".into())));
        assert!(
            NamingError::TagOnly("v1".into())
                .to_string()
                .contains("--repo")
        );
        assert_eq!(plain.entry(&entry(&[])), Ok(Named::Unnamed));
        let repo = Naming {
            repo: Some("mine"),
            prefix: Some("mirror"),
        };
        assert_eq!(
            repo.entry(&entry(&[(REF_NAME, "v1")])),
            Ok(target("mirror/mine", "v1"))
        );
        assert_eq!(
            repo.repo_tag("docker.io/library/busybox:1"),
            Ok(Target {
                repo: "mirror/library/busybox".into(),
                tag: Some("1".into())
            })
        );
        assert!(plain.entry(&entry(&[(REF_NAME, "UPPER:1")])).is_err());
    }
}
