//! dwsync backfill: the initial syncs of each workspace's tables.
//!
//! `dwsync-backfill [--config <path>] [--check-config]`: loads the config (defaults, the TOML file, then
//! `DWSYNC_*` variables), sets up telemetry, and runs until SIGINT or SIGTERM. The destinations'
//! sealed secrets are opened with `DWSYNC_SEAL_KEY` (and `DWSYNC_SEAL_OLD_KEYS`).

/// jemalloc instead of glibc's malloc, for the C libraries too (librdkafka, zstd), as the
/// other services.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(cfg) = dwsync_config::load_for_binary::<dwsync_backfill::Config>(
        env!("CARGO_BIN_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )?
    else {
        return Ok(());
    };
    let telemetry = cfg.telemetry.clone();
    dwsync_telemetry::run_service(&telemetry, |shutdown| dwsync_backfill::run(cfg, shutdown))
        .await
        .map_err(anyhow::Error::from_boxed)
}
