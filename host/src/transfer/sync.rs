//! `berth sync`.

use crate::cli::SyncArgs;
use crate::config::Config;

pub async fn run(_config: &Config, _args: &SyncArgs) -> anyhow::Result<()> {
    anyhow::bail!("berth sync is not built yet")
}
