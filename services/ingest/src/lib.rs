//! dwsync ingest: consumes source topics, windows records per workspace and table, encodes Parquet.
//!
//! At this stage [`run`] serves `/healthz`, `/readyz` and `/metrics` and keeps readiness in
//! step with Kafka reachability; the data path comes later.

use std::future::Future;

use dwsync_config::{HttpConfig, KafkaConfig, TelemetryConfig};
use dwsync_telemetry::kafka::KafkaProbeError;
use dwsync_telemetry::{Service, ServiceError};
use serde::{Deserialize, Serialize};

/// The service's short name, used in logs and Kafka client ids.
pub const NAME: &str = "ingest";

/// ingest's configuration: `Config::default()`, then `--config <file>`, then `DWSYNC_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The Kafka cluster. Default: [`KafkaConfig::default`] (`127.0.0.1:9092`).
    pub kafka: KafkaConfig,
    /// The HTTP endpoints. Default: listen on `127.0.0.1:8081`.
    pub http: HttpConfig,
    /// Logs, metrics and traces. Default: `service_name = "dwsync-ingest"`, text logs, no OTLP.
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            http: HttpConfig::localhost(8081),
            telemetry: TelemetryConfig::for_service("dwsync-ingest"),
        }
    }
}

/// Why ingest stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP endpoints or a task failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The Kafka client could not be created.
    #[error(transparent)]
    Kafka(#[from] KafkaProbeError),
}

/// Runs ingest until `shutdown` resolves, then stops gracefully.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    start(cfg).await?.run_until(shutdown).await?;
    Ok(())
}

/// Binds the HTTP endpoints and spawns ingest's tasks; [`Service::run_until`] runs them.
pub async fn start(cfg: Config) -> Result<Service, Error> {
    let mut service = Service::start(NAME, &cfg.http).await?;
    service.spawn_kafka_probe(&cfg.kafka)?;
    Ok(service)
}

#[cfg(test)]
mod tests {
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
            assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8081");
            assert_eq!(cfg.telemetry.service_name, "dwsync-ingest");

            jail.set_env("DWSYNC_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
            jail.set_env("DWSYNC_HTTP__LISTEN", "0.0.0.0:8081");
            jail.set_env("DWSYNC_TELEMETRY__OTLP_ENDPOINT", "http://otel-collector:4318");
            let cfg: Config = dwsync_config::load(None, dwsync_config::ENV_PREFIX).map_err(|e| e.to_string())?;
            assert_eq!(cfg.kafka.bootstrap_servers, "kafka:9092");
            assert_eq!(cfg.http.listen.to_string(), "0.0.0.0:8081");
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
}
