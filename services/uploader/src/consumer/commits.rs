//! The commit side of the consumer loop: a partition's safe offset is noted as it moves and
//! committed with the others at most every `handoff.commit_interval_ms`; shutdown commits
//! every partition synchronously before leaving the group.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::Pipeline;
use crate::offsets::PartitionState;

/// How long a stopping uploader waits for its consumer to leave the group.
const LEAVE_WITHIN: Duration = Duration::from_secs(5);

impl Pipeline {
    /// Notes that `partition`'s safe offset may have moved: it is committed with the next
    /// [`commit_moved`](Self::commit_moved), at once when `commit_interval` is zero. The
    /// rebalance callback and shutdown commit it from the context whatever the interval.
    pub(super) fn commit(&mut self, partition: i32) {
        let Some(state) = self.partitions.get(&partition) else { return };
        let Some(offset) = state.to_commit() else { return };
        self.consumer.context().set_committable(partition, offset);
        let _ = self.uncommitted.insert(partition);
        if self.commit_interval.is_zero() {
            self.commit_moved();
        }
    }

    /// Commits (asynchronously, in one request) the safe offsets that moved since the last
    /// commit.
    pub(super) fn commit_moved(&mut self) {
        let mut list = TopicPartitionList::new();
        let mut offsets = Vec::new();
        for partition in std::mem::take(&mut self.uncommitted) {
            let Some(offset) = self.partitions.get(&partition).and_then(PartitionState::to_commit) else { continue };
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
                    if let Some(state) = self.partitions.get_mut(&partition) {
                        state.committed(offset);
                    }
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
    pub(super) fn commit_again(&mut self) {
        for (partition, state) in &mut self.partitions {
            state.forget_commit();
            if state.to_commit().is_some() {
                let _ = self.uncommitted.insert(*partition);
            }
        }
    }

    /// Commits every partition's safe offset synchronously, then closes the consumer on a
    /// blocking thread. A dynamic member leaves the group; a static one only with
    /// `handoff.leave_group_on_shutdown` (librdkafka closes it without a `LeaveGroup`, KIP-345,
    /// so the group keeps its partitions for the session timeout, for its restart). Leaving
    /// ([`leave_group`](dwsync_telemetry::kafka::leave_group)) unsubscribes and serves the
    /// revocation before the close, which makes librdkafka send the `LeaveGroup`, for a static
    /// member too, and for a cooperative member that holds no partitions yet (one that just
    /// joined), which it would otherwise close silently.
    pub(super) async fn stop(self) {
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
