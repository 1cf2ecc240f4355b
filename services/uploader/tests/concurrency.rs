//! Files of several handoff partitions written concurrently, against the real Kafka broker and
//! S3 server: with one slot (one file at a time) and with several, and with so few queued bytes
//! allowed that reading stops behind the writes, every file lands once, byte for byte, under its
//! workspace's prefix, and every partition is committed to its end.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use dwsync_contract::Table;
use dwsync_handoff::{FileKind, data_key, validate_key};
use dwsync_tests::{create_bucket, s3_client, unique};

const PARTITIONS: i32 = 3;
const WORKSPACES: i64 = 6;
const FILES_PER_WORKSPACE: usize = 4;

async fn every_file_lands_once_with(concurrency: u32) {
    let s3 = s3_client();
    let bucket = create_bucket(&s3).await;
    let handoff = Handoff::new(&unique("handoff"), PARTITIONS).await;
    let mut expected = BTreeMap::new();
    let mut ends = BTreeMap::new();
    for round in 0..FILES_PER_WORKSPACE {
        for ws in 1..=WORKSPACES {
            // A workspace's files are always on one partition, as ingest keys them.
            let partition = i32::try_from(ws).unwrap() % PARTITIONS;
            let table = if round % 2 == 0 { Table::Metrics } else { Table::Deliveries };
            let meta = meta(&format!("f-{ws}-{round}"), ws, table, FileKind::Unspecified, 1_000 * (round as i64 + 1));
            let file = bytes(1_000 + 37_000 * ((ws as usize + round) % 5), ws as u8 + round as u8);
            let produced = handoff.file(partition, &meta, &file, 16 << 10).await;
            let seq = u64::try_from(produced.first_offset).unwrap();
            expected.insert(data_key(&format!("ws{ws}"), table, meta.kind, ws, seq), file);
            ends.insert(partition, produced.last_offset + 1);
        }
    }

    let group = unique("uploader");
    let destinations = (1..=WORKSPACES).map(|ws| destination(ws, &bucket, &format!("ws{ws}"))).collect();
    let mut cfg = config(&handoff.topic, &group, destinations);
    cfg.upload.concurrency = concurrency;
    // Less than two of the larger files: reading stops behind the writes again and again.
    cfg.upload.queued_bytes = 200_000;
    let uploader = Uploader::start(cfg).await;
    let before = uploader.metrics().await;
    wait_committed(&group, &handoff.topic, &ends).await;
    let after = uploader.metrics().await;

    let mut want: BTreeSet<String> = expected.keys().cloned().collect();
    want.extend((1..=WORKSPACES).map(|ws| validate_key(&format!("ws{ws}"))));
    assert_eq!(keys(&s3, &bucket).await, want, "concurrency {concurrency}");
    for (key, file) in &expected {
        assert_eq!(&get(&s3, &bucket, key).await, file, "{key}");
    }
    let files = expected.len() as f64;
    assert_eq!(after.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), files);
    assert_eq!(after.delta(&before, "dwsync_uploader_already_delivered_total", &[]), 0.0);
    assert!(after.0.contains("dwsync_uploader_deliveries_in_flight"), "the gauge is served");
    assert!(after.0.contains("dwsync_uploader_queued_bytes"), "the gauge is served");
    uploader.stop().await;
}

/// One slot, then four, one after the other: the uploaders of this process share one metrics
/// registry, so two running at once would count each other's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slot_and_several_slots_write_every_file_once() {
    every_file_lands_once_with(1).await;
    every_file_lands_once_with(4).await;
}
