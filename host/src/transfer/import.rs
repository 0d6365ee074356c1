//! `berth import`.

use crate::cli::ImportArgs;
use crate::config::Config;

pub async fn run(_config: &Config, _args: &ImportArgs) -> anyhow::Result<()> {
    anyhow::bail!("berth import is not built yet")
}
