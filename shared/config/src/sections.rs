//! Config sections several services share: Kafka, the HTTP endpoints, telemetry.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to reach the Kafka cluster (`[kafka]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` bootstrap brokers. Default: `"127.0.0.1:9092"`.
    pub bootstrap_servers: String,
    /// Prefix of every client's `client.id` (`<prefix>-<client>`). Default: `"dwsync"`.
    pub client_id_prefix: String,
    /// Longest wait for one metadata request, in milliseconds. Default: `5000`.
    pub metadata_timeout_ms: u64,
    /// Pause between two broker reachability checks, in milliseconds. Default: `5000`.
    pub check_interval_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id_prefix: "dwsync".into(),
            metadata_timeout_ms: 5_000,
            check_interval_ms: 5_000,
        }
    }
}

impl KafkaConfig {
    /// [`metadata_timeout_ms`](Self::metadata_timeout_ms) as a `Duration`.
    pub fn metadata_timeout(&self) -> Duration {
        Duration::from_millis(self.metadata_timeout_ms)
    }

    /// [`check_interval_ms`](Self::check_interval_ms) as a `Duration`.
    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms)
    }

    /// An rdkafka client configuration with the brokers and `client.id` `<prefix>-<client>`.
    /// Reconnects back off to at most 1 s (librdkafka's default is 10 s), so every client is
    /// back within about a second of a broker's return.
    #[cfg(feature = "kafka")]
    pub fn client_config(&self, client: &str) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", format!("{}-{client}", self.client_id_prefix))
            .set("reconnect.backoff.max.ms", "1000");
        config
    }
}

/// Where a service serves `/healthz`, `/readyz` and `/metrics` (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpConfig {
    /// Listen address. Default: set by each service (`127.0.0.1:8081` ingest, `:8082` uploader,
    /// `:8083` control); `127.0.0.1:8080` for `HttpConfig::default()`. Port `0` picks a free port.
    pub listen: SocketAddr,
    /// On SIGTERM, how long `/readyz` answers 503 before the service stops taking work (so a
    /// load balancer or Kubernetes stops routing to it first), in ms. Default: `0`.
    pub shutdown_delay_ms: u64,
    /// Then, how long in-flight work may take to finish before it is abandoned (an abandoned
    /// flush or upload is not committed, so it is redone after a restart), in ms. Default: `10000`.
    pub shutdown_grace_ms: u64,
}

impl HttpConfig {
    /// Listen on `127.0.0.1:<port>`.
    pub const fn localhost(port: u16) -> Self {
        Self {
            listen: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            shutdown_delay_ms: 0,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self::localhost(8080)
    }
}

/// Logs, metrics and traces (`[telemetry]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP collector (`http://otel-collector:4318`); metrics go to
    /// `<url>/v1/metrics`, spans to `<url>/v1/traces`. Default: none, OTLP export off
    /// (metrics are still served on `/metrics`).
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported telemetry. Default: the service's name (`dwsync-ingest`,
    /// ...); `"dwsync"` for `TelemetryConfig::default()`.
    pub service_name: String,
    /// Log line format on stderr. Default: `"text"`.
    pub log_format: LogFormat,
}

impl TelemetryConfig {
    /// The default telemetry settings with `service.name` set to `service_name`.
    pub fn for_service(service_name: &str) -> Self {
        Self { service_name: service_name.to_owned(), ..Self::default() }
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, service_name: "dwsync".into(), log_format: LogFormat::Text }
    }
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (`"text"`).
    #[default]
    Text,
    /// One JSON object per line (`"json"`).
    Json,
}
