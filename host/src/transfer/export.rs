//! `berth export`.

use crate::cli::ExportArgs;
use crate::config::Config;

pub async fn run(_config: &Config, _args: &ExportArgs) -> anyhow::Result<()> {
    anyhow::bail!("berth export is not built yet")
}
