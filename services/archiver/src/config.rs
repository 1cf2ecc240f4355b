//! The archiver's configuration: Kafka, the handoff topic, batching and the archive bucket.
//!
//! Loaded with [`dwsync_config::load`] (defaults, `--config <file>`, `DWSYNC_*` variables); the
//! archiver's own sections refuse unknown keys, so a typo fails at start instead of leaving a
//! default silently in place. [`Config::validate`] checks what serde cannot.

use std::time::Duration;

use dwsync_archive::retention::RetentionDays;
use dwsync_config::{HttpConfig, KafkaConfig, Secret, TelemetryConfig};
use serde::{Deserialize, Serialize};

/// 1 MiB.
const MIB: u64 = 1 << 20;

/// The archiver's configuration: `Config::default()`, then `--config <file>`, then `DWSYNC_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Kafka cluster. Default: [`KafkaConfig::default`] (`127.0.0.1:9092`).
    pub kafka: KafkaConfig,
    /// The HTTP endpoints. Default: listen on `127.0.0.1:8084`.
    pub http: HttpConfig,
    /// Logs, metrics and traces. Default: `service_name = "dwsync-archiver"`, text logs, no OTLP.
    pub telemetry: TelemetryConfig,
    /// The handoff topic and the archiver's consumer group. Default: [`HandoffSource::default`].
    pub handoff: HandoffSource,
    /// When batches are written and how much may wait. Default: [`ArchiveConfig::default`].
    pub archive: ArchiveConfig,
    /// Where the archive is kept. Default: [`ArchiveStore::default`].
    pub store: ArchiveStore,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            http: HttpConfig::localhost(8084),
            telemetry: TelemetryConfig::for_service("dwsync-archiver"),
            handoff: HandoffSource::default(),
            archive: ArchiveConfig::default(),
            store: ArchiveStore::default(),
        }
    }
}

/// The handoff topic and the archiver's own consumer group (`[handoff]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HandoffSource {
    /// The topic ingest hands finished files over on. Default: `"dwsync.handoff"`.
    pub topic: String,
    /// The archiver's consumer group (apart from the uploader's); its committed offset of a
    /// partition is where the next batch of that partition starts. Default: `"dwsync-archiver"`.
    pub group_id: String,
    /// librdkafka's read-ahead (`queued.max.messages.kbytes`), in KiB. Default: `16384` (16 MiB).
    pub fetch_queue_kbytes: u64,
    /// The group's session timeout (`session.timeout.ms`): how long the partitions of an
    /// instance that died without leaving (kill -9, a lost machine) wait before another member
    /// gets them, in ms. At least the broker's `group.min.session.timeout.ms` (6000 by default).
    /// Default: `10000` (librdkafka's is 45000).
    pub session_timeout_ms: u64,
}

impl Default for HandoffSource {
    fn default() -> Self {
        Self {
            topic: "dwsync.handoff".into(),
            group_id: "dwsync-archiver".into(),
            fetch_queue_kbytes: 16 * 1024,
            session_timeout_ms: 10_000,
        }
    }
}

/// Batching, memory and retries (`[archive]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveConfig {
    /// A partition's batch is written once its files total this many Parquet bytes.
    /// Default: `67108864` (64 MiB).
    pub flush_bytes: u64,
    /// … or this long after the batch's first file arrived, in ms. Default: `60000`.
    pub flush_interval_ms: u64,
    /// Bytes buffered by the instance (decoded batches and partial files); over it, the largest
    /// partition's batch is written early. Default: `268435456` (256 MiB).
    pub max_buffered_bytes: u64,
    /// Objects of one batch written at once. Default: `4`.
    pub write_concurrency: usize,
    /// First delay before a failed S3 request is retried, in ms; doubles per failure (full
    /// jitter). Default: `200`.
    pub retry_initial_ms: u64,
    /// Longest delay between retries, in ms. Retries go on until shutdown. Default: `30000`.
    pub retry_max_ms: u64,
    /// Days each table's archive objects are kept, by table name; a table not named is kept
    /// forever; an unknown table or 0 days fails at start. Default: `events = 30`,
    /// `inbound = 30` (the spec exports 30 days of them). The backfill's `archive.retention_days`
    /// must be the same (its purges delete what this would).
    pub retention_days: RetentionDays,
    /// How often objects past their retention are looked for and deleted, in ms. Default:
    /// `3600000` (1 hour).
    pub retention_check_ms: u64,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            flush_bytes: 64 * MIB,
            flush_interval_ms: 60_000,
            max_buffered_bytes: 256 * MIB,
            write_concurrency: 4,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
            retention_days: RetentionDays::default(),
            retention_check_ms: 3_600_000,
        }
    }
}

impl ArchiveConfig {
    /// [`flush_interval_ms`](Self::flush_interval_ms) as a `Duration`.
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

/// The operator's archive bucket and its credentials (`[store]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveStore {
    /// The bucket. Default: `"dwsync-archive"`.
    pub bucket: String,
    /// Key prefix of every archive object. Default: `"archive"`.
    pub prefix: String,
    /// Signing region. Default: `"us-east-1"`.
    pub region: String,
    /// Endpoint of an S3-compatible store; none for AWS S3. Default: none.
    pub endpoint: Option<String>,
    /// Path-style addressing (MinIO, s3s). Default: `false`.
    pub force_path_style: bool,
    /// Access key id. Default: empty: with the secret key empty too, the AWS default credential
    /// chain (environment, web identity / IRSA, ECS, instance profile).
    pub access_key_id: String,
    /// Secret access key, never printed. Default: empty (see `access_key_id`).
    pub secret_access_key: Secret,
    /// Whether the store supports `If-None-Match: *`; `false` falls back to HEAD-then-PUT.
    /// Default: `true`.
    pub conditional_writes: bool,
    /// Objects larger than this go as multipart uploads. Default: `67108864` (64 MiB).
    pub multipart_threshold_bytes: u64,
    /// Multipart part size (5 MiB to 5 GiB). Default: `16777216` (16 MiB).
    pub part_bytes: u64,
}

impl Default for ArchiveStore {
    fn default() -> Self {
        Self {
            bucket: "dwsync-archive".into(),
            prefix: "archive".into(),
            region: "us-east-1".into(),
            endpoint: None,
            force_path_style: false,
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            conditional_writes: true,
            multipart_threshold_bytes: 64 * MIB,
            part_bytes: 16 * MIB,
        }
    }
}

/// A configuration that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidConfig {
    /// The key at fault.
    pub key: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl Config {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let fail = |key, message: &str| Err(InvalidConfig { key, message: message.to_owned() });
        let (handoff, archive, store) = (&self.handoff, &self.archive, &self.store);
        if handoff.topic.is_empty() {
            return fail("handoff.topic", "must not be empty");
        }
        if handoff.group_id.is_empty() {
            return fail("handoff.group_id", "must not be empty");
        }
        if archive.flush_bytes == 0 || archive.flush_interval_ms == 0 {
            return fail("archive.flush_bytes", "flush_bytes and flush_interval_ms must be positive");
        }
        if archive.max_buffered_bytes < archive.flush_bytes {
            return fail("archive.max_buffered_bytes", "must be at least archive.flush_bytes");
        }
        if archive.write_concurrency == 0 {
            return fail("archive.write_concurrency", "must be positive");
        }
        if archive.retry_initial_ms == 0 || archive.retry_initial_ms > archive.retry_max_ms {
            return fail("archive.retry_initial_ms", "must be positive and at most archive.retry_max_ms");
        }
        if archive.retention_check_ms == 0 {
            return fail("archive.retention_check_ms", "must be positive");
        }
        if store.bucket.is_empty() {
            return fail("store.bucket", "must not be empty");
        }
        if dwsync_s3::credentials::credential_source(&store.access_key_id, store.secret_access_key.expose()).is_err() {
            return fail(
                "store.access_key_id",
                "set both access_key_id and secret_access_key, or neither (the AWS default credential chain)",
            );
        }
        if !(5 * MIB..=5 * 1024 * MIB).contains(&store.part_bytes) {
            return fail("store.part_bytes", "must be between 5 MiB (5242880) and 5 GiB, as S3 requires");
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
mod tests {
    use dwsync_config::ConfigError;

    use super::*;

    fn with_file(toml: &str, check: impl FnOnce(Result<Config, ConfigError>)) {
        check(dwsync_config::testing::load_with(Some(toml), &[]));
    }

    fn valid() -> Config {
        let mut cfg = Config::default();
        cfg.store.access_key_id = "k".into();
        cfg.store.secret_access_key = Secret::new("s");
        cfg
    }

    #[test]
    fn the_deploy_example_is_the_defaults_plus_credentials() {
        let example = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/archiver.toml"));
        with_file(example, |cfg| {
            let cfg = cfg.expect("deploy/archiver.toml loads");
            assert_eq!(cfg.validate(), Ok(()));
            let mut expected = Config::default();
            expected.store.access_key_id = "dwsync-dev".into();
            expected.store.secret_access_key = Secret::new("dwsync-dev-secret-key");
            expected.store.endpoint = Some("http://minio:9000".into());
            expected.store.force_path_style = true;
            assert_eq!(cfg, expected, "every other key of the example is its default");
        });
    }

    #[test]
    fn a_typo_fails_loudly_naming_the_key() {
        with_file("[archive]\nflush_byte = 1\n", |cfg| {
            let err = cfg.expect_err("unknown key");
            assert!(err.to_string().contains("flush_byte"), "{err}");
        });
        with_file("[stor]\nbucket = \"b\"\n", |cfg| {
            let err = cfg.expect_err("unknown section");
            assert!(err.to_string().contains("stor"), "{err}");
        });
    }

    #[test]
    fn environment_overrides_and_the_secret_never_prints() {
        let seal_key = "00".repeat(32);
        let old_seal_key = "11".repeat(32);
        let cfg: Config = dwsync_config::testing::load_with(
            None,
            &[
                ("DWSYNC_ARCHIVE__FLUSH_INTERVAL_MS", "5000"),
                ("DWSYNC_STORE__SECRET_ACCESS_KEY", "0123-secret"),
                ("DWSYNC_STORE__ACCESS_KEY_ID", "id"),
                // Variables of the same prefix outside any section live in the same environment
                // (the seal keys of dev/up and docker-compose, the dev scripts' DWSYNC_RUN, the
                // CLI's DWSYNC_TOKEN): not config keys, not refused.
                ("DWSYNC_SEAL_KEY", &seal_key),
                ("DWSYNC_SEAL_OLD_KEYS", &old_seal_key),
                ("DWSYNC_RUN", "/tmp/run"),
                ("DWSYNC_TOKEN", "t"),
            ],
        )
        .expect("overridden");
        assert_eq!(cfg.archive.flush_interval(), Duration::from_secs(5));
        assert_eq!(cfg.store.secret_access_key.expose(), "0123-secret");
        assert_eq!(cfg.validate(), Ok(()));
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("0123-secret"), "{debug}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        let key = |change: &dyn Fn(&mut Config)| {
            let mut cfg = valid();
            change(&mut cfg);
            cfg.validate().err().map(|e| e.key)
        };
        assert_eq!(key(&|_| ()), None);
        assert_eq!(key(&|c| c.store.secret_access_key = Secret::default()), Some("store.access_key_id"));
        let chain = |c: &mut Config| {
            c.store.access_key_id.clear();
            c.store.secret_access_key = Secret::default();
        };
        assert_eq!(key(&chain), None, "no key at all: the AWS default credential chain");
        assert_eq!(key(&|c| c.archive.max_buffered_bytes = 1), Some("archive.max_buffered_bytes"));
        assert_eq!(key(&|c| c.archive.flush_interval_ms = 0), Some("archive.flush_bytes"));
        assert_eq!(key(&|c| c.store.part_bytes = 1024), Some("store.part_bytes"));
        assert_eq!(key(&|c| c.handoff.topic.clear()), Some("handoff.topic"));
    }
}
