//! The one storage error, and the two questions asked of it at the edge
//! where it becomes a response: is it temporary ([`StorageError::temporary`],
//! a 503 the client may retry, rather than a 500), and what really happened
//! ([`StorageError::cause`], every `source()` of the backend's error, for
//! the log: object_store's own text stops at "HTTP error: builder error").

use object_store::client::{HttpError, HttpErrorKind};
use std::error::Error as StdError;
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
    /// The backend cannot be reached or is overloaded now; the same call may
    /// succeed later. Carries words a client may be shown.
    #[error("unavailable: {0}")]
    Unavailable(String),
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

/// Why a failure is temporary, in words a client may see (no endpoint,
/// bucket or key: those stay in the log).
const UNREACHABLE: &str = "the storage backend cannot be reached";
const TIMED_OUT: &str = "the storage backend did not answer in time";
const DROPPED: &str = "the connection to the storage backend was dropped";
const OVERLOADED: &str = "the storage backend is overloaded or failing (5xx)";
const BUSY: &str = "the metadata database is busy";

impl StorageError {
    /// Why retrying later may succeed (connection refused or dropped, a
    /// timeout, an S3 5xx or SlowDown, SQLite busy), in words for the
    /// client; `None` when the failure is not temporary.
    pub fn temporary(&self) -> Option<String> {
        match self {
            StorageError::Unavailable(why) => Some(why.clone()),
            StorageError::NotFound
            | StorageError::DigestMismatch { .. }
            | StorageError::Invalid(_)
            | StorageError::Conflict(_)
            | StorageError::Backend(_) => None,
            other => temporary_reason(other).map(str::to_owned),
        }
    }

    /// The whole story for the log: this error and each `source()` below it
    /// that adds something, joined with `: `.
    pub fn cause(&self) -> String {
        let mut text = self.to_string();
        let mut next = self.source();
        while let Some(err) = next {
            append(&mut text, err);
            // `io::Error::source` skips a wrapped error's own text.
            if let Some(inner) = err
                .downcast_ref::<std::io::Error>()
                .and_then(|e| e.get_ref())
            {
                append(&mut text, inner);
                next = inner.source();
            } else {
                next = err.source();
            }
        }
        text
    }

    /// [`StorageError::temporary`]'s answer as the error itself: the form a
    /// caller passes on.
    pub fn classified(self) -> StorageError {
        match self.temporary() {
            Some(why) if !matches!(self, StorageError::Unavailable(_)) => {
                StorageError::Unavailable(why)
            }
            _ => self,
        }
    }
}

fn append(text: &mut String, err: &(dyn StdError + 'static)) {
    let part = err.to_string();
    if !part.is_empty() && !text.contains(&part) {
        text.push_str(": ");
        text.push_str(&part);
    }
}

/// Walks `err`'s sources for a sign of a temporary failure.
fn temporary_reason(err: &(dyn StdError + 'static)) -> Option<&'static str> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            match http.kind() {
                HttpErrorKind::Connect => return Some(UNREACHABLE),
                HttpErrorKind::Timeout => return Some(TIMED_OUT),
                HttpErrorKind::Request | HttpErrorKind::Interrupted => return Some(DROPPED),
                _ => {}
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(why) = io_reason(io.kind()) {
                return Some(why);
            }
            if let Some(why) = io.get_ref().and_then(|inner| temporary_reason(inner)) {
                return Some(why);
            }
        }
        if let Some(rusqlite::Error::SqliteFailure(failure, _)) =
            err.downcast_ref::<rusqlite::Error>()
            && matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
        {
            return Some(BUSY);
        }
        // object_store's status errors are not public types: their text is
        // "Server returned non-2xx status code: 503 ...", or an S3 error
        // body in a 200 answer (CompleteMultipartUpload).
        let text = err.to_string();
        if text.contains("non-2xx status code: 5")
            || text.contains("SlowDown")
            || text.contains("ServiceUnavailable")
            || text.contains("<Code>InternalError</Code>")
        {
            return Some(OVERLOADED);
        }
        next = err.source();
    }
    None
}

fn io_reason(kind: std::io::ErrorKind) -> Option<&'static str> {
    use std::io::ErrorKind::*;
    match kind {
        ConnectionRefused | NotConnected | HostUnreachable | NetworkUnreachable | NetworkDown
        | AddrNotAvailable => Some(UNREACHABLE),
        TimedOut => Some(TIMED_OUT),
        ConnectionReset | ConnectionAborted | BrokenPipe => Some(DROPPED),
        ResourceBusy => Some(BUSY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error as IoError, ErrorKind};

    fn s3(source: impl StdError + Send + Sync + 'static) -> StorageError {
        StorageError::ObjectStore(object_store::Error::Generic {
            store: "S3",
            source: Box::new(source),
        })
    }

    /// An error that only has text, as object_store's status errors are to us.
    #[derive(Debug, Error)]
    #[error("{0}")]
    struct Text(&'static str);

    #[test]
    fn temporary_failures_are_recognised() {
        let refused = s3(HttpError::new(
            HttpErrorKind::Connect,
            IoError::from(ErrorKind::ConnectionRefused),
        ));
        assert_eq!(refused.temporary().as_deref(), Some(UNREACHABLE));
        let timeout = s3(HttpError::new(HttpErrorKind::Timeout, Text("deadline")));
        assert_eq!(timeout.temporary().as_deref(), Some(TIMED_OUT));
        let slow = s3(Text(
            "Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code>",
        ));
        assert_eq!(slow.temporary().as_deref(), Some(OVERLOADED));
        let io = StorageError::Io(IoError::from(ErrorKind::ConnectionReset));
        assert_eq!(io.temporary().as_deref(), Some(DROPPED));
        // An io::Error wrapping an object_store error, as read streams carry.
        let wrapped = StorageError::Io(IoError::other(HttpError::new(
            HttpErrorKind::Connect,
            Text("tcp connect error"),
        )));
        assert_eq!(wrapped.temporary().as_deref(), Some(UNREACHABLE));
        let busy = StorageError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert_eq!(busy.temporary().as_deref(), Some(BUSY));
        assert_eq!(
            StorageError::Unavailable("why".into())
                .temporary()
                .as_deref(),
            Some("why")
        );
        assert!(matches!(
            busy.classified(),
            StorageError::Unavailable(why) if why == BUSY
        ));
    }

    #[test]
    fn lasting_failures_are_not_temporary() {
        // A misconfigured client (http:// without allow_http) never heals.
        let builder = s3(HttpError::new(
            HttpErrorKind::Unknown,
            Text("builder error"),
        ));
        assert_eq!(builder.temporary(), None);
        let denied = s3(Text(
            "Server returned non-2xx status code: 400 Bad Request: <Code>InvalidBucketName</Code>",
        ));
        assert_eq!(denied.temporary(), None);
        let full = StorageError::Io(IoError::from(ErrorKind::StorageFull));
        assert_eq!(full.temporary(), None);
        for lasting in [
            StorageError::NotFound,
            StorageError::Invalid("x".into()),
            StorageError::Conflict("x".into()),
            StorageError::Backend("x".into()),
        ] {
            assert_eq!(lasting.temporary(), None, "{lasting}");
            assert!(!matches!(
                lasting.classified(),
                StorageError::Unavailable(_)
            ));
        }
    }

    #[test]
    fn cause_walks_every_source_once() {
        let err = s3(HttpError::new(
            HttpErrorKind::Unknown,
            IoError::other(Text("URL scheme is not allowed")),
        ));
        assert_eq!(
            err.cause(),
            "object store error: Generic S3 error: HTTP error: URL scheme is not allowed"
        );
        let plain = StorageError::Invalid("bad id".into());
        assert_eq!(plain.cause(), "invalid argument: bad id");
    }
}
