//! What the initial-sync tests share: records shaped for a baseline (people deleted and
//! suppressed, objects deleted, events over 45 days), sending them, reading a workspace's files
//! back, and the five services of a stack with initial syncs on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use bytes::Bytes;
use dwsync_contract::{Encoding, Table, arrow_schema};
use dwsync_loadgen::{Generator, encode_protobuf, id_column};
use dwsync_tests::s3_client;
use dwsync_tests::services::ServiceProcess;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Map, Value, json};

use super::{Api, Archive, Stack, encoding_of, list_keys, metric, read_key};

pub const DAY_MS: i64 = 86_400_000;
/// Rows per initial metrics file of the backfill the tests start.
pub const METRICS_PER_FILE: u64 = 16;

/// The fields sent, per (workspace, table), in the order sent.
#[derive(Default)]
pub struct SentFields {
    pub rows: BTreeMap<(i64, Table), Vec<Map<String, Value>>>,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A timestamp as epoch milliseconds (both decoders take an integer).
pub fn epoch_ms(ms: i64) -> Value {
    json!(ms)
}

/// Record `n` of `table` in `ws`, shaped for the test: people 3, 13, ... deleted, 7, 17, ...
/// suppressed, the rest neither; object 4, 14, ... deleted; event `n` `n % 45` days old.
pub fn fields(generator: &Generator, table: Table, ws: i64, n: u64, now: i64) -> Map<String, Value> {
    let mut f = generator.fields(table, ws, n);
    match table {
        Table::People => {
            let _ = f.insert("deleted".into(), json!(n % 10 == 3));
            let _ = f.insert("suppressed".into(), json!(n % 10 == 7));
        }
        Table::Objects => {
            let _ = f.insert("deleted".into(), json!(n % 10 == 4));
        }
        Table::Events => {
            let _ = f.insert("timestamp".into(), epoch_ms(now - (n % 45) as i64 * DAY_MS - 3_600_000));
        }
        _ => {}
    }
    f
}

pub async fn send(
    stack: &Stack,
    producer: &FutureProducer,
    sent: &mut SentFields,
    ws: i64,
    tables: &[Table],
    rows: Vec<(Table, Map<String, Value>)>,
) {
    let mut pending = Vec::new();
    for (table, f) in rows {
        assert!(tables.contains(&table));
        let bytes = match encoding_of(table) {
            Encoding::Json => serde_json::to_vec(&f).unwrap(),
            Encoding::Protobuf => encode_protobuf(table, &f).unwrap(),
        };
        let topic = format!("{}{}", stack.prefix, table.name());
        let key = ws.to_string();
        pending.push(
            producer.send_result(FutureRecord::to(&topic).key(&key).payload(&bytes)).map_err(|(e, _)| e).unwrap(),
        );
        sent.rows.entry((ws, table)).or_default().push(f);
    }
    for p in pending {
        let _ = p.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// One object of a workspace's bucket.
#[derive(Debug)]
pub struct File {
    pub key: String,
    pub table: Table,
    /// The first sequence, and the second of an initial metrics file.
    pub seq: u64,
    pub part: Option<u64>,
    /// A change file (`_chngs_`).
    pub changes: bool,
    pub batch: RecordBatch,
}

/// Every data file of `ws` in `bucket` (on the S3 server), by key.
pub async fn files(bucket: &str, ws: i64) -> BTreeMap<String, File> {
    let s3 = s3_client();
    let mut out = BTreeMap::new();
    let mut token = None;
    loop {
        let page = s3.list_objects_v2().bucket(bucket).set_continuation_token(token.clone()).send().await.unwrap();
        for o in page.contents() {
            let key = o.key().unwrap().to_owned();
            if key.ends_with("cio-validate") {
                continue;
            }
            let body = s3.get_object().bucket(bucket).key(&key).send().await.unwrap();
            let body = body.body.collect().await.unwrap().into_bytes();
            let _ = out.insert(key.clone(), file(key, body.to_vec(), ws));
        }
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    out
}

/// Every data file of `ws` in its bucket of `stack` (S3 or GCS), by key.
pub async fn stack_files(stack: &Stack, ws: i64) -> BTreeMap<String, File> {
    let bucket = &stack.buckets[&ws];
    let mut out = BTreeMap::new();
    for key in list_keys(stack, ws, bucket).await.into_iter().filter(|k| !k.ends_with("cio-validate")) {
        let body = read_key(stack, ws, bucket, &key).await;
        let _ = out.insert(key.clone(), file(key, body, ws));
    }
    out
}

/// The data file `key` of `ws` with its bytes `body`; panics on a key that breaks the naming rule.
fn file(key: String, body: Vec<u8>, ws: i64) -> File {
    let name =
        key.rsplit('/').next().unwrap().strip_suffix(".parquet").unwrap_or_else(|| panic!("unexpected object {key}"));
    let (stem, rest) = name.split_once("_v5_").unwrap_or_else(|| panic!("{key}"));
    let table = Table::ALL.iter().copied().find(|t| t.stem() == stem).unwrap_or_else(|| panic!("{key}"));
    let (changes, rest) = match rest.strip_prefix("chngs_") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let parts: Vec<u64> = rest.split('_').map(|p| p.parse().unwrap()).collect();
    assert_eq!(parts[0], ws as u64, "{key}");
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(body)).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    let batch = concat_batches(&arrow_schema(table), &batches).unwrap();
    assert_eq!(batch.schema(), arrow_schema(table), "{key}: the exact v5 schema");
    File { key, table, seq: parts[1], part: parts.get(2).copied(), changes, batch }
}

pub fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let col = batch.column_by_name(column).unwrap_or_else(|| panic!("{column}"));
    col.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect()
}

pub fn ids(files: &[&File], table: Table) -> Vec<String> {
    files.iter().flat_map(|f| strings(&f.batch, id_column(table))).map(Option::unwrap).collect()
}

pub fn text(f: &Map<String, Value>, column: &str) -> String {
    match &f[column] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The five services of a stack with initial syncs on, the archiver writing batches after 1 s.
pub struct Services {
    pub archive: Archive,
    pub control: ServiceProcess,
    pub ingest: ServiceProcess,
    pub archiver: ServiceProcess,
    pub uploader: ServiceProcess,
    pub backfill: ServiceProcess,
}

impl Services {
    /// Starts them (the uploader with `uploader_env`); the API once it answers.
    pub async fn start(stack: &Stack, uploader_env: &[(&str, String)]) -> (Api, Self) {
        let archive = stack.archive(1000).await;
        let mut control = stack.control_with("control", &[("DWSYNC_INITIAL_SYNC__ENABLED", "true".into())]);
        let api = Api::new(stack.control.as_ref().unwrap());
        api.wait_ready(&mut control).await;
        let services = Self {
            control,
            ingest: stack.ingest("ingest"),
            archiver: stack.archiver(&archive, "archiver"),
            uploader: stack.uploader_with("uploader", uploader_env),
            backfill: stack.backfill(&archive, "backfill", METRICS_PER_FILE),
            archive,
        };
        (api, services)
    }

    /// Starts the backfill again (after a `kill -9`).
    pub fn restart_backfill(&mut self, stack: &Stack) {
        self.backfill = stack.backfill(&self.archive, "backfill", METRICS_PER_FILE);
    }

    /// Fails the test with its log if one of them exited.
    pub fn check_running(&mut self) {
        for p in [&mut self.control, &mut self.ingest, &mut self.archiver, &mut self.uploader, &mut self.backfill] {
            assert!(p.is_running(), "{} exited:\n{}", p.name(), p.log_tail(30));
        }
    }
}

/// Waits until `api`'s status of `ws` says the initial syncs of `tables` are done (90 s at most).
pub async fn initial_syncs_done(api: &Api, ws: i64, tables: &[Table], services: &mut Services) -> Value {
    initial_syncs_done_within(api, ws, tables, services, Duration::from_secs(90)).await
}

/// Waits until `api`'s status of `ws` says the initial syncs of `tables` are done, `within` at most.
pub async fn initial_syncs_done_within(
    api: &Api,
    ws: i64,
    tables: &[Table],
    services: &mut Services,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let status = api.status(ws).await;
        let syncs = status["initial_syncs"].as_array().cloned().unwrap_or_default();
        let done = |t: &Table| syncs.iter().any(|s| s["table"] == t.name() && s["state"] == "done");
        if tables.iter().all(done) {
            return status;
        }
        services.check_running();
        assert!(Instant::now() < deadline, "initial syncs not done after {within:?}: {status}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the archiver has archived `rows` rows, `within` at most.
pub async fn archived_at_least(services: &mut Services, rows: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while metric(&services.archiver, "dwsync_archiver_rows_archived_total", "").await.unwrap_or(0.0) < rows as f64 {
        services.check_running();
        assert!(Instant::now() < deadline, "{rows} rows not archived after {within:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Waits until the first initial metrics file of `ws` is in its bucket (60 s at most); returns
/// how many there are by then.
pub async fn first_baseline_metrics(stack: &Stack, ws: i64, services: &mut Services) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = s3_client().list_objects_v2().bucket(&stack.buckets[&ws]).send().await.unwrap();
        let n = listed.contents().iter().filter(|o| o.key().is_some_and(|k| k.contains("/metrics_v5_"))).count();
        if n > 0 {
            return n;
        }
        services.check_running();
        assert!(Instant::now() < deadline, "no baseline file after 60 s:\n{}", services.backfill.log_tail(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records `numbers` of each of `tables` in `ws`, shaped by [`fields`], table by table per number.
pub fn records(
    generator: &Generator,
    ws: i64,
    tables: &[Table],
    numbers: std::ops::Range<u64>,
    now: i64,
) -> Vec<(Table, Map<String, Value>)> {
    numbers.flat_map(|n| tables.iter().map(move |t| (*t, fields(generator, *t, ws, n, now)))).collect()
}

/// The `event_id`s of every metrics file among `files`.
pub fn metric_ids(files: &BTreeMap<String, File>) -> Vec<String> {
    files
        .values()
        .filter(|f| f.table == Table::Metrics)
        .flat_map(|f| strings(&f.batch, "event_id").into_iter().flatten())
        .collect()
}

/// Waits (`within` at most) until `ws`'s bucket holds at least `count` metrics; returns its files.
pub async fn files_with_metrics(
    stack: &Stack,
    ws: i64,
    count: usize,
    within: Duration,
    services: &mut Services,
) -> BTreeMap<String, File> {
    let deadline = Instant::now() + within;
    loop {
        let all = stack_files(stack, ws).await;
        let found = metric_ids(&all).len();
        if found >= count {
            return all;
        }
        services.check_running();
        assert!(Instant::now() < deadline, "{found} of {count} metrics after {within:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Asserts that `files` hold every metric sent to `ws`, each exactly once.
pub fn assert_every_metric_once(files: &BTreeMap<String, File>, sent: &SentFields, ws: i64, when: &str) {
    let mut got = metric_ids(files);
    got.sort();
    let mut want: Vec<String> = sent.rows[&(ws, Table::Metrics)].iter().map(|f| text(f, "event_id")).collect();
    want.sort();
    assert_eq!(got.len(), want.len(), "as many metrics as were sent {when}");
    assert_eq!(got, want, "every metric exactly once {when}");
}
