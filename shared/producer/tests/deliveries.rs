//! The producer against the real broker: deliveries report where each record went, the records
//! are there to read, a bad partition is an error, and the polling thread ends with the producer.

use std::time::{Duration, Instant};

use dwsync_producer::{Delivered, DeliveryProducer};
use dwsync_tests::{create_topic, kafka_config, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Threads of this process called `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

/// Waits up to 10 s until `name` threads number `n`; the number then.
async fn settle(name: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_named(name) != n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    threads_named(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_say_where_records_went_and_the_thread_ends_with_the_producer() {
    let before = threads_named("kafka-delivery");
    let topic = unique("producer");
    create_topic(&topic, 2).await;
    let producer = DeliveryProducer::new(&kafka_config()).expect("producer");
    // A new thread names itself once it runs.
    assert_eq!(settle("kafka-delivery", before + 1).await, before + 1, "one polling thread per producer");

    // Ten records to partition 1 at once, then one more through `send`.
    let payloads: Vec<String> = (0..11).map(|i| format!("record {i}")).collect();
    let mut pending = Vec::new();
    for payload in &payloads[..10] {
        let record = FutureRecord::<str, str>::to(&topic).partition(1).key("k").payload(payload);
        pending.push(producer.send_result(record).map_err(|(e, _)| e).expect("enqueued"));
    }
    for (i, delivery) in pending.into_iter().enumerate() {
        assert_eq!(delivery.await.expect("delivered"), Delivered { partition: 1, offset: i as i64 });
    }
    let last = FutureRecord::<str, str>::to(&topic).partition(1).payload(&payloads[10]);
    let clone = producer.clone();
    assert_eq!(clone.send(last, None).await.expect("delivered"), Delivered { partition: 1, offset: 10 });

    // A partition the topic does not have is an error, not a hang.
    let nowhere = FutureRecord::<str, str>::to(&topic).partition(7).payload("lost");
    assert!(producer.send(nowhere, Some(Duration::from_secs(5))).await.is_err());

    // The records are in the topic, in order.
    let consumer: BaseConsumer = kafka_config().set("group.id", unique("reader")).create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 1, Offset::Beginning).expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.len() < payloads.len() && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("message");
            read.push(String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf-8"));
        }
    }
    assert_eq!(read, payloads);

    // Dropping the last handle ends the polling thread (it polls a second at a time).
    drop(producer);
    assert_eq!(threads_named("kafka-delivery"), before + 1, "a clone still holds the producer");
    drop(clone);
    assert_eq!(settle("kafka-delivery", before).await, before, "the polling thread ended");
}
