//! A destination whose secret is wrong: its file is parked in the lot (403 is not retried in
//! place), the handoff moves on, so the other workspace's file behind it arrives at once and
//! everything is committed; the parked file is tried again with backoff and never written with
//! the wrong secret; after a restart with the right secret it arrives from the lot, once.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::*;
use dwsync_config::Secret;
use dwsync_contract::Table;
use dwsync_handoff::{FileKind, data_key, validate_key};
use dwsync_tests::{create_bucket, s3_client, unique};

const WS_OK: i64 = 11;
const WS_BAD: i64 = 22;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_cannot_be_written_is_never_committed_and_arrives_after_the_fix() {
    let s3 = s3_client();
    let (bucket_ok, bucket_bad) = (create_bucket(&s3).await, create_bucket(&s3).await);
    let handoff = Handoff::new(&unique("handoff"), 1).await;
    let topic = handoff.topic.clone();

    // ok, bad, ok: the last waits behind the bad one.
    let first = (meta("ok-1", WS_OK, Table::Metrics, FileKind::Unspecified, 1_000), bytes(3_000, 1));
    let stuck = (meta("bad-1", WS_BAD, Table::Deliveries, FileKind::Unspecified, 1_000), bytes(2_000, 2));
    let behind = (meta("ok-2", WS_OK, Table::Metrics, FileKind::Unspecified, 2_000), bytes(1_000, 3));
    let first_at = handoff.file(0, &first.0, &first.1, 1_000).await;
    let stuck_at = handoff.file(0, &stuck.0, &stuck.1, 1_000).await;
    let behind_at = handoff.file(0, &behind.0, &behind.1, 1_000).await;
    let key = |m: &dwsync_handoff::FileMeta, at: Produced| {
        data_key("", m.table, m.kind, m.workspace_id, u64::try_from(at.first_offset).unwrap())
    };

    let group = unique("uploader");
    let mut wrong = destination(WS_BAD, &bucket_bad, "");
    wrong.secret_access_key = Secret::new("not-the-secret");
    let uploader = Uploader::start(config(&topic, &group, vec![destination(WS_OK, &bucket_ok, ""), wrong])).await;
    let before = uploader.metrics().await;

    // Nothing waits behind the broken destination: every file is dealt with and committed.
    wait_committed(&group, &topic, &BTreeMap::from([(0, behind_at.last_offset + 1)])).await;
    assert_eq!(get(&s3, &bucket_ok, &key(&first.0, first_at)).await, first.1);
    assert_eq!(get(&s3, &bucket_ok, &key(&behind.0, behind_at)).await, behind.1, "the healthy workspace goes on");
    // The parked file is tried again with backoff while nothing reaches the bad bucket.
    eventually("the parked file tried again", || {
        let (uploader, before) = (&uploader, &before);
        async move {
            let m = uploader.metrics().await;
            let parked = m.delta(before, "dwsync_uploader_files_parked_total", &[("reason", "destination_failing")]);
            let failures = m.delta(before, "dwsync_uploader_destination_failures_total", &[]);
            (parked == 1.0 && failures >= 2.0).then_some(())
        }
    })
    .await;
    assert!(keys(&s3, &bucket_bad).await.is_empty(), "nothing written with the wrong secret, not even cio-validate");
    let m = uploader.metrics().await;
    assert_eq!(m.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), 2.0);
    assert_eq!(m.delta(&before, "dwsync_uploader_files_skipped_total", &[]), 0.0, "parked, not skipped");
    assert_eq!(m.delta(&before, "dwsync_uploader_retries_total", &[]), 0.0, "403 is not retried in place");
    uploader.stop().await;

    // The fix: the right secret, and a restart. The parked file arrives from the lot, once.
    let uploader = Uploader::start(config(
        &topic,
        &group,
        vec![destination(WS_OK, &bucket_ok, ""), destination(WS_BAD, &bucket_bad, "")],
    ))
    .await;
    let before = uploader.metrics().await;
    eventually("the parked file written", || {
        let (uploader, before) = (&uploader, &before);
        async move {
            let m = uploader.metrics().await;
            (m.delta(before, "dwsync_uploader_files_unparked_total", &[]) == 1.0).then_some(())
        }
    })
    .await;
    assert_eq!(get(&s3, &bucket_bad, &key(&stuck.0, stuck_at)).await, stuck.1);
    assert!(exists(&s3, &bucket_bad, &validate_key("")).await);
    assert_eq!(keys(&s3, &bucket_bad).await.len(), 2, "cio-validate and the one file");
    let m = uploader.metrics().await;
    assert_eq!(m.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), 1.0);
    assert_eq!(m.delta(&before, "dwsync_uploader_already_delivered_total", &[]), 0.0);
    uploader.stop().await;
}
