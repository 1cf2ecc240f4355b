//! One handoff partition's batch: the files read since the partition's committed offset, until
//! the batch is written as one archive object per [`Part`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::file::ArchivedFile;
use dwsync_archive::Part;

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

#[cfg(test)]
mod tests {
    use dwsync_contract::Table;
    use dwsync_handoff::{FileKind, FileMeta};

    use super::*;

    fn file(table: Table, kind: FileKind, workspace_id: i64, offset: i64) -> ArchivedFile {
        let meta = FileMeta::fixture(&format!("f{offset}"), workspace_id, table, kind);
        ArchivedFile { meta, first_offset: offset, batches: Vec::new(), input_bytes: 10 }
    }

    #[test]
    fn files_go_to_one_part_per_table_and_kind_whatever_the_workspaces() {
        let mut batch = Batch::new(7);
        assert!(batch.is_untouched());
        batch.touch(Instant::now());
        for (offset, ws) in (0..60).zip((1..=30).cycle()) {
            let (table, kind) = match offset % 3 {
                0 => (Table::People, FileKind::New),
                1 => (Table::People, FileKind::Changes),
                _ => (Table::Metrics, FileKind::Unspecified),
            };
            batch.add(file(table, kind, ws, offset));
        }
        assert_eq!((batch.files(), batch.input_bytes()), (60, 600));
        let parts = batch.into_parts();
        let names: Vec<String> = parts.keys().map(Part::name).collect();
        assert_eq!(names.len(), 3, "30 workspaces, 3 (table, kind) parts: {names:?}");
        assert!(names.contains(&"people_chngs".to_owned()) && names.contains(&"people".to_owned()));
        for files in parts.values() {
            assert!(files.windows(2).all(|w| w[0].first_offset < w[1].first_offset), "offset order");
        }
    }
}
