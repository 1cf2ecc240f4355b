//! Where each partition read since its last commit stands: where it would be read again from,
//! what its commit commits, and when it is due to commit.

use std::collections::{BTreeMap, BTreeSet};

use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::sources::Sources;
use crate::window::PartitionKey;

/// A partition read since its last commit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unflushed {
    /// First offset read since the last commit: where it is read again from if its buffered
    /// records are dropped.
    pub(super) from: i64,
    /// Next offset to read (what a commit of the partition commits).
    next: i64,
    /// When it is due to close its windows and commit (its grid point after its first such
    /// record: [`Windows::next_close`](crate::window::Windows::next_close); later if it shares
    /// windows with partitions due later: [`Windows::due_now`](crate::window::Windows::due_now)).
    due: i64,
    /// When its first record since its last commit was read (epoch ms).
    opened: i64,
}

/// The partitions read since their last commit.
#[derive(Debug, Default)]
pub(super) struct Positions(BTreeMap<PartitionKey, Unflushed>);

impl Positions {
    /// Notes that `offset` of `partition` was read at `now`; a partition's first record since
    /// its last commit makes it due at `due()`.
    pub(super) fn read(&mut self, partition: PartitionKey, offset: i64, now: i64, due: impl FnOnce() -> i64) {
        let _ = self.0.entry(partition).and_modify(|u| u.next = offset + 1).or_insert_with(|| Unflushed {
            from: offset,
            next: offset + 1,
            due: due(),
            opened: now,
        });
    }

    /// When the next partition is due, if any is.
    pub(super) fn next_due(&self) -> Option<i64> {
        self.0.values().map(|u| u.due).min()
    }

    /// The partitions due at `now`.
    pub(super) fn due(&self, now: i64) -> BTreeSet<PartitionKey> {
        self.0.iter().filter(|(_, u)| u.due <= now).map(|(p, _)| *p).collect()
    }

    /// When a partition is due and when it was first read since its last commit.
    pub(super) fn due_and_opened(&self, partition: PartitionKey) -> Option<(i64, i64)> {
        self.0.get(&partition).map(|u| (u.due, u.opened))
    }

    /// Makes `partition` due at `at` instead.
    pub(super) fn postpone(&mut self, partition: PartitionKey, at: i64) {
        if let Some(u) = self.0.get_mut(&partition) {
            u.due = at;
        }
    }

    /// Every partition read since its last commit.
    pub(super) fn partitions(&self) -> BTreeSet<PartitionKey> {
        self.0.keys().copied().collect()
    }

    /// The offsets a commit of `partitions` commits: the next to read of each one read.
    pub(super) fn offsets(
        &self,
        partitions: &BTreeSet<PartitionKey>,
        sources: &Sources<'_>,
    ) -> Result<TopicPartitionList, KafkaError> {
        let mut offsets = TopicPartitionList::new();
        for p in partitions {
            if let Some(u) = self.0.get(p) {
                offsets.add_partition_offset(&sources.topic(*p).topic, p.1, Offset::Offset(u.next))?;
            }
        }
        Ok(offsets)
    }

    /// Forgets a partition (committed, or its records dropped): where it stood, if it was read.
    pub(super) fn remove(&mut self, partition: PartitionKey) -> Option<Unflushed> {
        self.0.remove(&partition)
    }

    /// Forgets every partition.
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }
}
