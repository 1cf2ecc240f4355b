//! The archive end to end on the real broker and S3 server, ingest and the archiver as
//! processes: records of several tables for six workspaces (two with a destination, four
//! without) become archive objects, one per (handoff partition, batch, table), while the
//! archiver is killed with `kill -9` twice mid-stream and restarted. Then every object is read
//! back: every produced record exactly once with its values, workspaces packed into row groups with
//! `workspace_id` statistics, batches of a partition contiguous, and no more objects per batch
//! than (table, kind) parts, whatever the number of workspaces.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::Int64Type;
use bytes::Bytes;
use common::*;
use dwsync_contract::{BatchBuilder, Table, arrow_schema, decode};
use dwsync_loadgen::Generator;
use dwsync_tests::{s3_access_key, s3_client, s3_secret_key};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::statistics::Statistics;

/// One archive object, read back.
struct ArchiveObject {
    key: String,
    partition: i32,
    start: i64,
    end: i64,
    table: Table,
    /// Per row group: its `workspace_id` statistics (min, max) and rows.
    row_groups: Vec<(i64, i64, i64)>,
    batch: RecordBatch,
    provenance: serde_json::Value,
}

/// Parses `<prefix>/p<partition:04>/<start:020>-<end:020>/<table>[_chngs].parquet`.
fn parse_key(prefix: &str, key: &str) -> Option<(i32, i64, i64, Table)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("/p")?;
    let (partition, rest) = rest.split_once('/')?;
    let (range, name) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    (partition.len() == 4 && start.len() == 20 && end.len() == 20).then_some(())?;
    let name = name.strip_suffix(".parquet")?;
    let table: Table = name.strip_suffix("_chngs").unwrap_or(name).parse().ok()?;
    Some((partition.parse().ok()?, start.parse().ok()?, end.parse().ok()?, table))
}

async fn read_archive(archive: &Archive) -> Vec<ArchiveObject> {
    let s3 = s3_client();
    let mut objects = Vec::new();
    let mut token = None;
    loop {
        let out =
            s3.list_objects_v2().bucket(&archive.bucket).set_continuation_token(token.clone()).send().await.unwrap();
        for o in out.contents() {
            let key = o.key().unwrap().to_owned();
            let (partition, start, end, table) =
                parse_key(&archive.prefix, &key).unwrap_or_else(|| panic!("unexpected archive key {key}"));
            let body = s3.get_object().bucket(&archive.bucket).key(&key).send().await.unwrap();
            let body = body.body.collect().await.unwrap().into_bytes();
            let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(body.to_vec())).unwrap();
            let metadata = builder.metadata().clone();
            let ws_column = arrow_schema(table).index_of("workspace_id").unwrap();
            let row_groups = metadata
                .row_groups()
                .iter()
                .map(|rg| match rg.column(ws_column).statistics() {
                    Some(Statistics::Int64(s)) => (*s.min_opt().unwrap(), *s.max_opt().unwrap(), rg.num_rows()),
                    other => panic!("{key}: no workspace_id statistics: {other:?}"),
                })
                .collect();
            let footer = metadata.file_metadata().key_value_metadata().unwrap();
            let provenance = footer.iter().find(|kv| kv.key == "dwsync.archive").and_then(|kv| kv.value.clone());
            let provenance: serde_json::Value = serde_json::from_str(&provenance.unwrap()).unwrap();
            let batches: Vec<RecordBatch> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
            for b in &batches {
                assert_eq!(b.schema(), arrow_schema(table), "{key}: the exact v5 schema");
            }
            let batch = concat_batches(&arrow_schema(table), &batches).unwrap();
            objects.push(ArchiveObject { key, partition, start, end, table, row_groups, batch, provenance });
        }
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return objects;
        }
    }
}

/// Waits for the archiver's log to show a newly created object, then kills it with `kill -9`:
/// the rest of that batch is unwritten and uncommitted. `false` if none came within `within`
/// (it is then killed anyway).
async fn kill_mid_batch(archiver: &mut dwsync_tests::services::ServiceProcess, within: Duration) -> bool {
    let created = |p: &dwsync_tests::services::ServiceProcess| {
        std::fs::read_to_string(&p.log).unwrap_or_default().matches("Created an archive object").count()
    };
    let before = created(archiver);
    let deadline = Instant::now() + within;
    let caught = loop {
        if created(archiver) > before {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    archiver.kill9();
    caught
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_archived_exactly_once_through_kill_9() {
    let began = Instant::now();
    let workspaces = [6001, 6002, 6003, 6004, 6005, 6006];
    let tables = [Table::Metrics, Table::People, Table::Deliveries, Table::Events];
    // (table, kind) parts: people has new and changes files.
    let parts = tables.len() + 1;
    // Destinations for two workspaces only: the archive keeps everyone's records regardless.
    let stack = Stack::new(&workspaces[..2], &tables).await;
    let archive = stack.archive(2_000).await;
    let mut ingest = stack.ingest("ingest");
    let mut archiver = stack.archiver(&archive, "archiver");
    let producer = producer();
    let mut generator = Generator::new(61);
    let mut produced = Produced::default();
    let (rounds, per_round) = (8u64, 10u64);
    let mut kills = Vec::new();
    for round in 0..rounds {
        let numbers = round * per_round..(round + 1) * per_round;
        produce(&stack, &producer, &mut generator, (&workspaces, &tables), numbers, &mut produced).await;
        tokio::time::sleep(Duration::from_millis(1_000 + 300 * (round % 3))).await;
        if round == 2 || round == 5 {
            // Between a batch's first object and its commit (objects are written one at a time
            // here), else at once if no batch starts within 10 s.
            let caught = kill_mid_batch(&mut archiver, Duration::from_secs(10)).await;
            kills.push(if caught { "mid-batch" } else { "between batches" });
            tokio::time::sleep(Duration::from_millis(200 * round)).await;
            archiver = stack.archiver(&archive, "archiver");
        }
    }

    // Wait until the archive holds as many rows as were produced, then a little longer: a
    // duplicate written late would show.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut objects;
    loop {
        objects = read_archive(&archive).await;
        let rows: usize = objects.iter().map(|o| o.batch.num_rows()).sum();
        if rows >= produced.total() || Instant::now() > deadline {
            break;
        }
        assert!(ingest.is_running(), "ingest exited:\n{}", ingest.log_tail(30));
        assert!(archiver.is_running(), "archiver exited:\n{}", archiver.log_tail(30));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    objects = read_archive(&archive).await;

    // Layout: objects per batch ≤ parts; a partition's batches are contiguous from its start;
    // rows sorted by workspace, packed into row groups in workspace order, a workspace never
    // split between two; the footer places each workspace's rows and names its batch.
    let mut batches: BTreeMap<(i32, i64, i64), usize> = BTreeMap::new();
    for o in &objects {
        *batches.entry((o.partition, o.start, o.end)).or_default() += 1;
        assert!(
            o.row_groups.windows(2).all(|g| g[0].1 < g[1].0),
            "{}: row groups in workspace order, none sharing a workspace: {:?}",
            o.key,
            o.row_groups
        );
        let rows_ws: Vec<i64> =
            o.batch.column_by_name("workspace_id").unwrap().as_primitive::<Int64Type>().iter().flatten().collect();
        assert!(rows_ws.windows(2).all(|w| w[0] <= w[1]), "{}: rows sorted by workspace", o.key);
        let group_starts: Vec<i64> =
            o.row_groups.iter().scan(0, |at, (_, _, rows)| Some(std::mem::replace(at, *at + rows))).collect();
        let listed = o.provenance["workspaces"].as_array().expect("workspaces");
        let distinct: BTreeSet<i64> = rows_ws.iter().copied().collect();
        assert_eq!(listed.len(), distinct.len(), "{}: the footer lists every workspace", o.key);
        for w in listed {
            // `[workspace_id, row_group, first_row, rows, [[first_offset, rows], …]]` (HISTORY.md).
            let field = |i: usize| w[i].as_i64().unwrap_or_else(|| panic!("{}: footer entry {w}", o.key));
            let (ws, group, rows) = (field(0), field(1) as usize, field(3));
            let first = group_starts[group] + field(2);
            let file_rows: i64 = w[4].as_array().expect("files").iter().map(|f| f[1].as_i64().expect("rows")).sum();
            assert_eq!(file_rows, rows, "{}: workspace {ws}'s files add up to its rows", o.key);
            let placed = &rows_ws[first as usize..(first + rows) as usize];
            assert!(placed.iter().all(|r| *r == ws), "{}: workspace {ws}'s rows where the footer says", o.key);
            assert_eq!(rows_ws.iter().filter(|r| **r == ws).count() as i64, rows, "{}: workspace {ws}", o.key);
        }
        let p = &o.provenance;
        assert_eq!(
            (p["partition"].as_i64(), p["start_offset"].as_i64(), p["end_offset"].as_i64()),
            (Some(i64::from(o.partition)), Some(o.start), Some(o.end)),
            "{}: footer",
            o.key
        );
        assert_eq!(p["topic"].as_str(), Some(stack.handoff_topic.as_str()));
    }
    let most = batches.values().copied().max().unwrap_or(0);
    assert!(most <= parts, "a batch has {most} objects, more than its {parts} parts");
    let mut by_partition: BTreeMap<i32, Vec<(i64, i64)>> = BTreeMap::new();
    for (partition, start, end) in batches.keys() {
        by_partition.entry(*partition).or_default().push((*start, *end));
    }
    for (partition, ranges) in &by_partition {
        assert!(
            ranges.windows(2).all(|w| w[0].1 == w[1].0),
            "partition {partition}: batches overlap or leave a gap: {ranges:?}"
        );
    }

    // Rows: every record exactly once, with its values.
    let mut got: BTreeMap<(i64, Table), Vec<RecordBatch>> = BTreeMap::new();
    for o in &objects {
        for &ws in &workspaces {
            let mask = arrow::compute::kernels::cmp::eq(
                o.batch.column_by_name("workspace_id").unwrap(),
                &arrow::array::Int64Array::new_scalar(ws),
            )
            .unwrap();
            let rows = arrow::compute::filter_record_batch(&o.batch, &mask).unwrap();
            if rows.num_rows() > 0 {
                got.entry((ws, o.table)).or_default().push(rows);
            }
        }
    }
    for ((ws, table), expected) in &produced.records {
        let batches = got.remove(&(*ws, *table)).unwrap_or_default();
        let actual = concat_batches(&arrow_schema(*table), &batches).unwrap();
        let ids = id_strings(&actual, *table);
        let distinct: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), distinct.len(), "ws {ws} {table}: duplicated rows");
        let want: BTreeSet<&String> = expected.keys().collect();
        assert_eq!(distinct, want, "ws {ws} {table}: rows missing or unknown");
        let mut builder = BatchBuilder::new(*table);
        for sent in expected.values() {
            builder.append(&decode(*table, sent.encoding, &sent.bytes).unwrap());
        }
        let wanted = concat_batches(&arrow_schema(*table), &builder.finish().unwrap()).unwrap();
        assert_eq!(sorted(&actual, *table), sorted(&wanted, *table), "ws {ws} {table}: values");
    }
    assert!(got.is_empty(), "rows of unexpected workspaces or tables: {:?}", got.keys().collect::<Vec<_>>());
    let log = std::fs::read_to_string(stack.dir.join("archiver.log")).unwrap_or_default();
    let existing = log.matches("An archive object was already written").count();
    println!(
        "archive: {} records, {} objects in {} batches over {} partitions (at most {most} objects a batch, {parts} parts, {} workspaces), kills {kills:?}, {existing} objects found written after a restart, 0 lost, 0 duplicated, {:.1} s",
        produced.total(),
        objects.len(),
        batches.len(),
        by_partition.len(),
        workspaces.len(),
        began.elapsed().as_secs_f64()
    );
    ingest.stop();
    archiver.stop();
}

/// With no key in its config, the archiver signs with the AWS default credential chain: here
/// its first link, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` in the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_key_the_archive_is_written_with_the_default_credential_chain() {
    let workspaces = [6101];
    let tables = [Table::Metrics];
    let stack = Stack::new(&workspaces, &tables).await;
    let archive = stack.archive(1_000).await;
    let mut ingest = stack.ingest("ingest");
    let chain = [
        ("DWSYNC_STORE__ACCESS_KEY_ID", String::new()),
        ("DWSYNC_STORE__SECRET_ACCESS_KEY", String::new()),
        ("AWS_ACCESS_KEY_ID", s3_access_key()),
        ("AWS_SECRET_ACCESS_KEY", s3_secret_key()),
    ];
    let mut archiver = stack.archiver_with(&archive, "archiver", &chain);
    let producer = producer();
    let mut generator = Generator::new(67);
    let mut produced = Produced::default();
    produce(&stack, &producer, &mut generator, (&workspaces, &tables), 0..20, &mut produced).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let rows: usize = read_archive(&archive).await.iter().map(|o| o.batch.num_rows()).sum();
        if rows >= produced.total() {
            assert_eq!(rows, produced.total(), "every record archived once");
            break;
        }
        assert!(ingest.is_running(), "ingest exited:\n{}", ingest.log_tail(30));
        assert!(archiver.is_running(), "archiver exited:\n{}", archiver.log_tail(30));
        assert!(Instant::now() < deadline, "{rows} of {} rows archived after 40 s", produced.total());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let log = std::fs::read_to_string(&archiver.log).unwrap();
    assert!(!log.contains(&s3_secret_key()), "the secret is never logged");
}
