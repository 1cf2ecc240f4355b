//! dwsync ingest: consumes source topics, windows records per workspace and table, encodes Parquet.
//!
//! [`run`] starts the ingest loop ([`pipeline`]): it consumes one source topic per table,
//! decodes records with the v5 contract in batches on worker threads ([`batch`]; bad ones go to
//! the dead-letter topic), buffers them per (workspace, table) in [`window`]s, encodes Parquet
//! ([`encode`]) and hands the files to the
//! uploader over the handoff topic in one Kafka transaction with the source offsets
//! ([`handoff`]). It also serves `/healthz`, `/readyz` and `/metrics`; the group's lag is
//! sampled apart from the loop ([`lag`]).

use std::future::Future;
use std::sync::Arc;

use dwsync_telemetry::kafka::KafkaProbeError;
use dwsync_telemetry::{Service, ServiceError};

pub mod batch;
mod blocking;
pub mod config;
pub mod dead_letter;
pub mod encode;
pub mod handoff;
pub mod in_flight;
pub mod lag;
pub mod limits;
pub mod metrics;
pub mod parallel;
pub mod pipeline;
pub mod rebalance;
pub mod window;

pub use config::{Config, ConfigError, IngestConfig, SourceTopic, TopicOverride, WindowConfig};

/// The service's short name, used in logs and Kafka client ids.
pub const NAME: &str = "ingest";

/// Why ingest stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP endpoints or a task failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The Kafka client could not be created.
    #[error(transparent)]
    Kafka(#[from] KafkaProbeError),
    /// The lag sampler could not start.
    #[error(transparent)]
    Lag(#[from] dwsync_telemetry::group_lag::GroupLagError),
}

/// Runs ingest until `shutdown` resolves, then stops gracefully.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    start(cfg).await?.run_until(shutdown).await?;
    Ok(())
}

/// Binds the HTTP endpoints and spawns ingest's tasks; [`Service::run_until`] runs them.
pub async fn start(cfg: Config) -> Result<Service, Error> {
    let topics = Arc::new(cfg.source_topics()?);
    let mut service = Service::start(NAME, &cfg.http).await?;
    service.spawn_kafka_probe(&cfg.kafka)?;
    lag::spawn(&mut service, &cfg, &topics)?;
    let health = service.health().clone();
    health.set_unready(pipeline::COMPONENT, "starting");
    let token = service.shutdown_token();
    service.spawn("pipeline", pipeline::run(Arc::new(cfg), topics, health, token));
    Ok(service)
}

#[cfg(test)]
mod tests {
    use dwsync_config::HttpConfig;
    use dwsync_config::testing::load_with;
    use dwsync_telemetry::testing;

    use super::*;

    #[test]
    fn defaults_and_compose_variables() {
        let cfg: Config = load_with(None, &[]).expect("defaults");
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(cfg.telemetry.service_name, "dwsync-ingest");

        let cfg: Config = load_with(
            None,
            &[
                ("DWSYNC_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092"),
                ("DWSYNC_HTTP__LISTEN", "0.0.0.0:8081"),
                ("DWSYNC_TELEMETRY__OTLP_ENDPOINT", "http://otel-collector:4318"),
            ],
        )
        .expect("overridden");
        assert_eq!(cfg.kafka.bootstrap_servers, "kafka:9092");
        assert_eq!(cfg.http.listen.to_string(), "0.0.0.0:8081");
        assert_eq!(cfg.telemetry.otlp_endpoint.as_deref(), Some("http://otel-collector:4318"));
    }

    #[tokio::test]
    async fn serves_health_and_metrics_until_shutdown() {
        testing::init_once();
        let mut cfg =
            Config { http: HttpConfig::localhost(0), kafka: testing::unreachable_kafka(), ..Config::default() };
        cfg.ingest.transaction_timeout_ms = 1000;
        testing::check_service(start(cfg).await.expect("start"), true).await;
    }
}
