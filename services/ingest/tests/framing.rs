//! Schema Registry framing on the real broker: records framed exactly as Confluent's
//! serializers frame them (magic byte 0, big-endian schema id, and for protobuf the zig-zag
//! varint message-index array, where the single byte `0` means the first message) are decoded
//! with the v5 contract; broken framing and schema ids outside the allow-list go to the
//! dead-letter topic with their class (and the id in its headers).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use bytes::Bytes;
use dwsync_contract::framing::frame as framed;
use dwsync_contract::{Encoding, Framing, Table};
use dwsync_handoff::{FileChunk, Reassembler};
use dwsync_ingest::TopicOverride;
use dwsync_loadgen::Generator;
use dwsync_proto::Message as _;
use dwsync_tests::{create_topic, kafka_config, unique};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

const WS: i64 = 4242;

fn reader(group: &str) -> StreamConsumer {
    kafka_config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

async fn send(p: &FutureProducer, topic: &str, payload: &[u8]) {
    let record = FutureRecord::to(topic).key("4242").payload(payload);
    p.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_records_are_decoded_and_broken_framing_is_dead_lettered() {
    let prefix = format!("{}.", unique("src"));
    let (handoff_topic, dlq_topic) = (unique("handoff"), unique("dlq"));
    let (metrics, events) = (format!("{prefix}metrics"), format!("{prefix}events"));
    create_topic(&metrics, 1).await;
    create_topic(&events, 1).await;
    create_topic(&handoff_topic, 1).await;
    create_topic(&dlq_topic, 1).await;
    let producer: FutureProducer = kafka_config().create().unwrap();
    let mut generator = Generator::new(5);
    let mut expected: BTreeMap<Table, BTreeSet<String>> = BTreeMap::new();

    // metrics: protobuf, always framed, schema id 7 only.
    for n in 0..4 {
        let record = generator.record(Table::Metrics, WS, n);
        // The first message (one zero byte), and a message nested in the file ([2, 1]).
        let indexes: &[i64] = if n == 3 { &[2, 1] } else { &[0] };
        send(&producer, &metrics, &framed(7, Some(indexes), record.encoded(Encoding::Protobuf))).await;
        let _ = expected.entry(Table::Metrics).or_default().insert(record.id);
    }
    let other = generator.record(Table::Metrics, WS, 10);
    send(&producer, &metrics, &framed(8, Some(&[0]), other.encoded(Encoding::Protobuf))).await;
    let plain = generator.record(Table::Metrics, WS, 11);
    send(&producer, &metrics, plain.encoded(Encoding::Protobuf)).await;
    send(&producer, &metrics, &[0, 0, 0, 0, 7, 0x80]).await;

    // events: JSON, framed or not (detected).
    for n in 0..6 {
        let record = generator.record(Table::Events, WS, n);
        let json = record.encoded(Encoding::Json);
        let value = if n % 2 == 0 { framed(3, None, json) } else { json.to_vec() };
        send(&producer, &events, &value).await;
        let _ = expected.entry(Table::Events).or_default().insert(record.id);
    }
    send(&producer, &events, &[0, 0, 1]).await;

    let mut cfg = common::config(&prefix, &["metrics", "events"], &handoff_topic, &dlq_topic);
    let metrics_topic = TopicOverride {
        encoding: Some(Encoding::Protobuf),
        framing: Some(Framing::SchemaRegistry),
        schema_ids: Some(vec![7]),
        ..TopicOverride::default()
    };
    let _ = cfg.ingest.topics.insert("metrics".into(), metrics_topic);
    let events_topic = TopicOverride { framing: Some(Framing::Detect), ..TopicOverride::default() };
    let _ = cfg.ingest.topics.insert("events".into(), events_topic);
    cfg.window.duration_ms = 2000;
    let service = dwsync_ingest::start(cfg).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopper = stop.clone();
    let running = tokio::spawn(async move { service.run_until(stopper.cancelled_owned()).await });

    // The rows of the framed and detected records, each once.
    let handoff = reader(&unique("check"));
    handoff.subscribe(&[&handoff_topic]).unwrap();
    let mut seen: BTreeMap<Table, Vec<String>> = BTreeMap::new();
    let mut reassembler = Reassembler::new();
    let total: usize = expected.values().map(BTreeSet::len).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.values().map(Vec::len).sum::<usize>() < total && Instant::now() < deadline {
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(5), handoff.recv()).await else { continue };
        let chunk = FileChunk::decode(msg.payload().unwrap()).unwrap();
        let Some(file) = reassembler.push(msg.offset(), chunk).unwrap() else { continue };
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file.bytes)).unwrap().build().unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>();
            seen.entry(file.meta.table).or_default().extend(ids.iter().map(|s| s.unwrap().to_owned()));
        }
    }
    for (table, ids) in &expected {
        let got = seen.get(table).cloned().unwrap_or_default();
        assert_eq!(got.len(), ids.len(), "{table}: each row once ({got:?})");
        assert_eq!(&got.into_iter().collect::<BTreeSet<_>>(), ids, "{table}: rows");
    }

    // The refused ones, with their class and, where read, the schema id.
    let mut letters: Vec<(String, Option<String>, String)> = common::dead_letters(&dlq_topic, 4)
        .await
        .into_iter()
        .map(|l| {
            (l["dwsync.error.class"].clone(), l.get("dwsync.schema.id").cloned(), l["dwsync.error.reason"].clone())
        })
        .collect();
    letters.sort();
    let classes: Vec<(&str, Option<&str>)> = letters.iter().map(|(c, id, _)| (c.as_str(), id.as_deref())).collect();
    assert_eq!(
        classes,
        [("bad_framing", None), ("bad_framing", None), ("bad_framing", None), ("schema_id_not_allowed", Some("8"))],
        "{letters:?}"
    );
    let reasons: Vec<&str> = letters.iter().map(|(_, _, r)| r.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("magic byte 0x0a")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("message indexes")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("too short")), "{reasons:?}");

    stop.cancel();
    running.await.unwrap().unwrap();
}
