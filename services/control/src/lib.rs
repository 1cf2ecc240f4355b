//! dwsync control: holds each workspace's sync configuration.
//!
//! At this stage [`run`] serves `/healthz`, `/readyz` and `/metrics`; the configuration API
//! comes later.

use std::future::Future;

use dwsync_config::{HttpConfig, KafkaConfig, TelemetryConfig};
use dwsync_telemetry::{Service, ServiceError};
use serde::{Deserialize, Serialize};

/// The service's short name, used in logs and Kafka client ids.
pub const NAME: &str = "control";

/// control's configuration: `Config::default()`, then `--config <file>`, then `DWSYNC_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The Kafka cluster (not used yet). Default: [`KafkaConfig::default`] (`127.0.0.1:9092`).
    pub kafka: KafkaConfig,
    /// The HTTP endpoints. Default: listen on `127.0.0.1:8083`.
    pub http: HttpConfig,
    /// Logs, metrics and traces. Default: `service_name = "dwsync-control"`, text logs, no OTLP.
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            http: HttpConfig::localhost(8083),
            telemetry: TelemetryConfig::for_service("dwsync-control"),
        }
    }
}

/// Why control stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP endpoints or a task failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Runs control until `shutdown` resolves, then stops gracefully.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    start(cfg).await?.run_until(shutdown).await?;
    Ok(())
}

/// Binds the HTTP endpoints; [`Service::run_until`] runs the service.
pub async fn start(cfg: Config) -> Result<Service, Error> {
    Ok(Service::start(NAME, &cfg.http).await?)
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
            assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8083");

            jail.set_env("DWSYNC_HTTP__LISTEN", "0.0.0.0:8083");
            jail.set_env("DWSYNC_TELEMETRY__OTLP_ENDPOINT", "http://otel-collector:4318");
            let cfg: Config = dwsync_config::load(None, dwsync_config::ENV_PREFIX).map_err(|e| e.to_string())?;
            assert_eq!(cfg.http.listen.to_string(), "0.0.0.0:8083");
            assert_eq!(cfg.telemetry.otlp_endpoint.as_deref(), Some("http://otel-collector:4318"));
            Ok(())
        });
    }

    #[tokio::test]
    async fn serves_health_and_metrics_until_shutdown() {
        testing::init_once();
        let cfg = Config { http: HttpConfig::localhost(0), ..Config::default() };
        testing::check_service(start(cfg).await.expect("start"), false).await;
    }
}
