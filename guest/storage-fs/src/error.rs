//! The one error type of the store; mirrors WIT `types.storage-error`.

use std::fmt;
use std::io;

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The named blob, upload session or repository does not exist.
    NotFound,
    /// The uploaded bytes hash to this digest instead; the session is gone.
    DigestMismatch(String),
    /// An argument the store cannot accept (malformed digest, id or name).
    Invalid(String),
    /// The object is in another state than the call needs.
    Conflict(String),
    /// Any other failure, for logs.
    Backend(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("not found"),
            Error::DigestMismatch(actual) => write!(f, "content hashes to {actual}"),
            Error::Invalid(why) => write!(f, "invalid argument: {why}"),
            Error::Conflict(why) => write!(f, "conflict: {why}"),
            Error::Backend(why) => write!(f, "backend: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// Every I/O failure is a backend failure unless the caller maps a missing
/// file to `NotFound` itself ([`not_found`]): a missing file is often the
/// expected answer ("no such tag"), not an error.
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Backend(e.to_string())
    }
}

/// Maps a missing file to `NotFound`, other I/O errors to `Backend`.
pub fn not_found(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::NotFound
    } else {
        e.into()
    }
}
