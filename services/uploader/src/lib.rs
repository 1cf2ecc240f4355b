//! dwsync uploader: writes handed-off Parquet files to each workspace's bucket, then commits.
//!
//! [`start`] subscribes to the handoff topic (`read_committed`) and runs the [`consumer`] loop:
//! chunks are reassembled per partition ([`offsets`]), each complete file is routed by its
//! workspace id to that workspace's own destination ([`destinations`]), its sync's
//! `cio-validate` is written, then the data object is created without ever overwriting
//! ([`s3_sink`]), retried with backoff ([`retry`]) until it succeeds, and only then is the
//! partition's offset committed. It also serves `/healthz`, `/readyz` and `/metrics`
//! ([`metrics`], the lag gauge from [`lag`]).

use std::future::Future;
use std::sync::Arc;

use dwsync_telemetry::kafka::KafkaProbeError;
use dwsync_telemetry::{Service, ServiceError};

pub mod config;
pub mod consumer;
pub mod delivery;
pub mod destinations;
pub mod lag;
pub mod metrics;
pub mod offsets;
pub mod rebalance;
pub mod retry;
pub mod s3_sink;
pub mod syncs;

pub use config::{Config, Destination, HandoffConfig, InvalidConfig, UploadConfig};

/// The service's short name, used in logs and Kafka client ids.
pub const NAME: &str = "uploader";

/// Why uploader stopped other than by being asked to.
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
    Consumer(#[from] consumer::ConsumerError),
}

/// Runs uploader until `shutdown` resolves, then stops gracefully.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    start(cfg).await?.run_until(shutdown).await?;
    Ok(())
}

/// Binds the HTTP endpoints and spawns uploader's tasks; [`Service::run_until`] runs them.
pub async fn start(cfg: Config) -> Result<Service, Error> {
    cfg.validate()?;
    let destinations = destinations::Destinations::new(&cfg.destinations)?;
    let mut service = Service::start(NAME, &cfg.http).await?;
    service.spawn_kafka_probe(&cfg.kafka)?;

    let lags = metrics::Lags::default();
    let metrics = Arc::new(metrics::Metrics::new(Arc::clone(&lags)));
    let consumer = consumer::subscribe(&cfg.kafka, &cfg.handoff, Arc::clone(&metrics))?;
    let shutdown = service.shutdown_token();
    let topic = cfg.handoff.topic.clone();
    let workspaces: Vec<_> = cfg.destinations.iter().map(|d| d.workspace_id).collect();
    tracing::info!(
        topic = %topic,
        group_id = %cfg.handoff.group_id,
        ?workspaces,
        "Delivering handoff files to {} destination(s).",
        destinations.len()
    );
    let sampler =
        lag::run(Arc::downgrade(&consumer), topic.clone(), cfg.handoff.lag_interval(), lags, shutdown.clone());
    service.spawn("consumer-lag", sampler);
    let delivery = delivery::Delivery::new(destinations, &cfg.upload, Arc::clone(&metrics), shutdown.clone());
    let pipeline = consumer::Pipeline::new(consumer, &topic, delivery, metrics, shutdown);
    service.spawn("handoff-consumer", pipeline.run());
    Ok(service)
}

#[cfg(test)]
mod tests {
    use dwsync_config::HttpConfig;
    use dwsync_telemetry::testing;
    use figment::Jail;

    use super::*;

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail's closures return figment::Result")]
    fn defaults_and_compose_variables() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            let cfg: Config = dwsync_config::load(None, dwsync_config::ENV_PREFIX).map_err(|e| e.to_string())?;
            assert_eq!(cfg, Config::default());
            assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8082");
            assert_eq!(cfg.handoff.topic, "dwsync.handoff");

            jail.set_env("DWSYNC_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
            jail.set_env("DWSYNC_HTTP__LISTEN", "0.0.0.0:8082");
            jail.set_env("DWSYNC_HANDOFF__GROUP_ID", "uploader-2");
            jail.set_env("DWSYNC_UPLOAD__RETRY_MAX_MS", "5000");
            jail.set_env("DWSYNC_TELEMETRY__OTLP_ENDPOINT", "http://otel-collector:4318");
            let cfg: Config = dwsync_config::load(None, dwsync_config::ENV_PREFIX).map_err(|e| e.to_string())?;
            assert_eq!(cfg.kafka.bootstrap_servers, "kafka:9092");
            assert_eq!(cfg.http.listen.to_string(), "0.0.0.0:8082");
            assert_eq!(cfg.handoff.group_id, "uploader-2");
            assert_eq!(cfg.upload.retry_max_ms, 5000);
            assert_eq!(cfg.telemetry.otlp_endpoint.as_deref(), Some("http://otel-collector:4318"));
            Ok(())
        });
    }

    #[tokio::test]
    async fn serves_health_and_metrics_until_shutdown() {
        testing::init_once();
        let cfg = Config { http: HttpConfig::localhost(0), kafka: testing::unreachable_kafka(), ..Config::default() };
        testing::check_service(start(cfg).await.expect("start"), true).await;
    }

    #[tokio::test]
    async fn an_invalid_configuration_does_not_start() {
        let mut cfg = Config { http: HttpConfig::localhost(0), ..Config::default() };
        cfg.upload.part_bytes = 1024;
        let err = start(cfg).await.expect_err("part size below 5 MiB");
        assert!(matches!(err, Error::Config(InvalidConfig::Value { key: "upload.part_bytes", .. })), "{err:?}");
    }
}
