//! Why an import refuses an image, or the whole archive: each reason names
//! the entry of the archive at fault (its path, and the digest it should
//! have), since that is what a person holding a damaged archive needs.

use super::names::NamingError;
use crate::transfer::archive::layout;
use crate::transfer::store::PutError;
use berth_oci::Digest;
use std::fmt;

/// An entry of the archive: its path, and the digest it should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    pub path: String,
    pub digest: Option<Digest>,
}

impl At {
    /// `blobs/sha256/<hex>` of a layout.
    pub fn blob(digest: &Digest) -> Self {
        Self {
            path: layout::blob_path(digest),
            digest: Some(digest.clone()),
        }
    }

    pub fn path(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            digest: None,
        }
    }
}

/// `path (sha256:…)`.
impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.digest {
            Some(digest) => write!(f, "{} ({digest})", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// Why an image (or a blob of it) is refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    #[error("{at} is not in the {}{}", if *.layout { "layout" } else { "archive" }, stopped_early(.stopped))]
    Missing {
        at: At,
        /// A directory (layout) rather than a tar (archive).
        layout: bool,
        /// Why reading the tar stopped early, if it did.
        stopped: Option<String>,
    },
    #[error("{at}: the bytes hash to {actual}")]
    Digest { at: At, actual: String },
    #[error("{at}: the archive ends inside it, after {read} of {size} bytes (truncated?)")]
    Truncated { at: At, read: u64, size: u64 },
    #[error("{at}: {actual} bytes where {expected} were declared")]
    Size { at: At, expected: u64, actual: u64 },
    #[error("{at}: {why}")]
    Invalid { at: At, why: String },
    #[error("{at}: reading it: {why}")]
    Read { at: At, why: String },
    #[error("{at}: storing it: {why}")]
    Store { at: At, why: String },
    #[error(transparent)]
    Name(#[from] NamingError),
}

fn stopped_early(why: &Option<String>) -> String {
    match why {
        Some(why) => format!(": reading stopped early ({why})"),
        None => String::new(),
    }
}

impl Refusal {
    /// What putting `at` into the store gave, in these terms.
    pub fn from_put(at: At, error: PutError) -> Self {
        match error {
            PutError::DigestMismatch { actual, .. } => Refusal::Digest { at, actual },
            PutError::SizeMismatch {
                expected, actual, ..
            } => Refusal::Size {
                at,
                expected,
                actual,
            },
            PutError::Read { source, .. } => Refusal::Read {
                at,
                why: source.to_string(),
            },
            PutError::BadManifest { why, .. } => Refusal::Invalid { at, why },
            e @ PutError::ManifestTooLarge { .. } => Refusal::Invalid {
                at,
                why: e.to_string(),
            },
            e @ PutError::Storage { .. } => Refusal::Store {
                at,
                why: e.to_string(),
            },
        }
    }

    /// Whether the archive cannot be read past this (the pass stops).
    pub fn stops_reading(&self) -> bool {
        matches!(self, Refusal::Truncated { .. } | Refusal::Read { .. })
    }
}

/// Why nothing of an archive can be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "{input}: no index.json and no manifest.json: neither an OCI image layout nor a \
         `docker save` archive{}",
        stopped_early(.stopped)
    )]
    NotAnArchive {
        input: String,
        stopped: Option<String>,
    },
    #[error("{input}: {what} is not valid: {why}")]
    BadIndex {
        input: String,
        what: &'static str,
        why: String,
    },
    #[error("the images are good, but {count} blobs no image uses are damaged (see above)")]
    DamagedBlobs { count: usize },
    #[error("storing {input} failed: the store writer was lost")]
    WriterLost { input: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_entry() {
        let d = Digest::of(b"x");
        let at = At::blob(&d);
        let missing = Refusal::Missing {
            at: at.clone(),
            layout: false,
            stopped: Some("cut".into()),
        };
        assert_eq!(
            missing.to_string(),
            format!(
                "blobs/sha256/{} ({d}) is not in the archive: reading stopped early (cut)",
                d.encoded()
            )
        );
        let truncated = Refusal::Truncated {
            at,
            read: 1,
            size: 2,
        };
        assert!(truncated.to_string().contains("truncated"));
        assert!(truncated.stops_reading());
        assert!(!missing.stops_reading());
    }
}
