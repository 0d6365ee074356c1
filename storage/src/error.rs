use thiserror::Error;

/// What a storage backend reports; mirrors WIT `types.storage-error`.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("content hashes to {actual}")]
    DigestMismatch { actual: String },
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("sqlite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("backend error: {0}")]
    Backend(String),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl From<berth_oci::DigestError> for StorageError {
    fn from(err: berth_oci::DigestError) -> Self {
        StorageError::Invalid(err.describe().to_owned())
    }
}
