//! The real Kafka broker: produce, consume in a group, commit, restart, resume from the commit;
//! and a transaction that produces and sends consumer offsets, seen by `read_committed` readers.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use dwsync_tests::{create_topic, kafka_config, unique};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

fn consumer(group: &str, isolation: &str) -> StreamConsumer {
    kafka_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer")
}

/// Receives messages until `n` arrived or `quiet` passes without one; returns (key, payload).
async fn receive(c: &StreamConsumer, n: usize, quiet: Duration) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(quiet, c.recv()).await {
            Ok(Ok(m)) => out.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Ok(Err(e)) => panic!("consume: {e}"),
            Err(_) => break,
        }
    }
    out
}

async fn produce(producer: &FutureProducer, topic: &str, keys_payloads: impl IntoIterator<Item = (String, String)>) {
    for (k, p) in keys_payloads {
        producer
            .send(FutureRecord::to(topic).key(&k).payload(&p).partition(0), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

#[tokio::test]
async fn a_group_resumes_from_its_committed_offset_after_a_restart() {
    let topic = unique("kafka-resume");
    let group = unique("group");
    create_topic(&topic, 1).await;
    let producer: FutureProducer = kafka_config().create().unwrap();
    produce(&producer, &topic, (0..30).map(|i| (format!("ws-{}", i % 3), format!("record-{i}")))).await;

    // First run: read 20, commit them, stop.
    {
        let c = consumer(&group, "read_committed");
        c.subscribe(&[&topic]).unwrap();
        let got = receive(&c, 20, Duration::from_secs(20)).await;
        assert_eq!(got.len(), 20);
        assert_eq!(got[0].1, "record-0");
        assert_eq!(got[19].1, "record-19");
        c.commit_consumer_state(CommitMode::Sync).unwrap();
    }

    // Restart: the same group resumes at record 20 and sees each remaining record once.
    let c = consumer(&group, "read_committed");
    c.subscribe(&[&topic]).unwrap();
    let got = receive(&c, 100, Duration::from_secs(5)).await;
    let payloads: Vec<_> = got.iter().map(|(_, p)| p.clone()).collect();
    let expected: Vec<_> = (20..30).map(|i| format!("record-{i}")).collect();
    assert_eq!(payloads, expected);

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    assert_eq!(committed.find_partition(&topic, 0).unwrap().offset(), Offset::Offset(20));
}

#[tokio::test]
async fn a_transaction_commits_output_and_input_offsets_atomically() {
    let input = unique("kafka-tx-in");
    let output = unique("kafka-tx-out");
    let group = unique("tx-group");
    create_topic(&input, 1).await;
    create_topic(&output, 1).await;
    let plain: FutureProducer = kafka_config().create().unwrap();
    produce(&plain, &input, (0..10).map(|i| (format!("k{i}"), format!("in-{i}")))).await;

    // Consume the input in a group, as ingest does.
    let c = consumer(&group, "read_committed");
    c.subscribe(&[&input]).unwrap();
    assert_eq!(receive(&c, 10, Duration::from_secs(20)).await.len(), 10);

    let tx: FutureProducer =
        kafka_config().set("transactional.id", unique("tx")).set("enable.idempotence", "true").create().unwrap();
    let timeout = Duration::from_secs(30);
    tx.init_transactions(timeout).expect("init_transactions (needs transaction.state.log.* = 1 on one node)");

    // Transaction 1: outputs + the consumer's offsets, committed.
    tx.begin_transaction().unwrap();
    produce(&tx, &output, (0..10).map(|i| (format!("k{i}"), format!("committed-{i}")))).await;
    let position = c.position().unwrap();
    tx.send_offsets_to_transaction(&position, &c.group_metadata().unwrap(), timeout).unwrap();
    tx.commit_transaction(timeout).unwrap();

    // Transaction 2: aborted. Transaction 3: committed.
    tx.begin_transaction().unwrap();
    produce(&tx, &output, (0..5).map(|i| (format!("k{i}"), format!("aborted-{i}")))).await;
    tx.abort_transaction(timeout).unwrap();
    tx.begin_transaction().unwrap();
    produce(&tx, &output, [("k".to_owned(), "committed-last".to_owned())]).await;
    tx.commit_transaction(timeout).unwrap();

    // A read_committed reader sees the committed records only, in order.
    let committed_reader = consumer(&unique("reader"), "read_committed");
    committed_reader.subscribe(&[&output]).unwrap();
    let seen: Vec<_> =
        receive(&committed_reader, 100, Duration::from_secs(5)).await.into_iter().map(|(_, p)| p).collect();
    let mut expected: Vec<_> = (0..10).map(|i| format!("committed-{i}")).collect();
    expected.push("committed-last".into());
    assert_eq!(seen, expected);

    // The aborted records were really written: a read_uncommitted reader sees them.
    let dirty_reader = consumer(&unique("reader"), "read_uncommitted");
    dirty_reader.subscribe(&[&output]).unwrap();
    let dirty = receive(&dirty_reader, 100, Duration::from_secs(5)).await;
    let aborted = dirty.iter().filter(|(_, p)| p.starts_with("aborted-")).count();
    assert_eq!((dirty.len(), aborted), (16, 5));

    // The input offsets were committed by the transaction, for the group.
    let fresh = consumer(&group, "read_committed");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&input, 0);
    let offsets: BTreeMap<_, _> = fresh
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    assert_eq!(offsets[&0], Offset::Offset(10));
}
