//! The reader against the real S3 server: an archive of 3 workspaces in 2 batches written with
//! the archive's object writer, one workspace read back exactly, with fewer bytes fetched than
//! the objects hold; broken objects are errors naming their key; a cut keeps the files below it;
//! a range of files comes back file by file.

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use bytes::Bytes;
use dwsync_archive::write::{self, FileRows};
use dwsync_archive::{ArchiveReader, BatchRange, Part, ReadError, handoff_partition};
use dwsync_contract::{BatchBuilder, Encoding, Table, decode};
use dwsync_handoff::FileKind;
use dwsync_loadgen::Generator;

/// Handoff partitions; workspaces 1, 7 and 1234 all go to partition 0 of 3 (Java's murmur2).
const PARTITIONS: i32 = 3;
const WORKSPACES: [i64; 3] = [1, 7, 1234];
const PREFIX: &str = "arc";

/// `n` rows of `table` for `workspace`, records `first..`; with `people` ids if given.
fn batch(table: Table, workspace: i64, first: u64, n: u64, people: Option<&[&str]>) -> Vec<RecordBatch> {
    let mut generator = Generator::new(5);
    let mut builder = BatchBuilder::new(table);
    for i in 0..n {
        let record = generator.record(table, workspace, first + i);
        let mut json: serde_json::Value = serde_json::from_slice(record.encoded(Encoding::Json)).expect("json");
        if let Some(people) = people {
            json["internal_customer_id"] = people[i as usize].into();
        }
        let bytes = serde_json::to_vec(&json).expect("json");
        builder.append(&decode(table, Encoding::Json, &bytes).expect("valid"));
    }
    builder.finish().expect("batches")
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(column).expect("column").as_string::<i32>().clone();
            c.iter().map(|v| v.unwrap_or_default().to_owned()).collect::<Vec<_>>()
        })
        .collect()
}

struct File {
    workspace: i64,
    offset: i64,
    kind: FileKind,
    rows: Vec<RecordBatch>,
}

async fn put(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Bytes) {
    client.put_object().bucket(bucket).key(key).body(body.into()).send().await.expect("put");
}

/// Writes one batch's objects from `files` (one table); returns their total size.
async fn write_batch(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    range: BatchRange,
    table: Table,
    files: &[File],
) -> u64 {
    let mut total = 0;
    let parts: std::collections::BTreeSet<Part> = files.iter().map(|f| Part::of(table, f.kind)).collect();
    for part in parts {
        let rows: Vec<FileRows<'_>> = files
            .iter()
            .filter(|f| Part::of(table, f.kind) == part)
            .map(|f| FileRows { workspace_id: f.workspace, first_offset: f.offset, batches: &f.rows })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let encoded = write::encode("dwsync.handoff", PREFIX, range, part, &rows).expect("encode").expect("rows");
        total += encoded.object.body.len() as u64;
        put(client, bucket, &encoded.object.key, encoded.object.body).await;
    }
    total
}

#[tokio::test]
async fn reads_one_workspace_only_its_row_groups() {
    let client = dwsync_tests::s3_client();
    let bucket = dwsync_tests::create_bucket(&client).await;
    for ws in WORKSPACES {
        assert_eq!(handoff_partition(ws, PARTITIONS), Some(0), "workspace {ws}");
    }
    let (first, second) =
        (BatchRange { partition: 0, start: 0, end: 10 }, BatchRange { partition: 0, start: 10, end: 25 });
    // Metrics: 400 rows per workspace and batch (workspace 1: 9,000, a row group of its own:
    // workspaces share row groups of at least 8,192 rows), files interleaved by workspace.
    let metrics = |range: BatchRange, from: u64| -> Vec<File> {
        WORKSPACES
            .iter()
            .enumerate()
            .map(|(i, &ws)| File {
                workspace: ws,
                offset: range.start + i as i64,
                kind: FileKind::Unspecified,
                rows: batch(Table::Metrics, ws, from, if ws == 1 { 9_000 } else { 400 }, None),
            })
            .collect()
    };
    let mut metrics_bytes = 0;
    metrics_bytes += write_batch(&client, &bucket, first, Table::Metrics, &metrics(first, 0)).await;
    metrics_bytes += write_batch(&client, &bucket, second, Table::Metrics, &metrics(second, 400)).await;
    // People of workspace 7 in batch 1: new p1,p2 (offset 2), change p1 (offset 5), new p3
    // (offset 7); the other workspaces' files around them.
    let people = |ws, offset, kind, ids: &[&str]| File {
        workspace: ws,
        offset,
        kind,
        rows: batch(Table::People, ws, offset as u64 * 10, ids.len() as u64, Some(ids)),
    };
    let files = [
        people(1, 1, FileKind::New, &["x1"]),
        people(7, 2, FileKind::New, &["p1", "p2"]),
        people(1234, 3, FileKind::Changes, &["x2"]),
        people(7, 5, FileKind::Changes, &["p1"]),
        people(7, 7, FileKind::New, &["p3"]),
    ];
    write_batch(&client, &bucket, first, Table::People, &files).await;
    write_batch(&client, &bucket, second, Table::People, &[people(7, 12, FileKind::Changes, &["p2"])]).await;
    // Another partition's batch, never read for workspace 7.
    let other =
        [File { workspace: 2, offset: 0, kind: FileKind::Unspecified, rows: batch(Table::Metrics, 2, 0, 5, None) }];
    write_batch(&client, &bucket, BatchRange { partition: 1, start: 0, end: 1 }, Table::Metrics, &other).await;

    let reader = ArchiveReader::new(client.clone(), &bucket, PREFIX, PARTITIONS).expect("reader");
    let history = reader.workspace(7).await.expect("listed");
    assert_eq!(history.partition(), 0);
    assert_eq!(history.batches().iter().map(|b| (b.range.start, b.range.end)).collect::<Vec<_>>(), [(0, 10), (10, 25)]);

    let got = history.table(Table::Metrics).await.expect("metrics");
    let want: Vec<RecordBatch> =
        [batch(Table::Metrics, 7, 0, 400, None), batch(Table::Metrics, 7, 400, 400, None)].concat();
    assert_eq!(got.rows(), 800);
    assert_eq!(strings(&got.batches, "event_id"), strings(&want, "event_id"), "workspace 7's rows, in archive order");
    let all = |b: &RecordBatch| {
        b.column_by_name("workspace_id")
            .expect("ws")
            .as_primitive::<arrow_array::types::Int64Type>()
            .iter()
            .all(|w| w == Some(7))
    };
    assert!(got.batches.iter().all(all), "no other workspace's rows");
    let merged =
        arrow::compute::concat_batches(&dwsync_contract::arrow_schema(Table::Metrics), &got.batches).expect("concat");
    let wanted = arrow::compute::concat_batches(&dwsync_contract::arrow_schema(Table::Metrics), &want).expect("concat");
    assert_eq!(merged, wanted, "every value, exact v5 schema");
    let (fetched, requests) = (reader.fetched().bytes(), reader.fetched().requests());
    assert_eq!(got.object_bytes, metrics_bytes);
    println!(
        "metrics: {} objects of {} bytes, fetched {fetched} bytes ({:.0} %) in {requests} ranged GETs",
        got.objects_opened,
        got.object_bytes,
        100.0 * fetched as f64 / got.object_bytes as f64
    );
    assert_eq!(requests, 2, "one ranged GET per object: its last 64 KiB hold the footer and workspace 7's rows");
    assert!(fetched < got.object_bytes / 2, "fetched {fetched} of {} bytes", got.object_bytes);
    // Read again, as a job does (a table's last seq, then its rows): the footers, and the row
    // groups fetched with them, come from the history's memo.
    assert!(history.last_seq(Table::Metrics).await.expect("last seq").is_some());
    assert_eq!(history.table(Table::Metrics).await.expect("metrics again").rows(), 800);
    assert_eq!(reader.fetched().requests(), requests, "nothing fetched again");
    // Workspace 1's row group (9,000 rows, sorted first) is not in an object's last 64 KiB.
    let large = reader.workspace(1).await.expect("listed").table(Table::Metrics).await.expect("metrics");
    assert_eq!(large.rows(), 18_000);
    let requests = reader.fetched().requests() - requests;
    assert_eq!(requests, 4, "per object: its last 64 KiB with the footer, then workspace 1's row group");

    let people = history.table(Table::People).await.expect("people");
    assert_eq!(people.objects_opened, 3, "batch 1: people and people_chngs; batch 2: people_chngs");
    assert_eq!(
        strings(&people.batches, "internal_customer_id"),
        ["p1", "p2", "p1", "p3", "p2"],
        "files merged by offset"
    );
    assert_eq!(history.table(Table::Events).await.expect("none").rows(), 0);
}

#[tokio::test]
async fn broken_objects_are_errors_naming_their_key() {
    let client = dwsync_tests::s3_client();
    let bucket = dwsync_tests::create_bucket(&client).await;
    let range = BatchRange { partition: 0, start: 0, end: 5 };
    let files =
        [File { workspace: 7, offset: 0, kind: FileKind::Unspecified, rows: batch(Table::Metrics, 7, 0, 10, None) }];
    write_batch(&client, &bucket, range, Table::Metrics, &files).await;
    let reader = ArchiveReader::new(client.clone(), &bucket, PREFIX, PARTITIONS).expect("reader");

    // Not Parquet.
    let garbage = dwsync_archive::object_key(PREFIX, range, Part::of(Table::Events, FileKind::Unspecified));
    put(&client, &bucket, &garbage, Bytes::from_static(b"definitely not a parquet file")).await;
    let err = reader.workspace(7).await.expect("listed").table(Table::Events).await.expect_err("garbage");
    assert!(matches!(&err, ReadError::Unreadable { key, .. } if *key == garbage), "{err}");
    assert!(err.to_string().contains(&garbage), "{err}");

    // A metrics object under a deliveries key: its footer names another part.
    let metrics_key = dwsync_archive::object_key(PREFIX, range, Part::of(Table::Metrics, FileKind::Unspecified));
    let body = client
        .get_object()
        .bucket(&bucket)
        .key(&metrics_key)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    let wrong = dwsync_archive::object_key(PREFIX, range, Part::of(Table::Deliveries, FileKind::Unspecified));
    put(&client, &bucket, &wrong, body).await;
    let err = reader.workspace(7).await.expect("listed").table(Table::Deliveries).await.expect_err("mismatch");
    assert!(matches!(&err, ReadError::Unreadable { key, .. } if *key == wrong), "{err}");

    // Footer right, columns not the v5 schema of outputs: one column only.
    let not_v5 = dwsync_archive::object_key(PREFIX, range, Part::of(Table::Outputs, FileKind::Unspecified));
    let provenance = dwsync_archive::Provenance {
        topic: "t".into(),
        partition: 0,
        start_offset: 0,
        end_offset: 5,
        table: "outputs".into(),
        kind: "all".into(),
        workspaces: vec![dwsync_archive::WorkspaceRows {
            workspace_id: 7,
            row_group: Some(0),
            first_row: 0,
            rows: 1,
            files: vec![],
        }],
    };
    let column: arrow_array::ArrayRef = std::sync::Arc::new(arrow_array::Int64Array::from(vec![7]));
    let one = RecordBatch::try_from_iter([("workspace_id", column)]).expect("batch");
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(
            dwsync_archive::PROVENANCE_METADATA.to_owned(),
            provenance.to_json(),
        )]))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), one.schema(), Some(properties)).expect("writer");
    writer.write(&one).expect("write");
    put(&client, &bucket, &not_v5, Bytes::from(writer.into_inner().expect("parquet"))).await;
    let err = reader.workspace(7).await.expect("listed").table(Table::Outputs).await.expect_err("not v5");
    assert!(matches!(&err, ReadError::Schema { key, table: "outputs", .. } if *key == not_v5), "{err}");
    println!("{err}");

    // Listed, then gone.
    let history = reader.workspace(7).await.expect("listed");
    client.delete_object().bucket(&bucket).key(&metrics_key).send().await.expect("delete");
    let err = history.table(Table::Metrics).await.expect_err("missing");
    assert!(matches!(&err, ReadError::Missing { key, .. } if *key == metrics_key), "{err}");

    // A foreign key in the partition's prefix.
    put(&client, &bucket, &format!("{PREFIX}/p0000/notes.txt"), Bytes::from_static(b"x")).await;
    let err = reader.workspace(7).await.expect_err("foreign key");
    assert!(matches!(&err, ReadError::ForeignKey { key } if key.ends_with("notes.txt")), "{err}");
}

/// Three contiguous batches of partition 0: `[0, 10)`, `[10, 20)`, `[20, 30)`.
const THREE_BATCHES: [BatchRange; 3] = [
    BatchRange { partition: 0, start: 0, end: 10 },
    BatchRange { partition: 0, start: 10, end: 20 },
    BatchRange { partition: 0, start: 20, end: 30 },
];

#[tokio::test]
async fn a_cut_keeps_only_the_files_below_it() {
    let client = dwsync_tests::s3_client();
    let bucket = dwsync_tests::create_bucket(&client).await;
    let ranges = THREE_BATCHES;
    // Metrics of workspace 7: files at 2 (3 rows), 5 (4), 8 (2) | 12 (5) | 22 (1); workspace 1
    // has a file at 6 in the first batch.
    let metrics = |offset: i64, first: u64, n: u64| File {
        workspace: 7,
        offset,
        kind: FileKind::Unspecified,
        rows: batch(Table::Metrics, 7, first, n, None),
    };
    let other =
        File { workspace: 1, offset: 6, kind: FileKind::Unspecified, rows: batch(Table::Metrics, 1, 0, 4, None) };
    write_batch(
        &client,
        &bucket,
        ranges[0],
        Table::Metrics,
        &[metrics(2, 0, 3), metrics(5, 3, 4), other, metrics(8, 7, 2)],
    )
    .await;
    write_batch(&client, &bucket, ranges[1], Table::Metrics, &[metrics(12, 9, 5)]).await;
    write_batch(&client, &bucket, ranges[2], Table::Metrics, &[metrics(22, 14, 1)]).await;
    // People of workspace 7: new p1,p2 at 2, change p1 at 5, new p3 at 7 (one batch, two objects).
    let people = |offset, kind, ids: &[&str]| File {
        workspace: 7,
        offset,
        kind,
        rows: batch(Table::People, 7, offset as u64 * 10, ids.len() as u64, Some(ids)),
    };
    let files = [
        people(2, FileKind::New, &["p1", "p2"]),
        people(5, FileKind::Changes, &["p1"]),
        people(7, FileKind::New, &["p3"]),
    ];
    write_batch(&client, &bucket, ranges[0], Table::People, &files).await;

    let reader = ArchiveReader::new(client.clone(), &bucket, PREFIX, PARTITIONS).expect("reader");
    let all = batch(Table::Metrics, 7, 0, 15, None);
    let ids = strings(&all, "event_id");
    let history = reader.workspace(7).await.expect("listed");

    let whole = history.table(Table::Metrics).await.expect("metrics");
    assert_eq!((whole.rows(), whole.last_seq, whole.objects_opened), (15, Some(22), 3), "no cut: everything");

    // Cut at 6 (inside the first batch): files 2 and 5 only; later batches never opened.
    let before = history.clone().before(6).table(Table::Metrics).await.expect("metrics");
    assert_eq!(strings(&before.batches, "event_id"), ids[..7], "rows of the files at 2 and 5, in order");
    assert_eq!((before.last_seq, before.objects_opened), (Some(5), 1));
    // Cut at 11 (inside the second batch, before its file at 12): the first batch whole.
    let before = history.clone().before(11).table(Table::Metrics).await.expect("metrics");
    assert_eq!(strings(&before.batches, "event_id"), ids[..9]);
    assert_eq!((before.last_seq, before.objects_opened), (Some(8), 2), "the straddling batch is opened");
    // Cut at 20 (where the third batch starts): the first two batches.
    let before = history.clone().before(20).table(Table::Metrics).await.expect("metrics");
    assert_eq!((before.rows(), before.last_seq, before.objects_opened), (14, Some(12), 2));
    // Cut at 0: nothing, nothing opened.
    let before = history.clone().before(0).table(Table::Metrics).await.expect("metrics");
    assert_eq!((before.rows(), before.last_seq, before.objects_opened), (0, None, 0));

    // People: new and change files merged, the file at 7 past the cut left out.
    let before = history.clone().before(6).table(Table::People).await.expect("people");
    assert_eq!(strings(&before.batches, "internal_customer_id"), ["p1", "p2", "p1"]);
    assert_eq!(before.last_seq, Some(5), "the highest first offset over new and change files");
    let before = history.before(8).table(Table::People).await.expect("people");
    assert_eq!(strings(&before.batches, "internal_customer_id"), ["p1", "p2", "p1", "p3"]);
    assert_eq!(before.last_seq, Some(7));
}

#[tokio::test]
async fn files_in_a_range_come_one_by_one_as_archived() {
    let client = dwsync_tests::s3_client();
    let bucket = dwsync_tests::create_bucket(&client).await;
    let ranges = THREE_BATCHES;
    // People of workspace 7: new at 2 (p1, p2), change at 5 (p1), new at 7 (p3) | change at 12
    // (p2, p4), new at 15 (p5) | change at 22 (p6); workspace 1's new file at 6.
    let people = |workspace, offset, kind, ids: &[&str]| File {
        workspace,
        offset,
        kind,
        rows: batch(Table::People, workspace, offset as u64 * 10, ids.len() as u64, Some(ids)),
    };
    let first = [
        people(7, 2, FileKind::New, &["p1", "p2"]),
        people(7, 5, FileKind::Changes, &["p1"]),
        people(1, 6, FileKind::New, &["x1"]),
        people(7, 7, FileKind::New, &["p3"]),
    ];
    write_batch(&client, &bucket, ranges[0], Table::People, &first).await;
    let second = [people(7, 12, FileKind::Changes, &["p2", "p4"]), people(7, 15, FileKind::New, &["p5"])];
    write_batch(&client, &bucket, ranges[1], Table::People, &second).await;
    write_batch(&client, &bucket, ranges[2], Table::People, &[people(7, 22, FileKind::Changes, &["p6"])]).await;

    let reader = ArchiveReader::new(client.clone(), &bucket, PREFIX, PARTITIONS).expect("reader");
    let history = reader.workspace(7).await.expect("listed");
    let read = |from, to| {
        let history = history.clone();
        async move {
            let got = history.files(Table::People, from, to).await.expect("files");
            let files: Vec<(i64, FileKind, Vec<String>)> = got
                .files
                .iter()
                .map(|f| (f.first_offset, f.kind, strings(std::slice::from_ref(&f.rows), "internal_customer_id")))
                .collect();
            (files, got.objects_opened)
        }
    };
    let ids = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();

    // [5, 20): from the first batch's change file to the second batch's last file; the third
    // batch (starting at the range's end) never opened.
    let (files, opened) = read(5, 20).await;
    assert_eq!(
        files,
        [
            (5, FileKind::Changes, ids(&["p1"])),
            (7, FileKind::New, ids(&["p3"])),
            (12, FileKind::Changes, ids(&["p2", "p4"])),
            (15, FileKind::New, ids(&["p5"])),
        ],
        "one by one, in offset order, each with its kind; workspace 1's file not among them"
    );
    assert_eq!(opened, 4, "the first two batches' objects, new and changes (the third not opened)");
    // [5, 22): the third batch is opened (it starts before 22), its file at 22 left out.
    let (files, opened) = read(5, 22).await;
    assert_eq!((files.iter().map(|f| f.0).collect::<Vec<_>>(), opened), (vec![5, 7, 12, 15], 5));
    // [10, 30): the first batch (ending at 10) not opened.
    let (files, opened) = read(10, 30).await;
    assert_eq!(files.iter().map(|f| f.0).collect::<Vec<_>>(), [12, 15, 22]);
    assert_eq!(opened, 3);
    // Each file's rows are exactly its archived rows, with the exact v5 schema.
    let got = history.files(Table::People, 12, 13).await.expect("files");
    assert_eq!(got.files.len(), 1);
    let want =
        arrow::compute::concat_batches(&dwsync_contract::arrow_schema(Table::People), &second[0].rows).expect("concat");
    assert_eq!(got.files[0].rows, want);
    assert_eq!(got.rows(), 2);
    // An empty range, or one between files: nothing.
    assert!(read(8, 12).await.0.is_empty());
    assert!(read(5, 5).await.0.is_empty());
    // Metrics (no change files): unspecified.
    let metrics =
        [File { workspace: 7, offset: 3, kind: FileKind::Unspecified, rows: batch(Table::Metrics, 7, 0, 4, None) }];
    write_batch(&client, &bucket, ranges[0], Table::Metrics, &metrics).await;
    let history = reader.workspace(7).await.expect("listed");
    let got = history.files(Table::Metrics, 0, 10).await.expect("files");
    assert_eq!(got.files.iter().map(|f| (f.first_offset, f.kind)).collect::<Vec<_>>(), [(3, FileKind::Unspecified)]);
    assert_eq!(got.rows(), 4);
}

#[tokio::test]
async fn a_file_stream_holds_one_decoded_batch_never_a_whole_file() {
    let client = dwsync_tests::s3_client();
    let bucket = dwsync_tests::create_bucket(&client).await;
    let range = BatchRange { partition: 0, start: 0, end: 10 };
    // Workspace 7's people: new files of 9,000 and 20,000 rows at 2 and 6, change files of 10,000
    // and 1 rows at 4 and 8 (two objects to interleave), workspace 1's new file at 5.
    let people = |workspace, offset: i64, kind, n| File {
        workspace,
        offset,
        kind,
        rows: batch(Table::People, workspace, offset as u64 * 100_000, n, None),
    };
    let files = [
        people(7, 2, FileKind::New, 9_000),
        people(7, 4, FileKind::Changes, 10_000),
        people(1, 5, FileKind::New, 3),
        people(7, 6, FileKind::New, 20_000),
        people(7, 8, FileKind::Changes, 1),
    ];
    write_batch(&client, &bucket, range, Table::People, &files).await;
    let reader = ArchiveReader::new(client.clone(), &bucket, PREFIX, PARTITIONS).expect("reader");
    let history = reader.workspace(7).await.expect("listed");

    let mut stream = history.file_stream(Table::People, 0, 10);
    let mut got = Vec::new();
    let mut most_held = 0;
    while let Some(file) = stream.next_file().await.expect("file") {
        let mut rows = Vec::new();
        while let Some(batch) = stream.next_rows().expect("rows") {
            assert!(batch.num_rows() <= 8_192, "one decoded batch at a time: {}", batch.num_rows());
            most_held = most_held.max(stream.held_rows());
            rows.push(batch);
        }
        got.push((file, rows));
    }
    let summary: Vec<(i64, FileKind, u64, usize)> = got
        .iter()
        .map(|(f, rows)| (f.first_offset, f.kind, f.rows, rows.iter().map(RecordBatch::num_rows).sum()))
        .collect();
    assert_eq!(
        summary,
        [
            (2, FileKind::New, 9_000, 9_000),
            (4, FileKind::Changes, 10_000, 10_000),
            (6, FileKind::New, 20_000, 20_000),
            (8, FileKind::Changes, 1, 1),
        ]
    );
    // Never more than one decoded batch per object (new and changes) held beyond what was
    // returned: not the 20,000 rows of the largest file, not the batch's 39,001.
    assert!(most_held < 2 * 8_192, "{most_held} rows held");
    // The same files, with the same rows, as `files` collects.
    let collected = history.files(Table::People, 0, 10).await.expect("files");
    assert_eq!(collected.files.len(), got.len());
    for (whole, (file, rows)) in collected.files.iter().zip(&got) {
        let streamed =
            arrow::compute::concat_batches(&dwsync_contract::arrow_schema(Table::People), rows).expect("concat");
        assert_eq!((whole.first_offset, whole.kind), (file.first_offset, file.kind));
        assert_eq!(whole.rows, streamed);
    }
    let want =
        arrow::compute::concat_batches(&dwsync_contract::arrow_schema(Table::People), &files[3].rows).expect("concat");
    assert_eq!(collected.files[2].rows, want, "the file at 6 as archived");
}

#[tokio::test]
async fn a_long_history_is_read_in_order_with_its_footers_read_ahead() {
    let client = dwsync_tests::s3_client();
    let bucket = dwsync_tests::create_bucket(&client).await;
    // 40 batches of 4 offsets: workspace 7's metrics file at 4k + 1 (3 rows), workspace 1's at
    // 4k + 2; more batches than a stream reads ahead at once.
    let batches = 40;
    for k in 0..batches {
        let range = BatchRange { partition: 0, start: 4 * k, end: 4 * k + 4 };
        let files = [
            File {
                workspace: 7,
                offset: 4 * k + 1,
                kind: FileKind::Unspecified,
                rows: batch(Table::Metrics, 7, 3 * k as u64, 3, None),
            },
            File {
                workspace: 1,
                offset: 4 * k + 2,
                kind: FileKind::Unspecified,
                rows: batch(Table::Metrics, 1, 3 * k as u64, 3, None),
            },
        ];
        write_batch(&client, &bucket, range, Table::Metrics, &files).await;
    }
    let reader = ArchiveReader::new(client.clone(), &bucket, PREFIX, PARTITIONS).expect("reader");
    let history = reader.workspace(7).await.expect("listed");
    assert_eq!(history.batches().len(), 40);

    // A job's order: the last seq, then the rows. One GET per object (its last 64 KiB hold the
    // footer and the rows), each once.
    assert_eq!(history.last_seq(Table::Metrics).await.expect("last seq"), Some(4 * 39 + 1));
    let got = history.table(Table::Metrics).await.expect("metrics");
    let want = batch(Table::Metrics, 7, 0, 3 * batches as u64, None);
    assert_eq!(strings(&got.batches, "event_id"), strings(&want, "event_id"), "every row, in archive order");
    assert_eq!(reader.fetched().requests(), 40);

    // A catch-up's range [42, 122): the files at 45, 49, ..., 121, one by one in order.
    let files = history.files(Table::Metrics, 42, 122).await.expect("files");
    let offsets: Vec<i64> = files.files.iter().map(|f| f.first_offset).collect();
    assert_eq!(offsets, (11..=30).map(|k| 4 * k + 1).collect::<Vec<_>>());
    let rows: Vec<RecordBatch> = files.files.iter().map(|f| f.rows.clone()).collect();
    let want = batch(Table::Metrics, 7, 33, 60, None);
    assert_eq!(strings(&rows, "event_id"), strings(&want, "event_id"));
}
