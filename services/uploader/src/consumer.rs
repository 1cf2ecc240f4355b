//! The handoff consumer loop: read a chunk, reassemble, deliver each complete file, then commit
//! that partition's safe offset. One file at a time, so a partition never gets ahead of its
//! writes; commits happen only after the file's object exists (or was deliberately skipped).
//!
//! While a file's write is being retried the loop does not poll Kafka, so every partition of
//! this consumer waits (a later issue parks failing destinations). Past `max.poll.interval.ms`
//! (5 minutes by default) librdkafka leaves the group and the partitions move elsewhere; their
//! files are then written again under the same keys, which the conditional writes turn into
//! "already delivered".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dwsync_config::KafkaConfig;
use dwsync_handoff::{FileChunk, HandoffError};
use dwsync_proto::Message as _;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::HandoffConfig;
use crate::delivery::Delivery;
use crate::lag::HandoffConsumer;
use crate::metrics::Metrics;
use crate::offsets::PartitionState;
use crate::rebalance::{HandoffContext, Rebalanced};

/// Pause after a consumer error before reading again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Why the consumer could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The Kafka consumer could not be created.
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
}

/// Creates the handoff consumer (`read_committed`, manual commits, from the earliest offset
/// when the group has none) and subscribes it to the handoff topic.
pub fn subscribe(
    kafka: &KafkaConfig,
    handoff: &HandoffConfig,
    metrics: Arc<Metrics>,
) -> Result<Arc<HandoffConsumer>, ConsumerError> {
    let mut config = kafka.client_config("uploader");
    config
        .set("group.id", &handoff.group_id)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let context = HandoffContext::new(&handoff.topic, metrics);
    let consumer = HandoffConsumer::from_config_and_context(&config, context).map_err(ConsumerError::Create)?;
    consumer
        .subscribe(&[&handoff.topic])
        .map_err(|error| ConsumerError::Subscribe { topic: handoff.topic.clone(), error })?;
    Ok(Arc::new(consumer))
}

/// One handoff record, copied out of the consumer's buffer.
struct Record {
    partition: i32,
    offset: i64,
    chunk: Result<FileChunk, &'static str>,
}

/// The consumer loop and its per-partition state.
pub struct Pipeline {
    consumer: Arc<HandoffConsumer>,
    topic: String,
    partitions: HashMap<i32, PartitionState>,
    delivery: Delivery,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("topic", &self.topic).field("partitions", &self.partitions).finish()
    }
}

impl Pipeline {
    /// A loop over `consumer`'s records of `topic`, delivering with `delivery`, until `shutdown`.
    pub fn new(
        consumer: Arc<HandoffConsumer>,
        topic: &str,
        delivery: Delivery,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self { consumer, topic: topic.to_owned(), partitions: HashMap::new(), delivery, metrics, shutdown }
    }

    /// Runs until shutdown, then commits every partition's safe offset and leaves the group.
    pub async fn run(mut self) -> Result<(), ConsumerError> {
        let consumer = Arc::clone(&self.consumer);
        loop {
            let received = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                received = consumer.recv() => received.map(|m| Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    chunk: decode(m.payload()),
                }),
            };
            self.apply_rebalances();
            match received {
                Ok(record) => {
                    if !self.handle(record).await {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "Reading the handoff topic failed; retrying.");
                    tokio::select! {
                        () = self.shutdown.cancelled() => break,
                        () = tokio::time::sleep(ERROR_PAUSE) => {}
                    }
                }
            }
        }
        // The consumer closes in `stop`, on a blocking thread: no other strong reference may live.
        drop(consumer);
        self.stop().await;
        Ok(())
    }

    /// Applies the rebalances the context recorded: a revoked or newly assigned partition
    /// starts afresh (its incomplete files are read again from the committed offset).
    fn apply_rebalances(&mut self) {
        for rebalance in self.consumer.context().take_rebalances() {
            let (Rebalanced::Assigned(partitions) | Rebalanced::Revoked(partitions)) = rebalance;
            for partition in partitions {
                self.partitions.remove(&partition);
            }
        }
    }

    /// Deals with one record; `false` when shutdown interrupted a file's delivery.
    async fn handle(&mut self, record: Record) -> bool {
        let Record { partition, offset, chunk } = record;
        let state = self.partitions.entry(partition).or_default();
        let pushed = match chunk {
            Ok(chunk) => state.push(offset, chunk),
            Err(reason) => {
                self.metrics.bad_record(reason);
                tracing::warn!(partition, offset, reason, "Skipping a handoff record that is not a file chunk.");
                state.done(offset);
                self.commit(partition);
                return true;
            }
        };
        match pushed {
            Ok(None) => state.done(offset),
            Ok(Some(file)) => {
                if self.delivery.deliver(file).await.is_none() {
                    return false;
                }
                self.partitions.entry(partition).or_default().done(offset);
                self.commit(partition);
            }
            Err(error) => {
                self.metrics.bad_record(handoff_reason(&error));
                tracing::warn!(partition, offset, %error, "Skipping a handoff record that cannot be reassembled.");
                state.done(offset);
                self.commit(partition);
            }
        }
        true
    }

    /// Commits `partition`'s safe offset (asynchronously) if it moved.
    fn commit(&mut self, partition: i32) {
        let Some(state) = self.partitions.get_mut(&partition) else { return };
        let Some(offset) = state.to_commit() else { return };
        let mut list = TopicPartitionList::new();
        if let Err(error) = list.add_partition_offset(&self.topic, partition, Offset::Offset(offset)) {
            tracing::warn!(%error, partition, offset, "Cannot list an offset to commit.");
            return;
        }
        self.consumer.context().set_committable(partition, offset);
        match self.consumer.commit(&list, CommitMode::Async) {
            Ok(()) => {
                state.committed(offset);
                tracing::debug!(partition, offset, "Committing the handoff offset.");
            }
            Err(error) => {
                self.metrics.commit_failed();
                tracing::warn!(%error, partition, offset, "Cannot commit the handoff offset; the next commit retries.");
            }
        }
    }

    /// Commits every partition's safe offset synchronously, then closes the consumer (leaving
    /// the group) on a blocking thread.
    async fn stop(self) {
        let consumer = self.consumer;
        let closed = tokio::task::spawn_blocking(move || {
            let offsets = consumer.context().committable();
            if offsets.count() > 0 {
                match consumer.commit(&offsets, CommitMode::Sync) {
                    Ok(()) => tracing::info!("Committed the handoff offsets at shutdown."),
                    Err(error) => tracing::warn!(%error, "Cannot commit the handoff offsets at shutdown."),
                }
            }
            drop(consumer);
        })
        .await;
        if let Err(error) = closed {
            tracing::warn!(%error, "Closing the handoff consumer failed.");
        }
    }
}

/// Decodes a record's payload as a [`FileChunk`], or says why it is not one.
fn decode(payload: Option<&[u8]>) -> Result<FileChunk, &'static str> {
    let payload = payload.ok_or("empty")?;
    FileChunk::decode(payload).map_err(|_| "not_protobuf")
}

/// The `reason` label of a record that failed reassembly.
fn handoff_reason(error: &HandoffError) -> &'static str {
    match error {
        HandoffError::UnknownTable { .. } => "unknown_table",
        HandoffError::SchemaVersion { .. } => "schema_version",
        HandoffError::OutOfOrder { .. } => "out_of_order",
        HandoffError::Checksum { .. } => "checksum",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_that_are_not_chunks_are_named() {
        assert_eq!(decode(None).err(), Some("empty"));
        assert_eq!(decode(Some(b"\xff\xff\xff")).err(), Some("not_protobuf"));
        let chunk = FileChunk { file_id: "f".into(), chunk_count: 1, ..FileChunk::default() };
        assert_eq!(decode(Some(&chunk.encode_to_vec())), Ok(chunk));
    }
}
