//! The private stack of an end-to-end test (topics, buckets, config files, the services as
//! processes) and what a user checks in the buckets afterwards.
#![allow(clippy::unwrap_used, missing_docs, dead_code, unreachable_pub)]

pub mod drained;
pub mod initial;
pub mod private;

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

/// The `[kafka]` section of a broker reached in plain text at `bootstrap`.
pub fn plaintext(bootstrap: &str) -> KafkaConfig {
    KafkaConfig { bootstrap_servers: bootstrap.to_owned(), ..KafkaConfig::default() }
}

/// One produced record: its number, bytes and encoding.
pub struct Sent {
    pub n: u64,
    pub bytes: Vec<u8>,
    pub encoding: Encoding,
}

/// What the test produced: per (workspace, table), record id → the record sent.
#[derive(Default)]
pub struct Produced {
    pub records: BTreeMap<(i64, Table), BTreeMap<String, Sent>>,
}

impl Produced {
    pub fn total(&self) -> usize {
        self.records.values().map(BTreeMap::len).sum()
    }
}

/// Produces records `from..to` of every (workspace, table), keyed by workspace.
pub async fn produce(
    stack: &Stack,
    producer: &FutureProducer,
    generator: &mut Generator,
    scope: (&[i64], &[Table]),
    numbers: std::ops::Range<u64>,
    produced: &mut Produced,
) {
    produce_keyed(stack, producer, generator, scope, numbers, produced, Keys::Workspace).await;
}

/// How produced records are keyed, which decides their partitions.
#[derive(Debug, Clone, Copy)]
pub enum Keys {
    /// By workspace: all of a workspace's records of a table in one partition.
    Workspace,
    /// By record number: a workspace's records spread over every partition of the topic, so
    /// each window holds records of several partitions.
    Record,
}

/// Produces records `from..to` of every (workspace, table), keyed as `keys` says.
pub async fn produce_keyed(
    stack: &Stack,
    producer: &FutureProducer,
    generator: &mut Generator,
    (workspaces, tables): (&[i64], &[Table]),
    numbers: std::ops::Range<u64>,
    produced: &mut Produced,
    keys: Keys,
) {
    let mut pending = Vec::new();
    for n in numbers {
        for &ws in workspaces {
            for &table in tables {
                let record = generator.record(table, ws, n);
                // One in five JSON-topic records travels as protobuf, flagged by its content-type.
                let mut enc = encoding_of(table);
                let mut headers = None;
                if enc == Encoding::Json && n % 5 == 4 {
                    enc = Encoding::Protobuf;
                    headers = Some(
                        OwnedHeaders::new()
                            .insert(Header { key: "content-type", value: Some("application/x-protobuf") }),
                    );
                }
                let bytes = record.encoded(enc).to_vec();
                let topic = format!("{}{}", stack.prefix, table.name());
                let key = match keys {
                    Keys::Workspace => ws.to_string(),
                    Keys::Record => format!("{ws}-{n}"),
                };
                let mut rec = FutureRecord::to(&topic).key(&key).payload(&bytes);
                if let Some(h) = headers {
                    rec = rec.headers(h);
                }
                pending.push(producer.send_result(rec).map_err(|(e, _)| e).unwrap());
                let _ = produced
                    .records
                    .entry((ws, table))
                    .or_default()
                    .insert(record.id, Sent { n, bytes, encoding: enc });
            }
        }
    }
    for p in pending {
        let _ = p.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// One exported object, read back.
pub struct Object {
    pub key: String,
    pub table: Table,
    pub workspace: i64,
    pub seq: u64,
    pub batch: RecordBatch,
}

/// Parses `<prefix>/<stem>_v5_[chngs_]<ws>_<seq>.parquet`.
pub fn parse_key(prefix: &str, key: &str) -> Option<(Table, i64, u64)> {
    let name = key.strip_prefix(prefix)?.strip_prefix('/')?.strip_suffix(".parquet")?;
    let (stem, rest) = name.split_once("_v5_")?;
    let rest = rest.strip_prefix("chngs_").unwrap_or(rest);
    let (ws, seq) = rest.split_once('_')?;
    let table = *Table::ALL.iter().find(|t| t.stem() == stem)?;
    (seq.len() >= 12).then_some(())?;
    Some((table, ws.parse().ok()?, seq.parse().ok()?))
}

/// Runs an S3 request up to five times, 200 ms apart: the local server (s3s-fs) can fail a
/// listing that races a write into the same bucket; a persistent failure still fails the test.
async fn retrying<T, E: std::fmt::Debug, F>(what: &str, mut request: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match request().await {
            Ok(out) => return out,
            Err(e) if attempt < 5 => {
                eprintln!("{what}: attempt {attempt} failed, retrying: {e:?}");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: failed {attempt} times: {e:?}"),
        }
    }
}

/// The object keys of `ws`'s bucket (S3 or GCS).
pub async fn list_keys(stack: &Stack, ws: i64, bucket: &str) -> Vec<String> {
    if stack.gcs.contains(&ws) {
        return dwsync_tests::gcs::list_gcs_objects(bucket, "").await;
    }
    let s3 = s3_client();
    let (mut keys, mut token) = (Vec::new(), None);
    loop {
        let out = retrying(&format!("listing {bucket}"), || {
            s3.list_objects_v2().bucket(bucket).set_continuation_token(token.clone()).send()
        })
        .await;
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return keys;
        }
    }
}

/// The bytes of `key` in `ws`'s bucket (S3 or GCS).
pub async fn read_key(stack: &Stack, ws: i64, bucket: &str, key: &str) -> Vec<u8> {
    if stack.gcs.contains(&ws) {
        return dwsync_tests::gcs::read_gcs_object(bucket, key)
            .await
            .unwrap_or_else(|| panic!("gs://{bucket}/{key} is gone"));
    }
    let s3 = s3_client();
    let out = retrying(&format!("reading {key}"), || s3.get_object().bucket(bucket).key(key).send()).await;
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Lists and reads every object of the stack's buckets; panics on a key that breaks the naming rule.
pub async fn read_objects(stack: &Stack, cache: &mut BTreeMap<(i64, String), Object>) -> usize {
    let mut validates = 0;
    for (&ws, bucket) in &stack.buckets {
        for key in list_keys(stack, ws, bucket).await {
            if key == format!("{}/cio-validate", dest_prefix(ws)) {
                validates += 1;
                continue;
            }
            if cache.contains_key(&(ws, key.clone())) {
                continue;
            }
            let (table, workspace, seq) =
                parse_key(&dest_prefix(ws), &key).unwrap_or_else(|| panic!("unexpected object key {key}"));
            let body = read_key(stack, ws, bucket, &key).await;
            let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(body)).unwrap().build().unwrap();
            let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
            let batch = concat_batches(&arrow_schema(table), &batches).unwrap();
            let _ = cache.insert((ws, key.clone()), Object { key, table, workspace, seq, batch });
        }
    }
    validates
}

pub fn id_strings(batch: &RecordBatch, table: Table) -> Vec<String> {
    let col = batch.column_by_name(id_column(table)).unwrap();
    (0..col.len())
        .map(|i| match col.data_type() {
            arrow::datatypes::DataType::Int64 => col.as_primitive::<Int64Type>().value(i).to_string(),
            _ => col.as_string::<i32>().value(i).to_owned(),
        })
        .collect()
}

/// Waits until the objects hold as many rows as were produced (or a deadline), then checks
/// everything a user would: names, cio-validate, isolation, schemas, values, exactly once, order.
pub async fn verify(stack: &Stack, produced: &Produced, within: Duration, processes: &mut [&mut ServiceProcess]) {
    verify_keyed(stack, produced, within, processes, Keys::Workspace).await;
}

/// [`verify`] for records produced with `keys`: the files of a table follow the records' order
/// only when one partition holds all of a workspace's records ([`Keys::Workspace`]).
pub async fn verify_keyed(
    stack: &Stack,
    produced: &Produced,
    within: Duration,
    processes: &mut [&mut ServiceProcess],
    keys: Keys,
) {
    let mut cache = BTreeMap::new();
    let deadline = Instant::now() + within;
    let mut validates;
    loop {
        validates = read_objects(stack, &mut cache).await;
        let rows: usize = cache.values().map(|o| o.batch.num_rows()).sum();
        if rows >= produced.total() || Instant::now() > deadline {
            break;
        }
        for p in processes.iter_mut() {
            assert!(p.is_running(), "{} exited:\n{}", p.name(), p.log_tail(30));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert_eq!(validates, stack.buckets.len(), "one cio-validate per destination");

    let mut by_table: BTreeMap<(i64, Table), Vec<&Object>> = BTreeMap::new();
    for o in cache.values() {
        assert_eq!(o.batch.schema(), arrow_schema(o.table), "{}: schema", o.key);
        let ws = o.batch.column_by_name("workspace_id").unwrap().as_primitive::<Int64Type>();
        assert!(ws.iter().all(|w| w == Some(o.workspace)), "{}: rows of another workspace", o.key);
        assert!(
            o.key.contains(&format!("_v5_{}_", o.workspace)) || o.key.contains(&format!("_v5_chngs_{}_", o.workspace))
        );
        by_table.entry((o.workspace, o.table)).or_default().push(o);
    }
    for ((ws, table), expected) in &produced.records {
        let mut files = by_table.remove(&(*ws, *table)).unwrap_or_default();
        // Every record exactly once.
        let got: Vec<String> = files.iter().flat_map(|o| id_strings(&o.batch, *table)).collect();
        let distinct: BTreeSet<&String> = got.iter().collect();
        assert_eq!(got.len(), distinct.len(), "ws {ws} {table}: duplicated rows");
        let want: BTreeSet<&String> = expected.keys().collect();
        if distinct != want {
            // Which ones: the last produced missing means a stall, earlier ones a loss.
            let mut missing: Vec<u64> = want.difference(&distinct).map(|id| expected[*id].n).collect();
            missing.sort_unstable();
            let unknown = distinct.difference(&want).count();
            let last = expected.values().map(|s| s.n).max().unwrap_or_default();
            panic!(
                "ws {ws} {table}: {} of {} rows missing (record numbers {missing:?}; the last produced is {last}), \
                 {unknown} unknown rows",
                missing.len(),
                want.len()
            );
        }
        // Values: the rows equal the produced records decoded by the contract.
        let batches: Vec<RecordBatch> = files.iter().map(|o| o.batch.clone()).collect();
        let actual = concat_batches(&arrow_schema(*table), &batches).unwrap();
        let mut builder = BatchBuilder::new(*table);
        for sent in expected.values() {
            builder.append(&decode(*table, sent.encoding, &sent.bytes).unwrap());
        }
        let wanted = concat_batches(&arrow_schema(*table), &builder.finish().unwrap()).unwrap();
        assert_eq!(sorted(&actual, *table), sorted(&wanted, *table), "ws {ws} {table}: values");
        // seq strictly increasing, in the order the records were produced (one partition per workspace).
        files.sort_by_key(|o| o.seq);
        let seqs: Vec<u64> = files.iter().map(|o| o.seq).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ws {ws} {table}: seqs {seqs:?}");
        let ranges: Vec<(u64, u64)> = files
            .iter()
            .map(|o| {
                let ns: Vec<u64> = id_strings(&o.batch, *table).iter().map(|id| expected[id].n).collect();
                (*ns.iter().min().unwrap(), *ns.iter().max().unwrap())
            })
            .collect();
        if !table.def().has_change_files && matches!(keys, Keys::Workspace) {
            assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0), "ws {ws} {table}: files out of order {ranges:?}");
        }
    }
    assert!(by_table.is_empty(), "objects of unexpected tables: {:?}", by_table.keys().collect::<Vec<_>>());
}

pub fn sorted(batch: &RecordBatch, table: Table) -> RecordBatch {
    let col = batch.column_by_name(id_column(table)).unwrap();
    let idx = sort_to_indices(col, None, None).unwrap();
    take_record_batch(batch, &idx).unwrap()
}

pub fn producer() -> FutureProducer {
    producer_on(&kafka_bootstrap())
}

/// An idempotent producer on the broker at `bootstrap`.
pub fn producer_on(bootstrap: &str) -> FutureProducer {
    idempotent(kafka_config_on(bootstrap))
}

/// An idempotent producer on the stack's broker, with its security settings.
pub fn producer_of(stack: &Stack) -> FutureProducer {
    idempotent(stack.client_config("test-producer"))
}

fn idempotent(mut config: rdkafka::ClientConfig) -> FutureProducer {
    config.set("enable.idempotence", "true").set("linger.ms", "5").create().unwrap()
}

/// The control API of a stack, as a client with the admin token.
pub struct Api {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(control: &Control) -> Self {
        Self { base: control.api.clone(), token: control.admin_token.clone(), http: reqwest::Client::new() }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn wait_ready(&self, control: &mut ServiceProcess) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = self.http.get(format!("{}/openapi.json", self.base)).send().await
                && resp.status().is_success()
            {
                return;
            }
            assert!(control.is_running(), "control exited:\n{}", control.log_tail(30));
            assert!(Instant::now() < deadline, "the control API did not come up:\n{}", control.log_tail(30));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn sync_body(ws: i64, bucket: &str, secret: &str) -> Value {
        json!({"destination": {
            "bucket": bucket,
            "prefix": dest_prefix(ws),
            "region": "us-east-1",
            "endpoint": s3_endpoint(),
            "force_path_style": true,
            "access_key_id": s3_access_key(),
            "secret_access_key": secret,
        }})
    }

    /// A GCS destination on the test GCS server, with the test service account key.
    pub fn gcs_sync_body(ws: i64, bucket: &str) -> Value {
        json!({"destination": {
            "kind": "gcs",
            "bucket": bucket,
            "prefix": dest_prefix(ws),
            "endpoint": dwsync_tests::gcs::gcs_endpoint(),
            "service_account_key": dwsync_tests::gcs::service_account_key(),
        }})
    }

    /// Creates `ws`'s sync into `bucket` (the test S3 server's secret), asserting 201.
    pub async fn create_sync(&self, ws: i64, bucket: &str) {
        let body = Self::sync_body(ws, bucket, &s3_secret_key());
        let (status, resp) = self.call(reqwest::Method::POST, &format!("/v1/workspaces/{ws}/sync"), Some(body)).await;
        assert_eq!(status, 201, "{resp}");
    }

    pub async fn status(&self, ws: i64) -> Value {
        self.call(reqwest::Method::GET, &format!("/v1/workspaces/{ws}/status"), None).await.1
    }

    pub async fn set_table(&self, ws: i64, table: Table, enabled: bool) {
        let path = format!("/v1/workspaces/{ws}/sync/tables/{}", table.name());
        let (status, body) = self.call(reqwest::Method::PUT, &path, Some(json!({"enabled": enabled}))).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// `text` without its terminal colour codes (`ESC [ … m`).
pub fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The address of the process's `/healthz`, `/readyz` and `/metrics`, from its log.
pub fn http_addr(process: &ServiceProcess) -> String {
    served_at(process).unwrap_or_else(|| {
        let log = without_ansi(&std::fs::read_to_string(&process.log).unwrap());
        panic!("{}: no /healthz address in its log:\n{log}", process.name())
    })
}

/// [`http_addr`], `None` while the process has not logged it yet.
fn served_at(process: &ServiceProcess) -> Option<String> {
    let log = without_ansi(&std::fs::read_to_string(&process.log).ok()?);
    log.lines()
        .find(|l| l.contains("Serving /healthz"))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .map(str::to_owned)
}

/// The sum of a metric's samples whose line has `label`, from the process's `/metrics` (its
/// address is in its log); `None` when no sample of it is there, or the process does not serve
/// its endpoints yet.
pub async fn metric(process: &ServiceProcess, name: &str, label: &str) -> Option<f64> {
    let addr = served_at(process)?;
    let body = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let samples: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}
