//! Berth's native host: serves HTTP, runs the registry guest per request and
//! supplies storage through the guest's WIT imports.

pub mod backends;
pub mod bindings;
pub mod cli;
pub mod config;
pub mod runtime;
pub mod server;
pub mod state;
pub mod storage_imports;

use anyhow::Context as _;

/// `berth serve`: open the configured storage, load the guest, listen.
pub async fn serve(config: config::Config) -> anyhow::Result<()> {
    let backends = backends::open(&config)?;
    let wasm = match &config.server.guest {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("reading guest {}", path.display()))?
        }
        None => runtime::EMBEDDED_GUEST.to_vec(),
    };
    let root = &config.storage.root;
    let guest = runtime::GuestRuntime::new(&wasm, &root.join(".cache"), backends)?;
    let addr = config.server.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    tracing::info!(
        %addr,
        root = %root.display(),
        storage = ?config.storage.kind,
        metadata = ?config.metadata.kind,
        "berth is serving"
    );
    server::serve(listener, guest).await
}
