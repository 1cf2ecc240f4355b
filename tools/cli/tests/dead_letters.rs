//! `dwsync dead-letters replay` against the real broker: matching records go back to their source
//! topic with their key, payload and own headers (dwsync's headers removed); filters and
//! `--dry-run` hold.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use dwsync_cli::commands::dead_letters::{ReplayArgs, replay};
use dwsync_cli::kafka::KafkaArgs;
use dwsync_handoff::dead_letter as header;
use dwsync_tests::{create_topic, kafka_bootstrap, kafka_config, unique};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

async fn dead_letter(p: &FutureProducer, dlq: &str, source: &str, class: &str, payload: &str) {
    let headers = OwnedHeaders::new()
        .insert(Header { key: "content-type", value: Some("application/json") })
        .insert(Header { key: header::TOPIC, value: Some(source) })
        .insert(Header { key: header::ERROR_CLASS, value: Some(class) })
        .insert(Header { key: header::ERROR_REASON, value: Some("table metrics: …") });
    let record = FutureRecord::to(dlq).key("101").payload(payload).headers(headers);
    p.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
}

async fn read_all(topic: &str) -> Vec<(String, String, Vec<String>)> {
    let c: StreamConsumer =
        kafka_config().set("group.id", unique("read")).set("auto.offset.reset", "earliest").create().unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), c.recv()).await {
        let keys = m.headers().map(|hs| hs.iter().map(|h| h.key.to_owned()).collect()).unwrap_or_default();
        out.push((
            String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            keys,
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reinjects_matching_records_into_their_source_topic() {
    let (dlq, metrics, events) = (unique("dlq"), unique("metrics"), unique("events"));
    for t in [&dlq, &metrics, &events] {
        create_topic(t, 2).await;
    }
    let p: FutureProducer = kafka_config().create().unwrap();
    dead_letter(&p, &dlq, &metrics, "wrong_type", "m1").await;
    dead_letter(&p, &dlq, &metrics, "not_json", "m2").await;
    dead_letter(&p, &dlq, &events, "wrong_type", "e1").await;
    dead_letter(&p, &dlq, &metrics, "wrong_type", "m3").await;

    let args = |classes: &[&str], dry_run| ReplayArgs {
        kafka: KafkaArgs::with_bootstrap(kafka_bootstrap()),
        topic: dlq.clone(),
        classes: classes.iter().map(|c| (*c).to_owned()).collect(),
        source_topics: vec![],
        dry_run,
    };
    let counted = replay(&args(&["wrong_type"], true)).await.unwrap();
    assert_eq!(counted.replayed.values().sum::<u64>(), 3);
    assert_eq!(counted.skipped, 1);
    assert!(read_all(&metrics).await.is_empty(), "a dry run produces nothing");

    let done = replay(&args(&["wrong_type"], false)).await.unwrap();
    assert_eq!(done.replayed.get(&(metrics.clone(), "wrong_type".to_owned())), Some(&2));
    assert_eq!(done.replayed.get(&(events.clone(), "wrong_type".to_owned())), Some(&1));
    let mut got = read_all(&metrics).await;
    got.sort();
    assert_eq!(got.len(), 2);
    for (key, payload, headers) in &got {
        assert_eq!(key, "101");
        assert!(payload == "m1" || payload == "m3");
        assert_eq!(headers, &["content-type"], "dwsync headers removed, the record's own kept");
    }
    assert_eq!(read_all(&events).await.len(), 1);
}
