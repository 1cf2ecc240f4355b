//! What the loop holds between commits: the open windows, the dead letters and where each
//! partition read since its last commit stands — taken out together when partitions commit,
//! dropped together when they are read again. Their gauges are published every
//! [`BUFFERS_EVERY`]. (The consumer lag is the group's, sampled apart from the loop:
//! [`crate::lag`].)

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dwsync_contract::Row;
use rdkafka::TopicPartitionList;
use rdkafka::error::KafkaError;

use super::positions::Positions;
use super::sources::Sources;
use crate::config::WindowConfig;
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::metrics;
use crate::window::{CloseReason, ClosedWindow, PartitionKey, WindowKey, Windows};

/// How often the loop publishes its buffers' size.
const BUFFERS_EVERY: Duration = Duration::from_secs(15);
/// Dead letters held in memory before a flush is forced.
const DEAD_LETTER_BYTES: usize = 16 << 20;

/// Windows closed for a flush, with the partitions it commits.
pub(super) struct Closing {
    /// The partitions committed.
    pub(super) partitions: BTreeSet<PartitionKey>,
    /// Their windows.
    pub(super) windows: Vec<ClosedWindow>,
}

/// The records read since their partitions' last commit.
pub(super) struct Buffers {
    windows: Windows,
    dead: DeadLetters,
    positions: Positions,
}

/// A window whose close closes its partitions' windows: which one, and why.
pub(super) type Trigger = (WindowKey, CloseReason);

impl Buffers {
    /// Nothing buffered.
    pub(super) fn new(config: WindowConfig) -> Self {
        Self { windows: Windows::new(config), dead: DeadLetters::default(), positions: Positions::default() }
    }

    /// Notes that `offset` of `partition` was read at `now` (before its row or dead letter is
    /// added).
    pub(super) fn read(&mut self, partition: PartitionKey, offset: i64, now: i64) {
        let windows = &self.windows;
        self.positions.read(partition, offset, now, || windows.next_close(partition.1, now));
    }

    /// Adds a row to its window: the window that filled, if one did.
    pub(super) fn add(
        &mut self,
        key: WindowKey,
        row: &Row<'_>,
        partition: PartitionKey,
        offset: i64,
        now: i64,
    ) -> Option<Trigger> {
        self.windows.add(key, row, partition, offset, now)
    }

    /// The largest window, if the buffers exceed the memory budget.
    pub(super) fn over_budget(&self) -> Option<Trigger> {
        self.windows.over_budget()
    }

    /// Holds a dead letter until its partition commits.
    pub(super) fn dead_letter(&mut self, partition: PartitionKey, letter: DeadLetter) {
        self.dead.push(partition, letter);
    }

    /// Whether the dead letters' memory is full (every partition is then flushed).
    pub(super) fn dead_letters_full(&self) -> bool {
        self.dead.bytes() >= DEAD_LETTER_BYTES
    }

    /// When the loop next has something to close: the next partition due, at the latest the
    /// next UTC grid point after `now` (where an idle loop publishes its tallies).
    pub(super) fn next_due(&self, now: i64) -> i64 {
        self.positions.next_due().unwrap_or(i64::MAX).min(self.windows.next_boundary(now))
    }

    /// Closes `trigger`'s window with every window sharing a partition with it.
    pub(super) fn close_around(&mut self, trigger: Trigger) -> Closing {
        let partitions = self.windows.partitions_to_flush(trigger.0);
        let windows = self.windows.close_partitions(&partitions, Some(trigger));
        Closing { partitions, windows }
    }

    /// Closes the windows of the partitions whose grid point came (with their neighbours); the
    /// partitions sharing windows with partitions due later wait for them.
    pub(super) fn close_due(&mut self, now: i64) -> Closing {
        let due = self.positions.due(now);
        let positions = &self.positions;
        let (due, waiting) = self.windows.due_now(&due, |p| positions.due_and_opened(p), now);
        for (p, at) in waiting {
            self.positions.postpone(p, at);
        }
        let (partitions, windows) = self.windows.close_due(&due);
        Closing { partitions, windows }
    }

    /// Closes every window, for a commit of every partition read.
    pub(super) fn close_all(&mut self) -> Closing {
        let partitions = self.positions.partitions();
        let windows = self.windows.close_all();
        Closing { partitions, windows }
    }

    /// Takes the dead letters of `partitions`, for their commit.
    pub(super) fn take_dead_letters(&mut self, partitions: &BTreeSet<PartitionKey>) -> Vec<DeadLetter> {
        self.dead.take(partitions)
    }

    /// The offsets a commit of `partitions` commits.
    pub(super) fn offsets(
        &self,
        partitions: &BTreeSet<PartitionKey>,
        sources: &Sources<'_>,
    ) -> Result<TopicPartitionList, KafkaError> {
        self.positions.offsets(partitions, sources)
    }

    /// Forgets `partitions`, whose commit is on its way: they are read on from here.
    pub(super) fn committing(&mut self, partitions: &BTreeSet<PartitionKey>) {
        for p in partitions {
            let _ = self.positions.remove(*p);
        }
    }

    /// Drops the windows and dead letters holding records of `revoked`, with every window
    /// sharing a partition with those (the flush closure). Returns how many windows were
    /// dropped, and each dropped partition that was read since its last commit with its first
    /// such offset.
    pub(super) fn drop_revoked(&mut self, revoked: &BTreeSet<PartitionKey>) -> (usize, Vec<(PartitionKey, i64)>) {
        let mut dropped = revoked.clone();
        for key in self.windows.keys_touching(revoked) {
            dropped.extend(self.windows.partitions_to_flush(key));
        }
        let windows = self.windows.close_partitions(&dropped, None).len();
        let _ = self.dead.take(&dropped);
        let read = dropped.iter().filter_map(|p| self.positions.remove(*p).map(|u| (*p, u.from))).collect();
        (windows, read)
    }

    /// Drops everything.
    pub(super) fn clear(&mut self) {
        self.windows.clear();
        self.dead.clear();
        self.positions.clear();
    }

    /// How many windows are open.
    pub(super) fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Publishes the buffers' size.
    pub(super) fn measure(&self) {
        metrics::buffers(self.windows.footprint(), self.windows.len());
    }
}

/// When the loop next publishes its buffers' size.
pub(super) struct BuffersGauge {
    next: Instant,
}

impl BuffersGauge {
    /// Due at once.
    pub(super) fn new() -> Self {
        Self { next: Instant::now() }
    }

    /// Publishes the buffers' size if [`BUFFERS_EVERY`] has passed since it last did.
    pub(super) fn tick(&mut self, buffers: &Buffers) {
        if Instant::now() >= self.next {
            buffers.measure();
            self.next = Instant::now() + BUFFERS_EVERY;
        }
    }
}
