//! Bounded memory: the ingest, a process on the real broker, reads a backlog several times
//! larger than its window budget (1-minute windows, so only the budget makes it flush while it
//! reads; the last windows close on the minute) and its
//! peak RSS (`VmHWM` in `/proc/<pid>/status`) stays under the budget plus a fixed overhead, while
//! every record is handed off.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::metric;
use dwsync_contract::{Encoding, Table};
use dwsync_loadgen::Generator;
use dwsync_proto::Message as _;
use dwsync_proto::internal::FileChunk;
use dwsync_tests::services::ServiceProcess;
use dwsync_tests::{create_topic, kafka_bootstrap, kafka_config, read_committed_config, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const MIB: u64 = 1 << 20;
/// The windows' budget.
const BUDGET: u64 = 16 * MIB;
/// What the process needs besides its windows, measured in a debug build: the runtime, the
/// librdkafka clients and their queues (`fetch_queue_kbytes` = 4 MiB here), one flush's encoded
/// files and the Arrow builders' spare capacity. Documented in docs/RELIABILITY.md.
const OVERHEAD: u64 = 112 * MIB;
/// The backlog: at least five times the budget.
const BACKLOG: u64 = 5 * BUDGET;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_stays_within_its_memory_budget_on_a_large_backlog() {
    let dir = std::env::temp_dir().join(unique("dwsync-memory"));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = format!("{}.", unique("src"));
    let (handoff, dlq) = (unique("handoff"), unique("dlq"));
    let table = Table::DeliveryContent;
    let topic = format!("{prefix}{}", table.name());
    create_topic(&topic, 4).await;
    create_topic(&handoff, 4).await;
    create_topic(&dlq, 1).await;

    // The backlog first: delivery content (bodies of several KB) for 40 workspaces.
    let producer: FutureProducer = kafka_config().set("linger.ms", "20").create().unwrap();
    let mut generator = Generator::new(5);
    let (mut bytes, mut records, mut pending) = (0u64, 0u64, Vec::new());
    while bytes < BACKLOG {
        let ws = 5001 + (records % 40) as i64;
        let record = generator.record(table, ws, records);
        let payload = record.encoded(Encoding::Json).to_vec();
        bytes += payload.len() as u64;
        records += 1;
        let key = ws.to_string();
        pending.push(
            producer.send_result(FutureRecord::to(&topic).key(&key).payload(&payload)).map_err(|(e, _)| e).unwrap(),
        );
        if pending.len() >= 2_000 {
            for p in pending.drain(..) {
                let _ = p.await.unwrap().map_err(|(e, _)| e).unwrap();
            }
        }
    }
    for p in pending {
        let _ = p.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    println!("backlog: {records} records, {} MiB of JSON", bytes / MIB);

    let group = unique("ingest");
    let config = dir.join("ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbootstrap_servers = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[ingest]\ngroup_id = \"{group}\"\n\
             topic_prefix = \"{prefix}\"\ntables = [\"{}\"]\nhandoff_topic = \"{handoff}\"\ndead_letter_topic = \"{dlq}\"\n\
             fetch_queue_kbytes = 4096\n[window]\nduration_ms = 60000\nmax_bytes = 1073741824\nmemory_budget_bytes = {BUDGET}\n",
            kafka_bootstrap(),
            table.name()
        ),
    )
    .unwrap();
    let mut ingest = ServiceProcess::start(
        "dwsync-ingest",
        "ingest",
        &config,
        &[("DWSYNC_INGEST__INSTANCE_ID", unique("mem"))],
        &dir,
    );

    // Wait until the group has committed the end of every partition (everything handed off).
    let watcher: BaseConsumer = kafka_config().set("group.id", &group).create().unwrap();
    let ends: HashMap<i32, i64> =
        (0..4).map(|p| (p, watcher.fetch_watermarks(&topic, p, Duration::from_secs(10)).unwrap().1)).collect();
    let started = Instant::now();
    let mut peak_kib = 0;
    let total: i64 = ends.values().sum();
    // (share of the backlog handed off, RSS in KiB) while it is read.
    let mut samples: Vec<(f64, u64)> = Vec::new();
    loop {
        peak_kib = peak_kib.max(ingest.status_kib("VmHWM").unwrap_or(0));
        let mut tpl = TopicPartitionList::new();
        for p in 0..4 {
            tpl.add_partition(&topic, p);
        }
        let committed = watcher.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        let done_offsets: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        samples.push((done_offsets as f64 / total.max(1) as f64, ingest.status_kib("VmRSS").unwrap_or(0)));
        if done_offsets >= total {
            break;
        }
        assert!(ingest.is_running(), "ingest exited:\n{}", ingest.log_tail(30));
        assert!(started.elapsed() < Duration::from_secs(300), "backlog not consumed in 5 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    peak_kib = peak_kib.max(ingest.status_kib("VmHWM").unwrap_or(0));
    let memory_closes =
        metric(&ingest, "dwsync_ingest_windows_closed_total{", "reason=\"memory\"").await.unwrap_or(0.0);
    ingest.stop();

    // Every record is in a handed-off file, and the budget made the files (not the 15-min grid).
    let rows = handed_off_rows(&handoff);
    assert_eq!(rows, records, "rows in handed-off files");
    assert!(memory_closes >= 4.0, "the budget closed windows ({memory_closes})");
    let peak = peak_kib * 1024;
    println!(
        "memory: backlog {} MiB consumed in {:.1} s; peak RSS {} MiB with a {} MiB window budget (bound {} MiB)",
        bytes / MIB,
        took.as_secs_f64(),
        peak / MIB,
        BUDGET / MIB,
        (BUDGET + OVERHEAD) / MIB
    );
    assert!(peak < BUDGET + OVERHEAD, "peak RSS {} MiB over {} MiB", peak / MIB, (BUDGET + OVERHEAD) / MIB);
    // No growth with the backlog: the RSS while reading the second half is no higher than while
    // reading the first half, give or take two budgets (the allocator keeps some high-water
    // marks); buffering the backlog itself would add about 40 MiB between the halves.
    let max_rss = |range: std::ops::Range<f64>| {
        samples.iter().filter(|(share, _)| range.contains(share)).map(|(_, kib)| kib * 1024).max().unwrap_or(0)
    };
    let (first, second) = (max_rss(0.05..0.5), max_rss(0.5..0.95));
    println!("memory: RSS reading the first half {} MiB, the second half {} MiB", first / MIB, second / MIB);
    assert!(first > 0 && second > 0, "samples in both halves: {samples:?}");
    assert!(second <= first + 2 * BUDGET, "RSS grew with the backlog: {} MiB then {} MiB", first / MIB, second / MIB);
}

/// Rows of the complete files on the handoff topic (read_committed), from each file's first chunk.
fn handed_off_rows(handoff: &str) -> u64 {
    let consumer: BaseConsumer = read_committed_config().create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition_offset(handoff, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    // Everything is committed already: read until the topic stays quiet.
    let mut rows = 0;
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(5) {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else { continue };
        let msg = msg.unwrap();
        last = Instant::now();
        if let Some(chunk) = msg.payload().and_then(|p| FileChunk::decode(p).ok())
            && chunk.chunk_index == 0
        {
            rows += chunk.row_count;
        }
    }
    rows
}
