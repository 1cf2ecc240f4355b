//! dwsync archiver: keeps every handed-off file in the operator's archive bucket.
//!
//! `dwsync-archiver [--config <path>] [--check-config]`: loads the config (defaults, the TOML file, then
//! `DWSYNC_*` variables), sets up telemetry, and runs until SIGINT or SIGTERM.

/// jemalloc instead of glibc's malloc, for the C libraries too (librdkafka, zstd), as the
/// other services.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(cfg) = dwsync_config::load_for_binary::<dwsync_archiver::Config>(
        env!("CARGO_BIN_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )?
    else {
        return Ok(());
    };
    let telemetry = cfg.telemetry.clone();
    dwsync_telemetry::run_service(&telemetry, |shutdown| dwsync_archiver::run(cfg, shutdown))
        .await
        .map_err(anyhow::Error::from_boxed)
}
