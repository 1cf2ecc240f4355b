//! Windows: rows buffered per (workspace, table, file kind) until they close — on their source
//! partition's time grid (every `duration_ms`, aligned to UTC and shifted by the partition's
//! phase), or early on rows or bytes.
//!
//! Flushing is done per source partition: closing a window closes every window holding records
//! of the same partitions, so each partition's offset is committed at its consumed position and
//! no record is ever buffered behind a committed offset (which would duplicate it after a crash).
//! The phase spreads the partitions' closes over the window (partition numbers 0, 1, 2, 3 close
//! at 0, ½, ¼, ¾ of it): with thousands of workspaces their files are not all written at once.
//! Partitions sharing windows close together, once per window ([`Windows::due_now`]).

use std::collections::{BTreeMap, BTreeSet};

use dwsync_contract::{BatchBuilder, COMPACT_ROWS, Row, Table};
use dwsync_proto::internal::FileKind;

use crate::config::WindowConfig;

/// A source partition: (topic index in the ingest's topic list, partition).
pub type PartitionKey = (usize, i32);

/// Identifies a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowKey {
    /// The workspace.
    pub workspace_id: i64,
    /// The table.
    pub table: Table,
    /// New-entity or change file (people, object, object_types), else unspecified.
    pub kind: FileKind,
}

/// Why a window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CloseReason {
    /// The time grid reached the window's end.
    Time,
    /// It reached `max_rows`.
    Rows,
    /// It reached `max_bytes`.
    Bytes,
    /// Another window sharing a source partition closed.
    Partition,
    /// The instance's buffers exceeded `memory_budget_bytes` and this was the largest window.
    Memory,
}

impl CloseReason {
    /// The reason as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Rows => "rows",
            Self::Bytes => "bytes",
            Self::Partition => "partition",
            Self::Memory => "memory",
        }
    }
}

/// Offsets of one partition's records in a window (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetRange {
    /// First offset.
    pub first: i64,
    /// Last offset.
    pub last: i64,
}

/// An open window.
pub struct Window {
    /// Its rows.
    pub builder: BatchBuilder,
    /// When its first row arrived (epoch ms).
    pub opened_at_ms: i64,
    /// The source records it holds, per partition.
    pub sources: BTreeMap<PartitionKey, OffsetRange>,
    /// Its [`footprint`](Self::footprint) as last counted in [`Windows`]' total.
    counted: usize,
    /// Its payload bytes when it was last counted.
    counted_bytes: usize,
}

/// A closed window, ready to encode.
pub struct ClosedWindow {
    /// Which window.
    pub key: WindowKey,
    /// Why it closed.
    pub reason: CloseReason,
    /// Its contents.
    pub window: Window,
}

/// A large window's footprint is recounted at least every this many rows…
const RECOUNT_ROWS: usize = 16;
/// …or this many payload bytes (so a few large rows are counted at once).
const RECOUNT_BYTES: usize = 64 << 10;

/// Heap bytes of an open window besides its builder (map entry, source ranges).
const WINDOW_OVERHEAD: usize = 256;

impl Window {
    /// Estimated heap bytes of the window (what the memory budget counts).
    pub fn footprint(&self) -> usize {
        WINDOW_OVERHEAD + self.builder.footprint() + self.sources.len() * 64
    }
}

/// All open windows of this instance.
pub struct Windows {
    config: WindowConfig,
    open: BTreeMap<WindowKey, Window>,
    buffered_bytes: usize,
    /// Sum of the open windows' [`Window::footprint`]s.
    footprint: usize,
}

impl Windows {
    /// No open window.
    pub fn new(config: WindowConfig) -> Self {
        Self { config, open: BTreeMap::new(), buffered_bytes: 0, footprint: 0 }
    }

    /// The end of the time slot holding `now_ms`: the next grid point strictly after it.
    pub fn next_boundary(&self, now_ms: i64) -> i64 {
        let d = i64::try_from(self.config.duration_ms).unwrap_or(i64::MAX).max(1);
        (now_ms.div_euclid(d) + 1) * d
    }

    /// Where partition number `partition` closes its windows, in ms after the UTC grid points: the
    /// bit-reversed fraction of the number (van der Corput: 0, ½, ¼, ¾, ⅛, …) of `duration_ms`,
    /// so any first n partitions are spread evenly; 0 when `spread_by_partition` is off.
    pub fn phase_ms(&self, partition: i32) -> i64 {
        if !self.config.spread_by_partition {
            return 0;
        }
        let fraction = u128::from((partition as u32).reverse_bits());
        i64::try_from((u128::from(self.config.duration_ms) * fraction) >> 32).unwrap_or(0)
    }

    /// When windows of partition number `partition` holding a row read at `now_ms` close: the
    /// next point of that partition's grid strictly after `now_ms`.
    pub fn next_close(&self, partition: i32, now_ms: i64) -> i64 {
        let phase = self.phase_ms(partition);
        self.next_boundary(now_ms - phase) + phase
    }

    /// Adds a row read from `partition` at `offset`; returns the key if the window is now full.
    pub fn add(
        &mut self,
        key: WindowKey,
        row: &Row<'_>,
        partition: PartitionKey,
        offset: i64,
        now_ms: i64,
    ) -> Option<(WindowKey, CloseReason)> {
        let window = self.open.entry(key).or_insert_with(|| Window {
            builder: BatchBuilder::new(key.table),
            opened_at_ms: now_ms,
            sources: BTreeMap::new(),
            counted: 0,
            counted_bytes: 0,
        });
        let before = window.builder.buffered_bytes();
        window.builder.append(row);
        window
            .sources
            .entry(partition)
            .and_modify(|r| {
                r.first = r.first.min(offset);
                r.last = r.last.max(offset);
            })
            .or_insert(OffsetRange { first: offset, last: offset });
        self.buffered_bytes += window.builder.buffered_bytes() - before;
        // Counting a builder's columns is a pass over them: past its compact rows a window is
        // recounted every RECOUNT_ROWS rows or RECOUNT_BYTES of payload, whichever comes first.
        let rows = window.builder.len();
        if rows <= COMPACT_ROWS + 1
            || rows.is_multiple_of(RECOUNT_ROWS)
            || window.builder.buffered_bytes() >= window.counted_bytes + RECOUNT_BYTES
        {
            let footprint = window.footprint();
            self.footprint = self.footprint + footprint - window.counted;
            window.counted = footprint;
            window.counted_bytes = window.builder.buffered_bytes();
        }
        if window.builder.len() >= self.config.max_rows {
            Some((key, CloseReason::Rows))
        } else if window.builder.buffered_bytes() >= self.config.max_bytes {
            Some((key, CloseReason::Bytes))
        } else {
            None
        }
    }

    /// The windows holding records of any of `partitions`.
    pub fn keys_touching(&self, partitions: &BTreeSet<PartitionKey>) -> Vec<WindowKey> {
        self.open.iter().filter(|(_, w)| w.sources.keys().any(|p| partitions.contains(p))).map(|(k, _)| *k).collect()
    }

    /// The largest open window, when the windows' memory exceeds the budget.
    pub fn over_budget(&self) -> Option<(WindowKey, CloseReason)> {
        if self.footprint <= self.config.memory_budget_bytes {
            return None;
        }
        self.open.iter().max_by_key(|(_, w)| w.counted).map(|(k, _)| (*k, CloseReason::Memory))
    }

    /// The partitions that must flush together with `key`: the closure over shared partitions.
    pub fn partitions_to_flush(&self, key: WindowKey) -> BTreeSet<PartitionKey> {
        self.closure(self.open.get(&key).map(|w| w.sources.keys().copied().collect()).unwrap_or_default())
    }

    /// Closes the windows of partitions whose time came (`due`): those windows by time, and,
    /// by partition, any window sharing a partition with them (the closure). Returns every
    /// partition flushed — `due` included, with or without windows — and the closed windows.
    pub fn close_due(&mut self, due: &BTreeSet<PartitionKey>) -> (BTreeSet<PartitionKey>, Vec<ClosedWindow>) {
        let partitions = self.closure(due.clone());
        let closed = self.take(self.keys_touching(&partitions), |_, w| {
            if w.sources.keys().any(|p| due.contains(p)) { CloseReason::Time } else { CloseReason::Partition }
        });
        (partitions, closed)
    }

    /// Which of the partitions whose own close point came (`candidates`) close now, and until
    /// when the others wait. Partitions sharing open windows flush together, so they close
    /// together: at the latest of their own points (each partition's point is its phase of the
    /// grid, `window.spread_by_partition`), but no later than `duration_ms` after the group's
    /// first record. Without that, records not keyed by workspace — every window spanning all
    /// partitions of its topic — closed every window at every partition's point: n partitions, n
    /// files per window. `times(p)` is a partition's own close point and when its first record
    /// since its last commit was read. Returns the partitions to close now (closed under shared
    /// windows) and the new close point of each partition that waits.
    pub fn due_now(
        &self,
        candidates: &BTreeSet<PartitionKey>,
        times: impl Fn(PartitionKey) -> Option<(i64, i64)>,
        now_ms: i64,
    ) -> (BTreeSet<PartitionKey>, Vec<(PartitionKey, i64)>) {
        let duration = i64::try_from(self.config.duration_ms).unwrap_or(i64::MAX);
        let group_due = |group: &BTreeSet<PartitionKey>| {
            let (latest, first) = group
                .iter()
                .filter_map(|p| times(*p))
                .fold((i64::MIN, i64::MAX), |(latest, first), (due, read)| (latest.max(due), first.min(read)));
            latest.min(first.saturating_add(duration))
        };
        // Usually (records keyed by workspace) no window spans partitions: one pass.
        let all = self.closure(candidates.clone());
        if group_due(&all) <= now_ms {
            return (all, Vec::new());
        }
        let (mut ready, mut waiting, mut seen) = (BTreeSet::new(), Vec::new(), BTreeSet::new());
        for p in candidates {
            if seen.contains(p) {
                continue;
            }
            let group = self.closure(BTreeSet::from([*p]));
            seen.extend(group.iter().copied());
            let due = group_due(&group);
            if due <= now_ms {
                ready.extend(group);
            } else {
                waiting.extend(group.into_iter().map(|q| (q, due)));
            }
        }
        (ready, waiting)
    }

    /// `partitions` and every partition sharing an open window with them, transitively.
    fn closure(&self, mut partitions: BTreeSet<PartitionKey>) -> BTreeSet<PartitionKey> {
        loop {
            let before = partitions.len();
            for w in self.open.values() {
                if w.sources.keys().any(|p| partitions.contains(p)) {
                    partitions.extend(w.sources.keys().copied());
                }
            }
            if partitions.len() == before {
                return partitions;
            }
        }
    }

    /// Closes every window holding records of `partitions` (`reason` for `trigger`, `Partition`
    /// for the others).
    pub fn close_partitions(
        &mut self,
        partitions: &BTreeSet<PartitionKey>,
        trigger: Option<(WindowKey, CloseReason)>,
    ) -> Vec<ClosedWindow> {
        self.take(self.keys_touching(partitions), |k, _| match trigger {
            Some((t, reason)) if t == k => reason,
            _ => CloseReason::Partition,
        })
    }

    /// Closes every open window (the time grid was reached).
    pub fn close_all(&mut self) -> Vec<ClosedWindow> {
        let keys: Vec<WindowKey> = self.open.keys().copied().collect();
        self.take(keys, |_, _| CloseReason::Time)
    }

    fn take(&mut self, keys: Vec<WindowKey>, reason: impl Fn(WindowKey, &Window) -> CloseReason) -> Vec<ClosedWindow> {
        keys.into_iter()
            .filter_map(|key| {
                let window = self.open.remove(&key)?;
                self.buffered_bytes -= window.builder.buffered_bytes();
                self.footprint -= window.counted;
                Some(ClosedWindow { key, reason: reason(key, &window), window })
            })
            .collect()
    }

    /// Drops every window (after a rebalance revoked partitions: their records are read again).
    pub fn clear(&mut self) {
        self.open.clear();
        self.buffered_bytes = 0;
        self.footprint = 0;
    }

    /// Open windows.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no window is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Payload bytes buffered in all open windows.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Estimated heap bytes of all open windows (what `memory_budget_bytes` bounds).
    pub fn footprint(&self) -> usize {
        self.footprint
    }
}

#[cfg(test)]
mod tests {
    use dwsync_contract::decode_json;

    use super::*;

    fn row(ws: i64, n: usize) -> Vec<u8> {
        format!(r#"{{"workspace_id": {ws}, "internal_customer_id": "c{n}", "attribute_name": "a", "attribute_value": "{}", "timestamp": 1}}"#, "x".repeat(n % 7))
            .into_bytes()
    }

    fn key(ws: i64) -> WindowKey {
        WindowKey { workspace_id: ws, table: Table::Attributes, kind: FileKind::Unspecified }
    }

    fn add(w: &mut Windows, ws: i64, p: i32, offset: i64) -> Option<(WindowKey, CloseReason)> {
        let bytes = row(ws, offset as usize);
        let r = decode_json(Table::Attributes, &bytes).unwrap();
        w.add(key(ws), &r, (0, p), offset, 1_000)
    }

    #[test]
    fn time_grid_is_aligned_and_idle_windows_close_on_it() {
        let mut w = Windows::new(WindowConfig { duration_ms: 60_000, ..WindowConfig::default() });
        assert_eq!(w.next_boundary(0), 60_000);
        assert_eq!(w.next_boundary(59_999), 60_000);
        assert_eq!(w.next_boundary(60_000), 120_000);
        add(&mut w, 1, 0, 5);
        add(&mut w, 2, 1, 9);
        // Nothing else arrives; at the boundary every window closes, by time.
        let closed = w.close_all();
        assert_eq!(closed.len(), 2);
        assert!(closed.iter().all(|c| c.reason == CloseReason::Time));
        assert!(w.is_empty());
        assert_eq!(w.buffered_bytes(), 0);
    }

    #[test]
    fn partitions_close_at_spread_phases_of_the_window() {
        let w = Windows::new(WindowConfig { duration_ms: 60_000, ..WindowConfig::default() });
        let phases: Vec<i64> = (0..8).map(|p| w.phase_ms(p)).collect();
        assert_eq!(phases, [0, 30_000, 15_000, 45_000, 7_500, 37_500, 22_500, 52_500]);
        assert_eq!(w.next_close(0, 59_999), 60_000);
        assert_eq!(w.next_close(1, 0), 30_000);
        assert_eq!(w.next_close(1, 29_999), 30_000);
        assert_eq!(w.next_close(1, 30_000), 90_000, "strictly after: a row read at the close waits a window");
        assert_eq!(w.next_close(3, 50_000), 105_000);
        // Every close is one window apart on the partition's own grid, whatever the time.
        for p in [0, 1, 5, 11, 4095, i32::MAX] {
            let first = w.next_close(p, 1_000_000);
            assert!(first > 1_000_000 && first <= 1_060_000);
            assert_eq!(w.next_close(p, first), first + 60_000);
            assert_eq!((first - w.phase_ms(p)) % 60_000, 0);
        }
        let aligned =
            Windows::new(WindowConfig { duration_ms: 60_000, spread_by_partition: false, ..WindowConfig::default() });
        assert!((0..8).all(|p| aligned.phase_ms(p) == 0 && aligned.next_close(p, 59_999) == 60_000));
    }

    #[test]
    fn due_partitions_close_with_their_neighbours() {
        let mut w = Windows::new(WindowConfig::default());
        add(&mut w, 1, 0, 0); // ws 1 on partition 0
        add(&mut w, 2, 0, 1); // ws 2 on partitions 0 and 2 (unkeyed producer)
        add(&mut w, 2, 2, 7);
        add(&mut w, 4, 2, 8); // ws 4 on partition 2, whose time has not come
        add(&mut w, 3, 1, 0); // ws 3 on partition 1, not due either
        let due = BTreeSet::from([(0, 0), (0, 5)]); // partition 5 is due with no window (dead letters only)
        let (flushed, closed) = w.close_due(&due);
        assert_eq!(flushed, BTreeSet::from([(0, 0), (0, 2), (0, 5)]));
        let mut got: Vec<_> = closed.iter().map(|c| (c.key.workspace_id, c.reason)).collect();
        got.sort();
        assert_eq!(got, [(1, CloseReason::Time), (2, CloseReason::Time), (4, CloseReason::Partition)]);
        assert_eq!(w.len(), 1, "workspace 3's window stays open");
        assert_eq!(w.close_due(&BTreeSet::new()).1.len(), 0, "nothing due, nothing closes");
    }

    #[test]
    fn partitions_sharing_windows_close_together_once_per_window() {
        // 60-s windows; partitions 0..4 close at 0, 30, 15 and 45 s of the grid.
        let mut w = Windows::new(WindowConfig { duration_ms: 60_000, ..WindowConfig::default() });
        // Workspace 1's records on all four partitions (a producer not keying by workspace), read
        // from 1 s on.
        for p in 0..4 {
            add(&mut w, 1, p, 10);
        }
        let grid = Windows::new(WindowConfig { duration_ms: 60_000, ..WindowConfig::default() });
        let times = |p: PartitionKey| Some((grid.next_close(p.1, 1_000), 1_000));
        // At 15 s partition 2's own point comes: its group (all four) waits for the latest point, 60 s.
        let (ready, waiting) = w.due_now(&BTreeSet::from([(0, 2)]), times, 15_000);
        assert!(ready.is_empty(), "closed at partition 2's point: {ready:?}");
        assert_eq!(waiting, (0..4).map(|p| ((0, p), 60_000)).collect::<Vec<_>>());
        // At 60 s the whole group closes, once.
        let (ready, waiting) = w.due_now(&BTreeSet::from([(0, 0), (0, 1), (0, 2), (0, 3)]), times, 60_000);
        assert_eq!(ready, (0..4).map(|p| (0, p)).collect());
        assert!(waiting.is_empty());
        // Never later than one window after the group's first record, however late a partition
        // joined it: read at 1 s, due by 61 s even if a partition's point is at 105 s.
        let late =
            |p: PartitionKey| Some(if p.1 == 3 { (105_000, 50_000) } else { (grid.next_close(p.1, 1_000), 1_000) });
        assert_eq!(w.due_now(&BTreeSet::from([(0, 0)]), late, 60_000).1[0].1, 61_000);
        assert_eq!(w.due_now(&BTreeSet::from([(0, 0)]), late, 61_000).0.len(), 4);
    }

    #[test]
    fn partitions_not_sharing_windows_keep_their_own_points() {
        let mut w = Windows::new(WindowConfig { duration_ms: 60_000, ..WindowConfig::default() });
        add(&mut w, 1, 0, 1); // keyed by workspace: one partition each
        add(&mut w, 2, 1, 1);
        add(&mut w, 3, 2, 1);
        let grid = Windows::new(WindowConfig { duration_ms: 60_000, ..WindowConfig::default() });
        let times = |p: PartitionKey| Some((grid.next_close(p.1, 1_000), 1_000));
        // Partition 2's point (15 s): it closes alone; the others are not candidates yet.
        let (ready, waiting) = w.due_now(&BTreeSet::from([(0, 2)]), times, 15_000);
        assert_eq!(ready, BTreeSet::from([(0, 2)]));
        assert!(waiting.is_empty());
        // Two groups due: partition 2 alone, partition 1 sharing a window with partition 3 (45 s).
        add(&mut w, 4, 1, 2);
        add(&mut w, 4, 3, 2);
        let (ready, waiting) = w.due_now(&BTreeSet::from([(0, 1), (0, 2)]), times, 30_000);
        assert_eq!(ready, BTreeSet::from([(0, 2)]));
        assert_eq!(waiting, vec![((0, 1), 45_000), ((0, 3), 45_000)]);
    }

    #[test]
    fn over_the_memory_budget_the_largest_window_goes_first() {
        let mut w = Windows::new(WindowConfig { memory_budget_bytes: 20_000, ..WindowConfig::default() });
        let mut offset = 0;
        while w.footprint() <= 20_000 {
            assert_eq!(w.over_budget(), None);
            // Workspace 2 gets three rows for each of workspace 1's, on its own partition.
            let ws = if offset % 4 == 0 { 1 } else { 2 };
            assert!(add(&mut w, ws, ws as i32, offset).is_none());
            offset += 1;
        }
        assert_eq!(w.over_budget(), Some((key(2), CloseReason::Memory)), "the largest window closes first");
        let closed = w.close_partitions(&w.partitions_to_flush(key(2)), Some((key(2), CloseReason::Memory)));
        assert_eq!(closed.len(), 1, "it shares no partition with the small one");
        assert_eq!(closed[0].reason.as_str(), "memory");
        assert_eq!(w.over_budget(), None);
        assert_eq!(w.len(), 1);
        let left = w.close_all();
        assert_eq!(w.footprint(), 0, "closing every window returns every byte counted");
        assert!(left[0].window.footprint() > left[0].window.builder.buffered_bytes());
    }

    #[test]
    fn a_large_window_is_recounted_every_few_rows_and_never_drifts() {
        let mut w = Windows::new(WindowConfig::default());
        let mut recent: Vec<usize> = Vec::new();
        for offset in 0..2_000 {
            add(&mut w, 1, 0, offset);
            let exact = w.open[&key(1)].footprint();
            recent.push(exact);
            let rows = offset as usize + 1;
            if rows <= COMPACT_ROWS + 1 || rows.is_multiple_of(RECOUNT_ROWS) {
                assert_eq!(w.footprint(), exact, "{rows} rows: counted exactly");
            }
            // At worst the count of a few rows ago, never a stale sum.
            let last = &recent[recent.len().saturating_sub(RECOUNT_ROWS)..];
            assert!(last.contains(&w.footprint()), "{rows} rows: {} not among {last:?}", w.footprint());
        }
        let closed = w.close_all();
        assert_eq!(w.footprint(), 0, "closing returns what was counted");
        assert_eq!(closed[0].window.builder.len(), 2_000);
    }

    #[test]
    fn a_window_closes_on_rows() {
        let mut w = Windows::new(WindowConfig { max_rows: 3, ..WindowConfig::default() });
        assert_eq!(add(&mut w, 1, 0, 0), None);
        assert_eq!(add(&mut w, 1, 0, 1), None);
        assert_eq!(add(&mut w, 1, 0, 2), Some((key(1), CloseReason::Rows)));
    }

    #[test]
    fn a_window_closes_on_bytes() {
        let mut w = Windows::new(WindowConfig { max_bytes: 100, ..WindowConfig::default() });
        let mut closed = None;
        for offset in 0..100 {
            if let Some(c) = add(&mut w, 1, 0, offset) {
                closed = Some((offset, c));
                break;
            }
        }
        let (offset, c) = closed.expect("closed on bytes");
        assert_eq!(c, (key(1), CloseReason::Bytes));
        assert!(offset > 0 && w.buffered_bytes() >= 100);
    }

    #[test]
    fn closing_a_window_closes_its_partition_neighbours_only() {
        let mut w = Windows::new(WindowConfig::default());
        add(&mut w, 1, 0, 0); // ws 1 on partition 0
        add(&mut w, 2, 0, 1); // ws 2 shares partition 0
        add(&mut w, 3, 1, 0); // ws 3 on partition 1
        add(&mut w, 2, 2, 7); // ws 2 also on partition 2 (unkeyed producer)
        add(&mut w, 4, 2, 8); // ws 4 on partition 2
        let parts = w.partitions_to_flush(key(1));
        assert_eq!(parts, BTreeSet::from([(0, 0), (0, 2)]));
        let closed = w.close_partitions(&parts, Some((key(1), CloseReason::Rows)));
        let mut got: Vec<_> = closed.iter().map(|c| (c.key.workspace_id, c.reason)).collect();
        got.sort();
        assert_eq!(got, [(1, CloseReason::Rows), (2, CloseReason::Partition), (4, CloseReason::Partition)]);
        assert_eq!(w.len(), 1, "workspace 3's window stays open");
        let ws2 = closed.iter().find(|c| c.key.workspace_id == 2).unwrap();
        assert_eq!(ws2.window.sources[&(0, 2)], OffsetRange { first: 7, last: 7 });
    }
}
