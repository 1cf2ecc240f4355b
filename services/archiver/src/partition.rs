//! One assigned handoff partition: its reassembler, its open batch, and when the batch ends.
//!
//! A batch ends only at a *clean cut*: after a record with no file of the partition left
//! incomplete, so the batch `[start, end)` holds every chunk of each of its files and the next
//! batch starts with a file's first chunk. Read again from `start`, the same records make the
//! same batch. A batch that was written (fully or partly) before a restart has its end in its
//! keys; read again, it must end exactly there ([`Forced`](Ending::Forced)).

use std::time::{Duration, Instant};

use dwsync_handoff::{CompleteFile, FileChunk, HandoffError, Reassembler};

use crate::batch::Batch;
use crate::file::ArchivedFile;
use dwsync_archive::BatchRange;

/// How the open batch may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// At the first clean cut once it is large or old enough (or memory is short).
    Free,
    /// Exactly at this offset: a batch with this end was written before.
    Forced(i64),
}

/// Why a batch is written now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// It reached `archive.flush_bytes`.
    Size,
    /// `archive.flush_interval_ms` passed since its first record.
    Age,
    /// It reached the end a previous run gave it.
    Forced,
}

impl Due {
    /// A label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Age => "age",
            Self::Forced => "forced",
        }
    }
}

/// What to do with a record just read, before it is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// It belongs to the open batch.
    Add,
    /// It is at or past the forced end, which was never seen (records gone): write the batch
    /// first, ending at the forced end.
    FlushFirst,
    /// It is before the batch's start (read before a rewind): skip it.
    Stale,
}

/// When batches are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `archive.flush_bytes`.
    pub flush_bytes: u64,
    /// `archive.flush_interval_ms`.
    pub flush_interval: Duration,
}

/// An assigned handoff partition.
pub struct PartitionState {
    partition: i32,
    reassembler: Reassembler,
    batch: Batch,
    ending: Ending,
    /// The offset of the last record read into the batch.
    last: Option<i64>,
}

impl std::fmt::Debug for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionState")
            .field("partition", &self.partition)
            .field("start", &self.batch.start())
            .field("ending", &self.ending)
            .field("last", &self.last)
            .finish()
    }
}

impl PartitionState {
    /// A partition whose next batch starts at `start` and ends as `ending` says.
    pub fn new(partition: i32, start: i64, ending: Ending) -> Self {
        Self { partition, reassembler: Reassembler::new(), batch: Batch::new(start), ending, last: None }
    }

    /// Where the open batch starts.
    pub fn start(&self) -> i64 {
        self.batch.start()
    }

    /// What to do with a record read at `offset`. A batch with a forced end whose first record
    /// read is already past that end (the records before it are gone from the topic) starts
    /// afresh at the end instead: the batch there was written, as far as it could be.
    pub fn arrival(&mut self, offset: i64) -> Arrival {
        if offset < self.batch.start() || self.last.is_some_and(|last| offset <= last) {
            return Arrival::Stale;
        }
        match self.ending {
            Ending::Forced(end) if offset >= end && self.batch.is_untouched() => {
                tracing::warn!(
                    partition = self.partition,
                    start = self.batch.start(),
                    end,
                    offset,
                    "The records of a batch written before are gone; going on after it."
                );
                self.batch = Batch::new(end);
                self.ending = Ending::Free;
                Arrival::Add
            }
            Ending::Forced(end) if offset >= end => Arrival::FlushFirst,
            _ => Arrival::Add,
        }
    }

    /// Reads the chunk at `offset` into the batch: the file it completes, if any.
    pub fn push(&mut self, offset: i64, chunk: FileChunk, now: Instant) -> Result<Option<CompleteFile>, HandoffError> {
        self.skip(offset, now);
        self.reassembler.push(offset, chunk)
    }

    /// Counts the record at `offset` as read without a chunk (not a file chunk at all).
    pub fn skip(&mut self, offset: i64, now: Instant) {
        self.batch.touch(now);
        self.last = Some(offset);
    }

    /// Adds a decoded complete file to the batch.
    pub fn add(&mut self, file: ArchivedFile) {
        self.batch.add(file);
    }

    /// Whether no file of the partition is incomplete.
    fn is_clean(&self) -> bool {
        self.reassembler.low_watermark().is_none()
    }

    /// Why the batch should be written now, if it should.
    pub fn due(&self, now: Instant, limits: Limits) -> Option<Due> {
        let last = self.last?;
        match self.ending {
            Ending::Forced(end) => (last.saturating_add(1) >= end).then_some(Due::Forced),
            Ending::Free if !self.is_clean() => None,
            Ending::Free if self.batch.input_bytes() >= limits.flush_bytes => Some(Due::Size),
            Ending::Free if self.batch.age(now) >= limits.flush_interval => Some(Due::Age),
            Ending::Free => None,
        }
    }

    /// Whether the batch may end now, early, to free memory: at a clean cut with records read
    /// and no forced end.
    pub fn can_end_early(&self) -> bool {
        self.ending == Ending::Free && self.last.is_some() && self.is_clean()
    }

    /// Bytes held: the decoded batch and the partial files.
    pub fn buffered_bytes(&self) -> u64 {
        self.batch.memory_bytes() + self.reassembler.buffered_bytes() as u64
    }

    /// Takes the open batch with its range (it ends after the last record read, or at its forced
    /// end); the next batch starts at that end, with an ending still to be learned
    /// ([`set_ending`](Self::set_ending)). `None` when no record was read.
    pub fn take(&mut self) -> Option<(BatchRange, Batch)> {
        let last = self.last?;
        let end = match self.ending {
            Ending::Forced(end) => end,
            Ending::Free => last.saturating_add(1),
        };
        let range = BatchRange { partition: self.partition, start: self.batch.start(), end };
        let batch = std::mem::replace(&mut self.batch, Batch::new(end));
        self.reassembler.clear();
        self.last = None;
        self.ending = Ending::Free;
        Some((range, batch))
    }

    /// Sets how the open batch ends (from the listing of its start).
    pub fn set_ending(&mut self, ending: Ending) {
        self.ending = ending;
    }
}

#[cfg(test)]
mod tests {
    use dwsync_contract::Table;
    use dwsync_handoff::{FileKind, FileMeta, split};

    use super::*;

    const LIMITS: Limits = Limits { flush_bytes: 1 << 20, flush_interval: Duration::from_secs(60) };

    fn chunks(id: &str, len: usize) -> Vec<FileChunk> {
        let meta = FileMeta::fixture(id, 1, Table::Metrics, FileKind::Unspecified);
        split(&meta, &vec![7u8; len], 10)
    }

    #[test]
    fn a_free_batch_ends_only_at_a_clean_cut_after_its_last_record() {
        let now = Instant::now();
        let mut p = PartitionState::new(2, 100, Ending::Free);
        assert_eq!(p.due(now, LIMITS), None, "nothing read");
        let f = chunks("f", 25);
        assert_eq!(p.arrival(99), Arrival::Stale, "before the start");
        assert!(p.push(100, f[0].clone(), now).expect("chunk").is_none());
        let later = now + Duration::from_secs(61);
        assert_eq!(p.due(later, LIMITS), None, "old enough, but file f is incomplete");
        assert!(!p.can_end_early());
        assert!(p.push(101, f[1].clone(), now).expect("chunk").is_none());
        assert_eq!(p.arrival(101), Arrival::Stale, "read already");
        assert!(p.push(103, f[2].clone(), now).expect("chunk").is_some(), "102 was a transaction marker");
        assert_eq!(p.due(now, LIMITS), None, "clean, but neither large nor old");
        assert_eq!(p.due(later, LIMITS), Some(Due::Age));
        assert!(p.can_end_early());
        let (range, _) = p.take().expect("a batch");
        assert_eq!(range, BatchRange { partition: 2, start: 100, end: 104 });
        assert_eq!(p.start(), 104, "the next batch starts at the end");
        assert!(p.take().is_none(), "nothing read since");
    }

    #[test]
    fn a_batch_written_before_a_restart_forces_the_end_of_the_batch_read_again() {
        let now = Instant::now();
        // Objects of batch [100, 104) exist: read again from 100, the batch ends exactly at 104,
        // never earlier (not for size, age or memory) and never later.
        let mut p = PartitionState::new(2, 100, Ending::Forced(104));
        let f = chunks("f", 25);
        p.push(100, f[0].clone(), now).expect("chunk");
        p.push(101, f[1].clone(), now).expect("chunk");
        let small = Limits { flush_bytes: 1, flush_interval: Duration::ZERO };
        assert_eq!(p.due(now + Duration::from_secs(3600), small), None, "before its end");
        assert!(!p.can_end_early(), "memory pressure does not end it either");
        assert!(p.push(103, f[2].clone(), now).expect("chunk").is_some());
        assert_eq!(p.due(now, LIMITS), Some(Due::Forced), "its last record was read");
        let (range, _) = p.take().expect("a batch");
        assert_eq!((range.start, range.end), (100, 104));

        // If the records before the forced end are gone, the first record past it ends the batch.
        let mut q = PartitionState::new(0, 10, Ending::Forced(20));
        q.skip(12, now);
        assert_eq!(q.arrival(25), Arrival::FlushFirst);
        assert_eq!(q.take().map(|(r, _)| (r.start, r.end)), Some((10, 20)));
        q.set_ending(Ending::Free);
        assert_eq!(q.arrival(25), Arrival::Add);
        // Nothing of the batch is left at all: the next batch starts at its end.
        let mut r = PartitionState::new(0, 10, Ending::Forced(20));
        assert_eq!(r.arrival(25), Arrival::Add);
        r.skip(25, now);
        assert_eq!(r.take().map(|(r, _)| (r.start, r.end)), Some((20, 26)));
    }
}
