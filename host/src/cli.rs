//! Command-line interface.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "berth", version, about = "An OCI container registry")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the registry over HTTP.
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: SocketAddr,
    /// Directory for blobs and metadata (created if missing).
    #[arg(long, default_value = "./registry-data")]
    pub root: PathBuf,
    /// Run this guest component instead of the embedded one.
    #[arg(long, value_name = "FILE.wasm")]
    pub guest: Option<PathBuf>,
}
