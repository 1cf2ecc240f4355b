//! The private stack of an end-to-end test (topics, buckets, config files, the services as
//! processes) and what a user checks in the buckets afterwards.
#![allow(clippy::unwrap_used, missing_docs, dead_code, unreachable_pub)]

mod bucket;
pub mod drained;
mod endpoints;
pub mod initial;
pub mod private;
mod produce;

pub use bucket::*;
pub use endpoints::*;
pub use produce::*;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::Int64Type;
use bytes::Bytes;
use dwsync_config::KafkaConfig;
use dwsync_contract::{BatchBuilder, Encoding, Table, arrow_schema, decode};
use dwsync_loadgen::{Generator, id_column};
use dwsync_tests::secure::{kafka_password_env, kafka_toml};
use dwsync_tests::services::ServiceProcess;
use dwsync_tests::{
    create_bucket, create_topic_with, kafka_bootstrap, kafka_config_on, s3_access_key, s3_client, s3_endpoint,
    s3_secret_key, unique,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

/// Topics, buckets and config files of one test's private stack.
pub struct Stack {
    /// The broker every service of the stack uses.
    pub bootstrap: String,
    /// How every service of the stack (and the test's own clients) reach it: its `[kafka]`
    /// section, TLS and SASL included (the password goes to the services in the environment).
    pub kafka: KafkaConfig,
    pub dir: PathBuf,
    pub prefix: String,
    pub buckets: BTreeMap<i64, String>,
    /// Workspaces whose bucket is on the GCS server ([`Stack::use_gcs`]), not the S3 server.
    pub gcs: BTreeSet<i64>,
    pub ingest_config: PathBuf,
    pub uploader_config: PathBuf,
    /// The dead-letter topic (one partition).
    pub dead_letter_topic: String,
    /// The control service, when destinations come from it rather than the uploader's file.
    pub control: Option<Control>,
    /// The handoff topic (4 partitions).
    pub handoff_topic: String,
    /// The consumer groups of ingest and of the uploader.
    pub ingest_group: String,
    pub uploader_group: String,
}

/// The archive of a stack: its bucket, key prefix and the archiver's config file.
pub struct Archive {
    pub bucket: String,
    pub prefix: String,
    pub config: PathBuf,
    /// The archiver's consumer group (an archive purge waits for its commits).
    pub group_id: String,
}

/// The control service of a stack: its config file, API address and secrets.
pub struct Control {
    pub config: PathBuf,
    /// The compacted topics of configurations and of initial syncs.
    pub config_topic: String,
    pub initial_sync_topic: String,
    /// The compacted topics of archive purge requests and of their reports.
    pub archive_purge_topic: String,
    pub archive_purge_status_topic: String,
    pub api: String,
    pub admin_token: String,
    pub seal_key: String,
}

/// A free local TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn encoding_of(table: Table) -> Encoding {
    // Every other table's topic carries protobuf.
    if Table::ALL.iter().position(|t| *t == table).unwrap_or(0) % 2 == 0 { Encoding::Json } else { Encoding::Protobuf }
}

pub fn dest_prefix(ws: i64) -> String {
    format!("exports/ws{ws}")
}

impl Stack {
    /// A stack whose uploader has static destinations (one per workspace) in its config file.
    pub async fn new(workspaces: &[i64], tables: &[Table]) -> Self {
        Self::build(&plaintext(&kafka_bootstrap()), workspaces, tables, false).await
    }

    /// A stack whose destinations come from the control service (created through its API).
    pub async fn with_control(workspaces: &[i64], tables: &[Table]) -> Self {
        Self::build(&plaintext(&kafka_bootstrap()), workspaces, tables, true).await
    }

    /// [`Stack::with_control`] on the broker at `bootstrap` (a test's private one).
    pub async fn with_control_on(bootstrap: &str, workspaces: &[i64], tables: &[Table]) -> Self {
        Self::build(&plaintext(bootstrap), workspaces, tables, true).await
    }

    /// [`Stack::with_control`] on the broker `kafka` says, with its security settings (the
    /// secured broker of `dev/kafka-secure`).
    pub async fn with_control_secured(kafka: &KafkaConfig, workspaces: &[i64], tables: &[Table]) -> Self {
        Self::build(kafka, workspaces, tables, true).await
    }

    /// A client configuration of the stack's broker, as the services build theirs.
    pub fn client_config(&self, client: &str) -> rdkafka::ClientConfig {
        self.kafka.client_config(client)
    }

    async fn build(kafka: &KafkaConfig, workspaces: &[i64], tables: &[Table], with_control: bool) -> Self {
        let bootstrap = kafka.bootstrap_servers.as_str();
        let section = kafka_toml(kafka);
        let admin = kafka.client_config("test-admin");
        let dir = std::env::temp_dir().join(unique("dwsync-e2e"));
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = format!("{}.", unique("src"));
        let handoff = unique("handoff");
        let dlq = unique("dlq");
        for t in tables {
            create_topic_with(&admin, &format!("{prefix}{}", t.name()), 4).await;
        }
        create_topic_with(&admin, &handoff, 4).await;
        create_topic_with(&admin, &dlq, 1).await;
        let s3 = s3_client();
        let mut buckets = BTreeMap::new();
        for &ws in workspaces {
            let _ = buckets.insert(ws, create_bucket(&s3).await);
        }
        let (ingest_group, uploader_group) = (unique("ingest"), unique("uploader"));
        let table_list = tables.iter().map(|t| format!("\"{}\"", t.name())).collect::<Vec<_>>().join(", ");
        let mut ingest = format!(
            "{section}[http]\nlisten = \"127.0.0.1:0\"\n[ingest]\ngroup_id = \"{}\"\ntopic_prefix = \"{prefix}\"\n\
             tables = [{table_list}]\nhandoff_topic = \"{handoff}\"\ndead_letter_topic = \"{dlq}\"\nchunk_bytes = 65536\ntransaction_timeout_ms = 10000\n\
             [window]\nduration_ms = 2000\n",
            ingest_group,
        );
        for t in tables {
            let enc = if encoding_of(*t) == Encoding::Json { "json" } else { "protobuf" };
            ingest.push_str(&format!("[ingest.topics.{}]\nencoding = \"{enc}\"\n", t.name()));
        }
        let mut uploader = format!(
            "{section}[http]\nlisten = \"127.0.0.1:0\"\n[handoff]\ntopic = \"{handoff}\"\ngroup_id = \"{}\"\n\
             [upload]\nretry_initial_ms = 100\nretry_max_ms = 2000\n[lot]\ntopic = \"{handoff}.lot\"\nretry_initial_ms = 500\nretry_max_ms = 2000\n",
            uploader_group,
        );
        let dir_ = dir.clone();
        let control = with_control.then(|| {
            let (config_topic, status_topic) = (unique("sync-config"), unique("sync-status"));
            let initial_sync_topic = unique("initial-syncs");
            let (archive_purge_topic, archive_purge_status_topic) = (unique("archive-purges"), unique("archive-purge-status"));
            uploader.push_str(&format!(
                "[sync_config]\nstatus_interval_ms = 500\n[sync_config.store]\ntopic = \"{config_topic}\"\nstatus_topic = \"{status_topic}\"\n\
                 initial_sync_topic = \"{initial_sync_topic}\"\n{egress}",
                egress = dwsync_tests::local_egress_toml(),
            ));
            let port = free_port();
            let admin_token = unique("admin-token");
            let control = format!(
                "{section}[http]\nlisten = \"127.0.0.1:0\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n\
                 admin_token = \"{admin_token}\"\nallow_insecure_endpoints = true\n[store]\ntopic = \"{config_topic}\"\nstatus_topic = \"{status_topic}\"\n\
                 initial_sync_topic = \"{initial_sync_topic}\"\n\
                 archive_purge_topic = \"{archive_purge_topic}\"\narchive_purge_status_topic = \"{archive_purge_status_topic}\"\n\
                 # Initial syncs are off unless a test turns them on (DWSYNC_INITIAL_SYNC__ENABLED=true) and runs the backfill.\n\
                 [initial_sync]\nenabled = false\nhandoff_topic = \"{handoff}\"\n{egress}",
                egress = dwsync_tests::local_egress_toml(),
            );
            let config = dir_.join("control.toml");
            std::fs::write(&config, control).unwrap();
            let seal_key: String = unique("seal").bytes().chain(std::iter::repeat(b'0')).take(32).map(|b| format!("{b:02x}")).collect();
            Control {
                config,
                config_topic,
                initial_sync_topic,
                archive_purge_topic,
                archive_purge_status_topic,
                api: format!("http://127.0.0.1:{port}"),
                admin_token,
                seal_key,
            }
        });
        for (ws, bucket) in buckets.iter().filter(|_| !with_control) {
            uploader.push_str(&format!(
                "[[destinations]]\nworkspace_id = {ws}\nbucket = \"{bucket}\"\nprefix = \"{}\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\n\
                 force_path_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                dest_prefix(*ws),
                s3_endpoint(),
                s3_access_key(),
                s3_secret_key()
            ));
        }
        let ingest_config = dir.join("ingest.toml");
        let uploader_config = dir.join("uploader.toml");
        std::fs::write(&ingest_config, ingest).unwrap();
        std::fs::write(&uploader_config, uploader).unwrap();
        Self {
            bootstrap: bootstrap.to_owned(),
            kafka: kafka.clone(),
            dir,
            prefix,
            buckets,
            gcs: BTreeSet::new(),
            ingest_config,
            uploader_config,
            dead_letter_topic: dlq,
            control,
            handoff_topic: handoff,
            ingest_group,
            uploader_group,
        }
    }

    /// Gives `ws` a fresh bucket on the GCS server instead of its S3 bucket (its sync is then
    /// created with [`Api::gcs_sync_body`]).
    pub async fn use_gcs(&mut self, ws: i64) {
        let _ = self.buckets.insert(ws, dwsync_tests::gcs::create_gcs_bucket().await);
        let _ = self.gcs.insert(ws);
    }

    /// A fresh archive bucket and an archiver config writing to it, batches written
    /// `flush_interval_ms` after their first record.
    pub async fn archive(&self, flush_interval_ms: u64) -> Archive {
        let bucket = create_bucket(&s3_client()).await;
        let prefix = "archive".to_owned();
        let group_id = unique("archiver");
        let toml = format!(
            "{}[http]\nlisten = \"127.0.0.1:0\"\n[handoff]\ntopic = \"{}\"\ngroup_id = \"{}\"\nsession_timeout_ms = 6000\n\
             [archive]\nflush_interval_ms = {flush_interval_ms}\nretry_initial_ms = 100\nretry_max_ms = 2000\nwrite_concurrency = 1\n\
             [store]\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\nendpoint = \"{}\"\nforce_path_style = true\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            kafka_toml(&self.kafka),
            self.handoff_topic,
            group_id,
            s3_endpoint(),
            s3_access_key(),
            s3_secret_key()
        );
        let config = self.dir.join("archiver.toml");
        std::fs::write(&config, toml).unwrap();
        Archive { bucket, prefix, config, group_id }
    }

    /// The archiver, logging each object it creates (`dwsync_archiver=debug`).
    pub fn archiver(&self, archive: &Archive, name: &str) -> ServiceProcess {
        self.archiver_with(archive, name, &[])
    }

    /// [`archiver`](Self::archiver) with `extra` environment variables.
    pub fn archiver_with(&self, archive: &Archive, name: &str, extra: &[(&str, String)]) -> ServiceProcess {
        let mut vars = vec![("RUST_LOG", "info,dwsync_archiver=debug,librdkafka=warn,rdkafka=warn".to_owned())];
        vars.extend(extra.iter().cloned());
        let env = self.env(&vars);
        ServiceProcess::start("dwsync-archiver", name, &archive.config, &env, &self.dir)
    }

    /// The backfill (a control stack only) reading `archive`, polling every 300 ms, initial
    /// metrics files of `metrics_rows_per_file` rows.
    pub fn backfill(&self, archive: &Archive, name: &str, metrics_rows_per_file: u64) -> ServiceProcess {
        let control = self.control.as_ref().expect("a stack with control");
        let toml = format!(
            "{}[http]\nlisten = \"127.0.0.1:0\"\n\
             [sync_config.store]\ntopic = \"{}\"\ninitial_sync_topic = \"{}\"\n\
             archive_purge_topic = \"{}\"\narchive_purge_status_topic = \"{}\"\n\
             [archive]\nbucket = \"{}\"\nprefix = \"{}\"\nendpoint = \"{}\"\nforce_path_style = true\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n[handoff]\ntopic = \"{}\"\narchiver_group_id = \"{}\"\n\
             [backfill]\npoll_interval_ms = 300\nretry_initial_ms = 200\nretry_max_ms = 2000\nmetrics_rows_per_file = {metrics_rows_per_file}\n{}",
            kafka_toml(&self.kafka),
            control.config_topic,
            control.initial_sync_topic,
            control.archive_purge_topic,
            control.archive_purge_status_topic,
            archive.bucket,
            archive.prefix,
            s3_endpoint(),
            s3_access_key(),
            s3_secret_key(),
            self.handoff_topic,
            archive.group_id,
            dwsync_tests::local_egress_toml(),
        );
        let config = self.dir.join(format!("{name}.toml"));
        std::fs::write(&config, toml).unwrap();
        let env = self.env(&[("DWSYNC_SEAL_KEY", control.seal_key.clone())]);
        ServiceProcess::start("dwsync-backfill", name, &config, &env, &self.dir)
    }

    /// An ingest with an instance id of its own, never used again: a stopped one is gone for
    /// good, so it leaves the group (a static member does not unless told to).
    pub fn ingest(&self, name: &str) -> ServiceProcess {
        self.ingest_with(name, &[])
    }

    pub fn uploader(&self, name: &str) -> ServiceProcess {
        self.uploader_with(name, &[])
    }

    /// The uploader with extra environment (the seal key is added in a control stack).
    pub fn uploader_with(&self, name: &str, env: &[(&str, String)]) -> ServiceProcess {
        let mut env = self.env(env);
        if let Some(control) = &self.control {
            env.push(("DWSYNC_SEAL_KEY", control.seal_key.clone()));
        }
        ServiceProcess::start("dwsync-uploader", name, &self.uploader_config, &env, &self.dir)
    }

    /// [`Stack::ingest`] with extra environment.
    pub fn ingest_with(&self, name: &str, env: &[(&str, String)]) -> ServiceProcess {
        let mut env = self.env(env);
        env.push(("DWSYNC_INGEST__INSTANCE_ID", unique(name)));
        env.push(("DWSYNC_INGEST__LEAVE_GROUP_ON_SHUTDOWN", "true".to_owned()));
        ServiceProcess::start("dwsync-ingest", name, &self.ingest_config, &env, &self.dir)
    }

    /// The ingest with a given instance id (its transactional id and, by default, its
    /// `group.instance.id`): a restart with the same id is the same instance.
    pub fn ingest_as(&self, name: &str, instance_id: &str, env: &[(&str, String)]) -> ServiceProcess {
        let mut env = self.env(env);
        env.push(("DWSYNC_INGEST__INSTANCE_ID", instance_id.to_owned()));
        ServiceProcess::start("dwsync-ingest", name, &self.ingest_config, &env, &self.dir)
    }

    /// The control service (a control stack only), with extra environment.
    pub fn control_with(&self, name: &str, env: &[(&str, String)]) -> ServiceProcess {
        let control = self.control.as_ref().expect("a stack with control");
        let mut env = self.env(env);
        env.push(("DWSYNC_SEAL_KEY", control.seal_key.clone()));
        ServiceProcess::start("dwsync-control", name, &control.config, &env, &self.dir)
    }

    /// A service's environment: the Kafka password if the stack's broker wants one, then `extra`
    /// (which may set another).
    fn env<'a>(&self, extra: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
        let mut env = kafka_password_env(&self.kafka);
        env.extend_from_slice(extra);
        env
    }
}
