//! The names that become path segments: repository names, tags, digests
//! and upload ids, checked so that none can leave its directory or collide
//! with the `_`-prefixed directories registry:2 reserves.
//!
//! Reads treat a name that fails these checks as absent (it can never have
//! been stored); writes refuse it with `Invalid`.

use crate::{Digest, Result, StorageError};

/// A repository name: `/`-separated components, each starting with an ASCII
/// letter or digit and made of `[A-Za-z0-9._-]`. A superset of the OCI
/// grammar (which is lowercase only), so no component starts with `_`,
/// is `.`/`..` or is empty.
#[derive(Clone, Copy, Debug)]
pub(super) struct Repo<'a>(&'a str);

impl<'a> Repo<'a> {
    pub fn parse(name: &'a str) -> Option<Self> {
        name.split('/').all(is_component).then_some(Self(name))
    }

    pub fn as_str(self) -> &'a str {
        self.0
    }

    /// The path segments of the name.
    pub fn components(self) -> impl Iterator<Item = &'a str> {
        self.0.split('/')
    }
}

/// Whether `c` may be one component of a repository name.
pub(super) fn is_component(c: &str) -> bool {
    c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A tag, by the OCI grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tag<'a>(&'a str);

impl<'a> Tag<'a> {
    pub fn parse(tag: &'a str) -> Option<Self> {
        berth_oci::grammar::is_valid_tag(tag).then_some(Self(tag))
    }

    pub fn as_str(self) -> &'a str {
        self.0
    }
}

/// An upload session id: `[A-Za-z0-9._-]+` not starting with `.`, so it is
/// one harmless path segment whatever blob store issued it.
pub(super) fn is_upload_id(id: &str) -> bool {
    !id.starts_with('.') && berth_oci::grammar::is_valid_upload_id(id)
}

/// `Invalid` for a `what` that cannot be stored.
pub(super) fn invalid(what: &str, value: &str) -> StorageError {
    StorageError::Invalid(format!("invalid {what} {value:?}"))
}

pub(super) fn repo(name: &str) -> Result<Repo<'_>> {
    Repo::parse(name).ok_or_else(|| invalid("repository name", name))
}

pub(super) fn tag(tag: &str) -> Result<Tag<'_>> {
    Tag::parse(tag).ok_or_else(|| invalid("tag", tag))
}

/// A digest of any algorithm the image-spec grammar allows (subjects of
/// referrers need not be sha256); its algorithm stays one path segment:
/// registry:2 would turn `+`/`.` separators into extra directories, but it
/// only accepts sha256/384/512 (which have none).
pub(super) fn digest(digest: &str) -> Result<Digest> {
    Digest::parse_any(digest).map_err(|_| invalid("digest", digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in ["a", "Mid/upload", "library/ubuntu", "a.b/c-d/e_f", "0"] {
            assert!(Repo::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "_a",
            "a/_manifests",
            ".",
            "a/..",
            "a b",
            "a\\b",
            "-a",
        ] {
            assert!(Repo::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn tags() {
        assert!(Tag::parse("v1.0_rc-1").is_some());
        assert!(Tag::parse("_x").is_some());
        assert!(Tag::parse(&"t".repeat(128)).is_some());
        for bad in ["", ".", "..", "-a", "a/b", &"t".repeat(129)] {
            assert!(Tag::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn digests() {
        let d = digest("sha256:abc").expect("digest");
        assert_eq!((d.algorithm(), d.encoded()), ("sha256", "abc"));
        assert!(digest("sha256+b64u:abc").is_ok());
        for bad in [
            "sha256",
            "sha256:",
            ":abc",
            "+sha256:abc",
            "SHA256:a",
            "sha256:a/b",
            "sha256:..",
            ".:a",
        ] {
            assert!(digest(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn upload_ids() {
        assert!(is_upload_id("3f2b0c1e-7a0b-4a57-9d7e-0a1b2c3d4e5f"));
        for bad in ["", ".", "..", ".hidden", "a/b", "a b"] {
            assert!(!is_upload_id(bad), "{bad:?}");
        }
    }
}
