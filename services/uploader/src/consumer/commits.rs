//! The commit side of the consumer loop: a partition's safe offset is noted as it moves and
//! committed with the others at most every `handoff.commit_interval_ms`; shutdown commits
//! every partition synchronously before leaving the group.

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::Pipeline;
use crate::offsets::PartitionState;

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

    /// Commits every partition's safe offset synchronously, then closes the consumer (leaving
    /// the group) on a blocking thread.
    pub(super) async fn stop(self) {
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
