//! dwsync control: holds each workspace's sync configuration and serves its REST API.
//!
//! `dwsync-control [--config <path>]`: loads the config (defaults, the TOML file, then `DWSYNC_*`
//! variables) and the sealing key (`DWSYNC_CONTROL_SEAL_KEY`), sets up telemetry, and runs until
//! SIGINT or SIGTERM.

use anyhow::Context as _;
use dwsync_config::Args;
use dwsync_control::seal::{SealError, Sealer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env()?;
    if args.help {
        println!("{}", Args::usage(env!("CARGO_BIN_NAME")));
        return Ok(());
    }
    let cfg: dwsync_control::Config = dwsync_config::load(args.config.as_deref(), dwsync_config::ENV_PREFIX)?;
    // A missing key leaves control running (reads only, unready); a malformed one stops it.
    let sealer = match Sealer::from_env() {
        Ok(sealer) => Some(sealer),
        Err(SealError::MissingKey) => None,
        Err(err) => return Err(err.into()),
    };
    let telemetry = dwsync_telemetry::init(&cfg.telemetry)?;
    let shutdown = dwsync_telemetry::shutdown_signal().context("registering the signal handlers")?;

    let ran = dwsync_control::run(cfg, sealer, shutdown).await;
    if let Err(err) = telemetry.shutdown().await {
        tracing::warn!(error = %err, "Telemetry was not fully flushed.");
    }
    Ok(ran?)
}
