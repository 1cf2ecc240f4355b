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
use crate::key::BatchRange;

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

    /// What to do with a record read at `offset`.
    pub fn arrival(&self, offset: i64) -> Arrival {
        if offset < self.batch.start() || self.last.is_some_and(|last| offset <= last) {
            return Arrival::Stale;
        }
        match self.ending {
            Ending::Forced(end) if offset >= end && !self.batch.is_untouched() => Arrival::FlushFirst,
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
