//! ingest against the real broker: each source partition number closes its windows at its own
//! point of the window (partition 0 on the UTC grid, partition 1 half a window later), and a
//! workspace's tables — same partition number in every topic — still close together, as one sync.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dwsync_contract::Table;
use dwsync_handoff::{FileChunk, Reassembler};
use dwsync_proto::Message as _;
use dwsync_tests::{create_topic, kafka_config, read_committed_config, unique};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// What the test keeps of a handed-off file.
#[derive(Debug)]
struct Handed {
    rows: u64,
    closed_at_ms: i64,
    reason: String,
    partitions: Vec<i32>,
}

/// Window length of the test: partition 1 closes 4 s after the grid points of partition 0.
const WINDOW_MS: i64 = 8_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_close_at_their_own_phase_and_a_workspace_closes_as_one_sync() {
    let prefix = format!("{}.", unique("spread"));
    let handoff_topic = unique("handoff");
    for table in ["metrics", "people"] {
        create_topic(&format!("{prefix}{table}"), 2).await;
    }
    create_topic(&handoff_topic, 1).await;

    // Workspace 101 on partition 0 of both topics, workspace 202 on partition 1.
    let producer: FutureProducer = kafka_config().create().unwrap();
    let mut records: Vec<(i64, i32, &'static str, String)> = Vec::new();
    for (ws, partition) in [(101_i64, 0), (202, 1)] {
        for n in 0..5 {
            let json = format!(
                r#"{{"event_id":"m-{ws}-{n}","workspace_id":{ws},"delivery_id":"d{n}","metric":"opened","created_at":1000,"seq_num":{n},"proxied":false,"prefetched":false,"machine":false}}"#
            );
            records.push((ws, partition, "metrics", json));
        }
        for n in 0..2 {
            let json = format!(
                r#"{{"workspace_id":{ws},"customer_id":"c{n}","internal_customer_id":"cio-{ws}-{n}","created_at":1000,"updated_at":1000}}"#
            );
            records.push((ws, partition, "people", json));
        }
    }
    let mut expected_rows: BTreeMap<(i64, &'static str), u64> = BTreeMap::new();
    for (ws, partition, table, json) in &records {
        let (topic, key) = (format!("{prefix}{table}"), ws.to_string());
        let record = FutureRecord::to(&topic).partition(*partition).key(&key).payload(json);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
        *expected_rows.entry((*ws, *table)).or_insert(0) += 1;
    }

    let mut cfg = common::config(&prefix, &["metrics", "people"], &handoff_topic, &unique("dlq"));
    cfg.window.duration_ms = WINDOW_MS as u64;
    assert!(cfg.window.spread_by_partition, "on by default");
    let service = dwsync_ingest::start(cfg).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopper = stop.clone();
    let running = tokio::spawn(async move { service.run_until(stopper.cancelled_owned()).await });

    let handoff: StreamConsumer = read_committed_config().create().unwrap();
    handoff.subscribe(&[&handoff_topic]).unwrap();
    let mut reassembler = Reassembler::default();
    let mut files: BTreeMap<(i64, &'static str), Handed> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while files.len() < expected_rows.len() && Instant::now() < deadline {
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(5), handoff.recv()).await else { continue };
        let chunk = FileChunk::decode(msg.payload().unwrap()).unwrap();
        let Some(file) = reassembler.push(msg.offset(), chunk).unwrap() else { continue };
        let m = file.meta;
        let table = if m.table == Table::Metrics { "metrics" } else { "people" };
        let handed = Handed {
            rows: m.row_count,
            closed_at_ms: m.window_closed_at_ms,
            reason: m.close_reason,
            partitions: m.sources.iter().map(|s| s.partition).collect(),
        };
        let previous = files.insert((m.workspace_id, table), handed);
        assert!(previous.is_none(), "one file per workspace and table");
    }
    stop.cancel();
    running.await.unwrap().unwrap();

    assert_eq!(files.len(), expected_rows.len(), "every (workspace, table) handed off: {files:?}");
    for ((ws, table), f) in &files {
        assert_eq!(f.rows, expected_rows[&(*ws, *table)], "{ws} {table}: rows");
        assert_eq!(f.reason, "time", "{ws} {table}: closed by the clock");
        let (partition, phase) = if *ws == 101 { (0, 0) } else { (1, WINDOW_MS / 2) };
        assert_eq!(f.partitions, [partition], "{ws} {table}: source partition");
        // Closed right after its partition's grid point (the loop's flush takes a moment).
        let past_point = (f.closed_at_ms - phase).rem_euclid(WINDOW_MS);
        assert!(past_point < 1_500, "{ws} {table}: closed {past_point} ms after its point (phase {phase} ms)");
    }
    for ws in [101, 202] {
        assert_eq!(
            files[&(ws, "metrics")].closed_at_ms,
            files[&(ws, "people")].closed_at_ms,
            "workspace {ws}: both tables close as one sync"
        );
    }
}
