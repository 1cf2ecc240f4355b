//! dwsync archiver: keeps every file ingest hands off — of every workspace, with a sync or
//! not — in an operator-owned archive bucket, as Parquet, for initial syncs.
//!
//! [`start`] subscribes its own consumer group to the handoff topic (`read_committed`) and runs
//! the [`pipeline`]: per assigned handoff partition, complete files ([`dwsync_handoff`]'s
//! reassembler) are decoded back to Arrow ([`file`]) and collected into a [`batch`] until it is
//! large or old enough ([`partition`]); then each table of the batch becomes one object
//! ([`dwsync_archive::write`]) under a key made of the partition and the batch's offsets
//! ([`dwsync_archive::key`]), one row group per workspace, created without overwriting
//! ([`store`], [`flush`]), and only then is the
//! batch's end committed ([`kafka`]). It serves `/healthz`, `/readyz` and `/metrics` ([`metrics`]).

use std::future::Future;
use std::sync::Arc;

use dwsync_telemetry::kafka::KafkaProbeError;
use dwsync_telemetry::{Service, ServiceError};

pub mod batch;
pub mod config;
pub mod file;
pub mod flush;
pub mod kafka;
pub mod metrics;
pub mod partition;
pub mod pipeline;
pub mod retention;
pub mod store;

pub use config::{ArchiveConfig, ArchiveStore, Config, HandoffSource, InvalidConfig};

/// The service's short name, used in logs and Kafka client ids.
pub const NAME: &str = "archiver";

/// Why the archiver stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot run.
    #[error("invalid configuration: {0}")]
    Config(#[from] InvalidConfig),
    /// The HTTP endpoints or a task failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The Kafka probe's client could not be created.
    #[error(transparent)]
    Kafka(#[from] KafkaProbeError),
    /// The handoff consumer could not be created or subscribed.
    #[error(transparent)]
    Consumer(#[from] kafka::KafkaStepError),
    /// The loop failed.
    #[error(transparent)]
    Pipeline(#[from] pipeline::PipelineError),
}

/// Runs the archiver until `shutdown` resolves, then stops gracefully.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    start(cfg).await?.run_until(shutdown).await?;
    Ok(())
}

/// Binds the HTTP endpoints and spawns the archiver's loop; [`Service::run_until`] runs it.
pub async fn start(cfg: Config) -> Result<Service, Error> {
    cfg.validate()?;
    let mut service = Service::start(NAME, &cfg.http).await?;
    service.spawn_kafka_probe(&cfg.kafka)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let shutdown = service.shutdown_token();
    let store = store::Store::new(&cfg.store, &cfg.archive);
    let retention = cfg.archive.retention_days.clone();
    let mut sweeper = retention::Sweeper::new(store.client().clone(), store.bucket(), store.prefix(), retention);
    let (every, stop, swept_metrics) =
        (std::time::Duration::from_millis(cfg.archive.retention_check_ms), service.shutdown_token(), metrics.clone());
    service.spawn("retention", async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
            match sweeper.sweep(now_ms()).await {
                Ok(swept) => {
                    for (table, n) in &swept.deleted {
                        swept_metrics.expired(table.name(), *n);
                    }
                    let deleted: u64 = swept.deleted.values().sum();
                    tracing::info!(
                        listed = swept.listed,
                        looked_up = swept.looked_up,
                        deleted,
                        "Retention sweep done."
                    );
                }
                Err(error) => tracing::warn!(%error, "Retention sweep failed; trying again at the next one."),
            }
        }
        Ok::<(), std::convert::Infallible>(())
    });
    let main = async move {
        let Some(generation) =
            dwsync_sync_config::generation::current_until_shutdown(&cfg.kafka, &cfg.handoff.topic, &shutdown).await
        else {
            return Ok(());
        };
        let consumer = kafka::subscribe(&cfg.kafka, &cfg.handoff)?;
        tracing::info!(
            topic = %cfg.handoff.topic,
            group_id = %cfg.handoff.group_id,
            bucket = %store.bucket(),
            prefix = %store.prefix(),
            "Archiving handoff files."
        );
        let pipeline =
            pipeline::Pipeline::new(consumer, (&cfg.handoff.topic, generation), store, &cfg.archive, metrics, shutdown);
        pipeline.run().await.map_err(Error::from)
    };
    service.spawn("archiver", main);
    Ok(service)
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use dwsync_config::{HttpConfig, Secret};
    use dwsync_telemetry::testing;

    use super::*;

    #[tokio::test]
    async fn serves_health_and_metrics_until_shutdown() {
        testing::init_once();
        let mut cfg =
            Config { http: HttpConfig::localhost(0), kafka: testing::unreachable_kafka(), ..Config::default() };
        cfg.store.access_key_id = "k".into();
        cfg.store.secret_access_key = Secret::new("s");
        testing::check_service(start(cfg).await.expect("start"), true).await;
    }

    #[tokio::test]
    async fn an_invalid_configuration_does_not_start() {
        let mut cfg = Config { http: HttpConfig::localhost(0), ..Config::default() };
        cfg.store.access_key_id = "k".into();
        let err = start(cfg).await.expect_err("half a key pair");
        assert!(matches!(err, Error::Config(InvalidConfig { key: "store.access_key_id", .. })), "{err:?}");
    }
}
