//! The backfill binary on the real broker and S3 server: an archive written with the archive's
//! object writer for one workspace, a sync configuration asking for baselines at a cut (secret
//! sealed), and the workspace's bucket read back as its owner would: `cio-validate`, the keys
//! (seq = the last file below the cut, two-sequence metrics), what each baseline holds (current
//! people, every metrics row once and none after the cut, 30 days of events, erased people
//! anonymized) and the reported status matching the bucket. A second case: the archive behind
//! the cut (queued, waiting), then a garbage object (failed, naming its key, never done), then
//! the object restored (done). A third: the binary killed with `kill -9` mid-job and restarted.
//! Catch-ups: the files handed off during a pause replayed one by one under the uploader's keys
//! (beside an initial sync of the same cut), and a catch-up the archive does not reach back for.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use bytes::Bytes;
use dwsync_archive::write::{self, FileRows};
use dwsync_archive::{BatchRange, Part, handoff_partition};
use dwsync_config::{KafkaConfig, Secret};
use dwsync_contract::{BatchBuilder, Encoding, Table, arrow_schema, decode};
use dwsync_handoff::FileKind;
use dwsync_loadgen::Generator;
use dwsync_sync_config::{
    Baseline, Destination, InitialState, InitialSync, InitialSyncs, KafkaStore, S3Store, Sealer, Store, StoreConfig,
    SyncConfig, TableState, WorkspaceId,
};
use dwsync_tests::services::ServiceProcess;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WS: i64 = 7;
const PARTITIONS: i32 = 3;
const PREFIX: &str = "arc";
const EXPORTS: &str = "exports";
const SEAL_KEY: [u8; 32] = [0xab; 32];
const DAY: i64 = 86_400_000;
/// The baseline's time: far from the wall clock, so only `at_ms` can decide what is recent.
const AT_MS: i64 = 1_700_000_000_000;

/// One handed-off file of the workspace in the archive.
struct File {
    offset: i64,
    table: Table,
    kind: FileKind,
    rows: Vec<RecordBatch>,
}

/// Generated records of `table` for the workspace with `fields` set, one per entry.
fn file(offset: i64, table: Table, kind: FileKind, fields: &[Value]) -> File {
    let mut generator = Generator::new(offset as u64);
    let mut builder = BatchBuilder::new(table);
    for (n, set) in fields.iter().enumerate() {
        let record = generator.record(table, WS, offset as u64 * 100 + n as u64);
        let mut json: Value = serde_json::from_slice(record.encoded(Encoding::Json)).unwrap();
        for (key, value) in set.as_object().unwrap() {
            json[key] = value.clone();
        }
        builder.append(&decode(table, Encoding::Json, &serde_json::to_vec(&json).unwrap()).unwrap());
    }
    File { offset, table, kind, rows: builder.finish().unwrap() }
}

/// Writes one archive batch: one object per (table, kind) of `files`.
async fn archive_batch(s3: &aws_sdk_s3::Client, bucket: &str, range: BatchRange, files: &[File]) -> Vec<String> {
    let mut keys = Vec::new();
    for (key, body) in encode_batch(range, files) {
        s3.put_object().bucket(bucket).key(&key).body(body.into()).send().await.unwrap();
        keys.push(key);
    }
    keys
}

/// One batch's objects from `files` (key, body), not written anywhere.
fn encode_batch(range: BatchRange, files: &[File]) -> Vec<(String, Bytes)> {
    let parts: BTreeSet<Part> = files.iter().map(|f| Part::of(f.table, f.kind)).collect();
    let mut objects = Vec::new();
    for part in parts {
        let rows: Vec<FileRows<'_>> = files
            .iter()
            .filter(|f| Part::of(f.table, f.kind) == part)
            .map(|f| FileRows { workspace_id: WS, first_offset: f.offset, batches: &f.rows })
            .collect();
        let encoded = write::encode("handoff", PREFIX, range, part, &rows).unwrap().unwrap();
        objects.push((encoded.object.key, encoded.object.body));
    }
    objects
}

/// What a test runs against: unique topics and buckets, the store handles, the process.
struct Setup {
    kafka: KafkaConfig,
    configs: KafkaStore<SyncConfig>,
    syncs: KafkaStore<InitialSyncs>,
    archive: String,
    destination: String,
    handoff: String,
    store: StoreConfig,
    followers: CancellationToken,
    dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.followers.cancel();
    }
}

async fn setup(name: &str) -> Setup {
    let s3 = dwsync_tests::s3_client();
    let (archive, destination) = (dwsync_tests::create_bucket(&s3).await, dwsync_tests::create_bucket(&s3).await);
    let handoff = dwsync_tests::unique(&format!("backfill-handoff-{name}"));
    dwsync_tests::create_topic(&handoff, PARTITIONS).await;
    let kafka = KafkaConfig { bootstrap_servers: dwsync_tests::kafka_bootstrap(), ..KafkaConfig::default() };
    let store = StoreConfig {
        topic: dwsync_tests::unique(&format!("backfill-config-{name}")),
        initial_sync_topic: dwsync_tests::unique(&format!("backfill-syncs-{name}")),
        ..StoreConfig::default()
    };
    let followers = CancellationToken::new();
    let (configs, follower) = KafkaStore::<SyncConfig>::connect(&kafka, &store).await.unwrap();
    drop(tokio::spawn(follower.run(followers.clone())));
    let syncs_store = dwsync_sync_config::initial_sync_store(&store);
    let (syncs, follower) = KafkaStore::<InitialSyncs>::connect(&kafka, &syncs_store).await.unwrap();
    drop(tokio::spawn(follower.run(followers.clone())));
    let dir = std::env::temp_dir().join(dwsync_tests::unique(&format!("dwsync-backfill-{name}")));
    std::fs::create_dir_all(&dir).unwrap();
    Setup { kafka, configs, syncs, archive, destination, handoff, store, followers, dir }
}

impl Setup {
    /// The workspace's configuration: `tables` enabled with `baseline`, `off` turned off with it.
    async fn configure(&self, baseline: Baseline, tables: &[Table], off: &[Table]) {
        let state = |enabled| TableState { enabled, changed_at_ms: AT_MS, baseline: Some(baseline), off_from: None };
        let mut states: BTreeMap<Table, TableState> = tables.iter().map(|t| (*t, state(true))).collect();
        states.extend(off.iter().map(|t| (*t, state(false))));
        self.configure_tables(baseline.epoch, states).await;
    }

    /// The workspace's configuration at `revision` with these tables' states.
    async fn configure_tables(&self, revision: u64, states: BTreeMap<Table, TableState>) {
        let sealer = Sealer::new(&SEAL_KEY);
        let secret = sealer.seal(&Secret::new(dwsync_tests::s3_secret_key()), &WS.to_string()).unwrap();
        let cfg = SyncConfig {
            workspace_id: WorkspaceId::new(WS).unwrap(),
            schema_version: dwsync_contract::SCHEMA_VERSION,
            destination: Destination {
                bucket: self.destination.clone(),
                prefix: EXPORTS.into(),
                store: Store::S3(S3Store {
                    region: "us-east-1".into(),
                    endpoint: Some(dwsync_tests::s3_endpoint()),
                    force_path_style: true,
                    conditional_writes: true,
                    access_key_id: dwsync_tests::s3_access_key(),
                    secret_access_key: secret,
                }),
            },
            tables: states,
            disabled: false,
            updated_at_ms: AT_MS,
            revision,
        };
        self.configs.write(&cfg).await.unwrap();
    }

    /// Starts the binary; `http` is its port.
    fn start(&self, http: u16) -> ServiceProcess {
        let s3 = dwsync_tests::s3_endpoint();
        let config = format!(
            r#"
[kafka]
bootstrap_servers = "{kafka}"
[http]
listen = "127.0.0.1:{http}"
{egress}[sync_config.store]
topic = "{topic}"
initial_sync_topic = "{syncs}"
[archive]
bucket = "{archive}"
prefix = "{PREFIX}"
endpoint = "{s3}"
force_path_style = true
access_key_id = "{access}"
secret_access_key = "{secret}"
[handoff]
topic = "{handoff}"
[backfill]
poll_interval_ms = 200
metrics_rows_per_file = 5
retry_initial_ms = 200
retry_max_ms = 1000
"#,
            kafka = self.kafka.bootstrap_servers,
            egress = dwsync_tests::local_egress_toml(),
            topic = self.store.topic,
            syncs = self.store.initial_sync_topic,
            archive = self.archive,
            access = dwsync_tests::s3_access_key(),
            secret = dwsync_tests::s3_secret_key(),
            handoff = self.handoff,
        );
        let path = self.dir.join("backfill.toml");
        std::fs::write(&path, config).unwrap();
        let env = [("DWSYNC_SEAL_KEY", hex::encode(SEAL_KEY))];
        ServiceProcess::start("dwsync-backfill", "backfill", &path, &env, &self.dir)
    }

    /// Waits until `done` holds of the workspace's reported initial syncs.
    async fn wait_for(
        &self,
        what: &str,
        process: &ServiceProcess,
        mut done: impl FnMut(&InitialSyncs) -> bool,
    ) -> InitialSyncs {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            if let Some(syncs) = self.syncs.cached(WorkspaceId::new(WS).unwrap())
                && done(&syncs)
            {
                return syncs;
            }
            assert!(Instant::now() < deadline, "{what}: not reported in time; log:\n{}", process.log_tail(40));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A free local port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on the local port: (status, body).
fn get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Every object of the destination bucket: key → rows (one batch, the table's schema checked).
async fn bucket(name: &str) -> BTreeMap<String, Option<RecordBatch>> {
    let s3 = dwsync_tests::s3_client();
    let listed = s3.list_objects_v2().bucket(name).send().await.unwrap();
    let mut objects = BTreeMap::new();
    for object in listed.contents() {
        let key = object.key().unwrap().to_owned();
        let body = s3.get_object().bucket(name).key(&key).send().await.unwrap().body.collect().await.unwrap();
        let rows = key.ends_with(".parquet").then(|| {
            let stem = key.trim_start_matches("exports/").split("_v5_").next().unwrap();
            let table: Table = stem.parse().unwrap();
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body.into_bytes())
                .unwrap()
                .build()
                .unwrap();
            let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
            for b in &batches {
                assert_eq!(b.schema(), arrow_schema(table), "{key}: the exact v5 schema");
            }
            concat_batches(&arrow_schema(table), &batches).unwrap()
        });
        objects.insert(key, rows);
    }
    objects
}

/// Column `name` as text per row (`-` for null).
fn col(batch: &RecordBatch, name: &str) -> Vec<String> {
    let column = batch.column_by_name(name).unwrap();
    (0..batch.num_rows())
        .map(|i| if column.is_null(i) { "-".to_owned() } else { column.as_string::<i32>().value(i).to_owned() })
        .collect()
}

fn strs(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_is_folded_from_the_archive_up_to_the_cut_into_the_bucket() {
    let began = Instant::now();
    let setup = setup("baseline").await;
    let s3 = dwsync_tests::s3_client();
    let partition = handoff_partition(WS, PARTITIONS).unwrap();
    let range = |start, end| BatchRange { partition, start, end };
    let person = |id: &str, deleted: bool, suppressed: bool| json!({"internal_customer_id": id, "deleted": deleted, "suppressed": suppressed});
    let metric =
        |id: &str, delivery: &str| json!({"event_id": id, "delivery_id": delivery, "reason": format!("to {id}@x")});
    let event = |id: &str, person: &str, days: i64| json!({"event_id": id, "internal_customer_id": person, "timestamp": AT_MS - days * DAY, "data": "{\"email\":\"x@y\"}"});
    // Batch [0, 10).
    let first = [
        file(
            1,
            Table::People,
            FileKind::New,
            &[person("p1", false, false), person("p2", false, false), person("p3", false, false)],
        ),
        file(
            2,
            Table::Attributes,
            FileKind::Unspecified,
            &[
                json!({"internal_customer_id": "p1", "attribute_name": "email", "attribute_value": "a"}),
                json!({"internal_customer_id": "p2", "attribute_name": "email", "attribute_value": "b"}),
                json!({"internal_customer_id": "p3", "attribute_name": "email", "attribute_value": "c"}),
            ],
        ),
        file(
            3,
            Table::Metrics,
            FileKind::Unspecified,
            &(1..=7).map(|n| metric(&format!("m{n}"), if n == 2 { "d3" } else { "d1" })).collect::<Vec<_>>(),
        ),
        // Events over 45 days: 0, 8, 16, 24, 32, 40 days before the baseline; e3 is p3's.
        file(
            4,
            Table::Events,
            FileKind::Unspecified,
            &[
                event("e1", "p1", 0),
                event("e2", "p1", 8),
                event("e3", "p3", 16),
                event("e4", "p2", 24),
                event("e5", "p1", 32),
                event("e6", "p1", 40),
            ],
        ),
        file(
            5,
            Table::Deliveries,
            FileKind::Unspecified,
            &[
                json!({"delivery_id": "d1", "internal_customer_id": "p1"}),
                json!({"delivery_id": "d3", "internal_customer_id": "p3"}),
            ],
        ),
    ];
    archive_batch(&s3, &setup.archive, range(0, 10), &first).await;
    // Batch [10, 20), the cut at 15 inside it.
    let cut = 15;
    let second = [
        file(11, Table::People, FileKind::Changes, &[person("p3", true, false)]),
        file(12, Table::People, FileKind::Changes, &[person("p2", false, true)]),
        file(
            13,
            Table::Metrics,
            FileKind::Unspecified,
            &(8..=13).map(|n| metric(&format!("m{n}"), if n == 9 { "d3" } else { "d1" })).collect::<Vec<_>>(),
        ),
        file(
            14,
            Table::Attributes,
            FileKind::Unspecified,
            &[json!({"internal_customer_id": "p1", "attribute_name": "email", "attribute_value": "a2"})],
        ),
        // After the cut: incremental, never in the baseline.
        file(
            16,
            Table::Metrics,
            FileKind::Unspecified,
            &(14..=17).map(|n| metric(&format!("m{n}"), "d1")).collect::<Vec<_>>(),
        ),
        file(17, Table::People, FileKind::New, &[person("p9", false, false)]),
        file(18, Table::Events, FileKind::Unspecified, &[event("e7", "p1", 0)]),
    ];
    archive_batch(&s3, &setup.archive, range(10, 20), &second).await;
    archive_batch(
        &s3,
        &setup.archive,
        range(20, 30),
        &[file(21, Table::Metrics, FileKind::Unspecified, &[metric("m18", "d1")])],
    )
    .await;

    let baseline = Baseline { epoch: 3, partition, cut, at_ms: AT_MS, replay_from: None };
    let tables = [Table::People, Table::Attributes, Table::Metrics, Table::Events, Table::Deliveries, Table::Campaigns];
    setup.configure(baseline, &tables, &[Table::Subjects]).await;
    let http = free_port();
    let process = setup.start(http);
    let syncs = setup.wait_for("every table done", &process, |s| tables.iter().all(|t| s.is_done(*t, &baseline))).await;

    let objects = bucket(&setup.destination).await;
    let key = |name: &str| format!("{EXPORTS}/{name}");
    let expected: BTreeSet<String> = [
        "cio-validate",
        "people_v5_7_000000000012.parquet",
        "attributes_v5_7_000000000014.parquet",
        "metrics_v5_7_000000000013_000000.parquet",
        "metrics_v5_7_000000000013_000001.parquet",
        "metrics_v5_7_000000000013_000002.parquet",
        "events_v5_7_000000000004.parquet",
        "deliveries_v5_7_000000000005.parquet",
    ]
    .iter()
    .map(|k| key(k))
    .collect();
    assert_eq!(objects.keys().cloned().collect::<BTreeSet<_>>(), expected, "the keys");
    let rows = |name: &str| objects[&key(name)].clone().unwrap();

    // People: the current ones, without the deleted (p3) or suppressed (p2); nothing after the cut.
    assert_eq!(col(&rows("people_v5_7_000000000012.parquet"), "internal_customer_id"), strs(&["p1"]));
    // Attributes: the latest value per person and name, erased people left out.
    let attributes = rows("attributes_v5_7_000000000014.parquet");
    assert_eq!(
        (col(&attributes, "internal_customer_id"), col(&attributes, "attribute_value")),
        (strs(&["p1"]), strs(&["a2"]))
    );
    // Metrics: every row below the cut once, in order, 5 per file; d3 (p3's) anonymized.
    let parts: Vec<RecordBatch> = (0..3).map(|p| rows(&format!("metrics_v5_7_000000000013_{p:06}.parquet"))).collect();
    assert_eq!(parts.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [5, 5, 3]);
    let metrics = concat_batches(&arrow_schema(Table::Metrics), &parts).unwrap();
    let ids: Vec<String> = (1..=13).map(|n| format!("m{n}")).collect();
    assert_eq!(col(&metrics, "event_id"), ids, "every metrics row below the cut, once; none after it");
    let reasons = col(&metrics, "reason");
    for (i, delivery) in col(&metrics, "delivery_id").iter().enumerate() {
        let want = if delivery == "d3" { "-".to_owned() } else { format!("to {}@x", ids[i]) };
        assert_eq!(reasons[i], want, "row {i} (delivery {delivery})");
    }
    // Events: the 30 days before the baseline's time only; p3's anonymized.
    let events = rows("events_v5_7_000000000004.parquet");
    assert_eq!(col(&events, "event_id"), strs(&["e1", "e2", "e3", "e4"]));
    // p3 is deleted, p2 suppressed: both erased.
    assert_eq!(col(&events, "internal_customer_id"), strs(&["p1", "p1", "[anonymized]", "[anonymized]"]));
    assert_eq!(col(&events, "data")[2], "{}", "CONTRACT.md#anonymized-rows: data becomes {{}}");
    // Deliveries: p3's kept without the person.
    let deliveries = rows("deliveries_v5_7_000000000005.parquet");
    assert_eq!(
        (col(&deliveries, "delivery_id"), col(&deliveries, "internal_customer_id")),
        (strs(&["d1", "d3"]), strs(&["p1", "-"]))
    );

    // The reported status matches the bucket.
    for table in tables {
        let sync: &InitialSync = &syncs.tables[&table];
        let files: Vec<String> = objects
            .iter()
            .filter(|(k, _)| k.starts_with(&key(&format!("{}_v5_", table.def().stem))))
            .map(|(k, _)| k.clone())
            .collect();
        let total: u64 = files.iter().map(|k| objects[k].as_ref().unwrap().num_rows() as u64).sum();
        assert_eq!((sync.rows, sync.files, &sync.keys), (total, files.len() as u64, &files), "{table}");
        assert_eq!((sync.epoch, sync.cut), (3, cut));
    }
    assert_eq!((syncs.tables[&Table::Campaigns].rows, syncs.tables[&Table::Campaigns].files), (0, 0));
    assert!(!syncs.tables.contains_key(&Table::Subjects), "a table turned off gets no initial sync");

    let (status, body) = get(http, "/readyz");
    assert_eq!((status, body.as_str()), (200, "ok"));
    // The job is counted when it ends, just after its last status report: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (_, metrics) = get(http, "/metrics");
        if metrics.contains(r#"dwsync_backfill_jobs_total{outcome="done""#) || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(metrics.contains("dwsync_backfill_files_written_total"), "{metrics}");
    assert!(metrics.contains(r#"dwsync_backfill_jobs_total{outcome="done""#), "{metrics}");
    println!("baseline delivered and checked in {:?}", began.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_archive_object_fails_the_job_naming_it_until_it_is_restored() {
    let setup = setup("broken").await;
    let s3 = dwsync_tests::s3_client();
    let partition = handoff_partition(WS, PARTITIONS).unwrap();
    let range = |start, end| BatchRange { partition, start, end };
    let metric = |n: i64| json!({"event_id": format!("m{n}"), "delivery_id": "d1"});
    let metrics = |offset, from: i64| {
        file(offset, Table::Metrics, FileKind::Unspecified, &(from..from + 3).map(metric).collect::<Vec<_>>())
    };
    archive_batch(&s3, &setup.archive, range(0, 10), &[metrics(2, 0)]).await;
    let baseline = Baseline { epoch: 1, partition, cut: 12, at_ms: AT_MS, replay_from: None };
    setup.configure(baseline, &[Table::Metrics], &[]).await;
    let process = setup.start(free_port());

    // The archive ends at 10, before the cut: queued, saying why.
    let waiting = |s: &InitialSyncs| match &s.tables.get(&Table::Metrics).map(|m| &m.state) {
        Some(InitialState::Queued { waiting_for: Some(why) }) => Some(why.clone()),
        _ => None,
    };
    let syncs = setup.wait_for("waiting for the archive", &process, |s| waiting(s).is_some()).await;
    assert_eq!(
        waiting(&syncs).unwrap(),
        format!("the archive to pass offset 12 of handoff partition {partition} (archived up to 10)")
    );

    // The archive passes the cut, but the metrics object of that batch is garbage (never the
    // good object: a job may start as soon as it is listed).
    let mut objects = encode_batch(range(10, 20), &[metrics(11, 3), metrics(15, 6)]);
    let (broken, good) = objects.remove(0);
    s3.put_object()
        .bucket(&setup.archive)
        .key(&broken)
        .body(Bytes::from_static(b"garbage").into())
        .send()
        .await
        .unwrap();
    let mut seen_done = false;
    let syncs = setup
        .wait_for("failed twice", &process, |s| {
            seen_done |= s.is_done(Table::Metrics, &baseline);
            matches!(&s.tables[&Table::Metrics].state, InitialState::Failed { attempts, .. } if *attempts >= 2)
        })
        .await;
    assert!(!seen_done, "never done while an archive object is unreadable");
    let InitialState::Failed { reason, .. } = &syncs.tables[&Table::Metrics].state else { unreachable!() };
    assert!(reason.contains(&broken), "the reason names the key: {reason}");
    assert!(!reason.contains(&dwsync_tests::s3_secret_key()), "{reason}");
    let objects = bucket(&setup.destination).await;
    assert!(objects.keys().all(|k| !k.contains("metrics")), "no metrics file while failing: {objects:?}");

    // Restored: done, with the rows below the cut (offsets 2 and 11, not 15).
    s3.put_object().bucket(&setup.archive).key(&broken).body(good.into()).send().await.unwrap();
    let syncs = setup.wait_for("done", &process, |s| s.is_done(Table::Metrics, &baseline)).await;
    let objects = bucket(&setup.destination).await;
    let key = format!("{EXPORTS}/metrics_v5_7_000000000011_000000.parquet");
    let rows = objects.get(&key).unwrap_or_else(|| panic!("{key} in {:?}", objects.keys())).clone().unwrap();
    assert_eq!(col(&rows, "event_id"), strs(&["m0", "m1", "m2", "m3", "m4"]));
    let last = objects[&format!("{EXPORTS}/metrics_v5_7_000000000011_000001.parquet")].clone().unwrap();
    assert_eq!(col(&last, "event_id"), strs(&["m5"]));
    assert_eq!((syncs.tables[&Table::Metrics].rows, syncs.tables[&Table::Metrics].files), (6, 2));

    // Asked again (a new epoch, the same cut): the same keys, found already written (as after a
    // crash mid-job), counted as written; nothing rewritten.
    let again = Baseline { epoch: 2, ..baseline };
    setup.configure(again, &[Table::Metrics], &[]).await;
    let syncs = setup.wait_for("done again", &process, |s| s.is_done(Table::Metrics, &again)).await;
    assert_eq!((syncs.tables[&Table::Metrics].rows, syncs.tables[&Table::Metrics].files), (6, 2));
    assert_eq!(bucket(&setup.destination).await.keys().collect::<Vec<_>>(), objects.keys().collect::<Vec<_>>());
    let log = std::fs::read_to_string(&process.log).unwrap();
    assert_eq!(log.matches("A baseline file was already written").count(), 2, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_mid_way_runs_again_counting_the_files_already_written() {
    let setup = setup("kill").await;
    let s3 = dwsync_tests::s3_client();
    let partition = handoff_partition(WS, PARTITIONS).unwrap();
    // 1,500 metrics rows below the cut: 300 files of 5.
    let files: Vec<File> = (0..3)
        .map(|f| {
            let rows: Vec<Value> = (0..500).map(|n| json!({"event_id": format!("m{:04}", f * 500 + n)})).collect();
            file(f + 1, Table::Metrics, FileKind::Unspecified, &rows)
        })
        .collect();
    archive_batch(&s3, &setup.archive, BatchRange { partition, start: 0, end: 10 }, &files).await;
    let baseline = Baseline { epoch: 1, partition, cut: 5, at_ms: AT_MS, replay_from: None };
    setup.configure(baseline, &[Table::Metrics], &[]).await;
    let mut process = setup.start(free_port());

    // Killed once some files are in the bucket and before all are.
    let deadline = Instant::now() + Duration::from_secs(30);
    let written = loop {
        let listed = s3.list_objects_v2().bucket(&setup.destination).send().await.unwrap();
        let n = listed.contents().iter().filter(|o| o.key().unwrap_or_default().contains("metrics")).count();
        if n >= 3 {
            process.kill9();
            break n;
        }
        assert!(Instant::now() < deadline, "no file written; log:\n{}", process.log_tail(30));
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let after_kill = bucket(&setup.destination).await.len() - 1;
    assert!(after_kill < 300, "killed mid-job: {after_kill} of 300 files written (listed {written})");
    let before = setup.syncs.cached(WorkspaceId::new(WS).unwrap()).unwrap();
    assert!(!before.is_done(Table::Metrics, &baseline), "not done when killed");

    let process = setup.start(free_port());
    let syncs = setup.wait_for("done after the restart", &process, |s| s.is_done(Table::Metrics, &baseline)).await;
    let objects = bucket(&setup.destination).await;
    let parts: Vec<&RecordBatch> =
        objects.iter().filter(|(k, _)| k.contains("metrics")).map(|(_, rows)| rows.as_ref().unwrap()).collect();
    assert_eq!(parts.len(), 300);
    let ids: Vec<String> = parts.iter().flat_map(|rows| col(rows, "event_id")).collect();
    let want: Vec<String> = (0..1500).map(|n| format!("m{n:04}")).collect();
    assert_eq!(ids, want, "every row once, in order, across the two runs");
    assert_eq!((syncs.tables[&Table::Metrics].rows, syncs.tables[&Table::Metrics].files), (1500, 300));
    assert_eq!(syncs.tables[&Table::Metrics].keys.len(), 200, "keys listed up to max_keys_reported");
    let log = std::fs::read_to_string(&process.log).unwrap();
    let existing = log.matches("A baseline file was already written").count();
    assert!(existing >= after_kill, "the files of the killed run found written: {existing} < {after_kill}");
    println!("killed after {after_kill} of 300 files; {existing} found already written after the restart");
}

/// A catch-up of people from the pause at 12 to the cut at 25 (`TableState::off_from` and
/// `replay_from` as control sets them), with an initial sync of metrics at the same cut.
fn catch_up_config(partition: i32) -> (Baseline, Baseline, BTreeMap<Table, TableState>) {
    let initial = Baseline { epoch: 5, partition, cut: 25, at_ms: AT_MS, replay_from: None };
    let catch_up = Baseline { replay_from: Some(12), ..initial };
    let state = |baseline| TableState { enabled: true, changed_at_ms: AT_MS, baseline: Some(baseline), off_from: None };
    let states = BTreeMap::from([(Table::People, state(catch_up)), (Table::Metrics, state(initial))]);
    (initial, catch_up, states)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_replays_the_files_of_the_pause_one_by_one_under_their_own_keys() {
    let setup = setup("catch-up").await;
    let s3 = dwsync_tests::s3_client();
    let partition = handoff_partition(WS, PARTITIONS).unwrap();
    let range = |start, end| BatchRange { partition, start, end };
    let person = |id: &str, name: &str| json!({"internal_customer_id": id, "email_addr": format!("{name}@x")});
    let people = |offset, kind, ids: &[&str]| {
        let rows: Vec<Value> = ids.iter().map(|id| person(id, &format!("{id}-{offset}"))).collect();
        file(offset, Table::People, kind, &rows)
    };
    let metrics = |offset, ids: &[&str]| {
        let rows: Vec<Value> = ids.iter().map(|id| json!({"event_id": id})).collect();
        file(offset, Table::Metrics, FileKind::Unspecified, &rows)
    };
    // Before the pause (12): exported before it, never replayed.
    archive_batch(
        &s3,
        &setup.archive,
        range(0, 10),
        &[people(2, FileKind::New, &["p1"]), metrics(3, &["m1", "m2", "m3"])],
    )
    .await;
    // The pause at 12 inside the second batch: 11 before it; 13, 14 after.
    let second = [
        people(11, FileKind::Changes, &["p1"]),
        people(13, FileKind::New, &["p2", "p3"]),
        people(14, FileKind::Changes, &["p1", "p2"]),
        metrics(15, &["m4", "m5"]),
    ];
    archive_batch(&s3, &setup.archive, range(10, 20), &second).await;
    // The cut at 25 inside the third batch: 21, 23 before it; 26, 27, 28 after (incremental).
    let third = [
        people(21, FileKind::New, &["p4"]),
        people(23, FileKind::Changes, &["p3"]),
        people(26, FileKind::Changes, &["p4"]),
        metrics(27, &["m6"]),
        people(28, FileKind::New, &["p5"]),
    ];
    archive_batch(&s3, &setup.archive, range(20, 30), &third).await;

    let (initial, catch_up, states) = catch_up_config(partition);
    setup.configure_tables(initial.epoch, states).await;
    let process = setup.start(free_port());
    let syncs = setup
        .wait_for("both done", &process, |s| s.is_done(Table::People, &catch_up) && s.is_done(Table::Metrics, &initial))
        .await;

    // Exactly the people files of [12, 25), each under the key the uploader writes it under
    // (its own seq, new or changes), and the metrics baseline; nothing before the pause or after
    // the cut.
    let objects = bucket(&setup.destination).await;
    let key = |name: &str| format!("{EXPORTS}/{name}");
    let replayed: Vec<(String, &File)> = vec![
        (key("people_v5_7_000000000013.parquet"), &second[1]),
        (key("people_v5_chngs_7_000000000014.parquet"), &second[2]),
        (key("people_v5_7_000000000021.parquet"), &third[0]),
        (key("people_v5_chngs_7_000000000023.parquet"), &third[1]),
    ];
    for (name, archived) in &replayed {
        assert_eq!(*name, dwsync_handoff::data_key(EXPORTS, Table::People, archived.kind, WS, archived.offset as u64));
    }
    let mut expected: BTreeSet<String> = replayed.iter().map(|(k, _)| k.clone()).collect();
    expected.extend([key("cio-validate"), key("metrics_v5_7_000000000015_000000.parquet")]);
    assert_eq!(objects.keys().cloned().collect::<BTreeSet<_>>(), expected, "the keys");
    // Each file's rows are that archived file's rows, as they were (no fold, the exact v5 schema).
    for (name, archived) in &replayed {
        let want = concat_batches(&arrow_schema(Table::People), &archived.rows).unwrap();
        assert_eq!(objects[name].as_ref().unwrap(), &want, "{name}: the archived file's rows");
    }
    // Byte for byte what the exported files' writer makes of each file whole (streamed to local
    // disk and created from there, the bytes stay those of the file encoded at once).
    for (name, archived) in &replayed {
        let got = s3.get_object().bucket(&setup.destination).key(name).send().await.unwrap();
        let got = got.body.collect().await.unwrap().into_bytes();
        let rows = concat_batches(&arrow_schema(Table::People), &archived.rows).unwrap();
        let options = dwsync_format::ParquetOptions::default().for_rows(rows.num_rows());
        let mut whole = dwsync_format::ParquetFileWriter::new(Table::People, Vec::new(), &options).unwrap();
        whole.write(&rows).unwrap();
        assert_eq!(got.as_ref(), whole.finish().unwrap().as_slice(), "{name}: the bytes");
    }
    assert_eq!(
        col(objects[&key("people_v5_chngs_7_000000000014.parquet")].as_ref().unwrap(), "email_addr"),
        strs(&["p1-14@x", "p2-14@x"])
    );
    // The initial sync of the same cut folded as ever: every metrics row below the cut.
    let baseline = objects[&key("metrics_v5_7_000000000015_000000.parquet")].clone().unwrap();
    assert_eq!(col(&baseline, "event_id"), strs(&["m1", "m2", "m3", "m4", "m5"]));

    // The status: done, counting what was written, keys in offset order.
    let people = &syncs.tables[&Table::People];
    let keys: Vec<String> = replayed.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!((people.epoch, people.cut, people.rows, people.files, &people.keys), (5, 25, 6, 4, &keys));
    let metrics = &syncs.tables[&Table::Metrics];
    assert_eq!((metrics.rows, metrics.files), (5, 1));
    let log = std::fs::read_to_string(&process.log).unwrap();
    assert!(log.contains("catch-up"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_the_archive_does_not_reach_back_for_fails_saying_so() {
    let setup = setup("catch-up-late").await;
    let s3 = dwsync_tests::s3_client();
    let partition = handoff_partition(WS, PARTITIONS).unwrap();
    // The archive starts at 20, after the pause at 12: files of [12, 20) may be lost.
    let third = [
        file(21, Table::People, FileKind::New, &[json!({"internal_customer_id": "p4"})]),
        file(22, Table::Metrics, FileKind::Unspecified, &[json!({"event_id": "m1"})]),
    ];
    archive_batch(&s3, &setup.archive, BatchRange { partition, start: 20, end: 30 }, &third).await;
    let (initial, catch_up, states) = catch_up_config(partition);
    setup.configure_tables(initial.epoch, states).await;
    let process = setup.start(free_port());

    let mut seen_done = false;
    let syncs = setup
        .wait_for("people failed twice, metrics done", &process, |s| {
            seen_done |= s.is_done(Table::People, &catch_up);
            let failed = matches!(&s.tables.get(&Table::People).map(|p| &p.state), Some(InitialState::Failed { attempts, .. }) if *attempts >= 2);
            failed && s.is_done(Table::Metrics, &initial)
        })
        .await;
    assert!(!seen_done, "never done when the archive does not reach back to the pause");
    let InitialState::Failed { reason, .. } = &syncs.tables[&Table::People].state else { unreachable!() };
    assert!(
        reason.contains(
            "the archive starts at offset 20, after the pause at 12: files since the pause are not in the archive"
        ),
        "{reason}"
    );
    assert_eq!((syncs.tables[&Table::People].rows, syncs.tables[&Table::People].files), (0, 0));
    // The initial sync of the same job is delivered; no people file at all.
    let objects = bucket(&setup.destination).await;
    assert!(objects.keys().all(|k| !k.contains("people")), "{:?}", objects.keys());
    assert!(
        objects.contains_key(&format!("{EXPORTS}/metrics_v5_7_000000000022_000000.parquet")),
        "{:?}",
        objects.keys()
    );
}
