//! `--scenario backfill-large`: one workspace's initial sync from a large archive, through the
//! real `dwsync-backfill` binary, measured from `/proc` (docs/PERFORMANCE.md, Backfill).
//!
//! The archive is written directly with the archive's object writer (no ingest): one workspace
//! with `people` people (1 % later deleted, 1 % later suppressed, in change files), `attributes`
//! attribute changes (two names per person, so each (person, name) changes about
//! `attributes / people / 2` times) and `metrics` metrics, in archive batches of at most
//! [`ROWS_PER_FILE`] rows per table (an archiver batch of a large workspace: 64 MiB of handed-off
//! Parquet holds a few hundred thousand rows). A sync configuration asks for the baselines of
//! people, attributes and metrics at a cut after the last file; the backfill runs until it has
//! delivered all three. Reported: archive rows per second to the customer's bucket, baseline
//! rows, files and bytes, the backfill's peak RSS (`VmHWM`), its CPU time, and the spill
//! directory's largest size.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use arrow_array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray, new_null_array,
};
use arrow_schema::{DataType, Field, TimeUnit};
use dwsync_archive::write::{self, FileRows};
use dwsync_archive::{BatchRange, Part, handoff_partition};
use dwsync_config::{KafkaConfig, Secret};
use dwsync_contract::{Table, arrow_schema};
use dwsync_handoff::FileKind;
use dwsync_sync_config::{
    Baseline, Destination, KafkaStore, S3Store, Sealer, Store, StoreConfig, SyncConfig, TableState, WorkspaceId,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::procstat;
use crate::services::Service;

/// The scenario's name.
pub(crate) const NAME: &str = "backfill-large";

/// The workspace backfilled.
const WS: i64 = 4_242;

/// Partitions of the run's handoff topic (the backfill reads the count).
const PARTITIONS: i32 = 4;

/// Rows per table in one archive batch at most.
const ROWS_PER_FILE: u64 = 250_000;

/// The baseline's time.
const AT_MS: i64 = 1_780_000_000_000;

/// The archive's prefix in the run's archive bucket.
pub(crate) const PREFIX: &str = "archive";

/// The seal key of the run's destination secret.
const SEAL_KEY: [u8; 32] = [0x5a; 32];

/// The archive's size.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Size {
    /// People (one new row each; 2 % get a change row deleting or suppressing them).
    pub(crate) people: u64,
    /// Attribute changes.
    pub(crate) attributes: u64,
    /// Metrics.
    pub(crate) metrics: u64,
}

impl Size {
    /// 5 M people, 20 M attribute changes, 20 M metrics times `scale`; 20,000 / 80,000 / 80,000
    /// with `smoke`.
    pub(crate) fn of(smoke: bool, scale: f64) -> Self {
        let (people, attributes, metrics) = if smoke { (20_000.0, 80_000.0, 80_000.0) } else { (5e6, 20e6, 20e6) };
        let at = |n: f64| ((n * scale).round() as u64).max(10);
        Self { people: at(people), attributes: at(attributes), metrics: at(metrics) }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measured {
    size: Size,
    archive_rows: u64,
    archive_bytes: u64,
    write_archive_secs: f64,
    backfill_secs: f64,
    rows_per_sec: f64,
    baseline_rows: BTreeMap<String, u64>,
    files: u64,
    bytes: u64,
    peak_rss_bytes: u64,
    cpu_secs: f64,
    peak_spill_bytes: u64,
    /// `dwsync_backfill_spilled_bytes_total` at the end: every byte the folds wrote to spill files.
    spilled_bytes: u64,
    /// `dwsync_backfill_spills_total` at the end: folds that passed their budget.
    spills: u64,
    memory_budget_bytes: u64,
}

impl Measured {
    /// The table printed for the run.
    pub(crate) fn render(&self) -> String {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let mut out = format!(
            "== {NAME}: one workspace, {} people, {} attribute changes, {} metrics ==\n",
            crate::scenario::thousands(self.size.people),
            crate::scenario::thousands(self.size.attributes),
            crate::scenario::thousands(self.size.metrics)
        );
        out += &format!(
            "archive: {} rows, {:.0} MiB of Parquet, written in {:.1} s\n",
            crate::scenario::thousands(self.archive_rows),
            mib(self.archive_bytes),
            self.write_archive_secs
        );
        out += &format!(
            "backfill: {:.1} s from start to the last baseline done: {} archive rows/s; CPU {:.1} s\n",
            self.backfill_secs,
            crate::scenario::thousands(self.rows_per_sec as u64),
            self.cpu_secs
        );
        for (table, rows) in &self.baseline_rows {
            out += &format!("  baseline {table}: {} rows\n", crate::scenario::thousands(*rows));
        }
        out += &format!("bucket: {} files, {:.0} MiB\n", self.files, mib(self.bytes));
        out += &format!(
            "peak RSS (VmHWM): {:.0} MiB (memory_budget_bytes {:.0} MiB a job); spill directory at most {:.0} MiB\n",
            mib(self.peak_rss_bytes),
            mib(self.memory_budget_bytes),
            mib(self.peak_spill_bytes)
        );
        out += &format!(
            "spilled (dwsync_backfill_spilled_bytes_total): {:.0} MiB written to spill files by {} fold(s) past the budget\n",
            mib(self.spilled_bytes),
            self.spills
        );
        out
    }
}

/// A column of `n` rows for a field no generator names: null where allowed, else a constant.
fn default_column(field: &Field, n: usize) -> anyhow::Result<ArrayRef> {
    if field.is_nullable() {
        return Ok(new_null_array(field.data_type(), n));
    }
    Ok(match field.data_type() {
        DataType::Int64 => Arc::new(Int64Array::from(vec![0; n])),
        DataType::Utf8 => Arc::new(StringArray::from_iter_values(std::iter::repeat_n("x", n))),
        DataType::Boolean => Arc::new(BooleanArray::from(vec![false; n])),
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            Arc::new(TimestampMillisecondArray::from(vec![AT_MS - 86_400_000; n]).with_timezone_opt(tz.clone()))
        }
        other => bail!("no default for required column {} ({other})", field.name()),
    })
}

/// `n` rows of `table` for workspace `ws`, the columns `columns` names given, the others default.
fn rows(
    table: Table,
    ws: i64,
    n: usize,
    mut columns: impl FnMut(&str) -> Option<ArrayRef>,
) -> anyhow::Result<RecordBatch> {
    let schema = arrow_schema(table);
    let mut out = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        out.push(match (field.name().as_str(), columns(field.name())) {
            (_, Some(column)) => column,
            ("workspace_id", None) => Arc::new(Int64Array::from(vec![ws; n])),
            (_, None) => default_column(field, n)?,
        });
    }
    Ok(RecordBatch::try_new(schema, out)?)
}

fn text(values: impl Iterator<Item = String>) -> Option<ArrayRef> {
    Some(Arc::new(StringArray::from_iter_values(values)))
}

fn person_id(i: u64) -> String {
    format!("p{i:09}")
}

/// People `range` of workspace `ws` (new rows), or their change rows deleting (1 %) or
/// suppressing (1 %) them.
pub(crate) fn people(ws: i64, range: std::ops::Range<u64>, changes: bool) -> anyhow::Result<RecordBatch> {
    let ids: Vec<u64> = if changes { range.filter(|i| matches!(i % 100, 7 | 13)).collect() } else { range.collect() };
    let n = ids.len();
    rows(Table::People, ws, n, |column| match column {
        "internal_customer_id" => text(ids.iter().map(|i| person_id(*i))),
        "customer_id" => text(ids.iter().map(|i| format!("customer-{i}"))),
        "email_addr" => text(ids.iter().map(|i| format!("person{i}@example.com"))),
        "deleted" if changes => Some(Arc::new(BooleanArray::from_iter(ids.iter().map(|i| Some(i % 100 == 7))))),
        "suppressed" if changes => Some(Arc::new(BooleanArray::from_iter(ids.iter().map(|i| Some(i % 100 == 13))))),
        _ => None,
    })
}

/// Attribute changes `range` of `people` people of workspace `ws`: change `n` sets
/// `attr<(n / people) % 2>` of person `n % people` to `v<n>`.
pub(crate) fn attributes(ws: i64, range: std::ops::Range<u64>, people: u64) -> anyhow::Result<RecordBatch> {
    let n = (range.end - range.start) as usize;
    let r = range.clone();
    rows(Table::Attributes, ws, n, move |column| match column {
        "internal_customer_id" => text(r.clone().map(|n| person_id(n % people))),
        "attribute_name" => text(r.clone().map(|n| format!("attr{}", (n / people) % 2))),
        "attribute_value" => text(r.clone().map(|n| format!("v{n}"))),
        _ => None,
    })
}

/// Metrics `range` of workspace `ws`: four per delivery, one delivery per person in turn.
pub(crate) fn metrics(ws: i64, range: std::ops::Range<u64>, people: u64) -> anyhow::Result<RecordBatch> {
    let n = (range.end - range.start) as usize;
    let r = range.clone();
    rows(Table::Metrics, ws, n, move |column| match column {
        "event_id" => text(r.clone().map(|n| format!("m{n:011}"))),
        "delivery_id" => text(r.clone().map(|n| format!("d{:010}-{}", n / 4, person_id((n / 4) % people)))),
        "metric" => text(r.clone().map(|n| ["sent", "delivered", "opened", "clicked"][(n % 4) as usize].to_owned())),
        "seq_num" => Some(Arc::new(Int64Array::from_iter_values(r.clone().map(|n| n as i64)))),
        "user_agent" => text(r.clone().map(|_| "Mozilla/5.0 (Windows NT 10.0; Win64; x64)".to_owned())),
        _ => None,
    })
}

/// The part `[k * total / batches, (k + 1) * total / batches)` of `total`.
pub(crate) fn share(k: u64, batches: u64, total: u64) -> std::ops::Range<u64> {
    (k * total / batches)..((k + 1) * total / batches)
}

/// What [`write_archive`] wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Archived {
    /// Rows archived.
    pub(crate) rows: u64,
    /// Bytes of Parquet archived.
    pub(crate) bytes: u64,
    /// A cut inside the last batch (the archive covers it).
    pub(crate) cut: i64,
    /// The end of the last batch: the handoff offsets the archive spans are `0..end`.
    pub(crate) end: i64,
}

/// Writes the archive of workspace `ws` on handoff `partition` under [`PREFIX`]: `batches`
/// batches of 10 offsets, each with a file per table at its first offsets.
pub(crate) async fn write_archive(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    ws: i64,
    size: Size,
    partition: i32,
) -> anyhow::Result<Archived> {
    let largest = size.people.max(size.attributes).max(size.metrics);
    let batches = largest.div_ceil(ROWS_PER_FILE).max(1);
    let (mut total_rows, mut total_bytes) = (0u64, 0u64);
    for k in 0..batches {
        let start = (k * 10) as i64;
        let range = BatchRange { partition, start, end: start + 10 };
        let files: Vec<(i64, Table, FileKind, RecordBatch)> = vec![
            (start, Table::People, FileKind::New, people(ws, share(k, batches, size.people), false)?),
            (start + 1, Table::People, FileKind::Changes, people(ws, share(k, batches, size.people), true)?),
            (
                start + 2,
                Table::Attributes,
                FileKind::Unspecified,
                attributes(ws, share(k, batches, size.attributes), size.people)?,
            ),
            (
                start + 3,
                Table::Metrics,
                FileKind::Unspecified,
                metrics(ws, share(k, batches, size.metrics), size.people)?,
            ),
        ];
        for (offset, table, kind, batch) in &files {
            let file = FileRows { workspace_id: ws, first_offset: *offset, batches: std::slice::from_ref(batch) };
            let Some(encoded) = write::encode("handoff", PREFIX, range, Part::of(*table, *kind), &[file])? else {
                continue;
            };
            total_rows += encoded.object.rows;
            total_bytes += encoded.object.body.len() as u64;
            s3.put_object()
                .bucket(bucket)
                .key(&encoded.object.key)
                .body(encoded.object.body.into())
                .send()
                .await
                .with_context(|| format!("writing archive object {}", encoded.object.key))?;
        }
    }
    // The cut after the last batch's files, inside it: the archive covers it.
    let end = (batches * 10) as i64;
    Ok(Archived { rows: total_rows, bytes: total_bytes, cut: end - 5, end })
}

/// Whether `size` is the smoke size (it gets a small memory budget, to spill all the same).
fn smoke_budget(size: Size) -> bool {
    size.people <= Size::of(true, 1.0).people
}

/// `line` without its ANSI colours.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes of the files under `dir` (0 when it is gone).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Where the run is: the broker, S3, the binaries and the working directory.
pub(crate) use crate::services::Place as Setup;

/// Writes the archive, asks for the baselines and runs the backfill until they are delivered.
pub(crate) async fn run(setup: Setup<'_>, size: Size) -> anyhow::Result<Measured> {
    std::fs::create_dir_all(&setup.dir)?;
    let s3 = crate::s3::client(setup.s3);
    let base = format!("{}.{NAME}", setup.run_id);
    let (archive, destination) = (format!("{}-archive", setup.run_id), format!("{}-dest", setup.run_id));
    for bucket in [&archive, &destination] {
        crate::s3::create_bucket(&s3, setup.s3, bucket).await?;
    }
    let handoff = format!("{base}.handoff");
    crate::kafka::create_topics(setup.bootstrap, std::slice::from_ref(&handoff), PARTITIONS).await?;
    let partition = handoff_partition(WS, PARTITIONS).context("partition")?;
    eprintln!("[{NAME}] writing the archive ({size:?}) ...");
    let started = Instant::now();
    let Archived { rows: archive_rows, bytes: archive_bytes, cut, .. } =
        write_archive(&s3, &archive, WS, size, partition).await?;
    let write_archive_secs = started.elapsed().as_secs_f64();
    eprintln!("[{NAME}] archive written: {archive_rows} rows, {archive_bytes} bytes in {write_archive_secs:.1} s");

    let kafka = KafkaConfig { bootstrap_servers: setup.bootstrap.to_owned(), ..crate::kafka::settings().clone() };
    let store = StoreConfig {
        topic: format!("{base}.sync-config"),
        initial_sync_topic: format!("{base}.initial-syncs"),
        ..StoreConfig::default()
    };
    let followers = CancellationToken::new();
    let (configs, follower) = KafkaStore::<SyncConfig>::connect(&kafka, &store).await?;
    drop(tokio::spawn(follower.run(followers.clone())));
    let sealer = Sealer::new(&SEAL_KEY);
    let baseline = Baseline { epoch: 1, partition, cut, at_ms: AT_MS, replay_from: None };
    let tables = [Table::People, Table::Attributes, Table::Metrics];
    let cfg = SyncConfig {
        workspace_id: WorkspaceId::new(WS).context("workspace")?,
        schema_version: dwsync_contract::SCHEMA_VERSION,
        destination: Destination {
            bucket: destination.clone(),
            prefix: "exports".into(),
            store: Store::S3(S3Store {
                region: "us-east-1".into(),
                endpoint: Some(setup.s3.endpoint.clone()),
                force_path_style: true,
                conditional_writes: true,
                access_key_id: setup.s3.access_key.clone(),
                secret_access_key: sealer.seal(&Secret::new(setup.s3.secret_key.clone()), &WS.to_string())?,
            }),
        },
        tables: tables
            .iter()
            .map(|t| (*t, TableState { enabled: true, changed_at_ms: AT_MS, baseline: Some(baseline), off_from: None }))
            .collect(),
        disabled: false,
        updated_at_ms: AT_MS,
        revision: 1,
    };
    configs.write(&cfg).await?;
    followers.cancel();

    let spill = setup.dir.join("spill");
    std::fs::create_dir_all(&spill)?;
    // The backfill's default budget, or DWSYNC_BACKFILL__MEMORY_BUDGET_BYTES (the backfill reads
    // it too: it inherits this environment); a small one at smoke size, so the smoke run spills.
    let budget: u64 = match std::env::var("DWSYNC_BACKFILL__MEMORY_BUDGET_BYTES").ok().and_then(|b| b.parse().ok()) {
        Some(budget) => budget,
        None if smoke_budget(size) => 4 << 20,
        None => 128 << 20,
    };
    let config = |port: u16| {
        format!(
            r#"
[kafka]
bootstrap_servers = "{bootstrap}"
[http]
listen = "127.0.0.1:{port}"
{egress}[sync_config.store]
topic = "{topic}"
initial_sync_topic = "{syncs}"
[archive]
bucket = "{archive}"
prefix = "{PREFIX}"
endpoint = "{endpoint}"
force_path_style = true
access_key_id = "{access}"
secret_access_key = "{secret}"
[handoff]
topic = "{handoff}"
[backfill]
poll_interval_ms = 500
spill_dir = "{spill}"
memory_budget_bytes = {budget}
"#,
            bootstrap = setup.bootstrap,
            egress = egress_toml(&setup.s3.endpoint),
            topic = store.topic,
            syncs = store.initial_sync_topic,
            endpoint = setup.s3.endpoint,
            access = setup.s3.access_key,
            secret = setup.s3.secret_key,
            spill = spill.display(),
        )
    };
    eprintln!("[{NAME}] running dwsync-backfill until the three baselines are delivered ...");
    let env = [("DWSYNC_SEAL_KEY".to_owned(), hex::encode(SEAL_KEY))];
    let started = Instant::now();
    let mut backfill = Service::start("backfill", setup.bin_dir, &setup.dir, &env, config)?;
    let pid = backfill.pid();
    let mut peak_spill = 0u64;
    let mut peak_rss = 0u64;
    let mut cpu_secs = 0.0;
    let delivered = loop {
        backfill.check_running()?;
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            peak_rss = peak_rss.max(procstat::parse_status_bytes(&status, "VmHWM").unwrap_or(0));
        }
        cpu_secs = procstat::cpu_seconds(pid).unwrap_or(cpu_secs);
        peak_spill = peak_spill.max(dir_bytes(&spill));
        let log = std::fs::read_to_string(&backfill.log).unwrap_or_default();
        if log.contains("An initial sync failed") {
            bail!("the initial sync failed:\n{}", backfill.log_tail(20));
        }
        let delivered: Vec<&str> = log.lines().filter(|l| l.contains("A baseline is delivered.")).collect();
        if delivered.len() >= tables.len() {
            break delivered.iter().map(|l| plain(l)).collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let backfill_secs = started.elapsed().as_secs_f64();
    let spilled_bytes = backfill.metric("dwsync_backfill_spilled_bytes_total").unwrap_or(0.0) as u64;
    let spills = backfill.metric("dwsync_backfill_spills_total").unwrap_or(0.0) as u64;
    backfill.stop();
    let baseline_rows = delivered
        .iter()
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")).map(|v| v.trim_matches('"').to_owned()))
            };
            Some((field("table")?, field("rows")?.parse().ok()?))
        })
        .collect();
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut token = None;
    loop {
        let listed = s3.list_objects_v2().bucket(&destination).set_continuation_token(token.take()).send().await?;
        for object in listed.contents() {
            if object.key().is_some_and(|k| k.ends_with(".parquet")) {
                files += 1;
                bytes += object.size().unwrap_or(0).max(0) as u64;
            }
        }
        match listed.next_continuation_token() {
            Some(next) => token = Some(next.to_owned()),
            None => break,
        }
    }
    if !setup.keep_objects {
        crate::s3::delete_buckets(&s3, &[&archive, &destination], NAME).await;
    }
    let topics = [handoff, store.topic.clone(), store.initial_sync_topic.clone()];
    if let Err(e) = crate::kafka::delete_topics(setup.bootstrap, &topics).await {
        eprintln!("[{NAME}] could not delete the run's topics: {e:#}");
    }
    let _ = std::fs::remove_dir_all(&spill);
    Ok(Measured {
        size,
        archive_rows,
        archive_bytes,
        write_archive_secs,
        backfill_secs,
        rows_per_sec: archive_rows as f64 / backfill_secs.max(1e-9),
        baseline_rows,
        files,
        bytes,
        peak_rss_bytes: peak_rss,
        cpu_secs,
        peak_spill_bytes: peak_spill,
        spilled_bytes,
        spills,
        memory_budget_bytes: budget,
    })
}

/// The `[egress]` section admitting the benchmark's S3 server (a loopback or local address) as
/// the workspaces' endpoint (control and the backfill refuse customers' endpoints in the
/// operator's network otherwise).
pub(crate) fn egress_toml(endpoint: &str) -> String {
    let host = dwsync_s3::egress::endpoint_host(endpoint).unwrap_or("127.0.0.1");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    format!("[egress]\nallow = [\"127.0.0.0/8\", \"::1\", {host:?}]\n")
}
