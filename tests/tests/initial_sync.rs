//! Initial syncs end to end on the real broker and S3 server, every service a process (ingest,
//! archiver, uploader, control with initial syncs on, backfill): a workspace with history in
//! five tables (people deleted and suppressed, objects deleted, events over 45 days), then its
//! sync created through the API while records keep coming. Read back from its bucket: the
//! baseline files (people without the erased, objects without the deleted, events of the last
//! 30 days only, the latest delivery per id with erased people's ids removed, metrics in
//! two-sequence files) before the incremental files, and every record in exactly one of them.
//! Another workspace, synced from the start, gets its files throughout; then a table of it turned
//! on for the first time gets its own baseline, and the sync disabled and enabled again gets a
//! whole new initial sync. A table paused and resumed is caught up from the archive. The backfill
//! and the uploader killed with `kill -9` in the middle of an initial sync lose and duplicate
//! nothing. A workspace purged from the archive (no sync) loses its archived rows, a workspace
//! sharing its objects keeps every row and its files, and its sync created afterwards starts empty.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use arrow::datatypes::TimestampMillisecondType;
use common::initial::*;
use common::*;
use dwsync_contract::Table;
use dwsync_loadgen::{Generator, id_column};
use dwsync_tests::{s3_client, s3_secret_key};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value, json};

/// The workspace whose sync is created after its history.
const W: i64 = 5101;
/// The workspace synced from the start.
const V: i64 = 5102;
const TABLES: [Table; 5] = [Table::People, Table::Deliveries, Table::Metrics, Table::Events, Table::Objects];
/// Records of history per table, and of records after the sync is created.
const HISTORY: u64 = 60;
const AFTER: u64 = 15;

fn history(
    generator: &Generator,
    ws: i64,
    numbers: std::ops::Range<u64>,
    now: i64,
) -> Vec<(Table, Map<String, Value>)> {
    numbers.flat_map(|n| TABLES.map(|t| (t, fields(generator, t, ws, n, now)))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_created_after_its_history_gets_baselines_then_every_change_once() {
    let started = Instant::now();
    let stack = Stack::with_control(&[W, V], &TABLES).await;
    let (api, mut services) = Services::start(&stack, &[]).await;
    let producer = producer();
    let generator = Generator::new(77);
    let mut sent = SentFields::default();
    let now = now_ms();

    // V is synced from the start: all its tables but objects, which it turns on later.
    let body = |ws: i64| Api::sync_body(ws, &stack.buckets[&ws], &s3_secret_key());
    let mut v_body = body(V);
    v_body["tables"] = json!({"objects": false});
    let (status, resp) = api.call(reqwest::Method::POST, &format!("/v1/workspaces/{V}/sync"), Some(v_body)).await;
    assert_eq!(status, 201, "{resp}");

    // W's history, archived before its sync exists.
    send(&stack, &producer, &mut sent, W, &TABLES, history(&generator, W, 0..HISTORY, now)).await;
    // Person 5 is deleted later: the latest row decides.
    let mut person5 = fields(&generator, Table::People, W, 5, now);
    let _ = person5.insert("deleted".into(), json!(true));
    send(&stack, &producer, &mut sent, W, &TABLES, vec![(Table::People, person5)]).await;
    send(&stack, &producer, &mut sent, V, &TABLES, history(&generator, V, 0..HISTORY, now)).await;
    // Both workspaces' history (V's records come after its cut: they are incremental).
    let archived = (2 * HISTORY as usize * TABLES.len() + 1) as f64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&services.archiver, "dwsync_archiver_rows_archived_total", "").await.unwrap_or(0.0) < archived {
        assert!(Instant::now() < deadline, "W's history not archived after 60 s:\n{}", services.archiver.log_tail(20));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // W's sync, then more records while its baseline is delivered.
    let (status, resp) = api.call(reqwest::Method::POST, &format!("/v1/workspaces/{W}/sync"), Some(body(W))).await;
    assert_eq!(status, 201, "{resp}");
    let status = api.status(W).await;
    assert_eq!(status["state"], "initial_sync", "{status}");
    send(&stack, &producer, &mut sent, W, &TABLES, history(&generator, W, HISTORY..HISTORY + AFTER, now)).await;
    send(&stack, &producer, &mut sent, V, &TABLES, history(&generator, V, HISTORY..HISTORY + AFTER, now)).await;

    let status = initial_syncs_done(&api, W, &TABLES, &mut services).await;

    // Every record of W sent is in the bucket once: wait for the incremental files.
    let expected: usize = TABLES.iter().map(|t| sent.rows[&(W, *t)].len()).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    let all = loop {
        let all = files(&stack.buckets[&W], W).await;
        let metrics_rows: usize = all.values().filter(|f| f.table == Table::Metrics).map(|f| f.batch.num_rows()).sum();
        if metrics_rows >= (HISTORY + AFTER) as usize {
            // Metrics keep every row: when they are all there, so are the other tables' files
            // of the same windows (or they come within a window).
            tokio::time::sleep(Duration::from_secs(3)).await;
            break files(&stack.buckets[&W], W).await;
        }
        assert!(Instant::now() < deadline, "W: {metrics_rows} metrics rows after 60 s ({expected} records sent)");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Baseline files: the single-sequence "new" files and the two-sequence metrics files, each
    // with a lower seq than every incremental file of its table.
    let baseline_seq: BTreeMap<Table, u64> = TABLES
        .iter()
        .map(|t| {
            let seqs: BTreeSet<u64> =
                all.values().filter(|f| f.table == *t && is_baseline(f, &all)).map(|f| f.seq).collect();
            assert_eq!(seqs.len(), 1, "{t}: one baseline seq: {seqs:?}");
            (*t, *seqs.first().unwrap())
        })
        .collect();
    for f in all.values() {
        let base = baseline_seq[&f.table];
        if f.seq != base {
            assert!(f.seq > base, "{}: an incremental file before its table's baseline ({base})", f.key);
        }
    }
    let of = |table: Table, baseline: bool| -> Vec<&File> {
        all.values().filter(|f| f.table == table && (f.seq == baseline_seq[&table]) == baseline).collect()
    };

    // Metrics: the two-sequence files hold the 60 rows of history, 16 a file; the incremental
    // files the rest; each record once.
    let metrics = of(Table::Metrics, true);
    assert_eq!(metrics.iter().map(|f| f.part.unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 3], "{metrics:?}");
    assert_eq!(metrics.iter().map(|f| f.batch.num_rows()).collect::<Vec<_>>(), vec![16, 16, 16, 12]);
    let sent_ids = |table: Table, numbers: std::ops::Range<usize>| -> BTreeSet<String> {
        sent.rows[&(W, table)][numbers].iter().map(|f| text(f, id_column(table))).collect()
    };
    let history_ids = sent_ids(Table::Metrics, 0..HISTORY as usize);
    assert_eq!(ids(&metrics, Table::Metrics).into_iter().collect::<BTreeSet<_>>(), history_ids);
    let mut every = ids(&all.values().filter(|f| f.table == Table::Metrics).collect::<Vec<_>>(), Table::Metrics);
    every.sort();
    let mut want: Vec<String> = sent.rows[&(W, Table::Metrics)].iter().map(|f| text(f, "event_id")).collect();
    want.sort();
    assert_eq!(every, want, "every metric exactly once across the baseline and the incremental files");

    // People: the baseline is the current people without the deleted and suppressed (3, 5, 7,
    // 13, 15?, ...: n % 10 in {3, 7}, and 5, deleted later); in one "new" file.
    let people = of(Table::People, true);
    assert!(people.iter().all(|f| !f.changes && f.part.is_none()), "{people:?}");
    let erased: BTreeSet<u64> = (0..HISTORY).filter(|n| n % 10 == 3 || n % 10 == 7 || *n == 5).collect();
    let current: BTreeSet<String> = (0..HISTORY)
        .filter(|n| !erased.contains(n))
        .map(|n| text(&fields(&generator, Table::People, W, n, now), "internal_customer_id"))
        .collect();
    assert_eq!(ids(&people, Table::People).into_iter().collect::<BTreeSet<_>>(), current);
    let erased_ids: BTreeSet<String> =
        erased.iter().map(|n| text(&fields(&generator, Table::People, W, *n, now), "internal_customer_id")).collect();
    let later_people: Vec<String> = of(Table::People, false).iter().flat_map(|f| ids(&[f], Table::People)).collect();
    assert_eq!(
        later_people.into_iter().collect::<BTreeSet<_>>(),
        sent_ids(Table::People, HISTORY as usize + 1..(HISTORY + AFTER) as usize + 1)
    );

    // Objects: the deleted ones (n % 10 == 4) left out.
    let objects: BTreeSet<String> = ids(&of(Table::Objects, true), Table::Objects).into_iter().collect();
    let live: BTreeSet<String> = sent.rows[&(W, Table::Objects)][..HISTORY as usize]
        .iter()
        .filter(|f| f["deleted"] != json!(true))
        .map(|f| text(f, "internal_object_id"))
        .collect();
    assert_eq!(objects, live);
    assert_eq!(live.len(), 54);

    // Events: only the last 30 days (n % 45 < 30) in the baseline; the new ones after.
    let events = of(Table::Events, true);
    let recent: BTreeSet<String> = sent.rows[&(W, Table::Events)][..HISTORY as usize]
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 45 < 30)
        .map(|(_, f)| text(f, "event_id"))
        .collect();
    assert_eq!(ids(&events, Table::Events).into_iter().collect::<BTreeSet<_>>(), recent);
    let oldest = events
        .iter()
        .flat_map(|f| {
            f.batch
                .column_by_name("timestamp")
                .unwrap()
                .as_primitive::<TimestampMillisecondType>()
                .iter()
                .flatten()
                .collect::<Vec<_>>()
        })
        .min()
        .unwrap();
    assert!(oldest >= now - 30 * DAY_MS - 60_000, "an event older than 30 days: {oldest}");
    // An erased person's events keep their row with the person's id anonymized.
    for f in &events {
        for (id, person) in strings(&f.batch, "event_id").iter().zip(strings(&f.batch, "internal_customer_id")) {
            let sent_person = sent.rows[&(W, Table::Events)]
                .iter()
                .find(|e| Some(text(e, "event_id")) == *id)
                .map(|e| text(e, "internal_customer_id"))
                .unwrap();
            if erased_ids.contains(&sent_person) {
                assert_eq!(person.as_deref(), Some("[anonymized]"), "event {id:?} of an erased person");
            } else {
                assert_eq!(person, Some(sent_person));
            }
        }
    }

    // Deliveries: one row per delivery id, the erased people's ids null.
    let deliveries = of(Table::Deliveries, true);
    let delivery_ids = ids(&deliveries, Table::Deliveries);
    assert_eq!(delivery_ids.iter().collect::<BTreeSet<_>>().len(), delivery_ids.len(), "one row per delivery");
    assert_eq!(delivery_ids.into_iter().collect::<BTreeSet<_>>(), sent_ids(Table::Deliveries, 0..HISTORY as usize));
    for f in &deliveries {
        for person in strings(&f.batch, "internal_customer_id").into_iter().flatten() {
            assert!(!erased_ids.contains(&person), "an erased person's id in a baseline delivery");
        }
    }

    // The status reports each table's rows as they are in the bucket.
    for t in TABLES {
        let report =
            status["initial_syncs"].as_array().unwrap().iter().find(|s| s["table"] == t.name()).unwrap().clone();
        let rows: usize = of(t, true).iter().map(|f| f.batch.num_rows()).sum();
        assert_eq!(report["rows"], json!(rows), "{t}: {report}");
        assert_eq!(report["files"], json!(of(t, true).len()), "{t}: {report}");
    }

    // V, synced from the start, has every one of its records once (objects off: none).
    let v_files = files(&stack.buckets[&V], V).await;
    for t in TABLES.iter().filter(|t| **t != Table::Objects) {
        let mut got = ids(&v_files.values().filter(|f| f.table == *t).collect::<Vec<_>>(), *t);
        got.sort();
        let mut want: Vec<String> = sent.rows[&(V, *t)].iter().map(|f| text(f, id_column(*t))).collect();
        want.sort();
        assert_eq!(got, want, "V's {t}");
    }
    assert!(v_files.values().all(|f| f.table != Table::Objects), "V's objects are off");

    // V turns objects on for the first time: its baseline holds all 75 objects minus the deleted.
    api.set_table(V, Table::Objects, true).await;
    let _ = initial_syncs_done(&api, V, &[Table::Objects], &mut services).await;
    let v_files = files(&stack.buckets[&V], V).await;
    let v_objects: Vec<&File> = v_files.values().filter(|f| f.table == Table::Objects).collect();
    assert_eq!(v_objects.len(), 1, "one baseline file: {v_objects:?}");
    let want: BTreeSet<String> = sent.rows[&(V, Table::Objects)]
        .iter()
        .filter(|f| f["deleted"] != json!(true))
        .map(|f| text(f, "internal_object_id"))
        .collect();
    assert_eq!(ids(&v_objects, Table::Objects).into_iter().collect::<BTreeSet<_>>(), want);

    // V disabled, its bucket cleared (as the spec asks before enabling again), enabled again:
    // a new initial sync of every table, "as if starting a new integration".
    let (code, body) = api.call(reqwest::Method::POST, &format!("/v1/workspaces/{V}/sync/disable"), None).await;
    assert_eq!(code, 200, "{body}");
    let s3 = s3_client();
    for key in v_files.keys() {
        let _ = s3.delete_object().bucket(&stack.buckets[&V]).key(key).send().await.unwrap();
    }
    let (code, body) = api.call(reqwest::Method::POST, &format!("/v1/workspaces/{V}/sync/enable"), None).await;
    assert_eq!(code, 200, "{body}");
    let _ = initial_syncs_done(&api, V, &TABLES, &mut services).await;
    let v_files = files(&stack.buckets[&V], V).await;
    let v_metrics: Vec<&File> = v_files.values().filter(|f| f.table == Table::Metrics).collect();
    assert!(v_metrics.iter().all(|f| f.part.is_some()), "only the initial two-sequence files: {v_metrics:?}");
    let mut got = ids(&v_metrics, Table::Metrics);
    got.sort();
    let mut want: Vec<String> = sent.rows[&(V, Table::Metrics)].iter().map(|f| text(f, "event_id")).collect();
    want.sort();
    assert_eq!(got, want, "V's whole metrics history again, once");
    let v_people: BTreeSet<String> =
        ids(&v_files.values().filter(|f| f.table == Table::People).collect::<Vec<_>>(), Table::People)
            .into_iter()
            .collect();
    let v_current: BTreeSet<String> = sent.rows[&(V, Table::People)]
        .iter()
        .filter(|f| f["deleted"] != json!(true) && f["suppressed"] != json!(true))
        .map(|f| text(f, "internal_customer_id"))
        .collect();
    assert_eq!(v_people, v_current, "V's current people");

    eprintln!("initial sync e2e: {} W files, {:?}", all.len(), started.elapsed());
}

/// Whether `f` is a baseline file: a two-sequence metrics file; for the other tables, a file
/// with its table's lowest seq (the checks of its rows then say whether it holds the baseline).
fn is_baseline(f: &File, all: &BTreeMap<String, File>) -> bool {
    if f.table == Table::Metrics {
        return f.part.is_some();
    }
    let lowest = all.values().filter(|g| g.table == f.table).map(|g| g.seq).min();
    Some(f.seq) == lowest
}

/// Files of W's `table` in its bucket, by seq: (key, ids).
async fn files_of(stack: &Stack, table: Table) -> BTreeMap<u64, (String, Vec<String>)> {
    files(&stack.buckets[&W], W)
        .await
        .into_values()
        .filter(|f| f.table == table)
        .map(|f| (f.seq, (f.key.clone(), ids(&[&f], table))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_paused_is_caught_up_from_the_archive_however_long_it_was_off() {
    const TABLES2: [Table; 2] = [Table::Metrics, Table::People];
    let stack = Stack::with_control(&[W], &TABLES2).await;
    // The lot keeps parked files one hour here: the catch-up must not depend on it.
    let (api, mut services) = Services::start(&stack, &[("DWSYNC_LOT__RETENTION_HOURS", "1".into())]).await;
    let producer = producer();
    let generator = Generator::new(78);
    let mut sent = SentFields::default();
    let now = now_ms();
    api.create_sync(W, &stack.buckets[&W]).await;
    let wait_rows = |table: Table, want: usize| {
        let stack = &stack;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let got: usize = files_of(stack, table).await.values().map(|(_, ids)| ids.len()).sum();
                if got >= want {
                    return;
                }
                assert!(Instant::now() < deadline, "{table}: {got} of {want} rows after 60 s");
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }
    };

    // Round 1 while on.
    send(&stack, &producer, &mut sent, W, &TABLES2, records(&generator, W, &TABLES2, 0..10, now)).await;
    wait_rows(Table::Metrics, 10).await;
    let before_pause: BTreeSet<u64> = files_of(&stack, Table::Metrics).await.into_keys().collect();

    // Metrics off; round 2 is handed off while it is off: people keep coming, metrics not, and
    // the lot holds none of them (the archive does).
    api.set_table(W, Table::Metrics, false).await;
    send(&stack, &producer, &mut sent, W, &TABLES2, records(&generator, W, &TABLES2, 10..30, now)).await;
    wait_rows(Table::People, 30).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let while_off: BTreeSet<u64> = files_of(&stack, Table::Metrics).await.into_keys().collect();
    assert_eq!(while_off, before_pause, "no metrics file written while off");
    let parked = metric(&services.uploader, "dwsync_uploader_files_parked_total", "table_off").await.unwrap_or(0.0);
    assert_eq!(parked, 0.0, "metrics files off since the cut are left to the archive, not parked");

    // Back on: the catch-up replays round 2's files from the archive under their own keys, then
    // round 3 follows; every metric exactly once.
    api.set_table(W, Table::Metrics, true).await;
    send(&stack, &producer, &mut sent, W, &TABLES2, records(&generator, W, &TABLES2, 30..40, now)).await;
    let status = initial_syncs_done(&api, W, &[Table::Metrics], &mut services).await;
    wait_rows(Table::Metrics, 40).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics = files_of(&stack, Table::Metrics).await;
    let mut every: Vec<String> = metrics.values().flat_map(|(_, ids)| ids.clone()).collect();
    every.sort();
    let mut want: Vec<String> = sent.rows[&(W, Table::Metrics)].iter().map(|f| text(f, "event_id")).collect();
    want.sort();
    assert_eq!(every, want, "every metric once: before, during and after the pause");
    for (seq, (key, _)) in &metrics {
        assert_eq!(
            key.rsplit('/').next().unwrap(),
            format!("metrics_v5_{W}_{seq:012}.parquet"),
            "the uploader's own key"
        );
    }
    let report = status["initial_syncs"].as_array().unwrap().iter().find(|s| s["table"] == "metrics").unwrap().clone();
    let replayed: BTreeSet<String> =
        sent.rows[&(W, Table::Metrics)][10..30].iter().map(|f| text(f, "event_id")).collect();
    assert_eq!(report["rows"], json!(replayed.len()), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_an_initial_sync_loses_and_duplicates_nothing() {
    const TABLES3: [Table; 2] = [Table::Metrics, Table::People];
    const HISTORY3: u64 = 2000;
    let stack = Stack::with_control(&[W], &TABLES3).await;
    let (api, mut services) = Services::start(&stack, &[]).await;
    let producer = producer();
    let generator = Generator::new(79);
    let mut sent = SentFields::default();
    let now = now_ms();
    send(&stack, &producer, &mut sent, W, &TABLES3, records(&generator, W, &TABLES3, 0..HISTORY3, now)).await;
    archived_at_least(&mut services, 2 * HISTORY3, Duration::from_secs(60)).await;
    api.create_sync(W, &stack.buckets[&W]).await;

    // The backfill and the uploader killed once the first baseline files are in the bucket.
    let parts = HISTORY3.div_ceil(METRICS_PER_FILE) as usize;
    let written = first_baseline_metrics(&stack, W, &mut services).await;
    services.backfill.kill9();
    services.uploader.kill9();
    eprintln!("killed the backfill and the uploader with {written} of {parts} initial metrics files written");
    assert!(written < parts, "the backfill was killed before it finished");
    send(&stack, &producer, &mut sent, W, &TABLES3, records(&generator, W, &TABLES3, HISTORY3..HISTORY3 + 50, now))
        .await;
    services.uploader = stack.uploader("uploader");
    services.restart_backfill(&stack);

    let _ = initial_syncs_done(&api, W, &TABLES3, &mut services).await;
    let all = files_with_metrics(&stack, W, (HISTORY3 + 50) as usize, Duration::from_secs(60), &mut services).await;
    assert_every_metric_once(&all, &sent, W, "after the crash");
}

/// Archived rows of `table` per workspace, read from every object of the archive.
async fn archived_rows(archive: &Archive, table: Table) -> BTreeMap<i64, usize> {
    let s3 = s3_client();
    let listed = s3.list_objects_v2().bucket(&archive.bucket).prefix(&archive.prefix).send().await.unwrap();
    let mut rows = BTreeMap::new();
    for key in listed.contents().iter().filter_map(|o| o.key()) {
        if !key.ends_with(&format!("/{}.parquet", table.name())) {
            continue;
        }
        let body = s3.get_object().bucket(&archive.bucket).key(key).send().await.unwrap();
        let body = body.body.collect().await.unwrap().into_bytes();
        for batch in ParquetRecordBatchReaderBuilder::try_new(body).unwrap().build().unwrap() {
            let batch = batch.unwrap();
            let ids = batch.column_by_name("workspace_id").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
            for id in ids.values() {
                *rows.entry(*id).or_default() += 1;
            }
        }
    }
    rows
}

/// Waits until `check` holds of the archive's metrics rows per workspace.
async fn archived_until(archive: &Archive, what: &str, check: impl Fn(&BTreeMap<i64, usize>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = archived_rows(archive, Table::Metrics).await;
        if check(&rows) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: archived metrics rows per workspace {rows:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_purged_from_the_archive_is_gone_and_the_others_go_on() {
    // W leaves (no sync); V, in the same handoff partition, shares its archive objects.
    let partition = |ws| dwsync_handoff::handoff_partition(ws, 4).unwrap();
    let v = (W + 1..).find(|v| partition(*v) == partition(W)).unwrap();
    let stack = Stack::with_control(&[W, v], &[Table::Metrics]).await;
    let (api, mut services) = Services::start(&stack, &[]).await;
    api.create_sync(v, &stack.buckets[&v]).await;
    let producer = producer();
    let generator = Generator::new(91);
    let mut sent = SentFields::default();
    let now = now_ms();
    send(&stack, &producer, &mut sent, W, &[Table::Metrics], records(&generator, W, &[Table::Metrics], 0..20, now))
        .await;
    send(&stack, &producer, &mut sent, v, &[Table::Metrics], records(&generator, v, &[Table::Metrics], 0..20, now))
        .await;
    archived_until(&services.archive, "both archived", |r| r.get(&W) == Some(&20) && r.get(&v) == Some(&20)).await;

    let (status, purge) = api.call(reqwest::Method::POST, &format!("/v1/workspaces/{W}/archive/purge"), None).await;
    assert_eq!(status, 202, "{purge}");
    // V's records after the request are delivered and archived as usual.
    send(&stack, &producer, &mut sent, v, &[Table::Metrics], records(&generator, v, &[Table::Metrics], 20..30, now))
        .await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        let status = api.status(W).await;
        if status["archive_purge"]["state"] == "done" {
            break status;
        }
        services.check_running();
        assert!(Instant::now() < deadline, "the purge is not done after 90 s: {status}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(status["state"], "no_sync", "{status}");
    assert_eq!(status["archive_purge"]["rows_removed"], 20, "{status}");
    archived_until(&services.archive, "W purged, V intact", |r| r.get(&W).is_none() && r.get(&v) == Some(&30)).await;

    // V got every record; the purge's cut record held nothing up at the uploader.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: usize = files(&stack.buckets[&v], v).await.values().map(|f| f.batch.num_rows()).sum();
        if got == 30 {
            break;
        }
        assert!(Instant::now() < deadline, "V has {got} of 30 metrics");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let log = std::fs::read_to_string(&services.uploader.log).unwrap();
    assert!(!log.contains("never came"), "the purge's cut (epoch 0) is passed at once");

    // W comes back: its initial sync has no archived rows; what it hands off now is exported (and
    // archived again: a purge covers the past).
    api.create_sync(W, &stack.buckets[&W]).await;
    let status = initial_syncs_done(&api, W, &[Table::Metrics], &mut services).await;
    let metrics = status["initial_syncs"].as_array().unwrap().iter().find(|s| s["table"] == "metrics").unwrap().clone();
    assert_eq!((metrics["rows"].as_u64(), metrics["files"].as_u64()), (Some(0), Some(0)), "{metrics}");
    send(&stack, &producer, &mut sent, W, &[Table::Metrics], records(&generator, W, &[Table::Metrics], 100..105, now))
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<String> =
            files(&stack.buckets[&W], W).await.values().flat_map(|f| ids(&[f], Table::Metrics)).collect();
        if got.len() == 5 {
            let want: BTreeSet<String> =
                sent.rows[&(W, Table::Metrics)][20..].iter().map(|f| text(f, "event_id")).collect();
            assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want, "only what came after the purge");
            break;
        }
        assert!(Instant::now() < deadline, "W has {} of 5 new metrics", got.len());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    archived_until(&services.archive, "W archived again", |r| r.get(&W) == Some(&5)).await;
}
