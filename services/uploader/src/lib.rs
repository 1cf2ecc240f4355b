//! dwsync uploader: writes handed-off Parquet files to each workspace's bucket, then commits.
//!
//! At this stage [`run`] serves `/healthz`, `/readyz` and `/metrics` and keeps readiness in
//! step with Kafka reachability; the data path comes later.

use std::future::Future;

use dwsync_config::{HttpConfig, KafkaConfig, Secret, TelemetryConfig};
use dwsync_telemetry::kafka::KafkaProbeError;
use dwsync_telemetry::{Service, ServiceError};
use serde::{Deserialize, Serialize};

/// The service's short name, used in logs and Kafka client ids.
pub const NAME: &str = "uploader";

/// uploader's configuration: `Config::default()`, then `--config <file>`, then `DWSYNC_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The Kafka cluster. Default: [`KafkaConfig::default`] (`127.0.0.1:9092`).
    pub kafka: KafkaConfig,
    /// The HTTP endpoints. Default: listen on `127.0.0.1:8082`.
    pub http: HttpConfig,
    /// Logs, metrics and traces. Default: `service_name = "dwsync-uploader"`, text logs, no OTLP.
    pub telemetry: TelemetryConfig,
    /// The S3 API the files are written to. Default: [`S3Config::default`] (AWS, `us-east-1`).
    pub s3: S3Config,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            http: HttpConfig::localhost(8082),
            telemetry: TelemetryConfig::for_service("dwsync-uploader"),
            s3: S3Config::default(),
        }
    }
}

/// How to reach the S3 API (`[s3]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Config {
    /// Endpoint URL of an S3-compatible store (`http://minio:9000`). Default: none, AWS S3.
    pub endpoint: Option<String>,
    /// Signing region. Default: `"us-east-1"`.
    pub region: String,
    /// Access key id. Default: empty, use the AWS default credential chain.
    pub access_key_id: String,
    /// Secret access key, never logged or dumped. Default: empty (with `access_key_id`).
    pub secret_access_key: Secret,
    /// Path-style addressing (`<endpoint>/<bucket>/<key>`), which MinIO needs. Default: `false`.
    pub force_path_style: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            force_path_style: false,
        }
    }
}

/// Why uploader stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP endpoints or a task failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The Kafka client could not be created.
    #[error(transparent)]
    Kafka(#[from] KafkaProbeError),
}

/// Runs uploader until `shutdown` resolves, then stops gracefully.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    start(cfg).await?.run_until(shutdown).await?;
    Ok(())
}

/// Binds the HTTP endpoints and spawns uploader's tasks; [`Service::run_until`] runs them.
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
            assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8082");
            assert_eq!(cfg.s3.region, "us-east-1");
            assert!(cfg.s3.secret_access_key.is_empty());

            jail.set_env("DWSYNC_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092");
            jail.set_env("DWSYNC_HTTP__LISTEN", "0.0.0.0:8082");
            jail.set_env("DWSYNC_S3__ENDPOINT", "http://minio:9000");
            jail.set_env("DWSYNC_S3__ACCESS_KEY_ID", "minioadmin");
            jail.set_env("DWSYNC_S3__SECRET_ACCESS_KEY", "0123456789");
            jail.set_env("DWSYNC_S3__REGION", "eu-west-1");
            jail.set_env("DWSYNC_S3__FORCE_PATH_STYLE", "true");
            jail.set_env("DWSYNC_TELEMETRY__OTLP_ENDPOINT", "http://otel-collector:4318");
            let cfg: Config = dwsync_config::load(None, dwsync_config::ENV_PREFIX).map_err(|e| e.to_string())?;
            assert_eq!(cfg.kafka.bootstrap_servers, "kafka:9092");
            assert_eq!(cfg.http.listen.to_string(), "0.0.0.0:8082");
            assert_eq!(cfg.s3.endpoint.as_deref(), Some("http://minio:9000"));
            assert_eq!(cfg.s3.access_key_id, "minioadmin");
            assert_eq!(cfg.s3.secret_access_key.expose(), "0123456789");
            assert_eq!(cfg.s3.region, "eu-west-1");
            assert!(cfg.s3.force_path_style);
            assert_eq!(cfg.telemetry.otlp_endpoint.as_deref(), Some("http://otel-collector:4318"));

            let debug = format!("{cfg:?}");
            assert!(!debug.contains("0123456789") && debug.contains("secret_access_key: ***"), "{debug}");
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
