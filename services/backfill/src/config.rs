//! The backfill's configuration: Kafka, the configuration and initial-sync topics, the archive,
//! the handoff topic (its partition count) and the jobs' settings.
//!
//! Loaded with [`dwsync_config::load`] (defaults, `--config <file>`, `DWSYNC_*` variables); the
//! backfill's own sections refuse unknown keys (`[sync_config.store]` too), so a typo fails at
//! start instead of leaving a default silently in place. [`Config::validate`] checks what serde
//! cannot.

use std::path::PathBuf;
use std::time::Duration;

use dwsync_archive::ArchiveLocation;
use dwsync_config::{HttpConfig, KafkaConfig, TelemetryConfig};
pub use dwsync_s3::egress::EgressConfig;
use dwsync_sync_config::StoreConfig;
use serde::{Deserialize, Serialize};

/// The backfill's configuration: `Config::default()`, then `--config <file>`, then `DWSYNC_*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Kafka cluster. Default: [`KafkaConfig::default`] (`127.0.0.1:9092`).
    pub kafka: KafkaConfig,
    /// The HTTP endpoints. Default: listen on `127.0.0.1:8085`.
    pub http: HttpConfig,
    /// Logs, metrics and traces. Default: `service_name = "dwsync-backfill"`, text logs, no OTLP.
    pub telemetry: TelemetryConfig,
    /// The configuration topic (baselines asked for) and the initial-sync topic (reported).
    pub sync_config: SyncConfigSource,
    /// Where the archive is (the archiver's `[store]`, read only). Credentials required.
    pub archive: ArchiveLocation,
    /// The handoff topic, for its partition count. Default: `dwsync.handoff`.
    pub handoff: HandoffTopic,
    /// The jobs. Default: [`BackfillConfig::default`].
    pub backfill: BackfillConfig,
    /// Which non-public networks and hosts the workspaces' endpoints (customers') may lead to,
    /// checked at every connection (`[egress]`); the archive is the operator's and is not
    /// restricted. Default: none; endpoints must be public addresses.
    #[serde(default)]
    pub egress: EgressConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kafka: KafkaConfig::default(),
            http: HttpConfig::localhost(8085),
            telemetry: TelemetryConfig::for_service("dwsync-backfill"),
            sync_config: SyncConfigSource::default(),
            archive: ArchiveLocation::default(),
            handoff: HandoffTopic::default(),
            backfill: BackfillConfig::default(),
            egress: EgressConfig::default(),
        }
    }
}

/// The compacted topics of configurations and initial syncs (`[sync_config]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfigSource {
    /// `topic` (followed: which baselines are asked for), `initial_sync_topic` (written: their
    /// progress; the backfill is its only writer), `timeout_ms`. Default: `dwsync.sync-config`,
    /// `dwsync.initial-syncs`, 10 s.
    pub store: StoreConfig,
}

/// The handoff topic (`[handoff]`): the reader needs its partition count, read from Kafka at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HandoffTopic {
    /// The topic ingest hands files over on. Default: `"dwsync.handoff"`.
    pub topic: String,
    /// The archiver's consumer group (the archiver's `handoff.group_id`): an archive purge
    /// waits until it has committed past the batches it rewrites. Default: `"dwsync-archiver"`.
    pub archiver_group_id: String,
}

impl Default for HandoffTopic {
    fn default() -> Self {
        Self { topic: "dwsync.handoff".into(), archiver_group_id: "dwsync-archiver".into() }
    }
}

/// The jobs (`[backfill]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackfillConfig {
    /// Workspaces backfilled at once. Default: `2`.
    pub concurrency: usize,
    /// How often the configurations are looked at for new baselines (and a waiting job looks at
    /// the archive again), in ms. Default: `2000`.
    pub poll_interval_ms: u64,
    /// Rows per initial metrics file (the two-sequence files). Default: `1000000`.
    pub metrics_rows_per_file: usize,
    /// First delay before a failed job is tried again, in ms; doubles per failure (full
    /// jitter). Default: `1000`.
    pub retry_initial_ms: u64,
    /// Longest delay before a failed job is tried again, in ms. Default: `60000`.
    pub retry_max_ms: u64,
    /// Object keys listed per table in the reported status (the rest are counted). Default: `200`.
    pub max_keys_reported: usize,
    /// Directory of the folds' spill files and of the baseline files before they are uploaded
    /// (a temporary directory per job is made in it, deleted when the job ends). Default: none,
    /// the system's temporary directory (`TMPDIR`, else `/tmp`).
    pub spill_dir: Option<PathBuf>,
    /// Bytes of rows each job's latest-per-key folds hold in memory before they spill to
    /// `spill_dir`. Default: `134217728` (128 MiB).
    pub memory_budget_bytes: usize,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            poll_interval_ms: 2_000,
            metrics_rows_per_file: 1_000_000,
            retry_initial_ms: 1_000,
            retry_max_ms: 60_000,
            max_keys_reported: 200,
            spill_dir: None,
            memory_budget_bytes: 128 << 20,
        }
    }
}

impl BackfillConfig {
    /// [`poll_interval_ms`](Self::poll_interval_ms) as a `Duration`.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The spill directory: [`spill_dir`](Self::spill_dir), else the system's temporary one.
    pub fn spill_dir(&self) -> PathBuf {
        self.spill_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// The backoff between attempts of a failed job.
    pub fn backoff(&self) -> dwsync_retry::Backoff {
        dwsync_retry::Backoff::new(
            Duration::from_millis(self.retry_initial_ms),
            Duration::from_millis(self.retry_max_ms),
        )
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
        let (store, backfill) = (&self.sync_config.store, &self.backfill);
        if store.topic.is_empty() || store.initial_sync_topic.is_empty() {
            return fail("sync_config.store.topic", "topic and initial_sync_topic must not be empty");
        }
        if self.handoff.topic.is_empty() {
            return fail("handoff.topic", "must not be empty");
        }
        if self.handoff.archiver_group_id.is_empty() {
            return fail("handoff.archiver_group_id", "must not be empty");
        }
        if store.archive_purge_topic.is_empty() || store.archive_purge_status_topic.is_empty() {
            return fail(
                "sync_config.store.archive_purge_topic",
                "archive_purge_topic and archive_purge_status_topic must not be empty",
            );
        }
        if let Some((key, message)) = self.archive.problem() {
            let key = match key {
                "bucket" => "archive.bucket",
                _ => "archive.access_key_id",
            };
            return fail(key, message);
        }
        if backfill.concurrency == 0 {
            return fail("backfill.concurrency", "must be positive");
        }
        if backfill.poll_interval_ms == 0 {
            return fail("backfill.poll_interval_ms", "must be positive");
        }
        if backfill.metrics_rows_per_file == 0 {
            return fail("backfill.metrics_rows_per_file", "must be positive");
        }
        if backfill.memory_budget_bytes == 0 {
            return fail("backfill.memory_budget_bytes", "must be positive");
        }
        if backfill.retry_initial_ms == 0 || backfill.retry_initial_ms > backfill.retry_max_ms {
            return fail("backfill.retry_initial_ms", "must be positive and at most backfill.retry_max_ms");
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
    use dwsync_config::{ConfigError, Secret};

    use super::*;

    fn with_file(toml: &str, check: impl FnOnce(Result<Config, ConfigError>)) {
        check(dwsync_config::testing::load_with(Some(toml), &[]));
    }

    fn valid() -> Config {
        let mut cfg = Config::default();
        cfg.archive.access_key_id = "k".into();
        cfg.archive.secret_access_key = Secret::new("s");
        cfg
    }

    #[test]
    fn the_deploy_example_is_the_defaults_plus_credentials() {
        let example = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/backfill.toml"));
        with_file(example, |cfg| {
            let cfg = cfg.expect("deploy/backfill.toml loads");
            assert_eq!(cfg.validate(), Ok(()));
            let mut expected = Config::default();
            expected.archive.access_key_id = "dwsync-dev".into();
            expected.archive.secret_access_key = Secret::new("dwsync-dev-secret-key");
            expected.archive.endpoint = Some("http://minio:9000".into());
            expected.archive.force_path_style = true;
            assert_eq!(cfg, expected, "every other key of the example is its default");
        });
    }

    #[test]
    fn a_typo_fails_loudly_naming_the_key() {
        for (toml, typo) in [
            ("[backfill]\nconcurrenc = 1\n", "concurrenc"),
            ("[archive]\nbuckett = \"b\"\n", "buckett"),
            ("[sync_config.store]\ninitial_sync_topik = \"t\"\n", "initial_sync_topik"),
            ("[sync_config]\nfollow = true\n", "follow"),
            ("[handof]\ntopic = \"t\"\n", "handof"),
            ("[handoff]\narchiver_group = \"g\"\n", "archiver_group"),
            ("[sync_config.store]\narchive_purge_topik = \"t\"\n", "archive_purge_topik"),
        ] {
            with_file(toml, |cfg| {
                let err = cfg.expect_err("unknown key");
                assert!(err.to_string().contains(typo), "{err}");
            });
        }
        with_file("[sync_config.store]\ninitial_sync_topic = \"mine\"\ntimeout_ms = 5\n", |cfg| {
            let cfg = cfg.expect("known keys");
            assert_eq!(
                (cfg.sync_config.store.initial_sync_topic.as_str(), cfg.sync_config.store.timeout_ms),
                ("mine", 5)
            );
            assert_eq!(cfg.sync_config.store.topic, "dwsync.sync-config", "the others keep their defaults");
        });
    }

    #[test]
    fn environment_overrides_and_the_secret_never_prints() {
        let seal_key = "00".repeat(32);
        let cfg: Config = dwsync_config::testing::load_with(
            None,
            &[
                ("DWSYNC_BACKFILL__CONCURRENCY", "5"),
                ("DWSYNC_ARCHIVE__SECRET_ACCESS_KEY", "0123-secret"),
                ("DWSYNC_ARCHIVE__ACCESS_KEY_ID", "id"),
                ("DWSYNC_SEAL_KEY", &seal_key),
                ("DWSYNC_RUN", "/tmp/run"),
            ],
        )
        .expect("overridden");
        assert_eq!(cfg.backfill.concurrency, 5);
        assert_eq!(cfg.archive.secret_access_key.expose(), "0123-secret");
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
        assert_eq!(key(&|c| c.archive.secret_access_key = Secret::default()), Some("archive.access_key_id"));
        assert_eq!(key(&|c| c.archive.bucket.clear()), Some("archive.bucket"));
        assert_eq!(key(&|c| c.backfill.concurrency = 0), Some("backfill.concurrency"));
        assert_eq!(key(&|c| c.backfill.metrics_rows_per_file = 0), Some("backfill.metrics_rows_per_file"));
        assert_eq!(key(&|c| c.backfill.retry_initial_ms = 70_000), Some("backfill.retry_initial_ms"));
        assert_eq!(key(&|c| c.backfill.memory_budget_bytes = 0), Some("backfill.memory_budget_bytes"));
        assert_eq!(key(&|c| c.handoff.topic.clear()), Some("handoff.topic"));
    }
}
