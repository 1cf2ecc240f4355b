//! The uploader against the real Kafka broker and the real S3 server: files of two workspaces
//! handed off transactionally land in their own buckets under the spec's keys, after
//! `cio-validate`; offsets are committed after the writes; a restart resumes after the last
//! committed file; a full replay writes nothing and counts every file as already delivered.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use dwsync_contract::Table;
use dwsync_handoff::{FileKind, FileMeta, data_key, validate_key};
use dwsync_tests::{create_bucket, s3_client, unique};

const WS_A: i64 = 101;
const WS_B: i64 = 202;
const PREFIX_A: &str = "exports/a";
const PREFIX_B: &str = "";

/// A file handed off, and where it must end up.
struct Sent {
    meta: FileMeta,
    bytes: Vec<u8>,
    produced: Produced,
    bucket: String,
    prefix: &'static str,
}

impl Sent {
    fn key(&self) -> String {
        let seq = u64::try_from(self.produced.first_offset).unwrap();
        data_key(self.prefix, self.meta.table, self.meta.kind, self.meta.workspace_id, seq)
    }
}

/// The keys `bucket` must hold: its files' and its `cio-validate`.
fn expected(sent: &[Sent], bucket: &str, prefix: &str) -> BTreeSet<String> {
    let mut keys: BTreeSet<_> = sent.iter().filter(|s| s.bucket == bucket).map(Sent::key).collect();
    keys.insert(validate_key(prefix));
    keys
}

/// The offset after each partition's last record: what the group must commit.
fn ends(sent: &[Sent]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for s in sent {
        let end = ends.entry(s.produced.partition).or_insert(0);
        *end = (*end).max(s.produced.last_offset + 1);
    }
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_land_in_their_own_buckets_once_and_replays_change_nothing() {
    let s3 = s3_client();
    let (bucket_a, bucket_b) = (create_bucket(&s3).await, create_bucket(&s3).await);
    let handoff = Handoff::new(&unique("handoff"), 2).await;
    let topic = handoff.topic.clone();

    // Workspace A on partition 0, B on partition 1 (ingest keys handoff records by workspace).
    let mut sent = Vec::new();
    let files: Vec<(FileMeta, Vec<u8>, usize)> = vec![
        (meta("a-metrics", WS_A, Table::Metrics, FileKind::Unspecified, 1_000), bytes(2_500, 1), 1_000),
        (meta("a-people", WS_A, Table::People, FileKind::Changes, 1_000), bytes(10, 2), 1_000),
        // Above the 5 MiB multipart threshold: three parts of 5, 5 and 1 MiB.
        (meta("a-big", WS_A, Table::Deliveries, FileKind::Unspecified, 2_000), bytes(11 * MIB + 123, 3), 512 << 10),
        (meta("b-deliveries", WS_B, Table::Deliveries, FileKind::Unspecified, 1_000), bytes(4_000, 4), 1_500),
        (meta("b-types", WS_B, Table::ObjectTypes, FileKind::New, 3_000), bytes(777, 5), 100),
    ];
    for (meta, file, chunk) in files {
        let (partition, bucket, prefix) =
            if meta.workspace_id == WS_A { (0, &bucket_a, PREFIX_A) } else { (1, &bucket_b, PREFIX_B) };
        let produced = handoff.file(partition, &meta, &file, chunk).await;
        sent.push(Sent { meta, bytes: file, produced, bucket: bucket.clone(), prefix });
    }
    // Two files interleaved in one partition, as two ingest producers can write them: the
    // small one completes while the large one is still incomplete.
    let (big, small) = (meta("a-events", WS_A, Table::Events, FileKind::Unspecified, 4_000), bytes(3_000, 6));
    let (tiny, tiny_bytes) = (meta("a-subjects", WS_A, Table::Subjects, FileKind::Unspecified, 4_000), bytes(50, 7));
    let offsets = handoff
        .transaction(
            0,
            &[
                Piece::Chunk(&big, &small, 1_000, 0),
                Piece::Chunk(&tiny, &tiny_bytes, 1_000, 0),
                Piece::Chunk(&big, &small, 1_000, 1),
                Piece::Chunk(&big, &small, 1_000, 2),
            ],
        )
        .await;
    let big_produced = Produced { partition: 0, first_offset: offsets[0], last_offset: offsets[3] };
    let tiny_produced = Produced { partition: 0, first_offset: offsets[1], last_offset: offsets[1] };
    sent.push(Sent { meta: big, bytes: small, produced: big_produced, bucket: bucket_a.clone(), prefix: PREFIX_A });
    sent.push(Sent {
        meta: tiny,
        bytes: tiny_bytes,
        produced: tiny_produced,
        bucket: bucket_a.clone(),
        prefix: PREFIX_A,
    });

    // First run.
    let group = unique("uploader");
    let destinations = vec![destination(WS_A, &bucket_a, PREFIX_A), destination(WS_B, &bucket_b, PREFIX_B)];
    let cfg = config(&topic, &group, destinations.clone());
    let uploader = Uploader::start(cfg.clone()).await;
    let before = uploader.metrics().await;
    // Kafka commits the next offset to read: one past each partition's last chunk.
    let end = ends(&sent);
    wait_committed(&group, &topic, &end).await;
    let after = uploader.metrics().await;

    // Every object under the spec's key, seq = the offset of the file's first chunk, in its
    // own workspace's bucket only, byte for byte, with its checksum and row count.
    let (keys_a, keys_b) = (keys(&s3, &bucket_a).await, keys(&s3, &bucket_b).await);
    assert_eq!(keys_a, expected(&sent, &bucket_a, PREFIX_A));
    assert_eq!(keys_b, expected(&sent, &bucket_b, PREFIX_B));
    assert!(keys_a.contains("exports/a/people_v5_chngs_101_000000000004.parquet"), "{keys_a:?}");
    assert!(keys_b.contains("cio-validate") && keys_b.contains("deliveries_v5_202_000000000000.parquet"), "{keys_b:?}");
    assert!(keys_a.iter().all(|k| k.starts_with("exports/a/")), "A's bucket holds only A's prefix: {keys_a:?}");
    assert!(keys_a.iter().all(|k| !k.contains("_202_")) && keys_b.iter().all(|k| !k.contains("_101_")));
    for s in &sent {
        assert_eq!(get(&s3, &s.bucket, &s.key()).await, s.bytes, "{}", s.key());
    }
    assert!(get(&s3, &bucket_a, &validate_key(PREFIX_A)).await.is_empty(), "cio-validate is empty");
    let head = s3.head_object().bucket(&bucket_a).key(sent[2].key()).send().await.unwrap();
    assert_eq!(head.content_length(), Some((11 * MIB + 123) as i64), "the multipart upload is whole");
    let metadata = head.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.get("dwsync-sha256"), Some(&sha256_hex(&sent[2].bytes)));
    assert_eq!(metadata.get("dwsync-rows").map(String::as_str), Some("17"));
    assert_eq!(head.content_type(), Some("application/vnd.apache.parquet"));

    let files = sent.len() as f64;
    assert_eq!(after.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), files);
    assert_eq!(after.delta(&before, "dwsync_uploader_files_uploaded_total", &[("table", "deliveries")]), 2.0);
    let total_bytes: usize = sent.iter().map(|s| s.bytes.len()).sum();
    assert_eq!(after.delta(&before, "dwsync_uploader_uploaded_bytes_total", &[]), total_bytes as f64);
    assert_eq!(after.delta(&before, "dwsync_uploader_upload_seconds_count", &[]), files);
    assert_eq!(after.delta(&before, "dwsync_uploader_already_delivered_total", &[]), 0.0);
    assert_eq!(after.delta(&before, "dwsync_uploader_conflicts_total", &[]), 0.0);
    uploader.stop().await;

    // Restart with the same group: it resumes after the last committed file. A new file is
    // the only upload; re-reading any old file would have counted as already delivered.
    let next = (meta("a-next", WS_A, Table::Metrics, FileKind::Unspecified, 5_000), bytes(1_234, 8));
    let produced = handoff.file(0, &next.0, &next.1, 1_000).await;
    sent.push(Sent { meta: next.0, bytes: next.1, produced, bucket: bucket_a.clone(), prefix: PREFIX_A });
    let uploader = Uploader::start(cfg).await;
    let before = uploader.metrics().await;
    wait_committed(&group, &topic, &ends(&sent)).await;
    let after = uploader.metrics().await;
    assert_eq!(after.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), 1.0);
    assert_eq!(after.delta(&before, "dwsync_uploader_already_delivered_total", &[]), 0.0, "nothing was re-read");
    assert_eq!(after.delta(&before, "dwsync_uploader_retries_total", &[]), 0.0, "no error");
    assert_eq!(after.delta(&before, "dwsync_uploader_commit_failures_total", &[]), 0.0);
    assert_eq!(get(&s3, &bucket_a, &sent.last().unwrap().key()).await, sent.last().unwrap().bytes);
    // Caught up: 0, though each partition ends with a transaction marker after its last record
    // (high − committed would say 1), and nothing waits for a commit.
    eventually("the lag gauge to show the group caught up", || {
        let uploader = &uploader;
        async move {
            let m = uploader.metrics().await;
            (m.0.contains("dwsync_uploader_consumer_lag_records{")
                && m.sum("dwsync_uploader_consumer_lag_records", &[]) == 0.0
                && m.0.lines().any(|l| l.starts_with("dwsync_uploader_time_since_commit_seconds"))
                && m.sum("dwsync_uploader_time_since_commit_seconds", &[]) == 0.0)
                .then_some(())
        }
    })
    .await;
    uploader.stop().await;

    // A new group replays everything: every object exists with the same checksum (412, then
    // HEAD), so each file counts as already delivered and nothing changes.
    let replay_group = unique("uploader-replay");
    let uploader = Uploader::start(config(&topic, &replay_group, destinations)).await;
    let before = uploader.metrics().await;
    wait_committed(&replay_group, &topic, &ends(&sent)).await;
    let after = uploader.metrics().await;
    assert_eq!(after.delta(&before, "dwsync_uploader_already_delivered_total", &[]), sent.len() as f64);
    assert_eq!(after.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), 0.0);
    assert_eq!(after.delta(&before, "dwsync_uploader_conflicts_total", &[]), 0.0);
    assert_eq!(keys(&s3, &bucket_a).await, expected(&sent, &bucket_a, PREFIX_A), "no conflict objects, nothing new");
    assert_eq!(keys(&s3, &bucket_b).await, expected(&sent, &bucket_b, PREFIX_B));
    for s in &sent {
        assert_eq!(get(&s3, &s.bucket, &s.key()).await, s.bytes, "{}", s.key());
    }
    uploader.stop().await;
}
