//! The storage one server (or one maintenance command) works on, opened
//! from the configuration, and whether it answers (`health`). Independent of
//! the guest: the sandbox's storage imports and the maintenance commands
//! both take a `Backends`.

pub mod health;

use crate::config::registry2::REGISTRY2_TREE;
use crate::config::{Config, MetadataKind, PostgresConfig, S3Config, StorageKind};
use anyhow::{Context as _, bail};
use berth_storage::{
    BlobStore, FsBlobStore, LayoutMetadata, MetadataStore, ObjectBlobStore, PostgresMetadata,
    PostgresSettings, SmallBlobCache, SqliteMetadata, StorageError,
};
use health::Health;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The blob and metadata stores, shared by every request.
#[derive(Clone)]
pub struct Backends {
    pub blobs: Arc<dyn BlobStore>,
    pub metadata: Arc<dyn MetadataStore>,
    /// What the last storage checks found (healthy until a checker runs).
    pub health: Health,
    /// The backends' names, as metrics and `/debug/health` label them.
    pub drivers: Drivers,
}

/// Which kind of store each backend is: registry:2's driver names for
/// blobs (`filesystem`, `s3`, `inmemory`), the metadata kind for metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drivers {
    pub blobs: &'static str,
    pub metadata: &'static str,
}

/// Memory for small whole blobs (manifests, configs) served again and again.
const SMALL_BLOB_CACHE: usize = 16 << 20;

/// The blob and metadata stores of `config`, ready to serve.
pub async fn open(config: &Config) -> anyhow::Result<Backends> {
    let root = &config.storage.root;
    std::fs::create_dir_all(root)
        .with_context(|| format!("creating data root {}", root.display()))?;
    let kind = config.metadata.kind;
    let layout = kind == MetadataKind::Layout;
    let mut what = match config.storage.kind {
        StorageKind::Filesystem => format!("filesystem storage at {}", root.display()),
        StorageKind::S3 => String::new(),
        StorageKind::Memory => "in-memory storage".to_owned(),
    };
    // `layout` keeps the metadata next to the blobs, in the same store, and
    // so does a root moved from it to PostgreSQL (`berth metadata migrate`):
    // its blobs stay where registry:2 put them.
    let registry2_blobs =
        layout || (kind == MetadataKind::Postgres && root.join(REGISTRY2_TREE).is_dir());
    let (blobs, object_store): (Arc<dyn BlobStore>, Option<Arc<dyn ObjectStore>>) =
        match config.storage.kind {
            StorageKind::Filesystem if registry2_blobs => {
                (cached(FsBlobStore::open_distribution(root)?), None)
            }
            StorageKind::Filesystem => (cached(FsBlobStore::open(root)?), None),
            StorageKind::S3 => {
                let (store, signer, bucket) = s3(&config.storage.s3)?;
                what = bucket;
                (
                    cached(ObjectBlobStore::new(store.clone(), signer)),
                    Some(store),
                )
            }
            StorageKind::Memory => {
                let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
                (
                    cached(ObjectBlobStore::new(store.clone(), None)),
                    Some(store),
                )
            }
        };
    let metadata: Arc<dyn MetadataStore> = match (kind, object_store) {
        (MetadataKind::Layout, Some(store)) => Arc::new(LayoutMetadata::new(store)),
        (MetadataKind::Layout, None) => Arc::new(LayoutMetadata::open_local(root)?),
        (MetadataKind::Sqlite, _) => {
            let path = root.join("metadata.db");
            what.push_str(&format!(", metadata in {}", path.display()));
            Arc::new(SqliteMetadata::open(&path)?)
        }
        (MetadataKind::Postgres, _) => {
            let (metadata, shown) = postgres(&config.metadata.postgres).await?;
            what.push_str(&format!(", metadata in {shown}"));
            metadata
        }
    };
    let drivers = Drivers {
        blobs: match config.storage.kind {
            StorageKind::Filesystem => "filesystem",
            StorageKind::S3 => "s3",
            StorageKind::Memory => "inmemory",
        },
        metadata: match kind {
            MetadataKind::Sqlite => "sqlite",
            MetadataKind::Layout => "layout",
            MetadataKind::Postgres => "postgres",
        },
    };
    Ok(Backends {
        blobs,
        metadata,
        health: Health::new(what),
        drivers,
    })
}

/// The PostgreSQL metadata of `[metadata.postgres]` (migrated to this
/// build's schema), and the database as messages name it.
pub async fn postgres(cfg: &PostgresConfig) -> anyhow::Result<(Arc<dyn MetadataStore>, String)> {
    let url = cfg
        .url
        .as_ref()
        .context("metadata.postgres.url is required when metadata.kind = \"postgres\"")?;
    let shown = format!("PostgreSQL {}", url.masked());
    let settings = PostgresSettings {
        url: url.expose().to_owned(),
        pool_size: usize::try_from(cfg.pool_size).unwrap_or(usize::MAX),
        statement_timeout: cfg.statement_timeout.0,
    };
    let metadata = PostgresMetadata::connect(&settings)
        .await
        .with_context(|| format!("metadata.postgres.url: cannot use {shown}"))?;
    Ok((Arc::new(metadata), shown))
}

/// `store` behind the small-blob cache every backend gets: blobs are
/// immutable under their digest, so caching them is safe across hosts.
fn cached<S: BlobStore>(store: S) -> Arc<dyn BlobStore> {
    Arc::new(SmallBlobCache::new(store, SMALL_BLOB_CACHE))
}

/// The bucket as an object store, a signer when redirects are on, and the
/// bucket's name for messages.
type S3Handles = (Arc<dyn ObjectStore>, Option<Arc<dyn Signer>>, String);

/// How object_store retries a failed S3 request (connection refused or
/// dropped, a timeout, a 5xx): briefly. Its default (10 retries, up to
/// 3 min) holds a request ~3.4 s on a dead endpoint; a client that gets a
/// quick 503 retries by itself, and the health check sees trouble at once.
fn s3_retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(2),
    }
}

/// The bucket as an object store (under the prefix, if any) and, when
/// redirects are on, a signer for presigned GET URLs of the same keys.
fn s3(cfg: &S3Config) -> anyhow::Result<S3Handles> {
    // The usual AWS_* variables first; explicit settings win over them.
    // A blob download to a slow client may take far longer than
    // object_store's default 30 s whole-request timeout, so bound stalls
    // (no bytes for a while) instead of total time.
    let client = ClientOptions::new()
        .with_timeout_disabled()
        .with_connect_timeout(Duration::from_secs(3))
        .with_read_timeout(Duration::from_secs(120));
    let mut builder = AmazonS3Builder::from_env()
        .with_client_options(client)
        .with_retry(s3_retries());
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
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let plain_http = endpoint.as_deref().is_some_and(|e| {
        e.get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    });
    if plain_http && !cfg.allow_http {
        // object_store would accept this and fail every request with
        // "HTTP error: builder error".
        bail!(
            "storage.s3.endpoint {} is plain http://, which the S3 client refuses unless \
             storage.s3.allow_http = true (BERTH_STORAGE_S3_ALLOW_HTTP=true); set it, or use https://",
            endpoint.as_deref().unwrap_or_default()
        );
    }
    if cfg.allow_http {
        builder = builder.with_allow_http(true);
    }
    let prefix = cfg.prefix.as_deref().unwrap_or("").trim_matches('/');
    let what = describe_bucket(&builder, endpoint.as_deref(), prefix);
    let s3: AmazonS3 = builder
        .build()
        .with_context(|| format!("configuring the S3 store ({what})"))?;
    Ok(if prefix.is_empty() {
        let signer = cfg
            .redirect
            .then(|| Arc::new(s3.clone()) as Arc<dyn Signer>);
        (Arc::new(s3), signer, what)
    } else {
        let signer = cfg
            .redirect
            .then(|| Arc::new(PrefixStore::new(s3.clone(), prefix)) as Arc<dyn Signer>);
        (Arc::new(PrefixStore::new(s3, prefix)), signer, what)
    })
}

/// "S3 bucket `b` at http://host:port, prefix `p`": what messages name.
fn describe_bucket(builder: &AmazonS3Builder, endpoint: Option<&str>, prefix: &str) -> String {
    let value = |key| builder.get_config_value(&key).unwrap_or_default();
    let bucket = value(AmazonS3ConfigKey::Bucket);
    let mut what = match endpoint {
        Some(endpoint) => format!("S3 bucket `{bucket}` at {endpoint}"),
        None => match value(AmazonS3ConfigKey::Region) {
            region if region.is_empty() => format!("S3 bucket `{bucket}` on AWS"),
            region => format!("S3 bucket `{bucket}` on AWS in {region}"),
        },
    };
    if !prefix.is_empty() {
        what.push_str(&format!(", prefix `{prefix}`"));
    }
    what
}

/// How long a commit or a mount waits for garbage collection to decide
/// about a digest it condemned. A collector deletes the bytes and drops the
/// tombstone within milliseconds; only one that died mid-pass leaves it
/// until the next pass.
pub const TOMBSTONE_WAIT: Duration = Duration::from_secs(2);
const TOMBSTONE_POLL: Duration = Duration::from_millis(10);

/// Runs `attempt` until it does not meet a tombstone (`Conflict`), for up to
/// [`TOMBSTONE_WAIT`]: rather than fail a client that merely pushed or
/// mounted a blob a collector was removing, wait for the collector to be
/// done with it. Past the wait the conflict stands (409, the client retries).
pub async fn past_tombstones<T, F, Fut>(mut attempt: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>>,
{
    let started = Instant::now();
    loop {
        match attempt().await {
            Err(StorageError::Conflict(_)) if started.elapsed() < TOMBSTONE_WAIT => {
                tokio::time::sleep(TOMBSTONE_POLL).await;
            }
            result => return result,
        }
    }
}
