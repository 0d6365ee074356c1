//! Berth's native host: serves HTTP, runs the registry guest per request and
//! supplies storage through the guest's WIT imports.

pub mod bindings;
pub mod cli;
pub mod runtime;
pub mod server;
pub mod state;
pub mod storage_imports;

use anyhow::Context as _;
use berth_storage::SmallBlobCache;
use berth_storage::fs_blobs::FsBlobStore;
use berth_storage::sqlite_meta::SqliteMetadata;
use std::sync::Arc;

/// Memory for small whole blobs (manifests, configs) served again and again.
const SMALL_BLOB_CACHE: usize = 16 << 20;

/// `berth serve`: open storage under the root, load the guest, listen.
pub async fn serve(args: cli::ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.root)
        .with_context(|| format!("creating data root {}", args.root.display()))?;
    let backends = storage_imports::Backends {
        blobs: Arc::new(SmallBlobCache::new(
            FsBlobStore::open(&args.root)?,
            SMALL_BLOB_CACHE,
        )),
        metadata: Arc::new(SqliteMetadata::open(&args.root.join("metadata.db"))?),
    };
    let wasm = match &args.guest {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("reading guest {}", path.display()))?
        }
        None => runtime::EMBEDDED_GUEST.to_vec(),
    };
    let guest = runtime::GuestRuntime::new(&wasm, &args.root.join(".cache"), backends)?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    tracing::info!(addr = %args.addr, root = %args.root.display(), "berth is serving");
    server::serve(listener, guest).await
}
