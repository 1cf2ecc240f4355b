//! The pending and stall arithmetic, apart from Kafka: which partitions need a read, and a
//! sample turned into a [`GroupLag`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{GroupLag, TopicPartition};

/// What the broker says of one partition in one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Offsets {
    /// The group's committed offset, if it committed one.
    pub(super) committed: Option<i64>,
    /// The low watermark (first offset still stored).
    pub(super) low: i64,
    /// The high watermark (offset of the next record, markers included).
    pub(super) high: i64,
}

impl Offsets {
    /// Where the group reads the partition from: its committed offset, or the low watermark
    /// if it never committed or its offset was deleted.
    fn start(&self) -> i64 {
        self.committed.map_or(self.low, |c| c.max(self.low))
    }
}

/// What a `read_committed` read from a partition's start offset found first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probed {
    /// A record: records are pending.
    Record,
    /// The end of the partition: nothing is pending (only markers or aborted records).
    End,
}

/// A probe's outcome, valid while the partition starts at `at` (and, for `End`, ends at `high`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Record { at: i64 },
    End { at: i64, high: i64 },
}

#[derive(Debug, Clone, Default)]
struct PartitionState {
    committed: Option<i64>,
    /// Since when records have been pending without a commit.
    waiting_since: Option<Instant>,
    known: Option<Known>,
    lag: i64,
}

/// The pending and stall arithmetic, apart from Kafka: [`to_probe`](Self::to_probe) says which
/// partitions need a read, [`update`](Self::update) turns a sample into a [`GroupLag`].
#[derive(Debug)]
pub(super) struct Tracker {
    stall_after: Duration,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    sampled: bool,
}

/// How one partition's state is decided in a sample.
enum Decision {
    /// Nothing to read, or the committed offset moved: no probe needed.
    Settled(bool),
    /// Only a read from this offset can tell.
    Probe(i64),
}

impl Tracker {
    pub(super) fn new(stall_after: Duration) -> Self {
        Self { stall_after, partitions: BTreeMap::new(), sampled: false }
    }

    fn decide(previous: Option<&PartitionState>, o: &Offsets) -> Decision {
        let start = o.start();
        if start >= o.high {
            return Decision::Settled(false);
        }
        // The group is making progress: pending as far as the high watermark says (a marker at
        // the end is counted until the next sample probes it).
        let moved = previous.is_some_and(|p| p.committed != o.committed);
        if moved {
            return Decision::Settled(true);
        }
        match previous.and_then(|p| p.known) {
            Some(Known::Record { at }) if at == start => Decision::Settled(true),
            Some(Known::End { at, high }) if at == start && high == o.high => Decision::Settled(false),
            _ => Decision::Probe(start),
        }
    }

    /// The partitions whose pending state only a `read_committed` read can decide, with the
    /// offset to read from.
    pub(super) fn to_probe(&self, offsets: &BTreeMap<TopicPartition, Offsets>) -> BTreeMap<TopicPartition, i64> {
        offsets
            .iter()
            .filter_map(|(tp, o)| match Self::decide(self.partitions.get(tp), o) {
                Decision::Probe(at) => Some((tp.clone(), at)),
                Decision::Settled(_) => None,
            })
            .collect()
    }

    /// Applies a sample (`probed` holds the outcomes of [`to_probe`](Self::to_probe)'s reads; a
    /// partition whose read did not finish counts as pending) taken at `now`.
    pub(super) fn update(
        &mut self,
        offsets: &BTreeMap<TopicPartition, Offsets>,
        probed: &BTreeMap<TopicPartition, Probed>,
        now: Instant,
    ) -> GroupLag {
        let mut next = BTreeMap::new();
        for (tp, o) in offsets {
            let previous = self.partitions.get(tp);
            let start = o.start();
            let mut known = previous.and_then(|p| p.known);
            let pending = match Self::decide(previous, o) {
                Decision::Settled(pending) => pending,
                Decision::Probe(at) => match probed.get(tp) {
                    Some(Probed::Record) => {
                        known = Some(Known::Record { at });
                        true
                    }
                    Some(Probed::End) => {
                        known = Some(Known::End { at, high: o.high });
                        false
                    }
                    None => true,
                },
            };
            let moved = previous.is_some_and(|p| p.committed != o.committed);
            let waiting_since = match (pending, previous.and_then(|p| p.waiting_since)) {
                (false, _) => None,
                (true, Some(since)) if !moved => Some(since),
                (true, _) => Some(now),
            };
            let lag = if pending { o.high - start } else { 0 };
            let _ = next.insert(tp.clone(), PartitionState { committed: o.committed, waiting_since, known, lag });
        }
        self.partitions = next;
        self.sampled = true;
        self.report(now)
    }

    /// The last sample's figures with the stall clock at `now` (also while samples fail).
    pub(super) fn report(&self, now: Instant) -> GroupLag {
        let since_commit = self
            .partitions
            .values()
            .filter_map(|p| p.waiting_since)
            .map(|since| now.saturating_duration_since(since))
            .max()
            .unwrap_or_default();
        GroupLag {
            partitions: self.partitions.iter().map(|(tp, p)| (tp.clone(), p.lag)).collect(),
            since_commit,
            stalled: since_commit > self.stall_after,
            sampled: self.sampled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(60);

    fn tp(p: i32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    fn sample(parts: &[(i32, Option<i64>, i64, i64)]) -> BTreeMap<TopicPartition, Offsets> {
        parts.iter().map(|&(p, committed, low, high)| (tp(p), Offsets { committed, low, high })).collect()
    }

    fn probed(parts: &[(i32, Probed)]) -> BTreeMap<TopicPartition, Probed> {
        parts.iter().map(|&(p, r)| (tp(p), r)).collect()
    }

    #[test]
    fn caught_up_and_behind_partitions() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        // 0: caught up; 1: 40 behind; 2: never committed, 5 records since the low watermark;
        // 3: committed before the low watermark (deleted), counts from it.
        let s = sample(&[(0, Some(10), 0, 10), (1, Some(60), 0, 100), (2, None, 5, 10), (3, Some(2), 8, 9)]);
        let targets = tracker.to_probe(&s);
        assert_eq!(targets, [(tp(1), 60), (tp(2), 5), (tp(3), 8)].into_iter().collect());
        let lag = tracker.update(&s, &probed(&[(1, Probed::Record), (2, Probed::Record), (3, Probed::Record)]), t0);
        assert_eq!(lag.partitions, [(tp(0), 0), (tp(1), 40), (tp(2), 5), (tp(3), 1)].into_iter().collect());
        assert_eq!((lag.total(), lag.since_commit, lag.stalled, lag.sampled), (46, Duration::ZERO, false, true));
    }

    #[test]
    fn a_marker_or_aborted_records_at_the_end_are_not_pending() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        // The group committed last+1 = 10; a commit marker sits at 10 (high 11). 1: aborted
        // records 20..25 and their marker.
        let s = sample(&[(0, Some(10), 0, 11), (1, Some(20), 0, 26)]);
        assert_eq!(tracker.to_probe(&s).len(), 2);
        let lag = tracker.update(&s, &probed(&[(0, Probed::End), (1, Probed::End)]), t0);
        assert_eq!((lag.total(), lag.since_commit), (0, Duration::ZERO));
        // Known while nothing changes: no second read, and never a stall.
        assert!(tracker.to_probe(&s).is_empty());
        let lag = tracker.update(&s, &BTreeMap::new(), t0 + STALL * 3);
        assert_eq!((lag.total(), lag.stalled), (0, false));
        // New records after the marker: read again; a record now.
        let s2 = sample(&[(0, Some(10), 0, 14), (1, Some(20), 0, 26)]);
        assert_eq!(tracker.to_probe(&s2), [(tp(0), 10)].into_iter().collect());
        let lag = tracker.update(&s2, &probed(&[(0, Probed::Record)]), t0 + STALL * 4);
        assert_eq!(lag.partitions[&tp(0)], 4);
    }

    #[test]
    fn a_moved_offset_is_not_probed_and_resets_the_clock() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        let s = sample(&[(0, Some(10), 0, 50)]);
        let _ = tracker.update(&s, &probed(&[(0, Probed::Record)]), t0);
        let lag = tracker.update(&s, &BTreeMap::new(), t0 + Duration::from_secs(30));
        assert_eq!(lag.since_commit, Duration::from_secs(30), "known record: not read again");
        let s2 = sample(&[(0, Some(40), 0, 60)]);
        assert!(tracker.to_probe(&s2).is_empty(), "the group moves: no read");
        let lag = tracker.update(&s2, &BTreeMap::new(), t0 + Duration::from_secs(45));
        assert_eq!((lag.total(), lag.since_commit), (20, Duration::ZERO));
        // Stuck there now: probed again (a new start offset), the clock runs from the commit.
        assert_eq!(tracker.to_probe(&s2), [(tp(0), 40)].into_iter().collect());
        let lag = tracker.update(&s2, &probed(&[(0, Probed::Record)]), t0 + Duration::from_secs(100));
        assert_eq!(lag.since_commit, Duration::from_secs(55));
        assert!(!lag.stalled);
        let lag = tracker.update(&s2, &BTreeMap::new(), t0 + Duration::from_secs(106));
        assert_eq!(lag.since_commit, Duration::from_secs(61));
        assert!(lag.stalled, "over stall_after");
        assert_eq!(lag.stall_reason(), "no commit for 61 s with 20 records pending");
        // Committed to the end: nothing pending, not stalled.
        let s3 = sample(&[(0, Some(60), 0, 60)]);
        let lag = tracker.update(&s3, &BTreeMap::new(), t0 + Duration::from_secs(110));
        assert_eq!((lag.total(), lag.since_commit, lag.stalled), (0, Duration::ZERO, false));
    }

    #[test]
    fn the_clock_starts_when_records_become_pending_and_runs_while_samples_fail() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        assert_eq!(tracker.report(t0), GroupLag::default(), "nothing before the first sample");
        // Idle and caught up for an hour, then records arrive: the clock starts then, not at
        // the last commit an hour ago.
        let idle = sample(&[(0, Some(10), 0, 10)]);
        let _ = tracker.update(&idle, &BTreeMap::new(), t0);
        let busy = sample(&[(0, Some(10), 0, 12)]);
        let lag = tracker.update(&busy, &probed(&[(0, Probed::Record)]), t0 + Duration::from_secs(3600));
        assert_eq!((lag.total(), lag.since_commit), (2, Duration::ZERO));
        // The broker is away: the last figures, the clock running on.
        let lag = tracker.report(t0 + Duration::from_secs(3661));
        assert_eq!((lag.total(), lag.since_commit, lag.stalled), (2, Duration::from_secs(61), true));
    }

    #[test]
    fn an_unfinished_probe_counts_as_pending_and_is_read_again() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        let s = sample(&[(0, Some(10), 0, 11)]);
        let lag = tracker.update(&s, &BTreeMap::new(), t0);
        assert_eq!(lag.total(), 1);
        assert_eq!(tracker.to_probe(&s).len(), 1, "not known: read again");
        let lag = tracker.update(&s, &probed(&[(0, Probed::End)]), t0 + Duration::from_secs(5));
        assert_eq!((lag.total(), lag.since_commit), (0, Duration::ZERO));
    }

    #[test]
    fn the_longest_wait_wins_and_vanished_partitions_are_forgotten() {
        let mut tracker = Tracker::new(STALL);
        let t0 = Instant::now();
        let s = sample(&[(0, Some(0), 0, 5), (1, Some(0), 0, 5)]);
        let _ = tracker.update(&s, &probed(&[(0, Probed::Record), (1, Probed::Record)]), t0);
        let s2 = sample(&[(0, Some(3), 0, 5), (1, Some(0), 0, 5)]);
        let lag = tracker.update(&s2, &BTreeMap::new(), t0 + Duration::from_secs(20));
        assert_eq!(lag.since_commit, Duration::from_secs(20), "partition 1 waits since t0");
        let s3 = sample(&[(0, Some(3), 0, 5)]);
        let lag = tracker.update(&s3, &probed(&[(0, Probed::Record)]), t0 + Duration::from_secs(30));
        assert_eq!((lag.partitions.len(), lag.since_commit), (1, Duration::from_secs(10)));
    }
}
