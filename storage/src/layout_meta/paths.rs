//! Every object key the metadata uses, in one place (distribution's
//! `registry/storage/paths.go`, for the part of it Berth reads and writes).
//!
//! Under `docker/registry/v2/`, as registry:2 lays it out:
//! - `blobs/<alg>/<2 chars>/<encoded>/data`: blob and manifest bytes
//!   (written by the blob store; read here for manifests);
//! - `repositories/<name>/_layers/<alg>/<encoded>/link`: a blob linked into
//!   the repository;
//! - `repositories/<name>/_manifests/revisions/<alg>/<encoded>/link`: a
//!   manifest of the repository;
//! - `repositories/<name>/_manifests/tags/<tag>/current/link`: what the tag
//!   points at, and `.../tags/<tag>/index/<alg>/<encoded>/link`: every
//!   manifest it ever pointed at (registry:2 writes these; nothing reads them
//!   but its garbage collector);
//! - `repositories/<name>/_referrers/<alg>/<subject>/<alg>/<encoded>/link`:
//!   Berth's own referrers index (registry:2 has none and skips `_`
//!   directories);
//! - `repositories/<name>/_berth/origin`: the upstream registry (its URL)
//!   the repository is a pull-through cache of; Berth's own too.
//!
//! A link holds the digest it names as plain text, without a newline.
//!
//! Outside registry:2's tree, what its layout cannot express:
//! - `berth/upload-owners/<id>`: the repository an upload session belongs to;
//! - `berth/repositories/<name>/_created`: a repository Berth created before
//!   it held anything (an upload was begun).

use super::names::{Repo, Tag};
use crate::Digest;
use object_store::path::Path;

pub(super) const MANIFESTS: &str = "_manifests";
pub(super) const LAYERS: &str = "_layers";
const V2: [&str; 3] = ["docker", "registry", "v2"];
const LINK: &str = "link";
const MARKER: &str = "_created";

fn path<'a>(parts: impl IntoIterator<Item = &'a str>) -> Path {
    Path::from_iter(parts)
}

/// `docker/registry/v2/repositories`, the root of the catalog walk.
pub(super) fn repositories_root() -> Path {
    path(V2.into_iter().chain(["repositories"]))
}

/// A directory under the repositories root, by its `/`-separated name.
pub(super) fn repo_dir(repo: Repo<'_>) -> Path {
    path(
        V2.into_iter()
            .chain(["repositories"])
            .chain(repo.components()),
    )
}

pub(super) fn layer_link(repo: Repo<'_>, d: &Digest) -> Path {
    join(&repo_dir(repo), [LAYERS, d.algorithm(), d.encoded(), LINK])
}

pub(super) fn revision_link(repo: Repo<'_>, d: &Digest) -> Path {
    join(
        &repo_dir(repo),
        [MANIFESTS, "revisions", d.algorithm(), d.encoded(), LINK],
    )
}

pub(super) fn tags_dir(repo: Repo<'_>) -> Path {
    join(&repo_dir(repo), [MANIFESTS, "tags"])
}

pub(super) fn tag_dir(repo: Repo<'_>, tag: Tag<'_>) -> Path {
    join(&tags_dir(repo), [tag.as_str()])
}

pub(super) fn tag_current(repo: Repo<'_>, tag: Tag<'_>) -> Path {
    join(&tag_dir(repo, tag), ["current", LINK])
}

pub(super) fn tag_index_link(repo: Repo<'_>, tag: Tag<'_>, d: &Digest) -> Path {
    join(
        &tag_dir(repo, tag),
        ["index", d.algorithm(), d.encoded(), LINK],
    )
}

/// The tag whose current link `key` is, for a key under [`tags_dir`];
/// `None` for index entries and foreign objects.
pub(super) fn tag_of_current(dir: &Path, key: &Path) -> Option<String> {
    let parts: Vec<_> = key.prefix_match(dir)?.collect();
    match parts.as_slice() {
        [tag, current, link] if current.as_ref() == "current" && link.as_ref() == LINK => {
            let tag = tag.as_ref();
            Tag::parse(tag).map(|_| tag.to_owned())
        }
        _ => None,
    }
}

/// The upstream registry `repo` caches, when it is a pull-through cache.
pub(super) fn origin(repo: Repo<'_>) -> Path {
    join(&repo_dir(repo), ["_berth", "origin"])
}

/// Where the referrers of `subject` are indexed.
pub(super) fn referrers_dir(repo: Repo<'_>, subject: &Digest) -> Path {
    join(
        &repo_dir(repo),
        ["_referrers", subject.algorithm(), subject.encoded()],
    )
}

pub(super) fn referrer_link(repo: Repo<'_>, subject: &Digest, d: &Digest) -> Path {
    join(
        &referrers_dir(repo, subject),
        [d.algorithm(), d.encoded(), LINK],
    )
}

/// The digest a link under [`referrers_dir`] names, read off its key
/// (`.../<alg>/<encoded>/link`); `None` for a foreign object.
pub(super) fn referrer_of(dir: &Path, link: &Path) -> Option<String> {
    let parts: Vec<_> = link.prefix_match(dir)?.collect();
    match parts.as_slice() {
        [alg, encoded, last] if last.as_ref() == LINK => {
            let digest = format!("{}:{}", alg.as_ref(), encoded.as_ref());
            Digest::parse_any(&digest).ok().is_some().then_some(digest)
        }
        _ => None,
    }
}

/// The bytes of blob `d` (a manifest, here), where registry:2 keeps them.
pub(super) fn blob_data(d: &Digest) -> Path {
    // registry:2 fans out on the first two characters of the encoded part.
    let fan_out = d.encoded().get(..2).unwrap_or(d.encoded());
    path(
        V2.into_iter()
            .chain(["blobs", d.algorithm(), fan_out, d.encoded(), "data"]),
    )
}

/// What a key under [`repositories_root`] records, for the inventory walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Entry {
    /// A blob link (`_layers`), naming this digest.
    Layer(String),
    /// A manifest of the repository (`_manifests/revisions`).
    Revision(String),
    /// A tag's current link (`_manifests/tags/<tag>/current/link`).
    TagCurrent(String),
}

/// The repository a key under [`repositories_root`] belongs to and what it
/// records; `None` for everything else (tag index entries, referrers,
/// registry:2's `_uploads`, foreign objects). The name is every directory
/// before the first one starting with `_`, as registry:2's walk has it.
pub(super) fn repository_entry(key: &Path) -> Option<(String, Entry)> {
    let parts: Vec<_> = key.prefix_match(&repositories_root())?.collect();
    let parts: Vec<&str> = parts.iter().map(|p| p.as_ref()).collect();
    let split = parts.iter().position(|p| p.starts_with('_'))?;
    let (name, rest) = parts.split_at(split);
    let name = name.join("/");
    Repo::parse(&name)?;
    let digest = |alg: &str, encoded: &str| {
        let digest = format!("{alg}:{encoded}");
        Digest::parse_any(&digest).ok().map(|_| digest)
    };
    let entry = match rest {
        [LAYERS, alg, encoded, LINK] => Entry::Layer(digest(alg, encoded)?),
        [MANIFESTS, "revisions", alg, encoded, LINK] => Entry::Revision(digest(alg, encoded)?),
        [MANIFESTS, "tags", tag, "current", LINK] => {
            Entry::TagCurrent(Tag::parse(tag)?.as_str().to_owned())
        }
        _ => return None,
    };
    Some((name, entry))
}

/// `berth/repositories`, where the creation markers are.
pub(super) fn markers_root() -> Path {
    path(["berth", "repositories"])
}

/// The repository a key under [`markers_root`] marks as created.
pub(super) fn marked_repo(key: &Path) -> Option<String> {
    let parts: Vec<_> = key.prefix_match(&markers_root())?.collect();
    let (last, name) = parts.split_last()?;
    if last.as_ref() != MARKER {
        return None;
    }
    let name = name
        .iter()
        .map(|p| p.as_ref())
        .collect::<Vec<_>>()
        .join("/");
    Repo::parse(&name).is_some().then_some(name)
}

pub(super) fn upload_owner(id: &str) -> Path {
    path(["berth", "upload-owners", id])
}

/// `berth/upload-owners`, where every owner record is.
pub(super) fn upload_owners_dir() -> Path {
    path(["berth", "upload-owners"])
}

/// The session whose owner record `key` is (a key under
/// [`upload_owners_dir`]).
pub(super) fn upload_of_owner(dir: &Path, key: &Path) -> Option<String> {
    let parts: Vec<_> = key.prefix_match(dir)?.collect();
    match parts.as_slice() {
        [id] => Some(id.as_ref().to_owned()),
        _ => None,
    }
}

/// Marks a repository created before it held anything registry:2 records.
pub(super) fn repo_marker(repo: Repo<'_>) -> Path {
    path(
        ["berth", "repositories"]
            .into_iter()
            .chain(repo.components())
            .chain([MARKER]),
    )
}

fn join<'a>(base: &Path, parts: impl IntoIterator<Item = &'a str>) -> Path {
    parts.into_iter().fold(base.clone(), |p, part| p.join(part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout_meta::names::{Repo, Tag};

    #[test]
    fn registry2_keys() {
        let repo = Repo::parse("demo/app").expect("repo");
        let d = Digest::parse_any("sha256:f733").expect("digest");
        let tag = Tag::parse("v1").expect("tag");
        let v2 = "docker/registry/v2/repositories/demo/app";
        assert_eq!(
            layer_link(repo, &d).as_ref(),
            format!("{v2}/_layers/sha256/f733/link")
        );
        assert_eq!(
            revision_link(repo, &d).as_ref(),
            format!("{v2}/_manifests/revisions/sha256/f733/link")
        );
        assert_eq!(
            tag_current(repo, tag).as_ref(),
            format!("{v2}/_manifests/tags/v1/current/link")
        );
        assert_eq!(
            tag_index_link(repo, tag, &d).as_ref(),
            format!("{v2}/_manifests/tags/v1/index/sha256/f733/link")
        );
        assert_eq!(
            blob_data(&d).as_ref(),
            "docker/registry/v2/blobs/sha256/f7/f733/data"
        );
        let subject = Digest::parse_any("sha256:5ub").expect("digest");
        let link = referrer_link(repo, &subject, &d);
        assert_eq!(
            link.as_ref(),
            format!("{v2}/_referrers/sha256/5ub/sha256/f733/link")
        );
        assert_eq!(
            referrer_of(&referrers_dir(repo, &subject), &link).as_deref(),
            Some("sha256:f733")
        );
        assert_eq!(origin(repo).as_ref(), format!("{v2}/_berth/origin"));
        let marker = repo_marker(repo);
        assert_eq!(marker.as_ref(), "berth/repositories/demo/app/_created");
        assert_eq!(upload_owner("u1").as_ref(), "berth/upload-owners/u1");
        let tags = tags_dir(repo);
        assert_eq!(
            tag_of_current(&tags, &tag_current(repo, tag)).as_deref(),
            Some("v1")
        );
        assert_eq!(tag_of_current(&tags, &tag_index_link(repo, tag, &d)), None);
    }

    #[test]
    fn inventory_keys() {
        let repo = Repo::parse("demo/app").expect("repo");
        let d = Digest::parse_any("sha256:f733").expect("digest");
        let tag = Tag::parse("v1").expect("tag");
        let entry = |key: &Path| repository_entry(key);
        let of = |e: Entry| Some(("demo/app".to_owned(), e));
        assert_eq!(
            entry(&layer_link(repo, &d)),
            of(Entry::Layer("sha256:f733".into()))
        );
        assert_eq!(
            entry(&revision_link(repo, &d)),
            of(Entry::Revision("sha256:f733".into()))
        );
        assert_eq!(
            entry(&tag_current(repo, tag)),
            of(Entry::TagCurrent("v1".into()))
        );
        assert_eq!(entry(&tag_index_link(repo, tag, &d)), None);
        assert_eq!(entry(&referrer_link(repo, &d, &d)), None);
        assert_eq!(entry(&origin(repo)), None);
        let upload = Path::from("docker/registry/v2/repositories/demo/app/_uploads/x/data");
        assert_eq!(entry(&upload), None);
        assert_eq!(entry(&blob_data(&d)), None);
        let bad = Path::from("docker/registry/v2/repositories/Bad Name/_layers/sha256/f733/link");
        assert_eq!(entry(&bad), None);
        assert_eq!(marked_repo(&repo_marker(repo)).as_deref(), Some("demo/app"));
        assert_eq!(marked_repo(&upload_owner("u1")), None);
        let owners = upload_owners_dir();
        assert_eq!(
            upload_of_owner(&owners, &upload_owner("u1")).as_deref(),
            Some("u1")
        );
        assert_eq!(upload_of_owner(&owners, &repo_marker(repo)), None);
    }
}
