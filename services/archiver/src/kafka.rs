//! The handoff consumer: its own group, `read_committed`, manual commits, bounded read-ahead;
//! its context records rebalances for the loop (callbacks never wait on anything), and where a
//! partition's next batch starts is asked of the group's committed offsets.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dwsync_config::KafkaConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::HandoffSource;

/// The handoff consumer as the loop owns it.
pub type HandoffConsumer = StreamConsumer<ArchiverContext>;

/// Longest wait for the group's committed offsets or a partition's watermarks.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A change of the assignment, for the loop to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalanced {
    /// These partitions were assigned.
    Assigned(Vec<i32>),
    /// These partitions were taken away: their open batches are dropped, uncommitted.
    Revoked(Vec<i32>),
}

/// Why the consumer could not start or a query failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaStepError {
    /// The consumer could not be created.
    #[error("creating the handoff consumer: {0}")]
    Create(KafkaError),
    /// The handoff topic could not be subscribed to.
    #[error("subscribing to the handoff topic {topic}: {error}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// The committed offsets or watermarks could not be read.
    #[error("reading where partition {partition} starts: {error}")]
    Start {
        /// The partition.
        partition: i32,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// The blocking query's thread failed.
    #[error("the query thread failed: {0}")]
    Join(String),
}

/// The consumer's context: librdkafka's logs into `tracing`, rebalances recorded.
#[derive(Debug)]
pub struct ArchiverContext {
    topic: String,
    rebalances: Mutex<Vec<Rebalanced>>,
}

impl ArchiverContext {
    fn rebalances(&self) -> MutexGuard<'_, Vec<Rebalanced>> {
        // Every update is one push or one take: a poisoned list is still whole.
        self.rebalances.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rebalances since the last call, oldest first.
    pub fn take_rebalances(&self) -> Vec<Rebalanced> {
        std::mem::take(&mut *self.rebalances())
    }

    fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect()
    }
}

impl ClientContext for ArchiverContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        dwsync_telemetry::kafka::log_librdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for ArchiverContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let partitions = self.partitions(list);
                tracing::info!(topic = %self.topic, ?partitions, "Handoff partitions revoked; their open batches are dropped.");
                self.rebalances().push(Rebalanced::Revoked(partitions));
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "Rebalance error."),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = self.partitions(list);
            tracing::info!(topic = %self.topic, ?partitions, "Handoff partitions assigned.");
            self.rebalances().push(Rebalanced::Assigned(partitions));
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(error) = result {
            let offsets: Vec<_> = offsets.elements().iter().map(|e| (e.partition(), e.offset())).collect();
            // Harmless: the batch's objects exist, a restart finds them and commits again.
            tracing::warn!(%error, ?offsets, "Committing archive offsets failed.");
        }
    }
}

/// Creates the consumer (`read_committed`, manual commits, from the earliest offset when the
/// group has none, read-ahead bounded by `handoff.fetch_queue_kbytes`) and subscribes it.
pub fn subscribe(kafka: &KafkaConfig, handoff: &HandoffSource) -> Result<Arc<HandoffConsumer>, KafkaStepError> {
    let mut config = kafka.client_config("archiver");
    config
        .set("group.id", &handoff.group_id)
        .set("isolation.level", "read_committed")
        .set("queued.max.messages.kbytes", handoff.fetch_queue_kbytes.max(1).to_string())
        .set("fetch.queue.backoff.ms", "10")
        .set("session.timeout.ms", handoff.session_timeout_ms.to_string())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let context = ArchiverContext { topic: handoff.topic.clone(), rebalances: Mutex::default() };
    let consumer = HandoffConsumer::from_config_and_context(&config, context).map_err(KafkaStepError::Create)?;
    consumer
        .subscribe(&[&handoff.topic])
        .map_err(|error| KafkaStepError::Subscribe { topic: handoff.topic.clone(), error })?;
    Ok(Arc::new(consumer))
}

/// Where `partition`'s next batch starts: the group's committed offset, or the partition's
/// first offset when the group has none (it then reads from the earliest).
pub async fn start_offset(consumer: &Arc<HandoffConsumer>, topic: &str, partition: i32) -> Result<i64, KafkaStepError> {
    let (consumer, topic) = (Arc::clone(consumer), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let fail = |error| KafkaStepError::Start { partition, error };
        let mut list = TopicPartitionList::new();
        list.add_partition(&topic, partition);
        let committed = consumer.committed_offsets(list, QUERY_TIMEOUT).map_err(fail)?;
        let offset = committed.find_partition(&topic, partition).map(|e| e.offset());
        if let Some(Offset::Offset(offset)) = offset {
            return Ok(offset);
        }
        let (low, _high) = consumer.fetch_watermarks(&topic, partition, QUERY_TIMEOUT).map_err(fail)?;
        Ok(low)
    })
    .await
    .map_err(|e| KafkaStepError::Join(e.to_string()))?
}

/// Commits `offset` of `partition` (asynchronously: a lost commit only makes a restart find the
/// batch's objects already written).
pub fn commit(consumer: &HandoffConsumer, topic: &str, partition: i32, offset: i64) {
    let mut list = TopicPartitionList::new();
    if let Err(error) = list.add_partition_offset(topic, partition, Offset::Offset(offset)) {
        tracing::warn!(%error, partition, offset, "Cannot list an offset to commit.");
        return;
    }
    if let Err(error) = consumer.commit(&list, CommitMode::Async) {
        tracing::warn!(%error, partition, offset, "Committing an archive offset failed.");
    }
}
