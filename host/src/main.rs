use berth::cli::{Cli, Command, ConfigCommand, GuestCommand};
use berth::config::{Config, Overrides};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => berth::serve(args.resolve()?).await,
        Command::Gc(args) => berth::commands::gc(&args.resolve()?, args.dry_run).await,
        Command::Fsck(args) => berth::commands::fsck(&args.resolve()?, args.repair).await,
        Command::Du(args) => berth::commands::du(&args.resolve()?, args.json).await,
        Command::Guest(GuestCommand::Export { standalone, file }) => {
            berth::commands::export_guest(&file, standalone)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let config = Config::load(Some(&file), std::env::vars(), &Overrides::default())?;
            print!("{}", config.render());
            Ok(())
        }
    }
}
