//! control's configuration: the Kafka cluster, the API's listener and tokens, the store.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use dwsync_config::{HttpConfig, KafkaConfig, Secret, TelemetryConfig};
pub use dwsync_sync_config::store::StoreConfig;
use serde::{Deserialize, Serialize};

/// control's configuration: `Config::default()`, then `--config <file>`, then `DWSYNC_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The Kafka cluster holding the configuration topic. Default: `127.0.0.1:9092`.
    pub kafka: KafkaConfig,
    /// `/healthz`, `/readyz` and `/metrics`. Default: listen on `127.0.0.1:8083`.
    pub http: HttpConfig,
    /// The configuration REST API (`[api]`).
    pub api: ApiConfig,
    /// Where the configuration is stored (`[store]`).
    pub store: StoreConfig,
    /// Initial syncs: whether a new sync gets its history, and where cuts are written
    /// (`[initial_sync]`).
    pub initial_sync: InitialSyncConfig,
    /// Logs, metrics and traces. Default: `service_name = "dwsync-control"`, text logs, no OTLP.
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            http: HttpConfig::localhost(8083),
            api: ApiConfig::default(),
            store: StoreConfig::default(),
            initial_sync: InitialSyncConfig::default(),
            telemetry: TelemetryConfig::for_service("dwsync-control"),
        }
    }
}

/// The REST API: where it listens, who may call it, what it accepts (`[api]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiConfig {
    /// Listen address of the API. Default: `127.0.0.1:8090`. Port `0` picks a free port.
    pub listen: SocketAddr,
    /// Bearer token allowed on every workspace and on `GET /v1/workspaces`. Default: empty,
    /// which disables admin access.
    pub admin_token: Secret,
    /// Bearer token per workspace id (`workspace_tokens = { "42" = "..." }`): each only on its
    /// own workspace. Default: none.
    pub workspace_tokens: BTreeMap<String, Secret>,
    /// Accept `http://` endpoint URLs (local S3 servers only). Default: `false`.
    pub allow_insecure_endpoints: bool,
    /// How long a turned-off people table's files are kept; re-enabling it after longer is
    /// refused (409). Default: 7 days.
    pub people_retention_days: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: HttpConfig::localhost(8090).listen,
            admin_token: Secret::default(),
            workspace_tokens: BTreeMap::new(),
            allow_insecure_endpoints: false,
            people_retention_days: 7,
        }
    }
}

impl ApiConfig {
    /// [`people_retention_days`](Self::people_retention_days) as a `Duration`.
    pub fn people_retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.people_retention_days) * 86_400)
    }
}

/// Initial syncs (`[initial_sync]`): a sync created, enabled again after being disabled, or a
/// table turned on for the first time gets a baseline of the workspace's history from the archive
/// (delivered by the backfill) before its incremental files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitialSyncConfig {
    /// Ask for initial syncs. With `false` a sync starts with the files handed off after it
    /// exists, without history (no archiver or backfill needed). Default: `true`.
    pub enabled: bool,
    /// The handoff topic, where cut records are written. Default: `"dwsync.handoff"`.
    pub handoff_topic: String,
}

impl Default for InitialSyncConfig {
    fn default() -> Self {
        Self { enabled: true, handoff_topic: "dwsync.handoff".into() }
    }
}

impl dwsync_config::ServiceConfig for Config {}
