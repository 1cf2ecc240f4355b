//! One handoff partition's batch: the files read since the partition's committed offset, until
//! the batch is written as one archive object per [`Part`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::file::ArchivedFile;
use crate::key::Part;

/// Files collected for one batch, in offset order.
#[derive(Debug)]
pub struct Batch {
    start: i64,
    files: Vec<ArchivedFile>,
    input_bytes: u64,
    memory_bytes: u64,
    /// When the batch's first record was read.
    opened: Option<Instant>,
}

impl Batch {
    /// An empty batch starting at `start`.
    pub fn new(start: i64) -> Self {
        Self { start, files: Vec::new(), input_bytes: 0, memory_bytes: 0, opened: None }
    }

    /// The offset the batch starts at.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// Notes that a record of the batch was read at `now` (the age counts from the first).
    pub fn touch(&mut self, now: Instant) {
        self.opened.get_or_insert(now);
    }

    /// Adds a complete file (files arrive in the order they completed in the partition).
    pub fn add(&mut self, file: ArchivedFile) {
        self.input_bytes += file.input_bytes;
        self.memory_bytes += file.memory_bytes();
        self.files.push(file);
    }

    /// Whether no record was read into the batch.
    pub fn is_untouched(&self) -> bool {
        self.opened.is_none()
    }

    /// Parquet bytes of the files collected.
    pub fn input_bytes(&self) -> u64 {
        self.input_bytes
    }

    /// Memory held by the decoded files.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    /// Time since the batch's first record was read.
    pub fn age(&self, now: Instant) -> Duration {
        self.opened.map_or(Duration::ZERO, |opened| now.saturating_duration_since(opened))
    }

    /// Files collected.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// The files by archive object, each list in offset order.
    pub fn into_parts(self) -> BTreeMap<Part, Vec<ArchivedFile>> {
        let mut parts: BTreeMap<Part, Vec<ArchivedFile>> = BTreeMap::new();
        for file in self.files {
            parts.entry(file.part()).or_default().push(file);
        }
        parts
    }
}
