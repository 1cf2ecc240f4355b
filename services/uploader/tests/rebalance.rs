//! Two uploaders in one group: a second member joining takes partitions away from the first
//! (revoke: synchronous commit, partition state cleared), leaving gives them back; every file
//! is written exactly once and the group's commits reach the end of each partition.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use dwsync_contract::Table;
use dwsync_handoff::{FileKind, data_key, validate_key};
use dwsync_tests::{create_bucket, s3_client, unique};

const WS: [i64; 2] = [51, 52];

/// What was handed off so far.
#[derive(Default)]
struct Sent {
    /// The keys each workspace's bucket must hold.
    keys: [BTreeSet<String>; 2],
    /// The offset after each partition's last record.
    ends: BTreeMap<i32, i64>,
    files: u32,
}

impl Sent {
    /// Hands off two files per workspace, workspace `p` on partition `p`.
    async fn produce(&mut self, handoff: &Handoff, round: u32) {
        for (p, workspace_id) in WS.into_iter().enumerate() {
            self.keys[p].insert(validate_key("r"));
            for n in 0..2 {
                let m = meta(&format!("r{round}-{p}-{n}"), workspace_id, Table::Metrics, FileKind::Unspecified, 1_000);
                let at = handoff.file(p as i32, &m, &bytes(2_000, (round * 4 + n) as u8), 700).await;
                self.keys[p].insert(data_key("r", m.table, m.kind, m.workspace_id, at.first_offset as u64));
                self.ends.insert(p as i32, at.last_offset + 1);
                self.files += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_between_members_without_loss_or_duplicates() {
    let s3 = s3_client();
    let buckets = [create_bucket(&s3).await, create_bucket(&s3).await];
    let handoff = Handoff::new(&unique("handoff"), 2).await;
    let topic = handoff.topic.clone();
    let group = unique("uploader");
    let destinations = vec![destination(WS[0], &buckets[0], "r"), destination(WS[1], &buckets[1], "r")];
    let cfg = config(&topic, &group, destinations);

    let mut sent = Sent::default();
    sent.produce(&handoff, 0).await;
    let first = Uploader::start(cfg.clone()).await;
    let before = first.metrics().await;
    wait_committed(&group, &topic, &sent.ends).await;

    // A second member joins: the first gives partitions up (revoke), both then share them.
    let second = Uploader::start(cfg.clone()).await;
    dwsync_tests::group::wait_stable(&dwsync_tests::kafka_config(), &group, 2, Duration::from_secs(60)).await;
    sent.produce(&handoff, 1).await;
    wait_committed(&group, &topic, &sent.ends).await;

    // The second leaves: its partitions go back to the first.
    second.stop().await;
    sent.produce(&handoff, 2).await;
    wait_committed(&group, &topic, &sent.ends).await;

    let after = first.metrics().await;
    assert_eq!(after.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), f64::from(sent.files));
    assert_eq!(after.delta(&before, "dwsync_uploader_already_delivered_total", &[]), 0.0);
    assert_eq!(after.delta(&before, "dwsync_uploader_conflicts_total", &[]), 0.0);
    for p in 0..2 {
        assert_eq!(keys(&s3, &buckets[p]).await, sent.keys[p], "workspace {}", WS[p]);
    }
    first.stop().await;
}
