//! Retention on the real S3 server: objects of events (30 days) are deleted once their batch is
//! older than that, every other table's are kept; a later sweep lists only what is not settled.
//! With archive purges: a rewritten object keeps its archived time (deleted on time, holding back
//! no later object), and a purge racing a sweep never brings a deleted object back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use dwsync_archive::fixture::{self, TestFile};
use dwsync_archive::key::{BatchRange, Part, object_key};
use dwsync_archive::purge::{ObjectPurged, Purger};
use dwsync_archive::retention::ARCHIVED_MS_METADATA;
use dwsync_archive::retention::RetentionDays;
use dwsync_archiver::retention::Sweeper;
use dwsync_contract::{Encoding, Table};
use dwsync_proto::internal::FileKind;
use dwsync_tests::{create_bucket, s3_client};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

async fn keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = client.list_objects_v2().bucket(bucket).send().await.expect("list");
    out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
}

#[tokio::test]
async fn events_go_after_their_retention_the_rest_stays() {
    let client = s3_client();
    let bucket = create_bucket(&client).await;
    let prefix = "archive";
    let tables = [Table::Events, Table::Metrics, Table::People, Table::Inbound];
    let mut written = Vec::new();
    for partition in [0, 3] {
        for (start, end) in [(0, 10), (10, 25)] {
            let range = BatchRange { partition, start, end };
            for table in tables {
                let key = object_key(prefix, range, Part { table, kind: FileKind::Unspecified });
                client
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .body(b"parquet".to_vec().into())
                    .send()
                    .await
                    .expect("put");
                written.push(key);
            }
        }
    }
    // A key that is not an archive key is never touched.
    client.put_object().bucket(&bucket).key("archive/p0000/README").body(Vec::new().into()).send().await.expect("put");

    let retention = RetentionDays::default();
    let mut sweeper = Sweeper::new(client.clone(), &bucket, prefix, retention);

    // A day later: nothing is old enough.
    let swept = sweeper.sweep(now_ms() + DAY_MS).await.expect("sweep");
    assert!(swept.deleted.is_empty(), "{swept:?}");
    assert_eq!(keys(&client, &bucket).await.len(), written.len() + 1);

    // 31 days later: every events and inbound object is gone, the rest stays.
    let swept = sweeper.sweep(now_ms() + 31 * DAY_MS).await.expect("sweep");
    assert_eq!(swept.deleted, BTreeMap::from([(Table::Events, 4), (Table::Inbound, 4)]));
    let left = keys(&client, &bucket).await;
    assert_eq!(left.len(), 8 + 1);
    assert!(left.iter().all(|k| !k.ends_with("/events.parquet") && !k.ends_with("/inbound.parquet")), "{left:?}");
    assert!(left.iter().any(|k| k == "archive/p0000/README"));

    // The next sweep starts where everything is settled: nothing left to list but what follows.
    let swept = sweeper.sweep(now_ms() + 32 * DAY_MS).await.expect("sweep");
    assert!(swept.deleted.is_empty());
    assert_eq!(swept.listed, 0, "{swept:?}");
}

/// Rows of `table` of `workspace`.
fn rows(table: Table, workspace: i64, n: u64) -> Vec<arrow_array::RecordBatch> {
    let mut generator = dwsync_loadgen::Generator::new(3);
    let mut builder = dwsync_contract::BatchBuilder::new(table);
    for i in 0..n {
        let record = generator.record(table, workspace, workspace as u64 * 1000 + i);
        let row = dwsync_contract::decode(table, Encoding::Json, record.encoded(Encoding::Json)).expect("valid");
        builder.append(&row);
    }
    builder.finish().expect("batches")
}

/// Writes batch `range` of `files` (workspace, table) and, with `archived_ms`, stamps its
/// objects as archived then (a test cannot make `LastModified` older: an object rewritten by a
/// purge carries its original time so); returns the keys.
async fn archive_batch(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    range: BatchRange,
    files: &[(i64, Table)],
    archived_ms: Option<i64>,
) -> Vec<String> {
    let files: Vec<TestFile> = files
        .iter()
        .enumerate()
        .map(|(n, (workspace, table))| TestFile {
            workspace: *workspace,
            offset: range.start + n as i64,
            table: *table,
            kind: FileKind::Unspecified,
            rows: rows(*table, *workspace, 4),
        })
        .collect();
    let keys = fixture::write_batch(client, bucket, ("dwsync.handoff", "archive"), range, &files).await.expect("batch");
    if let Some(at) = archived_ms {
        for key in &keys {
            let body = client.get_object().bucket(bucket).key(key).send().await.expect("get");
            let body = body.body.collect().await.expect("body").into_bytes();
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .metadata(ARCHIVED_MS_METADATA, at.to_string())
                .body(body.into())
                .send()
                .await
                .expect("put");
        }
    }
    keys
}

/// Purges `workspace` from every object of partition 0, at the real clock.
async fn purge(purger: &Purger, workspace: i64) -> Vec<ObjectPurged> {
    let mut out = Vec::new();
    for (_, candidates) in purger.batches(0).await.expect("lists") {
        for candidate in candidates {
            out.push(purger.object(&candidate, workspace, &now_ms).await.expect("purges"));
        }
    }
    out
}

#[tokio::test]
async fn a_purged_object_keeps_its_age_and_holds_back_nothing() {
    let client = s3_client();
    let bucket = create_bucket(&client).await;
    let now = now_ms();
    let twenty_days_ago = Some(now - 20 * DAY_MS);
    let batch = |start| BatchRange { partition: 0, start, end: start + 10 };
    let shared = [(1, Table::Events), (7, Table::Events), (1, Table::Metrics), (7, Table::Metrics)];
    let first = archive_batch(&client, &bucket, batch(0), &shared, twenty_days_ago).await;
    archive_batch(&client, &bucket, batch(10), &[(1, Table::Events)], twenty_days_ago).await;
    archive_batch(&client, &bucket, batch(20), &[(1, Table::Events)], twenty_days_ago).await;
    // Archived now: kept past the sweeps below.
    let fresh = archive_batch(&client, &bucket, batch(30), &[(1, Table::Events)], None).await;

    // Workspace 7 leaves: the first batch's events and metrics are rewritten, with a new
    // `LastModified` and their original archived time.
    let purger = Purger::new(client.clone(), &bucket, "archive", RetentionDays::default());
    let purged = purge(&purger, 7).await;
    assert_eq!(purged.iter().filter(|p| matches!(p, ObjectPurged::Rewritten { rows: 4 })).count(), 2, "{purged:?}");
    for key in &first {
        let head = client.head_object().bucket(&bucket).key(key).send().await.expect("head");
        let stamp = head.metadata().and_then(|m| m.get(ARCHIVED_MS_METADATA)).cloned();
        assert_eq!(stamp, twenty_days_ago.map(|t| t.to_string()), "{key}");
    }

    let mut sweeper = Sweeper::new(client.clone(), &bucket, "archive", RetentionDays::default());
    // 29 days after they were archived: nothing goes; one look at the first young object.
    let swept = sweeper.sweep(now + 9 * DAY_MS).await.expect("sweep");
    assert!(swept.deleted.is_empty(), "{swept:?}");
    assert_eq!(swept.looked_up, 1, "{swept:?}");

    // 31 days after: the purged events object goes on time, and the later ones of the partition
    // with it; the metrics are kept, the fresh batch too (the sweep stops there).
    let swept = sweeper.sweep(now + 11 * DAY_MS).await.expect("sweep");
    assert_eq!(swept.deleted, BTreeMap::from([(Table::Events, 3)]), "{swept:?}");
    let left = keys(&client, &bucket).await;
    let want: Vec<String> = first.iter().filter(|k| k.ends_with("/metrics.parquet")).chain(&fresh).cloned().collect();
    assert_eq!(left, want);
}

#[tokio::test]
async fn a_purge_never_brings_back_what_retention_deleted() {
    let client = s3_client();
    let bucket = create_bucket(&client).await;
    let now = now_ms();
    let batch = |start| BatchRange { partition: 0, start, end: start + 10 };
    let both = [(1, Table::Events), (7, Table::Events)];
    // A minute short of its 30 days when the purge reads it.
    let racing = archive_batch(&client, &bucket, batch(0), &both, Some(now - 30 * DAY_MS + 60_000)).await;
    let purger = Purger::new(client.clone(), &bucket, "archive", RetentionDays::default());
    let batches = purger.batches(0).await.expect("lists");
    let candidate = &batches[0].1[0];
    assert_eq!(candidate.key, racing[0]);

    // The purge reads the first object; a sweep two minutes later deletes it; the purge's write,
    // judged not expired just before its PUT, lands after the delete.
    let original = purger.read(candidate).await.expect("reads").expect("exists");
    let mut sweeper = Sweeper::new(client.clone(), &bucket, "archive", RetentionDays::default());
    let swept = sweeper.sweep(now + 120_000).await.expect("sweep");
    assert_eq!(swept.deleted, BTreeMap::from([(Table::Events, 1)]), "{swept:?}");
    let calls = AtomicUsize::new(0);
    let clock = || if calls.fetch_add(1, Ordering::SeqCst) == 0 { now } else { now + 120_000 };
    let purged = purger.apply(candidate, &original, 7, &clock).await.expect("purges");
    assert_eq!(purged, ObjectPurged::Deleted { rows: 4 });
    // An object already past its retention (a sweep has not come by yet) is deleted rather than
    // rewritten.
    archive_batch(&client, &bucket, batch(10), &both, Some(now - 31 * DAY_MS)).await;
    assert_eq!(purge(&purger, 7).await, [ObjectPurged::Deleted { rows: 4 }]);
    assert_eq!(keys(&client, &bucket).await, Vec::<String>::new(), "nothing came back");
}
