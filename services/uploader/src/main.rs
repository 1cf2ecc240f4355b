//! dwsync uploader: writes handed-off Parquet files to each workspace's bucket, then commits.
//!
//! `dwsync-uploader [--config <path>] [--check-config]`: loads the config (defaults, the TOML file, then `DWSYNC_*`
//! variables), sets up telemetry, and runs until SIGINT or SIGTERM.

/// jemalloc instead of glibc's malloc, for the C libraries too (librdkafka, zstd): with its
/// per-thread arenas glibc let a long backlog grow ingest's RSS past its target
/// (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(cfg) = dwsync_config::load_for_binary::<dwsync_uploader::Config>(
        env!("CARGO_BIN_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )?
    else {
        return Ok(());
    };
    let telemetry = cfg.telemetry.clone();
    dwsync_telemetry::run_service(&telemetry, |shutdown| dwsync_uploader::run(cfg, shutdown))
        .await
        .map_err(anyhow::Error::from_boxed)
}
