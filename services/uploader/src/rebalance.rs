//! The handoff consumer's context: librdkafka's logs into `tracing`, rebalances recorded for
//! the consumer loop, and a synchronous commit of each revoked partition's safe offset before
//! the partition goes. The callbacks never panic, spawn or wait on anything but that commit.
//!
//! The group uses the cooperative-sticky assignor: a rebalance revokes only the partitions that
//! move and assigns only the new ones (rdkafka's default `rebalance` assigns and unassigns
//! incrementally), so [`Rebalanced`] names exactly the partitions that start afresh; the others
//! keep their files, lanes and writes. A commit the group refuses is never retried in a loop: a
//! zombie's (its generation gone: `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`) loses its partitions
//! with it, and their next owner reads from the last accepted commit; a fenced static member
//! (`FENCED_INSTANCE_ID`, fatal) stops.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{Offset, TopicPartitionList};

use crate::metrics::Metrics;

/// A change of the consumer's assignment, for the loop to apply to its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalanced {
    /// These handoff partitions were assigned: start them afresh from the committed offsets.
    Assigned(Vec<i32>),
    /// These handoff partitions were taken away: forget their incomplete files.
    Revoked(Vec<i32>),
}

#[derive(Debug, Default)]
struct Shared {
    rebalances: Vec<Rebalanced>,
    committable: BTreeMap<i32, i64>,
}

/// The context of the handoff consumer.
#[derive(Debug)]
pub struct HandoffContext {
    topic: String,
    shared: Mutex<Shared>,
    metrics: Arc<Metrics>,
    leave: bool,
}

impl HandoffContext {
    /// A context for a consumer of `topic` that leaves the group when it stops if `leave`.
    pub fn new(topic: &str, metrics: Arc<Metrics>, leave: bool) -> Self {
        Self { topic: topic.to_owned(), shared: Mutex::default(), metrics, leave }
    }

    /// Whether the consumer leaves the group when the uploader stops (a dynamic member, or a
    /// static one with `handoff.leave_group_on_shutdown`).
    pub fn leaves(&self) -> bool {
        self.leave
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // Every update is a single insert, remove or swap, so a poisoned state is still whole.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rebalances since the last call, oldest first.
    pub fn take_rebalances(&self) -> Vec<Rebalanced> {
        std::mem::take(&mut self.shared().rebalances)
    }

    /// Records the offset that is safe to commit for `partition` (committed on revoke).
    pub fn set_committable(&self, partition: i32, offset: i64) {
        self.shared().committable.insert(partition, offset);
    }

    /// The safe offsets of all partitions, to commit at shutdown.
    pub fn committable(&self) -> TopicPartitionList {
        let shared = self.shared();
        self.offsets(shared.committable.iter().map(|(p, o)| (*p, *o)))
    }

    fn offsets(&self, offsets: impl Iterator<Item = (i32, i64)>) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in offsets {
            if let Err(error) = list.add_partition_offset(&self.topic, partition, Offset::Offset(offset)) {
                tracing::warn!(%error, partition, offset, "Cannot list an offset to commit.");
            }
        }
        list
    }

    fn partitions(&self, list: &TopicPartitionList) -> Vec<i32> {
        list.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect()
    }
}

impl ClientContext for HandoffContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // Connection failures arrive both here and in `error` below; `error` reports them.
        dwsync_telemetry::kafka::log_librdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for HandoffContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let partitions = self.partitions(list);
                let offsets = {
                    let mut shared = self.shared();
                    let revoked: Vec<_> =
                        partitions.iter().filter_map(|p| shared.committable.remove(p).map(|o| (*p, o))).collect();
                    self.offsets(revoked.into_iter())
                };
                if offsets.count() > 0 && !consumer.assignment_lost() {
                    match consumer.commit(&offsets, CommitMode::Sync) {
                        Ok(()) => tracing::info!(?partitions, "Committed the revoked partitions' offsets."),
                        Err(error) => tracing::warn!(%error, ?partitions, "Cannot commit the revoked partitions."),
                    }
                }
                tracing::info!(topic = %self.topic, ?partitions, "Handoff partitions revoked.");
                self.shared().rebalances.push(Rebalanced::Revoked(partitions));
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "Rebalance error."),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = self.partitions(list);
            tracing::info!(topic = %self.topic, ?partitions, "Handoff partitions assigned.");
            self.shared().rebalances.push(Rebalanced::Assigned(partitions));
        }
    }

    /// Called for commits whose result librdkafka reports: not the loop's asynchronous ones
    /// (`rd_kafka_commit` without a reply queue reports nothing, rdkafka sets no
    /// `offset_commit_cb`), which the loop therefore commits again after every rebalance and
    /// every `RECOMMIT_EVERY` (`consumer.rs`).
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(error) = result {
            self.metrics.commit_failed();
            let offsets: Vec<_> = offsets.elements().iter().map(|e| (e.partition(), e.offset())).collect();
            tracing::warn!(%error, ?offsets, "Committing handoff offsets failed; the next commit retries.");
        }
    }
}
