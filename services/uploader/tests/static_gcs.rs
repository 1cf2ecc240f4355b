//! A static `[[destinations]]` entry of kind `gcs`: the uploader writes its workspace's files
//! into the bucket on the real GCS-protocol server (fake-gcs-server), create-only, with the
//! `cio-validate` object, and commits past them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::*;
use dwsync_config::Secret;
use dwsync_contract::Table;
use dwsync_handoff::{FileKind, data_key, validate_key};
use dwsync_tests::gcs::{create_gcs_bucket, gcs_endpoint, read_gcs_object, service_account_key};
use dwsync_tests::unique;
use dwsync_uploader::{Destination, DestinationKind};

const WS: i64 = 57;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_gcs_destination_gets_its_workspaces_files() {
    let bucket = create_gcs_bucket().await;
    let handoff = Handoff::new(&unique("handoff"), 1).await;
    let topic = handoff.topic.clone();
    let small = (meta("small", WS, Table::Metrics, FileKind::Unspecified, 1_000), bytes(2_500, 1));
    let chunked = (meta("chunked", WS, Table::Deliveries, FileKind::Unspecified, 1_000), bytes(5_000, 2));
    let small_at = handoff.file(0, &small.0, &small.1, 10_000).await;
    let chunked_at = handoff.file(0, &chunked.0, &chunked.1, 1_000).await;

    let dest = Destination {
        workspace_id: WS,
        kind: DestinationKind::Gcs,
        bucket: bucket.clone(),
        prefix: "static".into(),
        region: "us-east-1".into(),
        endpoint: Some(gcs_endpoint()),
        force_path_style: false,
        access_key_id: String::new(),
        secret_access_key: Secret::default(),
        service_account_key: Secret::new(service_account_key()),
        tables: Vec::new(),
        conditional_writes: true,
    };
    let group = unique("uploader");
    let uploader = Uploader::start(config(&topic, &group, vec![dest])).await;
    wait_committed(&group, &topic, &BTreeMap::from([(0, chunked_at.last_offset + 1)])).await;

    let key = |table, at: u64| data_key("static", table, FileKind::Unspecified, WS, at);
    let small_key = key(Table::Metrics, small_at.first_offset as u64);
    let chunked_key = key(Table::Deliveries, chunked_at.first_offset as u64);
    assert_eq!(read_gcs_object(&bucket, &small_key).await, Some(small.1.clone()), "{small_key}");
    assert_eq!(read_gcs_object(&bucket, &chunked_key).await, Some(chunked.1.clone()), "{chunked_key}");
    assert!(read_gcs_object(&bucket, &validate_key("static")).await.is_some(), "cio-validate written first");
    let after = uploader.metrics().await;
    assert_eq!(after.sum("dwsync_uploader_files_uploaded_total", &[]), 2.0);
    uploader.stop().await;
}
