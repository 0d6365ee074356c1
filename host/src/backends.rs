//! The storage one server (or one maintenance command) works on, opened
//! from the configuration. Independent of the guest: the sandbox's storage
//! imports and the maintenance commands both take a `Backends`.

use crate::config::{Config, MetadataKind, S3Config, StorageKind};
use anyhow::Context as _;
use berth_storage::{
    BlobStore, FsBlobStore, LayoutMetadata, MetadataStore, ObjectBlobStore, SmallBlobCache,
    SqliteMetadata,
};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{ClientOptions, ObjectStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The blob and metadata stores, shared by every request.
#[derive(Clone)]
pub struct Backends {
    pub blobs: Arc<dyn BlobStore>,
    pub metadata: Arc<dyn MetadataStore>,
}

/// Memory for small whole blobs (manifests, configs) served again and again.
const SMALL_BLOB_CACHE: usize = 16 << 20;

/// The blob and metadata stores of `config`, ready to serve.
pub fn open(config: &Config) -> anyhow::Result<Backends> {
    let root = &config.storage.root;
    std::fs::create_dir_all(root)
        .with_context(|| format!("creating data root {}", root.display()))?;
    let layout = config.metadata.kind == MetadataKind::Layout;
    // `layout` keeps the metadata next to the blobs, in the same store.
    let (blobs, metadata): (Arc<dyn BlobStore>, Arc<dyn MetadataStore>) = match config.storage.kind
    {
        StorageKind::Filesystem if layout => (
            cached(FsBlobStore::open_distribution(root)?),
            Arc::new(LayoutMetadata::open_local(root)?),
        ),
        StorageKind::Filesystem => (cached(FsBlobStore::open(root)?), sqlite(root)?),
        StorageKind::S3 => {
            let (store, signer) = s3(&config.storage.s3)?;
            let blobs = cached(ObjectBlobStore::new(store.clone(), signer));
            (blobs, object_metadata(layout, store, root)?)
        }
        StorageKind::Memory => {
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let blobs = cached(ObjectBlobStore::new(store.clone(), None));
            (blobs, object_metadata(layout, store, root)?)
        }
    };
    Ok(Backends { blobs, metadata })
}

fn sqlite(root: &Path) -> anyhow::Result<Arc<dyn MetadataStore>> {
    Ok(Arc::new(SqliteMetadata::open(&root.join("metadata.db"))?))
}

/// Metadata for blobs in an object store: in the store, or local SQLite.
fn object_metadata(
    layout: bool,
    store: Arc<dyn ObjectStore>,
    root: &Path,
) -> anyhow::Result<Arc<dyn MetadataStore>> {
    if layout {
        Ok(Arc::new(LayoutMetadata::new(store)))
    } else {
        sqlite(root)
    }
}

/// `store` behind the small-blob cache every backend gets: blobs are
/// immutable under their digest, so caching them is safe across hosts.
fn cached<S: BlobStore>(store: S) -> Arc<dyn BlobStore> {
    Arc::new(SmallBlobCache::new(store, SMALL_BLOB_CACHE))
}

type S3Handles = (Arc<dyn ObjectStore>, Option<Arc<dyn Signer>>);

/// The bucket as an object store (under the prefix, if any) and, when
/// redirects are on, a signer for presigned GET URLs of the same keys.
fn s3(cfg: &S3Config) -> anyhow::Result<S3Handles> {
    // The usual AWS_* variables first; explicit settings win over them.
    // A blob download to a slow client may take far longer than
    // object_store's default 30 s whole-request timeout, so bound stalls
    // (no bytes for a while) instead of total time.
    let client = ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(Duration::from_secs(10))
        .with_read_timeout(Duration::from_secs(120));
    let mut builder = AmazonS3Builder::from_env().with_client_options(client);
    if let Some(bucket) = &cfg.bucket {
        builder = builder.with_bucket_name(bucket);
    }
    if let Some(endpoint) = &cfg.endpoint {
        // Self-hosted stores (MinIO, Ceph, SeaweedFS) want path-style URLs.
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(region) = &cfg.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &cfg.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &cfg.secret_access_key {
        builder = builder.with_secret_access_key(secret.expose());
    }
    if cfg.allow_http {
        builder = builder.with_allow_http(true);
    }
    let s3: AmazonS3 = builder.build().context("configuring the S3 store")?;
    let prefix = cfg.prefix.as_deref().unwrap_or("").trim_matches('/');
    Ok(if prefix.is_empty() {
        let signer = cfg
            .redirect
            .then(|| Arc::new(s3.clone()) as Arc<dyn Signer>);
        (Arc::new(s3), signer)
    } else {
        let signer = cfg
            .redirect
            .then(|| Arc::new(PrefixStore::new(s3.clone(), prefix)) as Arc<dyn Signer>);
        (Arc::new(PrefixStore::new(s3, prefix)), signer)
    })
}
