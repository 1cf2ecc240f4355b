//! The uploader's configuration: Kafka, the handoff topic, upload tuning and the destinations.
//!
//! Loaded with [`dwsync_config::load`]; [`Config::validate`] checks what serde cannot (table
//! names, one destination per workspace, S3 part sizes) before anything starts.

use std::collections::HashSet;
use std::time::Duration;

use dwsync_config::{HttpConfig, KafkaConfig, TelemetryConfig};
pub use dwsync_s3::egress::EgressConfig;
use dwsync_sync_config::StoreConfig;
use serde::{Deserialize, Serialize};

mod destination;

pub use destination::{Destination, DestinationKind};

/// 1 MiB.
const MIB: u64 = 1 << 20;

/// The smallest part S3 accepts in a multipart upload (except the last part).
pub const MIN_PART_BYTES: u64 = 5 * MIB;

/// The largest part S3 accepts in a multipart upload.
pub const MAX_PART_BYTES: u64 = 5 * 1024 * MIB;

/// uploader's configuration: `Config::default()`, then `--config <file>`, then `DWSYNC_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Kafka cluster. Default: [`KafkaConfig::default`] (`127.0.0.1:9092`).
    pub kafka: KafkaConfig,
    /// The HTTP endpoints. Default: listen on `127.0.0.1:8082`.
    pub http: HttpConfig,
    /// Logs, metrics and traces. Default: `service_name = "dwsync-uploader"`, text logs, no OTLP.
    pub telemetry: TelemetryConfig,
    /// The handoff topic the files arrive on. Default: [`HandoffConfig::default`].
    pub handoff: HandoffConfig,
    /// How files are written and retried. Default: [`UploadConfig::default`].
    pub upload: UploadConfig,
    /// Following the control service's configuration topic (`[sync_config]`).
    /// Default: [`SyncConfigSource::default`], followed.
    pub sync_config: SyncConfigSource,
    /// Where files that cannot be written now are kept (`[lot]`). Default: [`LotConfig::default`].
    pub lot: LotConfig,
    /// Which non-public networks and hosts the endpoints of syncs configured through control
    /// (customers' endpoints) may lead to, checked at every connection (`[egress]`). The static
    /// `[[destinations]]` are the operator's and are not restricted. Default: none; endpoints
    /// must be public addresses.
    #[serde(default)]
    pub egress: EgressConfig,
    /// Static destinations (`[[destinations]]`), at most one per workspace, for setups without
    /// the control service; a workspace configured through control takes precedence. Only the
    /// TOML file can set them (environment variables cannot address list entries). Default: none.
    pub destinations: Vec<Destination>,
}

/// The configuration topic the control service writes (`[sync_config]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfigSource {
    /// Follow the topic (destinations change live, without restart). Secrets on it are opened
    /// with the key in `DWSYNC_SEAL_KEY` (and `DWSYNC_SEAL_OLD_KEYS`). Default: `true`.
    pub follow: bool,
    /// The configuration topic, the status topic each workspace's delivery status is reported
    /// on (for the control API), and their timeouts. Default: `dwsync.sync-config`,
    /// `dwsync.sync-status`, 10 s.
    pub store: StoreConfig,
    /// How often changed statuses are reported, in ms. Default: `2000`.
    pub status_interval_ms: u64,
}

impl Default for SyncConfigSource {
    fn default() -> Self {
        Self { follow: true, store: StoreConfig::default(), status_interval_ms: 2_000 }
    }
}

/// The parking lot: a topic holding files of tables turned off and of failing destinations
/// until they can be written, in order (`[lot]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LotConfig {
    /// The topic; created with as many partitions as the handoff topic. Default: `"dwsync.parked"`.
    pub topic: String,
    /// How long parked files are kept (`retention.ms` of the topic), in hours. Files of a
    /// table turned off for longer are gone. Default: `168` (7 days).
    pub retention_hours: u64,
    /// Replication factor of the topic when the uploader creates it. Default: `1`.
    pub replication_factor: i32,
    /// First delay before a failing destination is tried again, in ms; doubles per failure.
    /// Default: `1000`.
    pub retry_initial_ms: u64,
    /// Longest delay between tries of a failing destination, in ms. Default: `60000`.
    pub retry_max_ms: u64,
}

impl Default for LotConfig {
    fn default() -> Self {
        Self {
            topic: "dwsync.parked".into(),
            retention_hours: 168,
            replication_factor: 1,
            retry_initial_ms: 1_000,
            retry_max_ms: 60_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            http: HttpConfig::localhost(8082),
            telemetry: TelemetryConfig::for_service("dwsync-uploader"),
            handoff: HandoffConfig::default(),
            upload: UploadConfig::default(),
            sync_config: SyncConfigSource::default(),
            lot: LotConfig::default(),
            egress: EgressConfig::default(),
            destinations: Vec::new(),
        }
    }
}

/// The handoff topic and the uploader's consumer group (`[handoff]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffConfig {
    /// The topic ingest hands finished files over on. Default: `"dwsync.handoff"`.
    pub topic: String,
    /// The uploader's consumer group; its committed offsets say which files are written.
    /// Default: `"dwsync-uploader"`.
    pub group_id: String,
    /// How often the group's lag (`dwsync_uploader_consumer_lag_records`,
    /// `dwsync_uploader_time_since_commit_seconds`) is sampled, in milliseconds. Default: `5000`.
    pub lag_interval_ms: u64,
    /// Most kilobytes librdkafka pre-fetches into the consumer's queue (its
    /// `queued.max.messages.kbytes`): the read-ahead besides the one file being written and the
    /// partial files being reassembled. Default: `16384`.
    #[serde(default = "default_fetch_queue_kbytes")]
    pub fetch_queue_kbytes: u32,
    /// Longest a written file's offset waits to be committed, in milliseconds: the partitions
    /// whose safe offset moved are committed together, in one request, at most this often
    /// (a revoked partition's offset, and at shutdown every partition's, is committed at once).
    /// With thousands of small files a commit per file cost the broker and the uploader more than
    /// the files. A file written but not yet committed when the uploader dies is read again and
    /// found written (the writes are idempotent). `0` commits after every file. Default: `100`.
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: u64,
    /// The uploader is unready (`/readyz`, component `progress`) while handoff records have
    /// waited this long, in milliseconds, without the group committing
    /// (`dwsync_uploader_time_since_commit_seconds` over it): a stalled, restarting or blocked
    /// uploader. At least a few `lag_interval_ms`; files waiting for S3 are parked, not held,
    /// so a healthy group commits far more often. Default: `300000` (5 minutes).
    #[serde(default = "default_stall_after_ms")]
    pub stall_after_ms: u64,
    /// The consumer group's session timeout (`session.timeout.ms`), in ms: how long the
    /// partitions of an instance that vanished without leaving the group (killed, or stopped
    /// while the broker was away, so its leave never arrived) wait before another instance gets
    /// them. librdkafka heartbeats from a thread of its own, so a busy loop does not miss them.
    /// At least the broker's `group.min.session.timeout.ms` (6000 by default). Default: `10000`
    /// (librdkafka's is 45000).
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    /// This uploader's stable name, its consumer's `group.instance.id` (static membership,
    /// KIP-345): restarted with the same id within `session_timeout_ms`, it takes its partitions
    /// back at once, without a rebalance. The trade-off: an uploader that does not come back
    /// holds its partitions, unread, for the whole session timeout, and a stopped one does not
    /// leave the group unless `leave_group_on_shutdown` says so. Two running uploaders must never
    /// share one (the second fences the first, which stops). The Helm chart sets it to the pod's
    /// name (the uploader is a StatefulSet). Env `DWSYNC_HANDOFF__INSTANCE_ID`. Default: empty =
    /// dynamic membership.
    #[serde(default)]
    pub instance_id: String,
    /// Whether a static member (`instance_id` set) leaves the group when it stops (SIGTERM).
    /// `false`: it keeps its partitions for `session_timeout_ms`, to take them back when it
    /// restarts; set `true` before scaling down, so the partitions of the uploaders removed move
    /// at once. A dynamic member always leaves. Default: `false`.
    #[serde(default)]
    pub leave_group_on_shutdown: bool,
}

fn default_session_timeout_ms() -> u64 {
    10_000
}

fn default_fetch_queue_kbytes() -> u32 {
    16 << 10
}

fn default_commit_interval_ms() -> u64 {
    100
}

fn default_stall_after_ms() -> u64 {
    300_000
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            topic: "dwsync.handoff".into(),
            group_id: "dwsync-uploader".into(),
            lag_interval_ms: 5_000,
            fetch_queue_kbytes: default_fetch_queue_kbytes(),
            commit_interval_ms: default_commit_interval_ms(),
            stall_after_ms: default_stall_after_ms(),
            session_timeout_ms: default_session_timeout_ms(),
            instance_id: String::new(),
            leave_group_on_shutdown: false,
        }
    }
}

impl HandoffConfig {
    /// The consumer's `group.instance.id`, if the uploader has an instance id.
    pub fn group_instance_id(&self) -> Option<&str> {
        (!self.instance_id.is_empty()).then_some(self.instance_id.as_str())
    }

    /// Whether the consumer leaves the group when the uploader stops: a dynamic member always,
    /// a static one with `leave_group_on_shutdown`.
    pub fn leaves_on_shutdown(&self) -> bool {
        self.group_instance_id().is_none() || self.leave_group_on_shutdown
    }

    /// [`lag_interval_ms`](Self::lag_interval_ms) as a `Duration`.
    pub fn lag_interval(&self) -> Duration {
        Duration::from_millis(self.lag_interval_ms)
    }

    /// [`commit_interval_ms`](Self::commit_interval_ms) as a `Duration`.
    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }

    /// [`stall_after_ms`](Self::stall_after_ms) as a `Duration`.
    pub fn stall_after(&self) -> Duration {
        Duration::from_millis(self.stall_after_ms)
    }
}

/// How files are written and how failed writes are retried (`[upload]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// Files larger than this are written with a multipart upload. Default: `67108864` (64 MiB).
    pub multipart_threshold_bytes: u64,
    /// Size of each multipart part (the last one may be smaller), 5 MiB to 5 GiB; raised when a
    /// file would need more than 10,000 parts. Default: `16777216` (16 MiB).
    pub part_bytes: u64,
    /// First retry delay after a failed S3 write, in milliseconds; it doubles per attempt, with
    /// full jitter. Default: `200`.
    pub retry_initial_ms: u64,
    /// Longest retry delay, in milliseconds. Default: `30000`.
    pub retry_max_ms: u64,
    /// Attempts at a file before it is parked and its destination marked failing (errors that
    /// cannot pass by retrying, such as 403 or a missing bucket, park at once). Default: `3`.
    pub attempts: u32,
    /// Most files written at once, each of a different handoff partition: a partition's files
    /// are written one after another, in order, and its offset is committed behind them. `1`
    /// writes one file at a time. Many small files (many workspaces) need many at once: each
    /// write waits for its round trip. Default: `48`.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// A file starts being written only while the files being written total less than this
    /// (one file always may): with large files fewer are written at once, so the files in flight
    /// hold at most this plus one file. Default: `67108864` (64 MiB).
    #[serde(default = "default_flight_bytes")]
    pub flight_bytes: u64,
    /// Most bytes of handoff records held in memory behind the files being written (those read
    /// after a partition's file in flight, and files waiting for a free slot); while more wait,
    /// no more records are read, so librdkafka's bounded queue (`handoff.fetch_queue_kbytes`)
    /// stops fetching. Default: `67108864` (64 MiB).
    #[serde(default = "default_queued_bytes")]
    pub queued_bytes: u64,
}

fn default_concurrency() -> u32 {
    48
}

fn default_flight_bytes() -> u64 {
    64 * MIB
}

fn default_queued_bytes() -> u64 {
    64 * MIB
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            multipart_threshold_bytes: 64 * MIB,
            part_bytes: 16 * MIB,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
            attempts: 3,
            concurrency: default_concurrency(),
            flight_bytes: default_flight_bytes(),
            queued_bytes: default_queued_bytes(),
        }
    }
}

/// A configuration that loads but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConfig {
    /// A destination names a table that is not a v5 table.
    #[error(
        "destination of workspace {workspace_id}: unknown table {table:?} in `tables` \
         (expected v5 table names such as deliveries, metrics, people)"
    )]
    UnknownTable {
        /// The destination's workspace.
        workspace_id: i64,
        /// The name that is not a table.
        table: String,
    },
    /// Two destinations for one workspace.
    #[error("two destinations for workspace {0}; each workspace has at most one")]
    DuplicateWorkspace(i64),
    /// A workspace id of zero or less.
    #[error("destination with workspace_id {0}: workspace ids are positive")]
    InvalidWorkspace(i64),
    /// A required destination field is empty.
    #[error("destination of workspace {workspace_id}: `{field}` is required")]
    Missing {
        /// The destination's workspace.
        workspace_id: i64,
        /// The empty field.
        field: &'static str,
    },
    /// A destination sets a field of another kind of store.
    #[error("destination of workspace {workspace_id}: `{field}` is not a setting of kind = \"{kind}\"")]
    NotForKind {
        /// The destination's workspace.
        workspace_id: i64,
        /// The field set.
        field: &'static str,
        /// The destination's kind.
        kind: &'static str,
    },
    /// A GCS destination's service account key is not one (the key is not shown).
    #[error("destination of workspace {workspace_id}: `service_account_key` {reason}")]
    BadServiceAccountKey {
        /// The destination's workspace.
        workspace_id: i64,
        /// What is wrong with it, without its content.
        reason: String,
    },
    /// A destination's `endpoint` is not one.
    #[error("destination of workspace {workspace_id}: `endpoint` {reason}")]
    BadEndpoint {
        /// The destination's workspace.
        workspace_id: i64,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other value out of range.
    #[error("config key `{key}`: {message}")]
    Value {
        /// The dotted key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl Config {
    /// Checks what serde cannot: table names, one destination per workspace, required fields,
    /// part sizes and retry delays.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let value = |key, message: &str| Err(InvalidConfig::Value { key, message: message.to_owned() });
        if self.handoff.topic.is_empty() {
            return value("handoff.topic", "must not be empty");
        }
        if self.handoff.group_id.is_empty() {
            return value("handoff.group_id", "must not be empty");
        }
        if self.handoff.lag_interval_ms == 0 {
            return value("handoff.lag_interval_ms", "must be positive");
        }
        if self.handoff.stall_after_ms == 0 {
            return value("handoff.stall_after_ms", "must be positive");
        }
        let upload = &self.upload;
        if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&upload.part_bytes) {
            return value("upload.part_bytes", "must be between 5 MiB (5242880) and 5 GiB, as S3 requires");
        }
        if upload.multipart_threshold_bytes == 0 {
            return value("upload.multipart_threshold_bytes", "must be positive");
        }
        if upload.retry_initial_ms == 0 || upload.retry_initial_ms > upload.retry_max_ms {
            return value("upload.retry_initial_ms", "must be positive and at most upload.retry_max_ms");
        }
        if upload.attempts == 0 {
            return value("upload.attempts", "must be positive");
        }
        if upload.concurrency == 0 {
            return value("upload.concurrency", "must be positive (1 writes one file at a time)");
        }
        let lot = &self.lot;
        if lot.topic.is_empty() || lot.topic == self.handoff.topic {
            return value("lot.topic", "must be set and differ from handoff.topic");
        }
        if lot.retention_hours == 0 {
            return value("lot.retention_hours", "must be positive");
        }
        if lot.retry_initial_ms == 0 || lot.retry_initial_ms > lot.retry_max_ms {
            return value("lot.retry_initial_ms", "must be positive and at most lot.retry_max_ms");
        }
        if self.sync_config.status_interval_ms == 0 {
            return value("sync_config.status_interval_ms", "must be positive");
        }
        let mut seen = HashSet::new();
        for dest in &self.destinations {
            let workspace_id = dest.workspace_id;
            if workspace_id <= 0 {
                return Err(InvalidConfig::InvalidWorkspace(workspace_id));
            }
            if !seen.insert(workspace_id) {
                return Err(InvalidConfig::DuplicateWorkspace(workspace_id));
            }
            dest.check_fields()?;
            dest.table_filter()?;
        }
        Ok(())
    }
}

impl dwsync_config::ServiceConfig for Config {
    fn check(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.validate()?)
    }
}

#[cfg(test)]
mod tests;
