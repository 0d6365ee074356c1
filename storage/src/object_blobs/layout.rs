//! Every object key the store uses, in one place.
//!
//! - `docker/registry/v2/blobs/sha256/<2 hex>/<64 hex>/data`: committed blobs,
//!   exactly where distribution's registry:2 keeps them, so either can read
//!   what the other wrote;
//! - `berth/uploads/<id>/startedat`: the session exists (unix seconds);
//! - `berth/uploads/<id>/parts/<uuid>`: the bytes one writer sent;
//! - `berth/uploads/<id>/chunks/<offset, 20 digits>`: the claim placing a
//!   part at that offset (see `chunks.rs`); zero padding makes key order
//!   offset order;
//! - `berth/quarantine/sha256/<64 hex>`: a blob taken out of service.

use crate::{Digest, Result, StorageError};
use object_store::path::Path;
use uuid::Uuid;

const UPLOADS: [&str; 2] = ["berth", "uploads"];
const BLOBS: [&str; 5] = ["docker", "registry", "v2", "blobs", "sha256"];

/// Where a committed blob lives, as registry:2 lays it out.
pub fn blob_path(digest: &Digest) -> Path {
    let hex = digest.hex();
    Path::from_iter(BLOBS.into_iter().chain([&hex[..2], hex, "data"]))
}

/// The prefix every committed blob is under.
pub(super) fn blobs_dir() -> Path {
    Path::from_iter(BLOBS)
}

/// The blob a listed key holds: `Some` exactly for keys [`blob_path`] makes.
pub(super) fn listed_blob(key: &Path) -> Option<Digest> {
    let mut parts = key.as_ref().split('/');
    if !BLOBS.iter().all(|dir| parts.next() == Some(*dir)) {
        return None;
    }
    let (Some(prefix), Some(hex), Some("data"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let digest: Digest = format!("sha256:{hex}").parse().ok()?;
    (prefix.len() == 2 && hex.starts_with(prefix)).then_some(digest)
}

/// Where a quarantined blob is kept, outside registry:2's tree.
pub(super) fn quarantine_path(digest: &Digest) -> Path {
    Path::from_iter(["berth", "quarantine", "sha256", digest.hex()])
}

/// The prefix every session is under.
pub(super) fn uploads_dir() -> Path {
    Path::from_iter(UPLOADS)
}

/// A validated upload session id: a canonical lowercase hyphenated uuid,
/// the only form we hand out, so it can never escape its directory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct SessionId(String);

impl SessionId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4().hyphenated().to_string())
    }

    /// Accepts only what [`SessionId::new`] produces; `Invalid` otherwise.
    pub fn parse(id: &str) -> Result<Self> {
        match Uuid::try_parse(id) {
            Ok(uuid) if uuid.hyphenated().to_string() == id => Ok(Self(id.to_owned())),
            _ => Err(StorageError::Invalid(format!("malformed upload id {id:?}"))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `berth/uploads/<id>`: everything the session owns is below it.
    pub fn dir(&self) -> Path {
        Path::from_iter(UPLOADS.into_iter().chain([self.0.as_str()]))
    }

    pub fn started_at(&self) -> Path {
        self.dir().join("startedat")
    }

    pub fn chunks_dir(&self) -> Path {
        self.dir().join("chunks")
    }

    pub fn chunk(&self, offset: u64) -> Path {
        self.chunks_dir().join(format!("{offset:020}"))
    }

    pub fn part(&self, part: &Uuid) -> Path {
        self.dir().join("parts").join(part.hyphenated().to_string())
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The offset a listed `chunks/` key claims, `None` for a foreign key.
pub(super) fn chunk_offset(key: &Path) -> Option<u64> {
    let name = key.filename()?;
    if name.len() != 20 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_path_matches_registry2() {
        let d = crate::conformance::digest_of(b"");
        assert_eq!(
            blob_path(&d).as_ref(),
            "docker/registry/v2/blobs/sha256/e3/\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/data"
        );
    }

    #[test]
    fn listed_blobs_are_exactly_blob_paths() {
        let d = crate::conformance::digest_of(b"listed");
        assert_eq!(listed_blob(&blob_path(&d)), Some(d.clone()));
        let hex = d.hex();
        let other_fan_out = if hex.starts_with("00") { "01" } else { "00" };
        for foreign in [
            format!(
                "docker/registry/v2/blobs/sha256/{}/{hex}/data.tmp",
                &hex[..2]
            ),
            format!("docker/registry/v2/blobs/sha256/{}/{hex}", &hex[..2]),
            format!("docker/registry/v2/blobs/sha256/{}/{hex}/data/x", &hex[..2]),
            format!("docker/registry/v2/blobs/sha256/{other_fan_out}/{hex}/data"),
            format!(
                "docker/registry/v2/blobs/sha256/{}/{}/data",
                &hex[..2],
                &hex[..63]
            ),
            format!(
                "docker/registry/v2/blobs/sha256/{}/{}/data",
                &hex[..2].to_uppercase(),
                hex.to_uppercase()
            ),
            format!("docker/registry/v2/blobs/sha512/{}/{hex}/data", &hex[..2]),
            format!("docker/registry/v2/repositories/x/_layers/sha256/{hex}/link"),
            format!("berth/quarantine/sha256/{hex}"),
        ] {
            assert_eq!(
                listed_blob(&Path::from(foreign.as_str())),
                None,
                "{foreign}"
            );
        }
        assert_eq!(listed_blob(&quarantine_path(&d)), None);
    }

    #[test]
    fn chunk_keys_round_trip_and_sort() {
        let id = SessionId::new();
        let (a, b) = (id.chunk(9), id.chunk(10));
        assert!(a.as_ref() < b.as_ref());
        assert_eq!(chunk_offset(&b), Some(10));
        assert_eq!(chunk_offset(&id.chunk(u64::MAX)), Some(u64::MAX));
        assert_eq!(chunk_offset(&id.started_at()), None);
    }

    #[test]
    fn ids_are_canonical_uuids_only() {
        let id = SessionId::new();
        assert_eq!(SessionId::parse(id.as_str()).expect("own id"), id);
        for bad in [
            "",
            "..",
            "x",
            "ABCDEF00-0000-4000-8000-000000000000",
            "abcdef0000004000800000000000000",
            "abcdef00000040008000000000000000",
            "{abcdef00-0000-4000-8000-000000000000}",
            "urn:uuid:abcdef00-0000-4000-8000-000000000000",
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
