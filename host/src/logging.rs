//! Where log lines go and how they look: `[log]` in the configuration,
//! overridden by `RUST_LOG`; colour only when stderr is a terminal, so that
//! log files and journald get plain text.
//!
//! The server writes its lines from a background thread through a buffer
//! (tracing-appender): with one access line per request, a `write` system
//! call on the request's own thread cost about 5-9% of manifest GET
//! throughput (bench/results/observe.md). Nothing is dropped: when the
//! queue is full, the request waits for it. The other commands log little
//! and write directly.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Noisy dependencies stay quiet unless asked for by name. object_store
/// logs each retry at INFO; the error that matters is logged by Berth, with
/// its cause, where it becomes a response.
const QUIET: &str = "wasmtime=warn,cranelift=warn,object_store=warn";

/// Lines the background writer buffers before one `write`.
const BUFFER: usize = 64 << 10;

/// Keeps the server's background log writer running; dropping it writes
/// out whatever is still queued.
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber, writing to stderr directly. Call once,
/// after the configuration is known (a configuration error is printed
/// without it).
pub fn init(config: &LogConfig) {
    install(config, std::io::stderr);
}

/// [`init`] for `serve`: lines leave through a background thread. Hold
/// the guard until the server is done.
pub fn init_server(config: &LogConfig) -> LogGuard {
    let buffered = std::io::BufWriter::with_capacity(BUFFER, std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("berth-log")
        .finish(buffered);
    install(config, writer);
    LogGuard(guard)
}

fn install<W>(config: &LogConfig, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(format!("{},{QUIET}", config.level))
            .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET}")))
    });
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(filter);
    match config.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
