//! What the uploader does not write, and still moves past (commits): files of a workspace
//! without a destination, files of a table its destination does not export, and handoff
//! records that are not valid chunks of a file. Each is counted by reason.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use dwsync_contract::Table;
use dwsync_handoff::{FileKind, data_key, split, validate_key};
use dwsync_proto::Message as _;
use dwsync_tests::{create_bucket, s3_client, unique};

const WS: i64 = 31;
const NOBODY: i64 = 999;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_files_and_bad_records_are_counted_and_committed_past() {
    let s3 = s3_client();
    let bucket = create_bucket(&s3).await;
    let handoff = Handoff::new(&unique("handoff"), 1).await;
    let topic = handoff.topic.clone();

    let stray = (meta("stray", NOBODY, Table::Metrics, FileKind::Unspecified, 1_000), bytes(900, 1));
    let disabled = (meta("disabled", WS, Table::Deliveries, FileKind::Unspecified, 1_000), bytes(900, 2));
    let good = (meta("good", WS, Table::Metrics, FileKind::Unspecified, 1_000), bytes(2_500, 3));
    let chunk = |id: &str| split(&meta(id, WS, Table::Metrics, FileKind::Unspecified, 1_000), &bytes(3_000, 4), 1_000);
    let mut unknown_table = chunk("unknown-table").remove(0);
    unknown_table.table = "nonsense".into();
    let mut old_version = chunk("old-version").remove(0);
    old_version.schema_version = 4;
    let orphan = chunk("orphan").remove(1);
    let mut corrupt = chunk("corrupt");
    corrupt[2].data[0] ^= 0xff;
    let raws: Vec<Vec<u8>> =
        [unknown_table, old_version, orphan].iter().chain(corrupt.iter()).map(|c| c.encode_to_vec()).collect();

    handoff.transaction(0, &[Piece::Raw(b"\xff\xff\xff\xff not a protobuf message")]).await;
    handoff.file(0, &stray.0, &stray.1, 1_000).await;
    handoff.file(0, &disabled.0, &disabled.1, 1_000).await;
    let pieces: Vec<_> = raws.iter().map(|r| Piece::Raw(r)).collect();
    handoff.transaction(0, &pieces).await;
    let good_at = handoff.file(0, &good.0, &good.1, 1_000).await;

    let group = unique("uploader");
    let mut dest = destination(WS, &bucket, "only/metrics");
    dest.tables = vec!["metrics".into()];
    let uploader = Uploader::start(config(&topic, &group, vec![dest])).await;
    let before = uploader.metrics().await;
    wait_committed(&group, &topic, &BTreeMap::from([(0, good_at.last_offset + 1)])).await;
    let after = uploader.metrics().await;

    let good_key = data_key("only/metrics", Table::Metrics, FileKind::Unspecified, WS, good_at.first_offset as u64);
    assert_eq!(keys(&s3, &bucket).await, BTreeSet::from([validate_key("only/metrics"), good_key.clone()]));
    assert_eq!(get(&s3, &bucket, &good_key).await, good.1);

    let skipped = |reason| after.delta(&before, "dwsync_uploader_files_skipped_total", &[("reason", reason)]);
    assert_eq!((skipped("no_destination"), skipped("table_disabled")), (1.0, 1.0));
    let bad = |reason| after.delta(&before, "dwsync_uploader_bad_records_total", &[("reason", reason)]);
    for reason in ["not_protobuf", "unknown_table", "schema_version", "out_of_order", "checksum"] {
        assert_eq!(bad(reason), 1.0, "{reason}");
    }
    assert_eq!(after.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), 1.0);
    assert_eq!(after.delta(&before, "dwsync_uploader_retries_total", &[]), 0.0);
    uploader.stop().await;
}
