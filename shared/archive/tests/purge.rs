//! Purging one workspace against the real S3 server: an archive batch of 3 workspaces (metrics
//! and people new/changes) and an object holding only the purged one; the purge rewrites the
//! shared objects without its row group (footer without it, the other two read back equal to
//! what was written), deletes the object that held only it, and reading its history returns
//! nothing; a second run changes nothing.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use dwsync_archive::fixture::{self, TestFile as File};
use dwsync_archive::purge::{ObjectPurged, Progress, Purger};
use dwsync_archive::retention::RetentionDays;
use dwsync_archive::{ArchiveReader, BatchRange, Provenance, handoff_partition};
use dwsync_contract::{BatchBuilder, Encoding, Table, decode};
use dwsync_handoff::FileKind;
use dwsync_loadgen::Generator;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Workspaces 1, 7 and 1234 all go to partition 0 of 3.
const PARTITIONS: i32 = 3;
const PREFIX: &str = "arc";
const PURGED: i64 = 7;

fn batch(table: Table, workspace: i64, first: u64, n: u64) -> Vec<RecordBatch> {
    let mut generator = Generator::new(9);
    let mut builder = BatchBuilder::new(table);
    for i in 0..n {
        let record = generator.record(table, workspace, first + i);
        builder.append(&decode(table, Encoding::Json, record.encoded(Encoding::Json)).expect("valid"));
    }
    builder.finish().expect("batches")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// `batches` as one batch of `table`'s schema (rows compared column by column, values and types).
fn rows(table: Table, batches: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&dwsync_contract::arrow_schema(table), batches).expect("one batch")
}

/// Writes `files` as the objects of batch `range`; returns their keys.
async fn write_batch(client: &aws_sdk_s3::Client, bucket: &str, range: BatchRange, files: &[File]) -> Vec<String> {
    fixture::write_batch(client, bucket, ("dwsync.handoff", PREFIX), range, files).await.expect("archive batch")
}

/// Every object of the bucket: key → body.
async fn objects(client: &aws_sdk_s3::Client, bucket: &str) -> BTreeMap<String, bytes::Bytes> {
    let listed = client.list_objects_v2().bucket(bucket).send().await.expect("list");
    let mut out = BTreeMap::new();
    for o in listed.contents() {
        let key = o.key().expect("key").to_owned();
        let body = client.get_object().bucket(bucket).key(&key).send().await.expect("get");
        out.insert(key, body.body.collect().await.expect("body").into_bytes());
    }
    out
}

/// Each workspace's rows of `table` in the archive, as text.
async fn history(reader: &ArchiveReader, workspace: i64, table: Table) -> RecordBatch {
    let history = reader.workspace(workspace).await.expect("listing").table(table).await.expect("reads");
    rows(table, &history.batches)
}

#[tokio::test]
async fn a_purge_removes_one_workspace_and_keeps_the_others_as_written() {
    let client = dwsync_tests::s3_client();
    let bucket = dwsync_tests::create_bucket(&client).await;
    for ws in [1, PURGED, 1234] {
        assert_eq!(handoff_partition(ws, PARTITIONS), Some(0));
    }
    let first = BatchRange { partition: 0, start: 0, end: 10 };
    let second = BatchRange { partition: 0, start: 10, end: 20 };
    let later = BatchRange { partition: 0, start: 20, end: 30 };
    let file = |workspace, offset, table, kind, n| File {
        workspace,
        offset,
        table,
        kind,
        rows: batch(table, workspace, offset as u64 * 1000, n),
    };
    // Batch 1: metrics of the three workspaces, people new (1, 7) and changes (7 only).
    write_batch(
        &client,
        &bucket,
        first,
        &[
            file(1, 1, Table::Metrics, FileKind::Unspecified, 30),
            file(PURGED, 2, Table::Metrics, FileKind::Unspecified, 40),
            file(1234, 3, Table::Metrics, FileKind::Unspecified, 50),
            file(PURGED, 4, Table::People, FileKind::New, 5),
            file(1, 5, Table::People, FileKind::New, 6),
            file(PURGED, 6, Table::People, FileKind::Changes, 7),
        ],
    )
    .await;
    // Batch 2: only the other workspaces.
    write_batch(&client, &bucket, second, &[file(1234, 11, Table::Metrics, FileKind::Unspecified, 8)]).await;
    // Batch 3, at the cut: the purged workspace's rows after the request stay.
    write_batch(&client, &bucket, later, &[file(PURGED, 21, Table::Metrics, FileKind::Unspecified, 9)]).await;

    let reader = ArchiveReader::new(client.clone(), &bucket, PREFIX, PARTITIONS).expect("reader");
    let before: BTreeMap<(i64, Table), RecordBatch> = {
        let mut m = BTreeMap::new();
        for ws in [1, 1234] {
            for table in [Table::Metrics, Table::People] {
                m.insert((ws, table), history(&reader, ws, table).await);
            }
        }
        m
    };
    assert_eq!(before[&(1, Table::Metrics)].num_rows(), 30);
    assert_eq!(before[&(1234, Table::Metrics)].num_rows(), 58);
    assert_eq!(history(&reader, PURGED, Table::Metrics).await.num_rows(), 49);
    let objects_before = objects(&client, &bucket).await;

    // Purge workspace 7 up to the cut at 20.
    let purger = Purger::new(client.clone(), &bucket, PREFIX, RetentionDays::default());
    let run = || async {
        let mut progress = Progress::default();
        let mut done = Vec::new();
        for (range, candidates) in purger.batches(0).await.expect("lists") {
            if range.start >= 20 {
                continue;
            }
            for c in candidates {
                let purged = purger.object(&c, PURGED, &now_ms).await.expect("purges");
                progress.add(purged);
                done.push((c.key.rsplit('/').next().unwrap_or_default().to_owned(), range.start, purged));
            }
        }
        (progress, done)
    };
    let (progress, done) = run().await;
    assert_eq!(
        done,
        [
            ("metrics.parquet".to_owned(), 0, ObjectPurged::Rewritten { rows: 40 }),
            ("people.parquet".to_owned(), 0, ObjectPurged::Rewritten { rows: 5 }),
            ("people_chngs.parquet".to_owned(), 0, ObjectPurged::Deleted { rows: 7 }),
            ("metrics.parquet".to_owned(), 10, ObjectPurged::Untouched),
        ]
    );
    assert_eq!(progress, Progress { objects_read: 4, objects_rewritten: 2, objects_deleted: 1, rows_removed: 52 });

    let after = objects(&client, &bucket).await;
    let people_chngs = "arc/p0000/00000000000000000000-00000000000000000010/people_chngs.parquet";
    assert!(!after.contains_key(people_chngs), "the object holding only workspace 7 is deleted");
    assert_eq!(after.len(), objects_before.len() - 1);
    for (key, body) in &after {
        let builder = ParquetRecordBatchReaderBuilder::try_new(body.clone()).expect("parquet");
        let provenance = Provenance::from_footer(builder.metadata().file_metadata().key_value_metadata())
            .expect("footer")
            .expect("json");
        let listed: Vec<i64> = provenance.workspaces.iter().map(|w| w.workspace_id).collect();
        if key.contains("/00000000000000000020-") {
            assert_eq!(listed, [PURGED], "{key}: after the cut, kept");
            assert_eq!(body, &objects_before[key], "{key}: untouched");
            continue;
        }
        assert!(!listed.contains(&PURGED), "{key}: {listed:?}");
        // The kept workspaces are packed again, in the footer's order: consecutive rows.
        let mut at = (0usize, 0u64);
        for w in &provenance.workspaces {
            let group = w.row_group.expect("rows");
            if group != at.0 {
                assert_eq!((group, w.first_row), (at.0 + 1, 0), "{key}: a new row group starts at row 0");
                at = (group, 0);
            }
            assert_eq!(w.first_row, at.1, "{key}: workspace {} follows the one before", w.workspace_id);
            at.1 += w.rows;
            let group_rows = builder.metadata().row_group(group).num_rows() as u64;
            assert!(w.first_row + w.rows <= group_rows, "{key}");
        }
        if key.contains("/00000000000000000010-") {
            assert_eq!(body, &objects_before[key], "{key}: without workspace 7, never rewritten");
        }
    }
    // The others read back exactly as written; workspace 7 has nothing left before the cut.
    for ((ws, table), rows) in &before {
        assert_eq!(&history(&reader, *ws, *table).await, rows, "workspace {ws} {table}");
    }
    assert_eq!(history(&reader, PURGED, Table::Metrics).await.num_rows(), 9, "only its rows after the cut");
    assert!(history(&reader, PURGED, Table::People).await.num_rows() == 0);
    let ws1 = history(&reader, 1, Table::Metrics).await;
    let ids = ws1.column_by_name("workspace_id").expect("column").as_primitive::<arrow_array::types::Int64Type>();
    assert!(ids.values().iter().all(|w| *w == 1), "workspace 1's rows only");

    // Again: nothing left to do, nothing written.
    let (progress, _) = run().await;
    assert_eq!(progress, Progress { objects_read: 3, ..Progress::default() });
    assert_eq!(objects(&client, &bucket).await, after, "a second run changes nothing");
}
