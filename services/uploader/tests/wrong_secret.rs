//! A destination whose secret is wrong: its file is retried with backoff and never committed,
//! so its partition waits behind it (until a later issue parks failing destinations); shutdown
//! stops the retries cleanly; after a restart with the right secret the file and the one
//! behind it arrive and are committed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

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

    // The file before the stuck one is written and committed (the offset after its last chunk,
    // which is the transaction marker before the stuck file's first chunk); no further.
    let held = first_at.last_offset + 1;
    assert!(held <= stuck_at.first_offset);
    wait_committed(&group, &topic, &BTreeMap::from([(0, held)])).await;
    assert_eq!(get(&s3, &bucket_ok, &key(&first.0, first_at)).await, first.1);
    // It keeps retrying (with backoff) while nothing moves.
    eventually("several retries", || {
        let (uploader, before) = (&uploader, &before);
        async move {
            let m = uploader.metrics().await;
            (m.delta(before, "dwsync_uploader_retries_total", &[]) >= 5.0).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(committed(&group, &topic, &[0]), vec![Some(held)]);
    assert!(keys(&s3, &bucket_bad).await.is_empty(), "nothing written with the wrong secret, not even cio-validate");
    assert!(!exists(&s3, &bucket_ok, &key(&behind.0, behind_at)).await, "the partition waits behind the stuck file");
    let m = uploader.metrics().await;
    assert_eq!(m.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), 1.0);
    assert_eq!(m.delta(&before, "dwsync_uploader_files_skipped_total", &[]), 0.0, "not skipped: retried");
    // Shutdown interrupts the retries, cleanly, and commits nothing past the stuck file.
    uploader.stop().await;
    assert_eq!(committed(&group, &topic, &[0]), vec![Some(held)]);

    // The fix: the right secret, and a restart. The stuck file and the one behind it arrive.
    let uploader = Uploader::start(config(
        &topic,
        &group,
        vec![destination(WS_OK, &bucket_ok, ""), destination(WS_BAD, &bucket_bad, "")],
    ))
    .await;
    let before = uploader.metrics().await;
    wait_committed(&group, &topic, &BTreeMap::from([(0, behind_at.last_offset + 1)])).await;
    assert_eq!(get(&s3, &bucket_bad, &key(&stuck.0, stuck_at)).await, stuck.1);
    assert!(exists(&s3, &bucket_bad, &validate_key("")).await);
    assert_eq!(get(&s3, &bucket_ok, &key(&behind.0, behind_at)).await, behind.1);
    let m = uploader.metrics().await;
    assert_eq!(m.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), 2.0);
    assert_eq!(m.delta(&before, "dwsync_uploader_already_delivered_total", &[]), 0.0);
    uploader.stop().await;
}
