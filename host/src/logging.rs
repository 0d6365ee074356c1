//! Where log lines go and how they look: `[log]` in the configuration,
//! overridden by `RUST_LOG`; colour only when stderr is a terminal, so that
//! log files and journald get plain text.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;

/// Noisy dependencies stay quiet unless asked for by name. object_store
/// logs each retry at INFO; the error that matters is logged by Berth, with
/// its cause, where it becomes a response.
const QUIET: &str = "wasmtime=warn,cranelift=warn,object_store=warn";

/// Installs the global subscriber. Call once, after the configuration is
/// known (a configuration error is printed without it).
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(format!("{},{QUIET}", config.level))
            .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET}")))
    });
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match config.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
