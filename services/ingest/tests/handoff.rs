//! ingest against the real broker: JSON and protobuf records of several tables and workspaces
//! (plus malformed ones) become Parquet files on the handoff topic — each workspace's rows in its
//! own files, every record exactly once — and the malformed ones land in the dead-letter topic.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use bytes::Bytes;
use dwsync_contract::{Encoding, Table, arrow_schema};
use dwsync_handoff::{FileChunk, FileKind, Reassembler};
use dwsync_ingest::TopicOverride;
use dwsync_proto::{Message as _, Timestamp, v5};
use dwsync_tests::{create_topic, kafka_config, unique};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

const WORKSPACES: [i64; 3] = [101, 202, 303];

async fn send(p: &FutureProducer, topic: &str, key: &str, payload: &[u8], content_type: Option<&str>) {
    let mut record = FutureRecord::to(topic).key(key).payload(payload);
    if let Some(ct) = content_type {
        record = record.headers(OwnedHeaders::new().insert(Header { key: "content-type", value: Some(ct) }));
    }
    p.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

fn reader(group: &str) -> StreamConsumer {
    kafka_config()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

fn read_parquet(bytes: Vec<u8>) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_become_per_workspace_parquet_files_exactly_once() {
    let prefix = format!("{}.", unique("src"));
    let handoff_topic = unique("handoff");
    let dlq_topic = unique("dlq");
    create_topic(&format!("{prefix}metrics"), 3).await;
    create_topic(&format!("{prefix}events"), 2).await;
    create_topic(&format!("{prefix}people"), 1).await;
    create_topic(&handoff_topic, 2).await;
    // The dead-letter topic is left for ingest to create.

    let producer: FutureProducer = kafka_config().create().unwrap();
    let mut expected: BTreeMap<(Table, i64), BTreeSet<String>> = BTreeMap::new();
    for &ws in &WORKSPACES {
        for n in 0..40 {
            let id = format!("met-{ws}-{n}");
            let json = format!(
                r#"{{"event_id":"{id}","workspace_id":{ws},"delivery_id":"d{n}","metric":"opened","created_at":"2026-11-29T01:00:{:02}Z","seq_num":{n},"proxied":false,"prefetched":false,"machine":{},"user_agent":"Mozilla/5.0 ü"}}"#,
                n % 60,
                n % 2 == 0
            );
            send(&producer, &format!("{prefix}metrics"), &ws.to_string(), json.as_bytes(), None).await;
            let _ = expected.entry((Table::Metrics, ws)).or_default().insert(id);
        }
        // One protobuf metric on the JSON topic, marked by its content-type header.
        let id = format!("met-{ws}-pb");
        let m = v5::Metric {
            event_id: id.clone(),
            workspace_id: ws,
            delivery_id: "d".into(),
            metric: "clicked".into(),
            created_at: Some(Timestamp { seconds: 1_795_000_000, nanos: 0 }),
            seq_num: 1,
            link_url: Some("https://example.com".into()),
            ..Default::default()
        };
        send(
            &producer,
            &format!("{prefix}metrics"),
            &ws.to_string(),
            &m.encode_to_vec(),
            Some("application/x-protobuf"),
        )
        .await;
        let _ = expected.entry((Table::Metrics, ws)).or_default().insert(id);
        for n in 0..15 {
            let id = format!("evt-{ws}-{n}");
            let e = v5::Event {
                workspace_id: ws,
                event_id: id.clone(),
                internal_customer_id: format!("cio_{n}"),
                name: "purchase".into(),
                r#type: "event".into(),
                data: "{}".into(),
                timestamp: Some(Timestamp { seconds: 1_795_000_000 + n, nanos: 5_000_000 }),
                processed_at: Some(Timestamp { seconds: 1_795_000_100, nanos: 0 }),
                sources: vec!["Customer.io Data Pipelines via JavaScript".into()],
                source_uas: vec![],
            };
            send(&producer, &format!("{prefix}events"), &ws.to_string(), &e.encode_to_vec(), None).await;
            let _ = expected.entry((Table::Events, ws)).or_default().insert(id);
        }
        for n in 0..6 {
            let id = format!("cio-{ws}-{n}");
            let updated = if n < 4 { 1000 } else { 2000 }; // 4 new people, 2 changes
            let json = format!(
                r#"{{"workspace_id":{ws},"customer_id":"c{n}","internal_customer_id":"{id}","created_at":1000,"updated_at":{updated},"email_addr":"p{n}@example.com"}}"#
            );
            send(&producer, &format!("{prefix}people"), &ws.to_string(), json.as_bytes(), None).await;
            let _ = expected.entry((Table::People, ws)).or_default().insert(id);
        }
    }
    let bad: [&[u8]; 3] = [
        b"not json at all",
        br#"{"event_id":"x","workspace_id":101,"metric":"sent","created_at":1,"seq_num":1,"proxied":false,"prefetched":false,"machine":false}"#,
        br#"{"event_id":"y","workspace_id":"101","delivery_id":"d","metric":"sent","created_at":1,"seq_num":1,"proxied":false,"prefetched":false,"machine":false}"#,
    ];
    for b in bad {
        send(&producer, &format!("{prefix}metrics"), "101", b, None).await;
    }
    // A valid record above ingest.max_record_bytes (set to 4000 below).
    let oversize = format!(
        r#"{{"event_id":"big","workspace_id":101,"delivery_id":"d","metric":"sent","created_at":1,"seq_num":1,"proxied":false,"prefetched":false,"machine":false,"user_agent":"{}"}}"#,
        "x".repeat(5000)
    );
    send(&producer, &format!("{prefix}metrics"), "101", oversize.as_bytes(), None).await;

    let mut cfg = common::config(&prefix, &["metrics", "events", "people"], &handoff_topic, &dlq_topic);
    let _ = cfg
        .ingest
        .topics
        .insert("events".into(), TopicOverride { encoding: Some(Encoding::Protobuf), ..TopicOverride::default() });
    cfg.ingest.chunk_bytes = 4096; // several chunks per file
    cfg.ingest.max_record_bytes = 4000;
    cfg.window.duration_ms = 2000;
    let service = dwsync_ingest::start(cfg).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopper = stop.clone();
    let running = tokio::spawn(async move { service.run_until(stopper.cancelled_owned()).await });

    // Read the handoff topic like the uploader: reassemble and check every file.
    let handoff = reader(&unique("check"));
    handoff.subscribe(&[&handoff_topic]).unwrap();
    let total: usize = expected.values().map(BTreeSet::len).sum();
    let mut seen: BTreeMap<(Table, i64), Vec<String>> = BTreeMap::new();
    let mut reassemblers: BTreeMap<i32, Reassembler> = BTreeMap::new();
    let mut people_kinds = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.values().map(Vec::len).sum::<usize>() < total && Instant::now() < deadline {
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(5), handoff.recv()).await else { continue };
        let chunk = FileChunk::decode(msg.payload().unwrap()).unwrap();
        assert_eq!(msg.key(), Some(chunk.workspace_id.to_string().as_bytes()), "handoff keyed by workspace");
        let Some(file) = reassemblers.entry(msg.partition()).or_default().push(msg.offset(), chunk).unwrap() else {
            continue;
        };
        let batch = read_parquet(file.bytes);
        let table = file.meta.table;
        assert_eq!(batch.schema(), arrow_schema(table), "{table} schema");
        assert_eq!(batch.num_rows() as u64, file.meta.row_count);
        let ws_col = batch.column_by_name("workspace_id").unwrap().as_primitive::<Int64Type>();
        assert!(ws_col.iter().all(|w| w == Some(file.meta.workspace_id)), "only its workspace's rows");
        let id_col = match table {
            Table::Metrics | Table::Events => "event_id",
            _ => "internal_customer_id",
        };
        let ids = batch.column_by_name(id_col).unwrap().as_string::<i32>();
        seen.entry((table, file.meta.workspace_id)).or_default().extend(ids.iter().map(|s| s.unwrap().to_owned()));
        if table == Table::People {
            let c = batch.column_by_name("created_at").unwrap().as_primitive::<TimestampMillisecondType>();
            let u = batch.column_by_name("updated_at").unwrap().as_primitive::<TimestampMillisecondType>();
            let all_new = (0..batch.num_rows()).all(|i| c.value(i) == u.value(i));
            let none_new = (0..batch.num_rows()).all(|i| c.value(i) != u.value(i));
            match file.meta.kind {
                FileKind::New => assert!(all_new),
                FileKind::Changes => assert!(none_new),
                FileKind::Unspecified => panic!("people file without kind"),
            }
            *people_kinds.entry(file.meta.kind).or_insert(0) += batch.num_rows();
        }
    }
    for (key, ids) in &expected {
        let got = seen.get(key).cloned().unwrap_or_default();
        let unique_ids: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(got.len(), unique_ids.len(), "{key:?}: duplicates");
        assert_eq!(&unique_ids, ids, "{key:?}: rows");
    }
    assert_eq!(people_kinds.get(&FileKind::New), Some(&12));
    assert_eq!(people_kinds.get(&FileKind::Changes), Some(&6));

    // The malformed records are in the dead-letter topic with their reason and source position.
    let mut classes = Vec::new();
    for letter in common::dead_letters(&dlq_topic, 4).await {
        assert_eq!(letter["dwsync.source.topic"], format!("{prefix}metrics"));
        assert!(letter["dwsync.source.offset"].parse::<i64>().is_ok());
        assert!(letter["dwsync.error.reason"].starts_with("table metrics"));
        classes.push(letter["dwsync.error.class"].clone());
    }
    classes.sort();
    assert_eq!(classes, ["missing_field", "not_json", "oversize_record", "wrong_type"]);

    stop.cancel();
    running.await.unwrap().unwrap();
}

/// A handoff chunk that cannot fit the handoff topic would fail its transaction on every try:
/// ingest refuses to start, naming the setting, the topic and what would fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_too_large_for_the_handoff_topic_are_refused_at_start() {
    let handoff_topic = unique("handoff");
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> = kafka_config().create().unwrap();
    let topic = rdkafka::admin::NewTopic::new(&handoff_topic, 1, rdkafka::admin::TopicReplication::Fixed(1))
        .set("max.message.bytes", "1048576");
    let options = rdkafka::admin::AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for created in admin.create_topics([&topic], &options).await.unwrap() {
        let _ = created.unwrap();
    }
    let mut cfg = common::config(&format!("{}.", unique("src")), &["metrics"], &handoff_topic, &unique("dlq"));
    cfg.ingest.chunk_bytes = 2 << 20;
    let service = dwsync_ingest::start(cfg).await.unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(60), service.run_until(std::future::pending()))
        .await
        .expect("ingest stops by itself");
    let error = stopped.expect_err("ingest refuses to run").to_string();
    assert!(error.contains("ingest.chunk_bytes = 2097152"), "{error}");
    assert!(error.contains(&handoff_topic) && error.contains("max.message.bytes = 1048576"), "{error}");
}

/// The broker refuses a dead letter after ingest started (an operator lowered the dead-letter
/// topic's `max.message.bytes`): the transaction aborts and is read again in place, this time
/// writing the record's reference only; the valid records around it are handed off, and the
/// loop never restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_the_broker_refuses_is_written_as_a_reference() {
    dwsync_telemetry::testing::init_once();
    let prefix = format!("{}.", unique("src"));
    let (handoff_topic, dlq_topic) = (unique("handoff"), unique("dlq"));
    create_topic(&format!("{prefix}metrics"), 1).await;
    create_topic(&handoff_topic, 1).await;
    create_topic(&dlq_topic, 1).await;
    let mut cfg = common::config(&prefix, &["metrics"], &handoff_topic, &dlq_topic);
    cfg.window.duration_ms = 2000;
    let service = dwsync_ingest::start(cfg).await.unwrap();
    let addr = service.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopper = stop.clone();
    let running = tokio::spawn(async move { service.run_until(stopper.cancelled_owned()).await });
    // Ready: the loop started and read the topics' limits (the dead-letter topic's as created).
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("http://{addr}/readyz")).await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(Instant::now() < deadline, "ingest never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Now the dead-letter topic takes nothing above 1,500 bytes.
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> = kafka_config().create().unwrap();
    let options = rdkafka::admin::AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let lowered = rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(&dlq_topic))
        .set("max.message.bytes", "1500");
    for altered in admin.alter_configs([&lowered], &options).await.unwrap() {
        let _ = altered.unwrap();
    }
    let producer: FutureProducer = kafka_config().create().unwrap();
    let topic = format!("{prefix}metrics");
    let valid = |id: &str| {
        format!(
            r#"{{"event_id":"{id}","workspace_id":101,"delivery_id":"d","metric":"sent","created_at":1,"seq_num":1,"proxied":false,"prefetched":false,"machine":false}}"#
        )
    };
    send(&producer, &topic, "101", valid("before").as_bytes(), None).await;
    send(&producer, &topic, "101", "not json ".repeat(600).as_bytes(), None).await;
    send(&producer, &topic, "101", valid("after").as_bytes(), None).await;

    // Both valid records are handed off.
    let handoff = reader(&unique("check"));
    handoff.subscribe(&[&handoff_topic]).unwrap();
    let mut reassembler = Reassembler::new();
    let mut ids = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids.len() < 2 && Instant::now() < deadline {
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(5), handoff.recv()).await else { continue };
        let chunk = FileChunk::decode(msg.payload().unwrap()).unwrap();
        if let Some(file) = reassembler.push(msg.offset(), chunk).unwrap() {
            let batch = read_parquet(file.bytes);
            let col = batch.column_by_name("event_id").unwrap().as_string::<i32>();
            for id in col.iter().flatten() {
                assert!(ids.insert(id.to_owned()), "{id} handed off twice");
            }
        }
    }
    assert_eq!(ids, BTreeSet::from(["after".to_owned(), "before".to_owned()]));
    // The bad record's reference, once.
    let dlq = reader(&unique("dlq-check"));
    dlq.subscribe(&[&dlq_topic]).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(30), dlq.recv()).await.expect("a dead letter").unwrap();
    let get = |name: &str| {
        msg.headers()
            .and_then(|hs| hs.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(get("dwsync.value.omitted").as_deref(), Some("true"));
    assert_eq!(get("dwsync.source.offset").as_deref(), Some("1"));
    assert_eq!(get("dwsync.error.class").as_deref(), Some("not_json"));
    assert_eq!(msg.payload(), None);
    assert!(tokio::time::timeout(Duration::from_secs(3), dlq.recv()).await.is_err(), "one dead letter only");
    assert!(!running.is_finished(), "ingest still runs");
    stop.cancel();
    running.await.unwrap().unwrap();
}
