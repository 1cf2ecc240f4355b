//! Keys already taken: by the same file (a replay: counted, nothing written) or by other bytes
//! (a conflict: the stored object is left alone, the file is kept under
//! `<key>.conflict-<sha12>`, and the alarm counter goes up). Both with conditional writes and
//! with the HEAD-then-PUT fallback (`conditional_writes = false`), whose large file also takes
//! the multipart path.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use dwsync_contract::Table;
use dwsync_handoff::{FileKind, FileMeta, data_key, split, validate_key};
use dwsync_tests::{create_bucket, s3_client, unique};

const WS_COND: i64 = 41;
const WS_FALLBACK: i64 = 42;
/// Chunk size of the handoff records (below the producer's 1 MB message limit).
const CHUNK: usize = 512 << 10;

struct Case {
    workspace_id: i64,
    bucket: String,
    /// The offset after the case's last chunk: what the group commits.
    end: i64,
    /// (header, bytes, key) of: the conflicting file, the already delivered one, the new one.
    files: Vec<(FileMeta, Vec<u8>, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_keys_are_never_overwritten() {
    let s3 = s3_client();
    let handoff = Handoff::new(&unique("handoff"), 2).await;
    let topic = handoff.topic.clone();

    let mut cases = Vec::new();
    for (partition, workspace_id) in [(0, WS_COND), (1, WS_FALLBACK)] {
        let seed = partition as u8 * 10;
        let new_len = if workspace_id == WS_FALLBACK { 6 * MIB + 5 } else { 2_000 };
        let files = [
            (meta("conflicting", workspace_id, Table::Metrics, FileKind::Unspecified, 1_000), bytes(1_000, seed)),
            (meta("delivered", workspace_id, Table::People, FileKind::New, 1_000), bytes(1_100, seed + 1)),
            (meta("new", workspace_id, Table::Deliveries, FileKind::Unspecified, 1_000), bytes(new_len, seed + 2)),
        ];
        // One transaction, so no marker between the files.
        let pieces: Vec<_> = files
            .iter()
            .flat_map(|(m, b)| (0..split(m, b, CHUNK).len()).map(move |i| Piece::Chunk(m, b, CHUNK, i)))
            .collect();
        let offsets = handoff.transaction(partition, &pieces).await;
        let seqs = [offsets[0], offsets[1], offsets[2]];
        let files = files
            .into_iter()
            .zip(seqs)
            .map(|((m, b), seq)| {
                let key = data_key("", m.table, m.kind, workspace_id, seq as u64);
                (m, b, key)
            })
            .collect();
        let end = offsets.last().unwrap() + 1;
        cases.push(Case { workspace_id, bucket: create_bucket(&s3).await, end, files });
    }
    let end = BTreeMap::from([(0, cases[0].end), (1, cases[1].end)]);

    // Before the uploader runs: other bytes at the first file's key, the second file itself
    // (with its checksum, as an earlier delivery left it) at the second's.
    let foreign = b"somebody else's object".to_vec();
    for case in &cases {
        let (_, _, conflict_at) = &case.files[0];
        s3.put_object()
            .bucket(&case.bucket)
            .key(conflict_at)
            .body(ByteStream::from(foreign.clone()))
            .send()
            .await
            .unwrap();
        let (_, delivered, delivered_at) = &case.files[1];
        s3.put_object()
            .bucket(&case.bucket)
            .key(delivered_at)
            .metadata("dwsync-sha256", sha256_hex(delivered))
            .body(ByteStream::from(delivered.clone()))
            .send()
            .await
            .unwrap();
    }

    let destinations: Vec<_> = cases
        .iter()
        .map(|c| {
            let mut d = destination(c.workspace_id, &c.bucket, "");
            d.conditional_writes = c.workspace_id == WS_COND;
            d
        })
        .collect();
    let group = unique("uploader");
    let uploader = Uploader::start(config(&topic, &group, destinations.clone())).await;
    let before = uploader.metrics().await;
    wait_committed(&group, &topic, &end).await;
    let after = uploader.metrics().await;

    for case in &cases {
        let [(_, conflicting, conflict_at), (_, delivered, delivered_at), (_, new, new_at)] = case.files.as_slice()
        else {
            panic!("three files")
        };
        let conflict_copy = format!("{conflict_at}.conflict-{}", &sha256_hex(conflicting)[..12]);
        let expected = BTreeSet::from([
            validate_key(""),
            conflict_at.clone(),
            conflict_copy.clone(),
            delivered_at.clone(),
            new_at.clone(),
        ]);
        assert_eq!(keys(&s3, &case.bucket).await, expected, "workspace {}", case.workspace_id);
        assert_eq!(get(&s3, &case.bucket, conflict_at).await, foreign, "the other object is left alone");
        assert_eq!(get(&s3, &case.bucket, &conflict_copy).await, *conflicting, "the file is kept");
        assert_eq!(get(&s3, &case.bucket, delivered_at).await, *delivered);
        assert_eq!(get(&s3, &case.bucket, new_at).await, *new);
    }
    assert_eq!(after.delta(&before, "dwsync_uploader_conflicts_total", &[]), 2.0);
    assert_eq!(after.delta(&before, "dwsync_uploader_already_delivered_total", &[]), 2.0);
    assert_eq!(after.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), 2.0);
    uploader.stop().await;

    // A full replay (new group) writes nothing: the conflict is reported again, its copy is
    // found in place, everything else is already delivered.
    let group = unique("uploader-replay");
    let uploader = Uploader::start(config(&topic, &group, destinations)).await;
    let before = uploader.metrics().await;
    wait_committed(&group, &topic, &end).await;
    let after = uploader.metrics().await;
    assert_eq!(after.delta(&before, "dwsync_uploader_conflicts_total", &[]), 2.0);
    assert_eq!(after.delta(&before, "dwsync_uploader_already_delivered_total", &[]), 4.0);
    assert_eq!(after.delta(&before, "dwsync_uploader_files_uploaded_total", &[]), 0.0);
    for case in &cases {
        assert_eq!(keys(&s3, &case.bucket).await.len(), 5, "nothing new in workspace {}", case.workspace_id);
        assert_eq!(get(&s3, &case.bucket, &case.files[0].2).await, foreign);
    }
    uploader.stop().await;
}
