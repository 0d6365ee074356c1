//! Berth's native host: serves HTTP, runs the registry guest per request and
//! supplies storage through the guest's WIT imports.

pub mod backends;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod error_body;
pub mod front;
pub mod health_probe;
pub mod logging;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod preflight;
pub mod sandbox;
pub mod store_root;
pub mod transfer;
pub mod upstream;

use front::{auth, client, limits, listener, server, tls};
use maintenance::gc;
use sandbox::{plugins, runtime};

use anyhow::Context as _;

/// `berth serve`: open the configured storage, load the guest, listen.
pub async fn serve(config: config::Config) -> anyhow::Result<()> {
    // What `berth config check` finds stops the server before anything is
    // opened, bound or created.
    let report = preflight::check(&config, plugins::Components::Read);
    report.log_warnings();
    report.into_result()?;
    let plugins =
        plugins::Plugins::load(&config.plugins).map_err(|e| preflight::refuse(&config, e))?;
    store_root::check(&config, true)?;
    let backends = backends::open(&config).await?;
    let writes = !config.server.read_only;
    backends::health::check_at_start(&backends, writes).await?;
    let wasm = match &config.server.guest {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("server.guest: cannot read {}", path.display()))?,
        None => runtime::EMBEDDED_GUEST.to_vec(),
    };
    let root = &config.storage.root;
    let mirrors = upstream::mirrors::Mirrors::from_config(
        &config.proxy,
        root.join(".cache").join("upstream"),
        backends.blobs.clone(),
        backends.metadata.clone(),
    )?;
    for mirror in mirrors.entries() {
        tracing::info!(
            upstream = mirror.client.url(),
            prefix = mirror.prefix.as_deref().unwrap_or("(unprefixed names)"),
            registry = mirror.registry.as_deref().unwrap_or("-"),
            tag_ttl = ?mirror.tag_ttl,
            "caching upstream"
        );
    }
    let forget: Vec<maintenance::forget::Rule> = mirrors
        .entries()
        .iter()
        .filter_map(|m| {
            Some(maintenance::forget::Rule {
                origin: m.client.url().to_owned(),
                unused_after: m.unused_after?,
            })
        })
        .collect();
    let guest = runtime::GuestRuntime::new(&wasm, &root.join(".cache"), backends, &config.limits)?
        .with_plugins(plugins)
        .with_mirrors(std::sync::Arc::new(mirrors));
    release_startup_memory();
    let addr = config.server.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    let tls = if config.server.tls.enabled() {
        let (acceptor, made) = tls::acceptor(&config.server.tls, root, addr)?;
        if let Some(made) = made {
            // Instructions for a person, not a log line.
            eprint!("{}", tls::trust_instructions(&made, local.port()));
        }
        Some(acceptor)
    } else {
        None
    };
    let auth = auth::Auth::from_config(&config.auth, root, tls.is_some())?;
    tracing::info!(
        addr = %local,
        root = %root.display(),
        storage = ?config.storage.kind,
        metadata = ?config.metadata.kind,
        read_only = config.server.read_only,
        https = tls.is_some(),
        auth = auth.is_some(),
        "berth is serving"
    );
    if config.gc.enabled && !config.server.read_only {
        spawn_gc(guest.backends().clone(), &config.gc);
    }
    if !forget.is_empty() && !config.server.read_only {
        spawn_forget(guest.backends().clone(), forget, config.gc.interval.0);
    }
    let interval = config.server.health_interval.0;
    backends::health::spawn_checker(guest.backends().clone(), interval, writes);
    let observe = &config.server.observe;
    let browsers = front::cors::Browsers::new(&config.server.cors, &config.server.headers)?;
    // Per-repository metrics name repositories: with logins on, only the
    // debug listener (which operators reach, not callers) shows them.
    let logins = auth.is_some();
    let debug_routes = |debug_listener: bool| front::debug::DebugRoutes {
        metrics: observe.metrics,
        repositories: debug_listener || !logins,
    };
    if observe.metrics {
        let grace = gc::GcPass::from_config(&config.gc, false).grace;
        maintenance::gauges::spawn(guest.backends().clone(), grace);
    }
    if let Some(debug_addr) = observe.debug_addr {
        let debug = tokio::net::TcpListener::bind(debug_addr)
            .await
            .with_context(|| format!("server.observe.debug_addr: listening on {debug_addr}"))?;
        tracing::info!(addr = %debug_addr, "debug listener: /metrics and /debug/health");
        let app = server::debug_router(guest.clone(), debug_routes(true));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(debug, app).await {
                tracing::error!(error = %e, "debug listener failed");
            }
        });
    }
    let front = server::Front {
        clients: client::Clients::new(config.server.trusted_proxies.clone(), tls.is_some()),
        read_only: config.server.read_only,
        deletes: config.server.delete,
        pushes: config.server.push,
        auth,
        uploads: limits::UploadLimiter::new(config.limits.uploads_per_client),
        namespaces: front::namespaces::Namespaces::new(
            config
                .proxy
                .iter()
                .filter_map(|p| Some((p.registry.clone()?, p.prefix.clone()?)))
                .collect(),
        ),
        notifier: notify::Notifier::from_config(
            &config.notifications,
            guest.backends(),
            root,
            local,
        )?
        .start(),
        ui: config.server.observe.ui,
        observe: front::observe::Observe {
            metrics: observe.metrics,
            access_log: config.log.access,
        },
        debug: observe.debug_addr.is_none().then_some(debug_routes(false)),
        browsers,
    };
    let limits = listener::ConnectionLimits::from_config(&config.limits);
    server::serve(listener, guest, front, tls, limits).await;
    Ok(())
}

/// Compiling the guest on a fresh root (and the plugins) takes about
/// 20 MiB of heap that is free again once it is done; glibc keeps freed
/// pages resident unless asked, which would raise every later peak (a
/// 1 GiB push's among them) by that much.
fn release_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only hands free heap pages back to the kernel;
    // it touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Forgets cached repositories nobody pulled for their upstream's
/// `unused_after`, once per garbage-collection interval.
fn spawn_forget(
    backends: backends::Backends,
    rules: Vec<maintenance::forget::Rule>,
    interval: std::time::Duration,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            match maintenance::forget::run(backends.metadata.as_ref(), &rules, gc::now()).await {
                Ok(forgotten) if !forgotten.is_empty() => {
                    tracing::info!(?forgotten, "forgot cached repositories nobody pulled");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "forgetting unused cached repositories"),
            }
        }
    });
}

/// Garbage collection in the background, one pass per interval, for as
/// long as the server runs.
fn spawn_gc(backends: backends::Backends, config: &config::GcConfig) {
    if backends.metadata.gc().is_none() {
        tracing::info!("blobs are not collected (layout metadata keeps no queue); uploads are");
    }
    let pass = gc::GcPass::from_config(config, false);
    let interval = config.interval.0;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let outcome = gc::run_pass(&backends, pass, |_, _| {}).await;
            maintenance::gauges::count_pass(outcome.as_ref().map_err(|_| ()));
            if outcome.is_ok() {
                maintenance::gauges::refresh(&backends, pass.grace).await;
            }
            match outcome {
                Ok(report) if !report.blobs.is_empty() || !report.uploads.is_empty() => {
                    tracing::info!(
                        blobs = report.blobs.len(),
                        bytes = report.bytes_freed(),
                        manifests = report.manifests.len(),
                        uploads = report.uploads.len(),
                        "garbage collection pass"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "garbage collection pass failed"),
            }
        }
    });
}
