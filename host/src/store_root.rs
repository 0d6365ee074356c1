//! Whether the configured data root holds the store a command expects,
//! checked before anything is opened (opening creates what is missing).
//!
//! `serve` may create a store in a new or empty directory, and so may a
//! future `import`; the maintenance commands (`gc`, `fsck`, `du`) work on a
//! store that exists and refuse anything else, so a mistyped `--root`
//! fails instead of reporting on an empty store made on the spot. Either
//! way a directory holding registry:2's tree while the configuration sets
//! SQLite metadata is refused with the setting that serves it in place:
//! otherwise Berth would put its own empty store beside it. (Left unset,
//! `metadata.kind` follows such a root: `config::registry2::serve_in_place`.)
//!
//! What "holds a store" means follows the configuration:
//! - SQLite metadata (blobs on the filesystem or in a bucket): the root
//!   holds `metadata.db`;
//! - layout metadata on the filesystem: the root holds
//!   `docker/registry/v2/`;
//! - layout metadata in a bucket: the bucket is the store and the root only
//!   Berth's caches, so the root is not checked; a maintenance command
//!   asks the bucket instead ([`open_existing`]) and refuses one that holds
//!   no blob, repository or upload (a wrong bucket or prefix).

use crate::backends::{self, Backends};
use crate::config::registry2::{METADATA_DB, REGISTRY2_TREE};
use crate::config::{Config, MetadataKind, StorageKind};
use berth_storage::Page;
use futures::TryStreamExt as _;
use std::path::{Path, PathBuf};

/// How the root setting is spelled, for messages.
const ROOT_SETTING: &str = "--root, storage.root or BERTH_STORAGE_ROOT";

/// Why the root does not fit the command.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(
        "no store at {}: the directory does not exist (the data root is set by \
         {ROOT_SETTING}); this command works on an existing store and creates none",
        .0.display()
    )]
    Missing(PathBuf),
    #[error("the data root {} is not a directory (set by {ROOT_SETTING})", .0.display())]
    NotADirectory(PathBuf),
    #[error(
        "{} holds registry:2's tree ({REGISTRY2_TREE}/) but metadata.kind is \"sqlite\": \
         set metadata.kind = \"layout\" (or BERTH_METADATA_KIND=layout) to serve it in \
         place; Berth will not create its own empty store beside it",
        .0.display()
    )]
    Registry2WithSqlite(PathBuf),
    #[error(
        "{} holds a Berth store with SQLite metadata ({METADATA_DB}) but metadata.kind is \
         \"layout\": set metadata.kind = \"sqlite\" (or BERTH_METADATA_KIND=sqlite)",
        .0.display()
    )]
    SqliteWithLayout(PathBuf),
    #[error(
        "no store at {}: it has no {marker}, so it holds no {what} (the data root is set by \
         {ROOT_SETTING}); this command works on an existing store and creates none",
        .root.display()
    )]
    Empty {
        root: PathBuf,
        what: &'static str,
        marker: &'static str,
    },
    #[error(
        "no store in {where_}: it holds no blob, repository or upload session under \
         {REGISTRY2_TREE}/ (storage.s3.bucket, storage.s3.prefix); this command works \
         on an existing store and creates none"
    )]
    EmptyBucket { where_: String },
    #[error(
        "the data root {} is not writable by this process (it belongs to uid {owner}): \
         give it to the user Berth runs as (e.g. chown -R 65534:65534 for the container \
         image) or run Berth as its owner",
        .root.display()
    )]
    NotWritable { root: PathBuf, owner: u32 },
    #[error("reading the data root {}: {source}", .root.display())]
    Io {
        root: PathBuf,
        source: std::io::Error,
    },
}

/// Checks that the configured root fits a command: with `may_create`
/// (`serve`, `import`) a missing or empty directory is fine; without it
/// (`gc`, `fsck`, `du`) the store must be there. Looks at the local root
/// only; see [`open_existing`] for stores in a bucket.
pub fn check(config: &Config, may_create: bool) -> Result<(), RootError> {
    let root = &config.storage.root;
    let io = |source| RootError::Io {
        root: root.clone(),
        source,
    };
    let meta = match std::fs::metadata(root) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let Some(meta) = meta else {
        let bucket_is_the_store = config.storage.kind != StorageKind::Filesystem
            && config.metadata.kind == MetadataKind::Layout;
        return if may_create || bucket_is_the_store {
            Ok(())
        } else {
            Err(RootError::Missing(root.clone()))
        };
    };
    if !meta.is_dir() {
        return Err(RootError::NotADirectory(root.clone()));
    }
    if may_create && !config.server.read_only {
        writable(root, &meta)?;
    }
    let has = |rel: &str| exists(&root.join(rel)).map_err(io);
    match (config.storage.kind, config.metadata.kind) {
        (StorageKind::Filesystem, MetadataKind::Sqlite) if has(REGISTRY2_TREE)? => {
            Err(RootError::Registry2WithSqlite(root.clone()))
        }
        (StorageKind::Filesystem, MetadataKind::Layout) if !has(REGISTRY2_TREE)? => {
            if has(METADATA_DB)? {
                Err(RootError::SqliteWithLayout(root.clone()))
            } else if may_create {
                Ok(())
            } else {
                Err(RootError::Empty {
                    root: root.clone(),
                    what: "registry:2 tree for layout metadata",
                    marker: "docker/registry/v2/",
                })
            }
        }
        (_, MetadataKind::Sqlite) if !may_create && !has(METADATA_DB)? => {
            if has(REGISTRY2_TREE)? {
                Err(RootError::Registry2WithSqlite(root.clone()))
            } else {
                Err(RootError::Empty {
                    root: root.clone(),
                    what: "Berth store with SQLite metadata",
                    marker: METADATA_DB,
                })
            }
        }
        _ => Ok(()),
    }
}

/// Whether this process may write under `root`: tried with a probe file,
/// because a store opened without the right is refused deep inside (SQLite,
/// an upload directory) with an error that names no path. A registry:2
/// volume is root's, and the container image runs as nobody.
fn writable(root: &Path, meta: &std::fs::Metadata) -> Result<(), RootError> {
    use std::os::unix::fs::MetadataExt as _;
    let probe = root.join(format!(".berth-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => std::fs::remove_file(&probe).map_err(|source| RootError::Io {
            root: root.to_path_buf(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(RootError::NotWritable {
            root: root.to_path_buf(),
            owner: meta.uid(),
        }),
        // A read-only file system and the like: left to the store's own
        // error, which says what it could not do.
        Err(_) => Ok(()),
    }
}

/// The configured store for a maintenance command, which must exist: the
/// root is checked first, and a store in a bucket (layout metadata) is
/// asked whether it holds anything at all.
pub async fn open_existing(config: &Config) -> anyhow::Result<Backends> {
    check(config, false)?;
    let store = backends::open(config).await?;
    let in_bucket = config.storage.kind != StorageKind::Filesystem
        && config.metadata.kind == MetadataKind::Layout;
    if in_bucket && is_empty(&store).await? {
        let s3 = &config.storage.s3;
        let where_ = match (config.storage.kind, &s3.bucket) {
            (StorageKind::S3, Some(bucket)) => match s3.prefix.as_deref() {
                Some(prefix) if !prefix.trim_matches('/').is_empty() => {
                    format!("bucket {bucket}, prefix {prefix}")
                }
                _ => format!("bucket {bucket}"),
            },
            (StorageKind::S3, None) => "the S3 bucket".to_owned(),
            _ => "in-memory storage (which starts empty)".to_owned(),
        };
        return Err(RootError::EmptyBucket { where_ }.into());
    }
    Ok(store)
}

/// Whether the store holds no blob, repository or upload session.
async fn is_empty(store: &Backends) -> anyhow::Result<bool> {
    let first = Page {
        last: None,
        n: Some(1),
    };
    Ok(store.blobs.list_blobs().await?.try_next().await?.is_none()
        && store.metadata.list_repositories(&first).await?.is_empty()
        && store.blobs.list_uploads().await?.is_empty())
}

fn exists(path: &Path) -> std::io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &Path, metadata: MetadataKind) -> Config {
        let mut config = Config::default();
        config.storage.root = root.to_path_buf();
        config.metadata.kind = metadata;
        config
    }

    #[test]
    fn missing_root_is_refused_unless_it_may_be_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let typo = dir.path().join("typo");
        for kind in [MetadataKind::Sqlite, MetadataKind::Layout] {
            let c = config(&typo, kind);
            assert!(matches!(check(&c, false), Err(RootError::Missing(_))));
            assert!(check(&c, true).is_ok());
        }
        assert!(!typo.exists(), "a check creates nothing");
    }

    #[test]
    fn empty_root_is_no_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = config(dir.path(), MetadataKind::Sqlite);
        assert!(matches!(check(&c, false), Err(RootError::Empty { .. })));
        assert!(check(&c, true).is_ok());
        std::fs::write(dir.path().join(METADATA_DB), b"").expect("db");
        assert!(check(&c, false).is_ok());
        let c = config(dir.path(), MetadataKind::Layout);
        assert!(matches!(
            check(&c, true),
            Err(RootError::SqliteWithLayout(_))
        ));
    }

    #[test]
    fn registry2_tree_wants_layout_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(REGISTRY2_TREE)).expect("tree");
        let sqlite = config(dir.path(), MetadataKind::Sqlite);
        for may_create in [true, false] {
            let err = check(&sqlite, may_create).expect_err("refused");
            assert!(
                err.to_string().contains("metadata.kind = \"layout\""),
                "{err}"
            );
        }
        let layout = config(dir.path(), MetadataKind::Layout);
        assert!(check(&layout, false).is_ok());
        assert!(check(&layout, true).is_ok());
    }

    #[test]
    fn a_file_is_no_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("file");
        let c = config(&file, MetadataKind::Sqlite);
        assert!(matches!(check(&c, true), Err(RootError::NotADirectory(_))));
    }
}
