use berth::cli::{Cli, Command, ConfigCommand, GuestCommand, MetadataCommand};
use berth::config::{Config, ConfigError, LogConfig, Overrides};
use berth::sandbox::plugins::Components;
use berth::{logging, preflight};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(error) => {
            report(&error);
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let config = args.resolve()?;
            let _log = logging::init_server(&config.log);
            log_notes(&config);
            berth::serve(config).await?;
        }
        Command::Gc(args) => {
            let config = args.resolve()?;
            init_logging(&config);
            berth::commands::gc(&config, args.dry_run).await?;
        }
        Command::Fsck(args) => {
            let config = args.resolve()?;
            init_logging(&config);
            berth::commands::fsck(&config, args.repair).await?;
        }
        Command::Du(args) => {
            let config = args.resolve()?;
            init_logging(&config);
            berth::commands::du(&config, args.json).await?;
        }
        Command::Export(args) => {
            let config = args.resolve()?;
            init_logging(&config);
            berth::transfer::export::run(&config, &args).await?;
        }
        Command::Import(args) => {
            let config = args.resolve()?;
            init_logging(&config);
            berth::transfer::import::run(&config, &args).await?;
        }
        Command::Sync(args) => {
            let config = args.resolve()?;
            init_logging(&config);
            berth::transfer::sync::run(&config, &args).await?;
        }
        Command::Metadata(MetadataCommand::Migrate(args)) => {
            let config = args.resolve()?;
            init_logging(&config);
            berth::transfer::migrate::run(&config, args.progress.quiet).await?;
        }
        Command::Health(args) => {
            let config = args.resolve()?;
            return Ok(berth::commands::health(&config, args.url.as_deref()).await);
        }
        Command::Guest(GuestCommand::Export { standalone, file }) => {
            logging::init(&LogConfig::default());
            berth::commands::export_guest(&file, standalone)?;
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let config = Config::resolve(Some(&file), std::env::vars(), &Overrides::default())?;
            let report = preflight::check(&config, Components::Compile);
            for problem in &report.problems {
                eprintln!("{problem}");
            }
            let errors = report.errors().count();
            if errors > 0 {
                eprintln!(
                    "{}: {errors} {}; `berth serve` would refuse it",
                    file.display(),
                    if errors == 1 { "error" } else { "errors" }
                );
                return Ok(ExitCode::FAILURE);
            }
            print!("{}", config.render());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Logging as configured, then the warnings reading the configuration
/// gave (unknown `BERTH_*` variables), at WARN. `serve` logs them with the
/// rest of its checks.
fn init_logging(config: &Config) {
    logging::init(&config.log);
    log_notes(config);
    for warning in &config.source.warnings {
        tracing::warn!("{}", warning.to_string().trim_start_matches("warning: "));
    }
}

/// What reading the configuration noted (a registry:2 tree served in
/// place, registry:2 settings not needed), at INFO.
fn log_notes(config: &Config) {
    for note in &config.source.notes {
        tracing::info!("{note}");
    }
}

/// Configuration problems one per line, as `config check` prints them;
/// anything else with its causes, as `berth: what: why: because`.
fn report(error: &anyhow::Error) {
    if let Some(refused) = error.downcast_ref::<preflight::Refused>() {
        for problem in &refused.0 {
            eprintln!("{problem}");
        }
        eprintln!(
            "berth: the configuration has {} {}; nothing was started",
            refused.0.len(),
            if refused.0.len() == 1 {
                "error"
            } else {
                "errors"
            }
        );
    } else if let Some(error) = error.downcast_ref::<ConfigError>() {
        eprintln!("{error}");
    } else {
        // The causes on one line, never a backtrace: this is for the
        // person who ran the command, and RUST_BACKTRACE is often set.
        eprintln!("berth: {error:#}");
    }
}
