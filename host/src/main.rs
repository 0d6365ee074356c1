use berth::cli::{Cli, Command, ConfigCommand, GuestCommand};
use berth::config::{Config, LogConfig, Overrides};
use berth::logging;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => {
            let config = args.resolve()?;
            logging::init(&config.log);
            berth::serve(config).await
        }
        Command::Gc(args) => {
            let config = args.resolve()?;
            logging::init(&config.log);
            berth::commands::gc(&config, args.dry_run).await
        }
        Command::Fsck(args) => {
            let config = args.resolve()?;
            logging::init(&config.log);
            berth::commands::fsck(&config, args.repair).await
        }
        Command::Du(args) => {
            let config = args.resolve()?;
            logging::init(&config.log);
            berth::commands::du(&config, args.json).await
        }
        Command::Guest(GuestCommand::Export { standalone, file }) => {
            logging::init(&LogConfig::default());
            berth::commands::export_guest(&file, standalone)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            logging::init(&LogConfig::default());
            let config = Config::load(Some(&file), std::env::vars(), &Overrides::default())?;
            print!("{}", config.render());
            Ok(())
        }
    }
}
