//! dwsync ingest: consumes source topics, windows records per workspace and table, encodes Parquet.
//!
//! `dwsync-ingest [--config <path>]`: loads the config (defaults, the TOML file, then `DWSYNC_*`
//! variables), sets up telemetry, and runs until SIGINT or SIGTERM.

use anyhow::Context as _;
use dwsync_config::Args;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::from_env()?;
    if args.help {
        println!("{}", Args::usage(env!("CARGO_BIN_NAME")));
        return Ok(());
    }
    let cfg: dwsync_ingest::Config = dwsync_config::load(args.config.as_deref(), dwsync_config::ENV_PREFIX)?;
    let telemetry = dwsync_telemetry::init(&cfg.telemetry)?;
    let shutdown = dwsync_telemetry::shutdown_signal().context("registering the signal handlers")?;

    let ran = dwsync_ingest::run(cfg, shutdown).await;
    if let Err(err) = telemetry.shutdown().await {
        tracing::warn!(error = %err, "Telemetry was not fully flushed.");
    }
    Ok(ran?)
}
