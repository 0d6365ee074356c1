//! Command-line interface.

use crate::config::{Config, ConfigError, Overrides};
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
    /// Inspect configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate FILE (with the BERTH_* environment applied) and print the
    /// configuration it resolves to, secrets masked.
    Check { file: PathBuf },
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Configuration file (TOML); see docs/CONFIGURATION.md.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Directory for local state (created if missing) [default: ./registry-data].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Run this guest component instead of the embedded one.
    #[arg(long, value_name = "FILE.wasm")]
    pub guest: Option<PathBuf>,
}

impl ServeArgs {
    /// The configuration these flags select: file, then environment, then
    /// the flags themselves.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let overrides = Overrides {
            addr: self.addr,
            root: self.root.clone(),
            guest: self.guest.clone(),
        };
        Config::load(self.config.as_deref(), std::env::vars(), &overrides)
    }
}
