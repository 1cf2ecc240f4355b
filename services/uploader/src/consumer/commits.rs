//! The commit side of the loop: a partition's safe offset is noted as it moves and committed
//! with the others at most every `handoff.commit_interval_ms`; shutdown commits every partition
//! synchronously before leaving the group.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::partitions::Partitions;
use crate::lag::HandoffConsumer;
use crate::metrics::Metrics;

/// How long a stopping uploader waits for its consumer to leave the group.
const LEAVE_WITHIN: Duration = Duration::from_secs(5);

/// Schedules the commits of the partitions' safe offsets.
pub(super) struct Commits {
    consumer: Arc<HandoffConsumer>,
    topic: String,
    /// Partitions whose safe offset moved since the last commit.
    uncommitted: BTreeSet<i32>,
    /// How often offsets are committed at most (`handoff.commit_interval_ms`; zero: at once).
    interval: Duration,
    metrics: Arc<Metrics>,
}

impl Commits {
    /// Commits `consumer`'s offsets of `topic` at most every `interval`; failures are counted in
    /// `metrics`.
    pub(super) fn new(consumer: Arc<HandoffConsumer>, topic: &str, interval: Duration, metrics: Arc<Metrics>) -> Self {
        Self { consumer, topic: topic.to_owned(), uncommitted: BTreeSet::new(), interval, metrics }
    }

    /// The handoff topic.
    pub(super) fn topic(&self) -> &str {
        &self.topic
    }

    /// How often [`commit_moved`](Self::commit_moved) is due.
    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether some safe offset moved since the last commit.
    pub(super) fn has_moved(&self) -> bool {
        !self.uncommitted.is_empty()
    }

    /// Notes that `partition`'s safe offset may have moved: it is committed with the next
    /// [`commit_moved`](Self::commit_moved), at once when the interval is zero. The rebalance
    /// callback and shutdown commit it from the context whatever the interval.
    pub(super) fn note(&mut self, partitions: &mut Partitions, partition: i32) {
        let Some(offset) = partitions.to_commit(partition) else { return };
        self.consumer.context().set_committable(partition, offset);
        let _ = self.uncommitted.insert(partition);
        if self.interval.is_zero() {
            self.commit_moved(partitions);
        }
    }

    /// Forgets `partition` (revoked: its safe offset was committed in the rebalance callback).
    pub(super) fn forget(&mut self, partition: i32) {
        let _ = self.uncommitted.remove(&partition);
    }

    /// Commits (asynchronously, in one request) the safe offsets that moved since the last
    /// commit.
    pub(super) fn commit_moved(&mut self, partitions: &mut Partitions) {
        let mut list = TopicPartitionList::new();
        let mut offsets = Vec::new();
        for partition in std::mem::take(&mut self.uncommitted) {
            let Some(offset) = partitions.to_commit(partition) else { continue };
            if let Err(error) = list.add_partition_offset(&self.topic, partition, Offset::Offset(offset)) {
                tracing::warn!(%error, partition, offset, "Cannot list an offset to commit.");
                continue;
            }
            offsets.push((partition, offset));
        }
        if offsets.is_empty() {
            return;
        }
        match self.consumer.commit(&list, CommitMode::Async) {
            Ok(()) => {
                for (partition, offset) in offsets {
                    partitions.committed(partition, offset);
                }
                tracing::debug!(?list, "Committing the handoff offsets.");
            }
            Err(error) => {
                self.metrics.commit_failed();
                // Listed again: the next tick retries them.
                self.uncommitted.extend(offsets.iter().map(|(p, _)| *p));
                tracing::warn!(%error, "Cannot commit the handoff offsets; the next commit retries.");
            }
        }
    }

    /// Lists every partition with a safe offset to be committed again at the next tick. The
    /// loop's commits are asynchronous and librdkafka does not report their outcome; one sent
    /// while the group rebalances fails (`ILLEGAL_GENERATION` once the rebalance ends) and, with
    /// the cooperative assignor, the partition stays here with nothing newer to commit. So after
    /// each rebalance, and every [`RECOMMIT_EVERY`](super::RECOMMIT_EVERY), the safe offsets are
    /// committed again (one request; committing an offset twice changes nothing).
    pub(super) fn commit_again(&mut self, partitions: &mut Partitions) {
        self.uncommitted.extend(partitions.forget_commits());
    }

    /// Commits every partition's safe offset synchronously, then closes the consumer on a
    /// blocking thread (no other reference to it may live). A dynamic member leaves the group; a
    /// static one only with `handoff.leave_group_on_shutdown` (librdkafka closes it without a
    /// `LeaveGroup`, KIP-345, so the group keeps its partitions for the session timeout, for its
    /// restart). Leaving ([`leave_group`](dwsync_telemetry::kafka::leave_group)) unsubscribes and
    /// serves the revocation before the close, which makes librdkafka send the `LeaveGroup`, for
    /// a static member too, and for a cooperative member that holds no partitions yet (one that
    /// just joined), which it would otherwise close silently.
    pub(super) async fn close(self) {
        let consumer = self.consumer;
        let committing = Arc::clone(&consumer);
        let committed = tokio::task::spawn_blocking(move || {
            let offsets = committing.context().committable();
            if offsets.count() > 0 {
                match committing.commit(&offsets, CommitMode::Sync) {
                    Ok(()) => tracing::info!("Committed the handoff offsets at shutdown."),
                    Err(error) => tracing::warn!(%error, "Cannot commit the handoff offsets at shutdown."),
                }
            }
        })
        .await;
        if consumer.context().leaves() {
            dwsync_telemetry::kafka::leave_group(&consumer, LEAVE_WITHIN).await;
        }
        let closed = tokio::task::spawn_blocking(move || drop(consumer)).await;
        if let Err(error) = committed.and(closed) {
            tracing::warn!(%error, "Closing the handoff consumer failed.");
        }
    }
}
