//! ingest's configuration: `Config::default()`, then `--config <file>`, then `DWSYNC_*` variables.

use std::collections::BTreeMap;
use std::time::Duration;

use dwsync_config::{HttpConfig, KafkaConfig, TelemetryConfig};
use dwsync_contract::{Encoding, Framing, Table};
use dwsync_format::ParquetOptions;
use serde::{Deserialize, Serialize};

/// ingest's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The Kafka cluster. Default: [`KafkaConfig::default`] (`127.0.0.1:9092`).
    pub kafka: KafkaConfig,
    /// The HTTP endpoints. Default: listen on `127.0.0.1:8081`.
    pub http: HttpConfig,
    /// Logs, metrics and traces. Default: `service_name = "dwsync-ingest"`, text logs, no OTLP.
    pub telemetry: TelemetryConfig,
    /// Topics, group and handoff (`[ingest]`).
    pub ingest: IngestConfig,
    /// When a window closes (`[window]`).
    pub window: WindowConfig,
    /// Parquet encoding (`[parquet]`). Default: zstd level 1, row groups of 1M rows / 64 MiB.
    pub parquet: ParquetOptions,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            http: HttpConfig::localhost(8081),
            telemetry: TelemetryConfig::for_service("dwsync-ingest"),
            ingest: IngestConfig::default(),
            window: WindowConfig::default(),
            parquet: ParquetOptions::default(),
        }
    }
}

/// Source topics, consumer group and the handoff (`[ingest]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Consumer group of all ingest instances. Default: `"dwsync-ingest"`.
    pub group_id: String,
    /// This instance's stable name; its transactional id is `dwsync-ingest-<instance_id>`, so a
    /// restarted instance fences its predecessor at once, and (with `static_membership`) it is
    /// the consumer's `group.instance.id`. The Helm chart sets it to the pod's name. Default:
    /// empty = a random name per start, dynamic membership.
    pub instance_id: String,
    /// Static group membership (KIP-345) when `instance_id` is set: the instance joins the group
    /// as `group.instance.id = <instance_id>`, so an instance restarted with the same id within
    /// `session_timeout_ms` takes its partitions back at once, without a rebalance (a `kill -9`
    /// no longer holds them for the session timeout). The trade-off: an instance that does not
    /// come back holds its partitions, unread, for the whole session timeout, and a stopped one
    /// does not leave the group unless `leave_group_on_shutdown` says so. `false`, or no
    /// `instance_id`: dynamic membership. Default: `true`.
    pub static_membership: bool,
    /// Whether a static member leaves the group when it stops (SIGTERM). `false`: it keeps its
    /// partitions for `session_timeout_ms`, to take them back when it restarts (a rolling
    /// update, a crash); set `true` before scaling down, so the partitions of the instances
    /// removed move at once. A dynamic member always leaves. Default: `false`.
    pub leave_group_on_shutdown: bool,
    /// Source topic of a table, unless overridden in `topics`: `<topic_prefix><table>`.
    /// Default: `"dwsync.source."` (e.g. `dwsync.source.metrics`).
    pub topic_prefix: String,
    /// Encoding of source topics unless overridden; a message's `content-type` header wins.
    /// Default: `json`.
    pub encoding: Encoding,
    /// How source values are framed unless overridden: `none`, `schema-registry` (Confluent's
    /// serializers: magic byte, schema id, and for protobuf the message indexes, removed before
    /// decoding; a value without it is dead-lettered, class `bad_framing`) or `detect` (framed
    /// when the value starts with the magic byte 0). Default: `none`.
    pub framing: Framing,
    /// Schema ids accepted in framed values unless overridden; a value framed with another id is
    /// dead-lettered (class `schema_id_not_allowed`, the id in header `dwsync.schema.id`).
    /// Default: empty = any.
    pub schema_ids: Vec<u32>,
    /// Tables to consume. Default: empty = all 15.
    pub tables: Vec<String>,
    /// Per-table overrides, e.g. `[ingest.topics.metrics] topic = "metrics-pb", encoding = "protobuf"`.
    pub topics: BTreeMap<String, TopicOverride>,
    /// The handoff topic the uploader reads. Default: `"dwsync.handoff"`.
    pub handoff_topic: String,
    /// Where undecodable records go, with their reason. Default: `"dwsync.dead-letters"`.
    pub dead_letter_topic: String,
    /// Partitions of the handoff and dead-letter topics when ingest creates them (it creates them
    /// if missing; never change the handoff topic's partitions afterwards, see docs/PIPELINE.md).
    /// The uploader writes one file per partition at a time, so this bounds its writes in flight
    /// (`upload.concurrency`). Default: `48`.
    pub handoff_partitions: i32,
    /// Replication factor of the topics ingest creates; `-1` = the broker's default. Default: `-1`.
    pub topic_replication_factor: i32,
    /// Largest data bytes in one handoff message (keep below the broker's `message.max.bytes`).
    /// The handoff producer batches at most one full chunk per produce request (its
    /// `batch.size` is this plus 16 KiB), so this also bounds the requests the broker receives:
    /// below 512 KiB, half a G1 region of a broker heap under 4 GiB (Kafka's default heap is
    /// 1 GiB, 1 MiB regions), no request is a humongous allocation in the broker. Each humongous
    /// allocation can start a G1 concurrent cycle: with 900 KiB the broker spent 0.73 of its 2.6
    /// CPU s per million `metrics-json` records in GC (docs/PERFORMANCE.md). Default: 448 KiB.
    pub chunk_bytes: usize,
    /// Kafka transaction timeout in milliseconds. Default: `60000`.
    pub transaction_timeout_ms: u64,
    /// A memory guard: source values larger than this go to the dead-letter topic (class
    /// `oversize_record`, the dead letter carrying a prefix of the value). `0` = derived at
    /// start: the largest `max.message.bytes` of the source topics, at least 16 MiB, so every
    /// record a source topic accepts is exported (see docs/RELIABILITY.md, "Size limits").
    /// Default: `0`.
    pub max_record_bytes: usize,
    /// Most kilobytes librdkafka pre-fetches into the consumer's queue (its
    /// `queued.max.messages.kbytes`, 64 MiB by default there): the read-ahead outside the window
    /// budget. Fetching stops while the loop is busy and the queue is full. It costs about three
    /// times its size in RSS (a fetched response stays allocated while any of its records is
    /// queued): 16 MiB took ingest over 256 MiB on a 5 GB backlog of all tables. Default: `8192`.
    pub fetch_queue_kbytes: u32,
    /// Most kilobytes one fetch request brings back (librdkafka's `fetch.max.bytes`, 50 MiB by
    /// default there, which overshoots the read-ahead bound: with 60 source partitions ingest's
    /// peak RSS was 274–300 MiB, 235–240 MiB with this default; docs/PERFORMANCE.md). At least
    /// `1024` (librdkafka wants it above `message.max.bytes`). Default: `4096`.
    pub fetch_max_kbytes: u32,
    /// Most kilobytes one fetch brings back per partition (librdkafka's
    /// `fetch.message.max.bytes`, 1 MiB by default there); a larger first record batch is still
    /// fetched whole. Default: `256`.
    pub partition_fetch_kbytes: u32,
    /// Threads that decode records and encode Parquet files (the loop's thread is one of them).
    /// Default: `0` = one per core.
    pub worker_threads: usize,
    /// The consumer group's session timeout (`session.timeout.ms`), in ms: how long the
    /// partitions of an instance that vanished without leaving the group (killed, or stopped
    /// while the broker was away, so its leave never arrived; a static member stopped without
    /// `leave_group_on_shutdown`) wait before another instance gets them. A static member
    /// restarted within it takes them back without a rebalance; later, the group has moved them
    /// and moves some back when it joins. librdkafka heartbeats from a thread of its own, so a
    /// busy loop does not miss them. At least the broker's `group.min.session.timeout.ms` (6000
    /// by default). Default: `10000` (librdkafka's is 45000).
    pub session_timeout_ms: u64,
    /// How often the group's lag (`dwsync_ingest_consumer_lag_records`,
    /// `dwsync_ingest_time_since_commit_seconds`) is sampled, in milliseconds: committed offsets
    /// against the end of the source topics, on a client of its own. Default: `15000`.
    pub lag_interval_ms: u64,
    /// Ingest is unready (`/readyz`, component `progress`) while source records have waited
    /// this long, in milliseconds, without the group committing
    /// (`dwsync_ingest_time_since_commit_seconds` over it): a stalled or restarting loop. A partition
    /// commits once per window, so it must exceed the window. Default: none =
    /// `window.duration_ms + ingest.transaction_timeout_ms + 60000` (17 minutes with the
    /// defaults); see [`Config::stall_after`].
    pub stall_after_ms: Option<u64>,
}

impl IngestConfig {
    /// The consumer's `group.instance.id`: the instance id, when static membership is on and an
    /// instance id is set.
    pub fn group_instance_id(&self) -> Option<&str> {
        (self.static_membership && !self.instance_id.is_empty()).then_some(self.instance_id.as_str())
    }

    /// librdkafka settings of the source consumer besides its group and bootstrap servers: read
    /// committed records only, commit nothing automatically, and fetch within the read-ahead bound.
    /// The benchmark harness reads its ceilings with the same settings.
    pub fn consumer_settings(&self) -> [(&'static str, String); 9] {
        [
            ("enable.auto.commit", "false".into()),
            ("auto.offset.reset", "earliest".into()),
            ("isolation.level", "read_committed".into()),
            ("queued.max.messages.kbytes", self.fetch_queue_kbytes.to_string()),
            // When the bounded queue is full, fetch again as soon as it drains (librdkafka's
            // default waits 1 s, which capped ingest at ~16 MB/s: docs/PERFORMANCE.md).
            ("fetch.queue.backoff.ms", "10".into()),
            // Fetch responses sized to the read-ahead bound, not librdkafka's 50 MiB.
            ("fetch.max.bytes", (u64::from(self.fetch_max_kbytes) << 10).to_string()),
            ("fetch.message.max.bytes", (u64::from(self.partition_fetch_kbytes) << 10).to_string()),
            ("partition.assignment.strategy", "cooperative-sticky".into()),
            ("session.timeout.ms", self.session_timeout_ms.to_string()),
        ]
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            group_id: "dwsync-ingest".into(),
            instance_id: String::new(),
            static_membership: true,
            leave_group_on_shutdown: false,
            topic_prefix: "dwsync.source.".into(),
            encoding: Encoding::Json,
            framing: Framing::None,
            schema_ids: Vec::new(),
            tables: Vec::new(),
            topics: BTreeMap::new(),
            handoff_topic: "dwsync.handoff".into(),
            dead_letter_topic: "dwsync.dead-letters".into(),
            handoff_partitions: 48,
            topic_replication_factor: -1,
            chunk_bytes: 448 << 10,
            transaction_timeout_ms: 60_000,
            max_record_bytes: 0,
            fetch_queue_kbytes: 8 << 10,
            fetch_max_kbytes: 4 << 10,
            partition_fetch_kbytes: 256,
            worker_threads: 0,
            session_timeout_ms: 10_000,
            lag_interval_ms: 15_000,
            stall_after_ms: None,
        }
    }
}

/// A table's source topic settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicOverride {
    /// Topic name. Default: `<topic_prefix><table>`.
    pub topic: Option<String>,
    /// Encoding. Default: `ingest.encoding`.
    pub encoding: Option<Encoding>,
    /// Framing. Default: `ingest.framing`.
    pub framing: Option<Framing>,
    /// Schema ids accepted in framed values. Default: `ingest.schema_ids`.
    pub schema_ids: Option<Vec<u32>>,
}

/// When windows close (`[window]`): on time, or on rows or bytes, whichever comes first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length in milliseconds: a window closes at the first point of its source
    /// partition's time grid after its first row (see `spread_by_partition`). Default: `900000`
    /// (15 minutes); 1000 minimum.
    pub duration_ms: u64,
    /// Spread the closes over the window by source partition number: the grid of partition `p`
    /// is the multiples of `duration_ms` (UTC) shifted by the bit-reversed fraction of `p` (0, ½,
    /// ¼, ¾, ⅛, … of the window), so the files of thousands of workspaces are not all written in
    /// the same seconds. A workspace's tables still close together (one sync, one
    /// `cio-validate`) when its records have the same partition number in every topic (keyed by
    /// workspace, equal partition counts). Partitions sharing windows (records not keyed by
    /// workspace) close together, once per window, at the latest of their points. `false`: every
    /// window closes on multiples of `duration_ms`. Default: `true`.
    pub spread_by_partition: bool,
    /// Rows after which a window closes early. Default: `1000000`.
    pub max_rows: usize,
    /// Buffered bytes after which a window closes early. Default: 128 MiB.
    pub max_bytes: usize,
    /// Global budget of the open windows' memory (their Arrow buffers as allocated, growth slack
    /// and per-window overhead included): when it is exceeded, the largest window closes early
    /// (reason `memory`), with the windows sharing its source partitions, until the windows are
    /// back under it. Default: 64 MiB (with the read-ahead, a flush's working memory and the
    /// runtime, ingest then stays under 256 MiB; a larger budget buys throughput with memory:
    /// docs/PERFORMANCE.md).
    pub memory_budget_bytes: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            duration_ms: 900_000,
            spread_by_partition: true,
            max_rows: 1_000_000,
            max_bytes: 128 << 20,
            memory_budget_bytes: 64 << 20,
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A table name in `tables` or `topics` is not a v5 table.
    #[error("ingest: {0}")]
    UnknownTable(#[from] dwsync_contract::UnknownTable),
    /// A value is out of its range.
    #[error("ingest: {0}")]
    Invalid(String),
}

/// One consumed source topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTopic {
    /// The table its records belong to.
    pub table: Table,
    /// Topic name.
    pub topic: String,
    /// Default encoding of its messages.
    pub encoding: Encoding,
    /// How its values are framed.
    pub framing: Framing,
    /// The schema ids accepted in framed values (empty: any).
    pub schema_ids: Vec<u32>,
}

impl Config {
    /// How long source records may wait without a commit before ingest is unready:
    /// `ingest.stall_after_ms`, by default `window.duration_ms + ingest.transaction_timeout_ms +
    /// 60000` (a partition commits once per window, in a transaction of at most that timeout).
    pub fn stall_after(&self) -> Duration {
        Duration::from_millis(self.ingest.stall_after_ms.unwrap_or_else(|| {
            self.window.duration_ms.saturating_add(self.ingest.transaction_timeout_ms).saturating_add(60_000)
        }))
    }

    /// [`IngestConfig::lag_interval_ms`] as a `Duration`.
    pub fn lag_interval(&self) -> Duration {
        Duration::from_millis(self.ingest.lag_interval_ms)
    }

    /// The source topics to consume, validated.
    pub fn source_topics(&self) -> Result<Vec<SourceTopic>, ConfigError> {
        if self.window.duration_ms < 1000 {
            return Err(ConfigError::Invalid(format!("window.duration_ms {} is below 1000", self.window.duration_ms)));
        }
        if self.window.memory_budget_bytes < (1 << 20) {
            return Err(ConfigError::Invalid("window.memory_budget_bytes must be at least 1 MiB".into()));
        }
        if self.ingest.fetch_queue_kbytes == 0 {
            return Err(ConfigError::Invalid("ingest.fetch_queue_kbytes must be positive".into()));
        }
        if self.ingest.fetch_max_kbytes < 1024 {
            return Err(ConfigError::Invalid("ingest.fetch_max_kbytes must be at least 1024".into()));
        }
        if self.ingest.partition_fetch_kbytes == 0 || self.ingest.partition_fetch_kbytes > self.ingest.fetch_max_kbytes
        {
            return Err(ConfigError::Invalid(
                "ingest.partition_fetch_kbytes must be positive and at most ingest.fetch_max_kbytes".into(),
            ));
        }
        if self.ingest.lag_interval_ms == 0 {
            return Err(ConfigError::Invalid("ingest.lag_interval_ms must be positive".into()));
        }
        if self.ingest.stall_after_ms == Some(0) {
            return Err(ConfigError::Invalid("ingest.stall_after_ms must be positive".into()));
        }
        if self.ingest.chunk_bytes < 1024 {
            return Err(ConfigError::Invalid("ingest.chunk_bytes must be at least 1024".into()));
        }
        for name in self.ingest.topics.keys() {
            name.parse::<Table>()?;
        }
        let tables: Vec<Table> = if self.ingest.tables.is_empty() {
            Table::ALL.to_vec()
        } else {
            self.ingest.tables.iter().map(|t| t.parse()).collect::<Result<_, _>>()?
        };
        Ok(tables
            .into_iter()
            .map(|table| {
                let o = self.ingest.topics.get(table.name()).cloned().unwrap_or_default();
                SourceTopic {
                    table,
                    topic: o.topic.unwrap_or_else(|| format!("{}{}", self.ingest.topic_prefix, table.name())),
                    encoding: o.encoding.unwrap_or(self.ingest.encoding),
                    framing: o.framing.unwrap_or(self.ingest.framing),
                    schema_ids: o.schema_ids.unwrap_or_else(|| self.ingest.schema_ids.clone()),
                }
            })
            .collect())
    }
}

impl dwsync_config::ServiceConfig for Config {
    /// The source topics and window settings, as ingest checks them when it starts.
    fn check(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.source_topics().map(drop).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_loads_to_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/ingest.toml");
        let cfg: Config = dwsync_config::load(Some(std::path::Path::new(path)), "DWSYNC_TEST_NOTHING_").expect("loads");
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.source_topics().expect("valid").len(), 15);
        assert_eq!(cfg.stall_after(), Duration::from_millis(900_000 + 60_000 + 60_000), "derived from the window");
    }

    #[test]
    fn bad_values_are_refused_with_their_name() {
        let mut cfg = Config::default();
        cfg.ingest.tables = vec!["metrics".into(), "emails".into()];
        assert!(cfg.source_topics().unwrap_err().to_string().contains("\"emails\""));
        let mut cfg = Config::default();
        cfg.window.duration_ms = 10;
        assert!(cfg.source_topics().unwrap_err().to_string().contains("window.duration_ms"));
        let mut cfg = Config::default();
        cfg.ingest.fetch_max_kbytes = 512;
        assert!(cfg.source_topics().unwrap_err().to_string().contains("ingest.fetch_max_kbytes"));
        let mut cfg = Config::default();
        cfg.ingest.partition_fetch_kbytes = cfg.ingest.fetch_max_kbytes + 1;
        assert!(cfg.source_topics().unwrap_err().to_string().contains("ingest.partition_fetch_kbytes"));
        let mut cfg = Config::default();
        cfg.ingest.stall_after_ms = Some(0);
        assert!(cfg.source_topics().unwrap_err().to_string().contains("ingest.stall_after_ms"));
        cfg.ingest.stall_after_ms = Some(5_000);
        assert_eq!(cfg.stall_after(), Duration::from_secs(5), "set: as set");
        let mut cfg = Config::default();
        assert_eq!(cfg.ingest.group_instance_id(), None, "no instance id: dynamic membership");
        cfg.ingest.instance_id = "ingest-0".into();
        assert_eq!(cfg.ingest.group_instance_id(), Some("ingest-0"), "static by default with an instance id");
        cfg.ingest.static_membership = false;
        assert_eq!(cfg.ingest.group_instance_id(), None, "turned off");
        let mut cfg = Config::default();
        cfg.ingest.lag_interval_ms = 0;
        assert!(cfg.source_topics().unwrap_err().to_string().contains("ingest.lag_interval_ms"));
        let mut cfg = Config::default();
        let _ = cfg.ingest.topics.insert(
            "metrics".into(),
            TopicOverride { topic: Some("m".into()), encoding: Some(Encoding::Protobuf), ..TopicOverride::default() },
        );
        let topics = cfg.source_topics().expect("valid");
        let metrics = topics.iter().find(|t| t.table == Table::Metrics).expect("metrics");
        assert_eq!((metrics.topic.as_str(), metrics.encoding), ("m", Encoding::Protobuf));
        assert_eq!(
            topics.iter().find(|t| t.table == Table::Events).map(|t| t.topic.as_str()),
            Some("dwsync.source.events")
        );
    }
}
