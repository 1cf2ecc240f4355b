//! The group lag sampler (`dwsync_telemetry::group_lag`) on the real broker: committed offsets
//! against the end of the topic, a stall making the service unready, and the transaction
//! markers a `read_committed` group never reads past (which must not count as lag).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dwsync_config::KafkaConfig;
use dwsync_telemetry::Health;
use dwsync_telemetry::group_lag::{COMPONENT, GroupLag, GroupLagSampler, GroupLagSettings};
use dwsync_tests::{create_topic, kafka_bootstrap, kafka_config, unique};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

fn kafka() -> KafkaConfig {
    KafkaConfig { bootstrap_servers: kafka_bootstrap(), ..KafkaConfig::default() }
}

fn settings(group: &str, topic: &str, stall_after: Duration) -> GroupLagSettings {
    GroupLagSettings {
        group_id: group.into(),
        topics: vec![topic.into()],
        interval: Duration::from_millis(300),
        stall_after,
        timeout: Duration::from_secs(5),
    }
}

fn producer(transactional: bool) -> ThreadedProducer<DefaultProducerContext> {
    let mut config = kafka_config();
    if transactional {
        let _ = config.set("transactional.id", unique("lag-tx")).set("enable.idempotence", "true");
    }
    let producer: ThreadedProducer<DefaultProducerContext> = config.create().expect("producer");
    if transactional {
        producer.init_transactions(TIMEOUT).expect("init_transactions");
    }
    producer
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, partition: i32, n: usize) {
    for i in 0..n {
        let payload = format!("record-{i}");
        producer
            .send(BaseRecord::<(), _>::to(topic).partition(partition).payload(&payload))
            .map_err(|(e, _)| e)
            .expect("queued");
    }
    producer.flush(Timeout::After(TIMEOUT)).expect("delivered");
}

/// Commits `offset` for partition 0 of `topic` in `group`, as a member-less client may.
fn commit(group: &str, topic: &str, offset: i64) {
    let c: BaseConsumer = kafka_config().set("group.id", group).set("enable.auto.commit", "false").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset)).unwrap();
    c.commit(&tpl, CommitMode::Sync).expect("commit");
}

/// Reads partition 0 of `topic` `read_committed` in `group` until `quiet` passes without a
/// record, then commits the offset after the last record read (as the uploader does).
fn consume_to_the_end_and_commit(group: &str, topic: &str) -> (usize, i64) {
    let c: BaseConsumer = kafka_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let (mut read, mut last) = (0, -1);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(2) {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("read");
            read += 1;
            last = m.offset();
            quiet_since = Instant::now();
        }
    }
    assert!(last >= 0, "read nothing");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(last + 1)).unwrap();
    c.commit(&tpl, CommitMode::Sync).expect("commit");
    (read, last + 1)
}

fn high(topic: &str) -> i64 {
    let c: BaseConsumer = kafka_config().create().unwrap();
    c.fetch_watermarks(topic, 0, TIMEOUT).expect("watermarks").1
}

/// Samples until `what` holds (at most 20 s), returning that sample.
fn sample_until(sampler: &mut GroupLagSampler, what: impl Fn(&GroupLag) -> bool) -> GroupLag {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lag = sampler.sample().expect("sample");
        if what(&lag) {
            return lag;
        }
        assert!(Instant::now() < deadline, "never matched; last sample: {lag:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_behind_shows_its_lag_and_turns_unready_until_it_commits() {
    let (topic, group) = (unique("lag-behind"), unique("lag-group"));
    create_topic(&topic, 1).await;
    let p = producer(false);
    send(&p, &topic, 0, 10);
    commit(&group, &topic, 4);

    // One sample at a time: the lag is the difference, the clock runs while nothing commits.
    let mut sampler =
        GroupLagSampler::new(&kafka(), "test-lag", settings(&group, &topic, Duration::from_secs(60))).expect("sampler");
    let first = sampler.sample().expect("sample");
    assert_eq!(first.partitions.get(&(topic.clone(), 0)), Some(&6), "{first:?}");
    std::thread::sleep(Duration::from_millis(1200));
    let later = sampler.sample().expect("sample");
    assert_eq!(later.total(), 6);
    assert!(later.since_commit >= Duration::from_secs(1), "the stall clock runs: {later:?}");
    // More input, no commit: the lag grows.
    send(&p, &topic, 0, 5);
    let grown = sample_until(&mut sampler, |l| l.total() == 11);
    assert!(grown.since_commit >= later.since_commit, "no commit: the clock did not restart");

    // The running sampler: unready with the reason after stall_after, ready after a commit.
    let health = Health::new();
    let published: Arc<Mutex<GroupLag>> = Arc::default();
    let shutdown = CancellationToken::new();
    let sink = Arc::clone(&published);
    GroupLagSampler::new(&kafka(), "test-lag", settings(&group, &topic, Duration::from_secs(2)))
        .expect("sampler")
        .spawn(health.clone(), shutdown.clone(), move |lag| *sink.lock().unwrap() = lag.clone())
        .expect("spawned");
    let reason = wait_for("the service to turn unready", || health.readiness().err()).await;
    assert!(reason.starts_with(&format!("{COMPONENT}: no commit for ")), "{reason}");
    assert!(reason.ends_with(" s with 11 records pending"), "{reason}");
    assert!(published.lock().unwrap().seconds_since_commit() > 2.0);

    commit(&group, &topic, 15);
    wait_for("ready again after the commit", || health.readiness().ok()).await;
    let lag = published.lock().unwrap().clone();
    assert_eq!((lag.total(), lag.since_commit, lag.stalled), (0, Duration::ZERO, false), "{lag:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_group_that_never_committed_counts_from_the_low_watermark() {
    let (topic, group) = (unique("lag-new"), unique("lag-group"));
    create_topic(&topic, 2).await;
    let p = producer(false);
    send(&p, &topic, 0, 7);
    send(&p, &topic, 1, 3);
    let mut sampler =
        GroupLagSampler::new(&kafka(), "test-lag", settings(&group, &topic, Duration::from_secs(60))).expect("sampler");
    let lag = sampler.sample().expect("sample");
    assert_eq!(lag.partitions, [((topic.clone(), 0), 7), ((topic.clone(), 1), 3)].into_iter().collect());
}

#[tokio::test]
async fn commit_markers_after_the_last_record_are_no_lag() {
    let (topic, group) = (unique("lag-markers"), unique("lag-group"));
    create_topic(&topic, 1).await;
    let p = producer(true);
    for _ in 0..3 {
        p.begin_transaction().unwrap();
        send(&p, &topic, 0, 4);
        p.commit_transaction(TIMEOUT).unwrap();
    }
    let (read, committed) = consume_to_the_end_and_commit(&group, &topic);
    assert_eq!(read, 12);
    let end = high(&topic);
    assert!(end > committed, "a commit marker after the last record: high {end}, committed {committed}");

    // A second topic of the group, probed in the same sample, with 3 records pending.
    let other = unique("lag-markers-other");
    create_topic(&other, 1).await;
    send(&producer(false), &other, 0, 3);
    let mut both = settings(&group, &topic, Duration::from_secs(60));
    both.topics.push(other.clone());
    let mut sampler = GroupLagSampler::new(&kafka(), "test-lag", both).expect("sampler");
    let lag = sampler.sample().expect("sample");
    assert_eq!(
        lag.partitions,
        [((topic.clone(), 0), 0), ((other.clone(), 0), 3)].into_iter().collect(),
        "high − committed would say {}",
        end - committed
    );
    // And it stays so (the probe's outcome is kept while nothing changes).
    let lag = sampler.sample().expect("sample");
    assert_eq!(lag.partitions[&(topic.clone(), 0)], 0);

    // A new committed transaction after the marker is lag again: its 2 records and marker
    // (written by the coordinator after the commit returns: waited for).
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, 2);
    p.commit_transaction(TIMEOUT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while high(&topic) < end + 3 {
        assert!(Instant::now() < deadline, "the commit marker never came");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lag = sample_until(&mut sampler, |l| l.partitions[&(topic.clone(), 0)] > 0);
    assert_eq!(lag.partitions[&(topic.clone(), 0)], end + 3 - committed, "{lag:?}");
}

#[tokio::test]
async fn a_trailing_aborted_transaction_is_no_lag() {
    let (topic, group) = (unique("lag-aborted"), unique("lag-group"));
    create_topic(&topic, 1).await;
    let p = producer(true);
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, 5);
    p.commit_transaction(TIMEOUT).unwrap();
    p.begin_transaction().unwrap();
    send(&p, &topic, 0, 3);
    p.abort_transaction(TIMEOUT).unwrap();
    let (read, committed) = consume_to_the_end_and_commit(&group, &topic);
    assert_eq!(read, 5);
    let end = high(&topic);
    assert!(end >= committed + 4, "three aborted records and markers: high {end}, committed {committed}");

    let mut sampler =
        GroupLagSampler::new(&kafka(), "test-lag", settings(&group, &topic, Duration::from_secs(60))).expect("sampler");
    let lag = sampler.sample().expect("sample");
    assert_eq!(lag.total(), 0, "high − committed would say {}: {lag:?}", end - committed);
}
