//! An archive purge end to end on the real broker and S3 server: an archive of three workspaces
//! (written with the archive's object writer, the archiver's group committed past it), control
//! (the library, its API on a local port) and the backfill binary. A workspace token may not ask
//! for a purge (403); the admin's request is answered 202; the backfill rewrites the shared
//! objects without the workspace and deletes the one it held alone; the status (of a workspace
//! without a sync) says done with the counts; the other workspaces' archived rows are intact; a
//! sync created afterwards for the purged workspace gets an initial sync with no archived rows.
//! A second case kills the backfill with `kill -9` in the middle of a purge and starts it again.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use dwsync_archive::fixture::{self, TestFile as File};
use dwsync_archive::{ArchiveReader, BatchRange, handoff_partition};
use dwsync_config::{HttpConfig, KafkaConfig, Secret};
use dwsync_contract::{BatchBuilder, Encoding, Table, arrow_schema, decode};
use dwsync_handoff::FileKind;
use dwsync_loadgen::Generator;
use dwsync_sync_config::{Sealer, StoreConfig};
use dwsync_tests::services::ServiceProcess;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Workspaces 1, 7 and 1234 all go to partition 0 of 3.
const PARTITIONS: i32 = 3;
const PURGED: i64 = 7;
const OTHERS: [i64; 2] = [1, 1234];
const PREFIX: &str = "arc";
const SEAL_KEY: [u8; 32] = [0xcd; 32];
const ADMIN: &str = "purge-admin-token-0123456789";
const WS7: &str = "purge-ws7-token-abcdef";

fn rows(table: Table, workspace: i64, first: u64, n: u64) -> Vec<RecordBatch> {
    let mut generator = Generator::new(13);
    let mut builder = BatchBuilder::new(table);
    for i in 0..n {
        let record = generator.record(table, workspace, first + i);
        builder.append(&decode(table, Encoding::Json, record.encoded(Encoding::Json)).unwrap());
    }
    builder.finish().unwrap()
}

fn file(workspace: i64, offset: i64, table: Table, kind: FileKind, n: u64) -> File {
    File { workspace, offset, table, kind, rows: rows(table, workspace, offset as u64 * 1000, n) }
}

async fn write_batch(s3: &aws_sdk_s3::Client, bucket: &str, range: BatchRange, files: &[File]) {
    fixture::write_batch(s3, bucket, ("handoff", PREFIX), range, files).await.unwrap();
}

/// One workspace's archived rows of `table`, as one batch.
async fn history(reader: &ArchiveReader, workspace: i64, table: Table) -> RecordBatch {
    let history = reader.workspace(workspace).await.unwrap().table(table).await.unwrap();
    arrow::compute::concat_batches(&arrow_schema(table), &history.batches).unwrap()
}

struct Setup {
    kafka: KafkaConfig,
    store: StoreConfig,
    handoff: String,
    archiver_group: String,
    archive: String,
    destination: String,
    dir: PathBuf,
    api: String,
    control: CancellationToken,
    http: reqwest::Client,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.control.cancel();
    }
}

/// `records` plain records on the handoff partition (so a cut lands after them), and the
/// archiver's group committed at `committed`.
async fn handoff_records(
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    records: usize,
    group: &str,
    committed: i64,
) {
    let producer: FutureProducer = dwsync_tests::kafka_config().create().unwrap();
    for n in 0..records {
        let key = n.to_string();
        let record = FutureRecord::<str, [u8]>::to(topic).key(&key).payload(b"not a file").partition(partition);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }
    let consumer: BaseConsumer =
        dwsync_tests::kafka_config().set("group.id", group).set("enable.auto.commit", "false").create().unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(topic, partition, Offset::Offset(committed)).unwrap();
    consumer.commit(&offsets, CommitMode::Sync).unwrap();
    let _ = kafka;
}

async fn setup(name: &str) -> Setup {
    let s3 = dwsync_tests::s3_client();
    let (archive, destination) = (dwsync_tests::create_bucket(&s3).await, dwsync_tests::create_bucket(&s3).await);
    let handoff = dwsync_tests::unique(&format!("purge-handoff-{name}"));
    dwsync_tests::create_topic(&handoff, PARTITIONS).await;
    let kafka = KafkaConfig { bootstrap_servers: dwsync_tests::kafka_bootstrap(), ..KafkaConfig::default() };
    let store = StoreConfig {
        topic: dwsync_tests::unique(&format!("purge-config-{name}")),
        status_topic: dwsync_tests::unique(&format!("purge-status-{name}")),
        initial_sync_topic: dwsync_tests::unique(&format!("purge-syncs-{name}")),
        archive_purge_topic: dwsync_tests::unique(&format!("purge-requests-{name}")),
        archive_purge_status_topic: dwsync_tests::unique(&format!("purge-reports-{name}")),
        ..StoreConfig::default()
    };
    let archiver_group = dwsync_tests::unique(&format!("purge-archiver-{name}"));
    let dir = std::env::temp_dir().join(dwsync_tests::unique(&format!("dwsync-purge-{name}")));
    std::fs::create_dir_all(&dir).unwrap();

    let mut cfg = dwsync_control::Config {
        kafka: kafka.clone(),
        http: HttpConfig::localhost(0),
        store: store.clone(),
        ..dwsync_control::Config::default()
    };
    cfg.api.listen = "127.0.0.1:0".parse().unwrap();
    cfg.api.admin_token = Secret::new(ADMIN);
    cfg.api.workspace_tokens = BTreeMap::from([(PURGED.to_string(), Secret::new(WS7))]);
    cfg.api.allow_insecure_endpoints = true;
    cfg.egress = dwsync_tests::local_egress();
    cfg.initial_sync.handoff_topic = handoff.clone();
    let started = dwsync_control::start(cfg, Some(Sealer::new(&SEAL_KEY))).await.unwrap();
    let api = format!("http://{}", started.api_addr);
    let control = CancellationToken::new();
    let stop = control.clone();
    drop(tokio::spawn(async move { started.service.run_until(stop.cancelled_owned()).await }));
    Setup {
        kafka,
        store,
        handoff,
        archiver_group,
        archive,
        destination,
        dir,
        api,
        control,
        http: reqwest::Client::new(),
    }
}

impl Setup {
    fn start_backfill(&self, http: u16) -> ServiceProcess {
        let config = format!(
            r#"
[kafka]
bootstrap_servers = "{kafka}"
[http]
listen = "127.0.0.1:{http}"
{egress}[sync_config.store]
topic = "{topic}"
initial_sync_topic = "{syncs}"
archive_purge_topic = "{requests}"
archive_purge_status_topic = "{reports}"
[archive]
bucket = "{archive}"
prefix = "{PREFIX}"
endpoint = "{s3}"
force_path_style = true
access_key_id = "{access}"
secret_access_key = "{secret}"
[handoff]
topic = "{handoff}"
archiver_group_id = "{group}"
[backfill]
poll_interval_ms = 200
retry_initial_ms = 200
retry_max_ms = 1000
"#,
            kafka = self.kafka.bootstrap_servers,
            egress = dwsync_tests::local_egress_toml(),
            topic = self.store.topic,
            syncs = self.store.initial_sync_topic,
            requests = self.store.archive_purge_topic,
            reports = self.store.archive_purge_status_topic,
            archive = self.archive,
            s3 = dwsync_tests::s3_endpoint(),
            access = dwsync_tests::s3_access_key(),
            secret = dwsync_tests::s3_secret_key(),
            handoff = self.handoff,
            group = self.archiver_group,
        );
        let path = self.dir.join("backfill.toml");
        std::fs::write(&path, config).unwrap();
        let env = [("DWSYNC_SEAL_KEY", hex::encode(SEAL_KEY)), ("RUST_LOG", "info".to_owned())];
        ServiceProcess::start("dwsync-backfill", "backfill", &path, &env, &self.dir)
    }

    async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.api)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    /// Polls the workspace's status until `done` holds of it.
    async fn wait_status(&self, what: &str, backfill: &ServiceProcess, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) =
                self.call(reqwest::Method::GET, &format!("/v1/workspaces/{PURGED}/status"), ADMIN, None).await;
            if status == 200 && done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not in time; last status {status} {body}; log:\n{}",
                backfill.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The archive of the tests: batches [0, 10) and [10, 20) of partition 0.
async fn archive(setup: &Setup, metrics_rows: u64) {
    let s3 = dwsync_tests::s3_client();
    for ws in [PURGED, 1, 1234] {
        assert_eq!(handoff_partition(ws, PARTITIONS), Some(0));
    }
    write_batch(
        &s3,
        &setup.archive,
        BatchRange { partition: 0, start: 0, end: 10 },
        &[
            file(1, 1, Table::Metrics, FileKind::Unspecified, 30),
            file(PURGED, 2, Table::Metrics, FileKind::Unspecified, metrics_rows),
            file(1234, 3, Table::Metrics, FileKind::Unspecified, 20),
            file(PURGED, 4, Table::People, FileKind::New, 5),
            file(1, 5, Table::People, FileKind::New, 6),
            file(PURGED, 6, Table::People, FileKind::Changes, 7),
        ],
    )
    .await;
    write_batch(
        &s3,
        &setup.archive,
        BatchRange { partition: 0, start: 10, end: 20 },
        &[
            file(PURGED, 11, Table::Metrics, FileKind::Unspecified, 4),
            file(1234, 12, Table::Metrics, FileKind::Unspecified, 8),
            file(PURGED, 13, Table::Events, FileKind::Unspecified, 3),
        ],
    )
    .await;
    // The handoff partition holds the 20 records archived; the archiver committed their end.
    handoff_records(&setup.kafka, &setup.handoff, 0, 20, &setup.archiver_group, 20).await;
}

async fn others(reader: &ArchiveReader) -> BTreeMap<(i64, Table), RecordBatch> {
    let mut out = BTreeMap::new();
    for ws in OTHERS {
        for table in [Table::Metrics, Table::People, Table::Events] {
            out.insert((ws, table), history(reader, ws, table).await);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_purges_a_workspace_from_the_archive_and_status_says_when_it_is_gone() {
    let began = Instant::now();
    let setup = setup("e2e").await;
    archive(&setup, 40).await;
    let reader = ArchiveReader::new(dwsync_tests::s3_client(), &setup.archive, PREFIX, PARTITIONS).unwrap();
    let before = others(&reader).await;
    assert_eq!(history(&reader, PURGED, Table::Metrics).await.num_rows(), 44);
    let backfill = setup.start_backfill(free_port());

    // Nothing asked yet: a workspace without a sync or purge has no status.
    let path = format!("/v1/workspaces/{PURGED}/archive/purge");
    let (status, _) = setup.call(reqwest::Method::GET, &format!("/v1/workspaces/{PURGED}/status"), ADMIN, None).await;
    assert_eq!(status, 404);
    // Its own token may not purge (admin only).
    let (status, body) = setup.call(reqwest::Method::POST, &path, WS7, None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = setup.call(reqwest::Method::POST, &path, ADMIN, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["state"].as_str(), body["epoch"].as_u64(), body["cut"].as_i64()),
        (Some("queued"), Some(1), Some(20))
    );
    assert_eq!(body["partition"], 0);

    let status = setup.wait_status("the purge done", &backfill, |s| s["archive_purge"]["state"] == "done").await;
    let purge = &status["archive_purge"];
    assert_eq!(status["state"], "no_sync", "{status}");
    // Batch 1: metrics and people rewritten, people_chngs (only workspace 7) deleted; batch 2:
    // metrics rewritten, events (only workspace 7) deleted.
    assert_eq!((purge["objects_rewritten"].as_u64(), purge["objects_deleted"].as_u64()), (Some(3), Some(2)), "{purge}");
    assert_eq!(purge["rows_removed"], 40 + 5 + 7 + 4 + 3, "{purge}");
    assert!(purge["finished_at"].is_string() && purge["reason"].is_null(), "{purge}");
    // The workspace's own token reads it too.
    let (code, own) = setup.call(reqwest::Method::GET, &format!("/v1/workspaces/{PURGED}/status"), WS7, None).await;
    assert_eq!((code, &own["archive_purge"]["state"]), (200, &json!("done")));

    // The others are intact; workspace 7 has nothing archived left.
    assert_eq!(others(&reader).await, before);
    for table in [Table::Metrics, Table::People, Table::Events] {
        assert_eq!(history(&reader, PURGED, table).await.num_rows(), 0, "{table}");
    }
    let s3 = dwsync_tests::s3_client();
    let keys: Vec<String> = s3
        .list_objects_v2()
        .bucket(&setup.archive)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");

    // A sync created now for the purged workspace: its initial sync delivers no archived row.
    let spec = json!({
        "destination": {
            "bucket": setup.destination, "prefix": "exports", "region": "us-east-1",
            "endpoint": dwsync_tests::s3_endpoint(), "force_path_style": true,
            "access_key_id": dwsync_tests::s3_access_key(), "secret_access_key": dwsync_tests::s3_secret_key(),
        },
    });
    let (code, body) =
        setup.call(reqwest::Method::POST, &format!("/v1/workspaces/{PURGED}/sync"), ADMIN, Some(spec)).await;
    assert_eq!(code, 201, "{body}");
    let status = setup
        .wait_status("the initial sync done", &backfill, |s| {
            s["initial_syncs"].as_array().is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == "done"))
        })
        .await;
    let syncs = status["initial_syncs"].as_array().unwrap();
    assert_eq!(syncs.len(), Table::ALL.len());
    assert!(syncs.iter().all(|t| t["rows"] == 0 && t["files"] == 0), "{status}");
    assert_eq!(status["archive_purge"]["state"], "done", "the purge stays in the status");
    let listed = s3.list_objects_v2().bucket(&setup.destination).send().await.unwrap();
    let delivered: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(delivered, ["exports/cio-validate"], "no archived rows delivered");

    // A second request: idempotent, a new epoch, nothing left to rewrite.
    let (code, body) = setup.call(reqwest::Method::POST, &path, ADMIN, None).await;
    assert_eq!((code, body["epoch"].as_u64()), (202, Some(2)), "{body}");
    let status = setup
        .wait_status("the second purge done", &backfill, |s| {
            s["archive_purge"]["epoch"] == 2 && s["archive_purge"]["state"] == "done"
        })
        .await;
    let purge = &status["archive_purge"];
    assert_eq!((purge["objects_rewritten"].as_u64(), purge["rows_removed"].as_u64()), (Some(0), Some(0)), "{purge}");
    assert_eq!(others(&reader).await, before);
    eprintln!("purge end to end: {:?}", began.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_waits_for_the_archiver_and_a_backfill_killed_mid_purge_finishes_it() {
    let setup = setup("kill").await;
    // More batches, so the purge takes a while: 40 batches of 3 workspaces' metrics.
    let s3 = dwsync_tests::s3_client();
    for b in 0..40i64 {
        let range = BatchRange { partition: 0, start: b * 10, end: b * 10 + 10 };
        let files = [
            file(1, b * 10 + 1, Table::Metrics, FileKind::Unspecified, 200),
            file(PURGED, b * 10 + 2, Table::Metrics, FileKind::Unspecified, 200),
            file(1234, b * 10 + 3, Table::Metrics, FileKind::Unspecified, 200),
        ];
        write_batch(&s3, &setup.archive, range, &files).await;
    }
    // The archiver has committed only half of it: the purge must wait.
    handoff_records(&setup.kafka, &setup.handoff, 0, 400, &setup.archiver_group, 200).await;
    let reader = ArchiveReader::new(s3.clone(), &setup.archive, PREFIX, PARTITIONS).unwrap();
    let before = others(&reader).await;
    let mut backfill = setup.start_backfill(free_port());
    let (code, body) =
        setup.call(reqwest::Method::POST, &format!("/v1/workspaces/{PURGED}/archive/purge"), ADMIN, None).await;
    assert_eq!(code, 202, "{body}");
    let status = setup
        .wait_status("waiting for the archiver", &backfill, |s| {
            s["archive_purge"]["reason"].as_str().is_some_and(|r| r.contains("to commit position 400"))
        })
        .await;
    assert_eq!(status["archive_purge"]["state"], "queued", "{status}");
    assert_eq!(history(&reader, PURGED, Table::Metrics).await.num_rows(), 8_000, "nothing purged yet");

    // The archiver catches up; the backfill is killed once objects are being rewritten.
    handoff_records(&setup.kafka, &setup.handoff, 0, 0, &setup.archiver_group, 400).await;
    let running = setup
        .wait_status("running", &backfill, |s| s["archive_purge"]["objects_rewritten"].as_u64().is_some_and(|n| n > 0))
        .await;
    backfill.kill9();
    let left = history(&reader, PURGED, Table::Metrics).await.num_rows();
    eprintln!(
        "killed mid-purge: {} rewritten reported, {left} rows of workspace 7 left",
        running["archive_purge"]["objects_rewritten"]
    );
    assert!(left > 0, "killed before the end");

    let backfill = setup.start_backfill(free_port());
    let status = setup
        .wait_status("the purge done after the restart", &backfill, |s| s["archive_purge"]["state"] == "done")
        .await;
    assert_eq!(history(&reader, PURGED, Table::Metrics).await.num_rows(), 0);
    assert_eq!(others(&reader).await, before, "nothing else lost");
    let purge = &status["archive_purge"];
    // Counts carry over the restart (objects purged in the last second before the kill may be
    // missing from them; never counted twice).
    let rewritten = purge["objects_rewritten"].as_u64().unwrap();
    assert!((1..=40).contains(&rewritten), "{purge}");
}
