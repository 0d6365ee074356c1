//! Every location under the data directory, defined in one place.
//!
//! ```text
//! blobs/sha256/<2 hex>/<64 hex>          committed blob bytes
//! uploads/<uuid>/data                    an upload session's bytes so far
//! uploads/<uuid>/startedat               its creation time (unix seconds)
//! tmp/<32 hex>                           files being written, and range copies
//! repositories/<c1>/.../<cN>/_repo/      repository `c1/.../cN` exists
//!     links/<digest>                     it links blob <digest> (empty file)
//!     manifests/<digest>                 manifest record (JSON, see metadata.rs)
//!     tags/<tag>                         the digest the tag points at (text)
//!     referrers/<subject>/<digest>       index: manifest <digest> has <subject>
//! upload-owners/<id>                     repository of upload session <id> (text)
//! ```
//!
//! Names, tags, digests and ids are stored as [`encode`]d path components,
//! so no argument can escape its directory. Repository names nest one
//! directory per `/`-separated component, so a name never outgrows a
//! file-name length limit; a real component never starts with `_`, so the
//! `_repo` marker cannot clash with one. The data directory must be
//! case-sensitive (tags `a` and `A` are different files).

use crate::error::{Error, Result};
use berth_oci::Digest;
use std::path::{Path, PathBuf};

/// Marks a directory of `repositories/` as a repository.
pub const REPO_MARKER: &str = "_repo";

/// A blob digest argument: `sha256:<64 lowercase hex>`, `Invalid` otherwise.
pub fn blob_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| Error::Invalid(format!("{} {s:?}", e.describe())))
}

/// Accepts only the ids sessions get: lowercase hyphenated uuids, as on
/// every Berth blob store, so an id of that form no session has is
/// `NotFound` and anything else is `Invalid`.
pub fn validate_upload_id(id: &str) -> Result<()> {
    let uuid = id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => matches!(b, b'0'..=b'9' | b'a'..=b'f'),
        });
    if uuid {
        Ok(())
    } else {
        Err(Error::Invalid(format!("malformed upload id {id:?}")))
    }
}

/// The data directory's layout.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    pub fn upload_dir(&self, id: &str) -> Result<PathBuf> {
        validate_upload_id(id)?;
        Ok(self.root.join("uploads").join(id))
    }

    pub fn upload_data(&self, id: &str) -> Result<PathBuf> {
        Ok(self.upload_dir(id)?.join("data"))
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn repositories(&self) -> PathBuf {
        self.root.join("repositories")
    }

    /// The marker directory of repository `name`, which holds its metadata.
    pub fn repo(&self, name: &str) -> Result<PathBuf> {
        let mut dir = self.repositories();
        for component in name.split('/') {
            dir.push(
                encode(component)
                    .ok_or_else(|| Error::Invalid(format!("malformed repository name {name:?}")))?,
            );
        }
        Ok(dir.join(REPO_MARKER))
    }

    pub fn link(repo: &Path, digest: &str) -> Result<PathBuf> {
        Ok(repo.join("links").join(component(digest, "digest")?))
    }

    pub fn manifests(repo: &Path) -> PathBuf {
        repo.join("manifests")
    }

    pub fn manifest(repo: &Path, digest: &str) -> Result<PathBuf> {
        Ok(Self::manifests(repo).join(component(digest, "digest")?))
    }

    pub fn tags(repo: &Path) -> PathBuf {
        repo.join("tags")
    }

    pub fn tag(repo: &Path, tag: &str) -> Result<PathBuf> {
        Ok(Self::tags(repo).join(component(tag, "tag")?))
    }

    pub fn referrers_of(repo: &Path, subject: &str) -> Result<PathBuf> {
        Ok(repo.join("referrers").join(component(subject, "digest")?))
    }

    pub fn referrer(repo: &Path, subject: &str, digest: &str) -> Result<PathBuf> {
        Ok(Self::referrers_of(repo, subject)?.join(component(digest, "digest")?))
    }

    pub fn upload_owner(&self, id: &str) -> Result<PathBuf> {
        Ok(self
            .root
            .join("upload-owners")
            .join(component(id, "upload id")?))
    }
}

/// `s` encoded as a path component, or `Invalid` naming `what` it is.
fn component(s: &str, what: &str) -> Result<String> {
    encode(s).ok_or_else(|| Error::Invalid(format!("malformed {what} {s:?}")))
}

/// Encodes `s` as one path component that decodes back to exactly `s`:
/// `[a-z0-9-]` stay, `.` and `_` stay except first (no `.`, `..` or clash
/// with `_repo`), every other byte is `%XX`. None for the empty string.
pub fn encode(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => out.push(char::from(b)),
            b'.' | b'_' if i > 0 => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    Some(out)
}

/// The inverse of [`encode`]; None for anything `encode` does not produce
/// (stray files are skipped, not misread).
pub fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).ok()?;
    (encode(&decoded).as_deref() == Some(s)).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_stays_inside() {
        for s in [
            "a",
            "B",
            "a.b",
            "sha256:ab",
            ".",
            "..",
            "_repo",
            "a/b",
            "é",
            "%",
            "v1_2-3",
        ] {
            let e = encode(s).expect("non-empty");
            assert!(
                !e.contains('/') && e != "." && e != ".." && e != REPO_MARKER,
                "{s} -> {e}"
            );
            assert!(!e.starts_with('.') && !e.starts_with('_'), "{s} -> {e}");
            assert_eq!(decode(&e).as_deref(), Some(s), "{s} -> {e}");
        }
        assert_eq!(encode(""), None);
        assert_eq!(encode("sha256:ab").as_deref(), Some("sha256%3Aab"));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%6"), None);
        // Not what encode writes for "a": a stray file, skipped.
        assert_eq!(decode("%61"), None);
        assert_eq!(decode(REPO_MARKER), None);
    }

    #[test]
    fn repository_names_nest_and_are_checked() {
        let layout = Layout::new(Path::new("/r"));
        assert_eq!(
            layout.repo("a/b.c").expect("valid"),
            Path::new("/r/repositories/a/b.c/_repo")
        );
        for bad in ["", "a//b", "/a", "a/"] {
            assert!(
                matches!(layout.repo(bad), Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn digests_and_ids_are_checked() {
        let hex = "ab".repeat(32);
        let d = blob_digest(&format!("sha256:{hex}")).expect("valid");
        assert_eq!(
            Layout::new(Path::new("/r")).blob(&d),
            Path::new("/r/blobs/sha256/ab").join(&hex)
        );
        for bad in ["sha256:AB", "sha512:ab", "ab", "sha256:../../x"] {
            assert!(blob_digest(bad).is_err(), "{bad}");
        }
        assert!(validate_upload_id("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0").is_ok());
        for bad in [
            "",
            "../x",
            &"0f".repeat(16),
            "0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0",
            "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0-",
            "0f1e2d3c/4b5a-4968-8776-a5b4c3d2e1f0",
        ] {
            assert!(validate_upload_id(bad).is_err(), "{bad}");
        }
    }
}
