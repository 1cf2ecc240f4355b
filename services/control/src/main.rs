//! dwsync control: holds each workspace's sync configuration and serves its REST API.
//!
//! `dwsync-control [--config <path>] [--check-config]`: loads the config (defaults, the TOML file, then `DWSYNC_*`
//! variables) and the sealing key (`DWSYNC_SEAL_KEY`), sets up telemetry, and runs until
//! SIGINT or SIGTERM.

use dwsync_control::seal::{SealError, Sealer};

/// jemalloc instead of glibc's malloc, for the C libraries too (librdkafka, zstd): with its
/// per-thread arenas glibc let a long backlog grow ingest's RSS past its target
/// (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(cfg) = dwsync_config::load_for_binary::<dwsync_control::Config>(
        env!("CARGO_BIN_NAME"),
        env!("CARGO_PKG_DESCRIPTION"),
    )?
    else {
        return Ok(());
    };
    // A missing key leaves control running (reads only, unready); a malformed one stops it.
    let sealer = match Sealer::from_env() {
        Ok(sealer) => Some(sealer),
        Err(SealError::MissingKey) => None,
        Err(err) => return Err(err.into()),
    };
    let telemetry = cfg.telemetry.clone();
    dwsync_telemetry::run_service(&telemetry, |shutdown| dwsync_control::run(cfg, sealer, shutdown))
        .await
        .map_err(anyhow::Error::from_boxed)
}
