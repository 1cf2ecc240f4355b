//! One handoff partition's state: its reassembler and the offset that is safe to commit.
//!
//! Kafka commits the next offset to read. The safe offset is the smallest of: the offset after
//! the last record dealt with, the first chunk of the oldest incomplete file (its chunks must
//! be read again after a restart), and the first chunk of the file being written right now.

use dwsync_handoff::{CompleteFile, FileChunk, HandoffError, Reassembler};

/// A handoff partition the consumer reads.
#[derive(Default)]
pub struct PartitionState {
    reassembler: Reassembler,
    /// The offset after the last record dealt with.
    next: Option<i64>,
    /// The first offset of the file being written, if one is.
    writing: Option<i64>,
    /// The last offset committed (or handed to Kafka to commit).
    committed: Option<i64>,
}

impl std::fmt::Debug for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionState")
            .field("next", &self.next)
            .field("writing", &self.writing)
            .field("committed", &self.committed)
            .field("low_watermark", &self.reassembler.low_watermark())
            .finish()
    }
}

impl PartitionState {
    /// A partition with nothing read yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the chunk read at `offset`; a file it completes is marked as being written until
    /// [`done`](Self::done) is called for `offset`.
    pub fn push(&mut self, offset: i64, chunk: FileChunk) -> Result<Option<CompleteFile>, HandoffError> {
        let file = self.reassembler.push(offset, chunk)?;
        if let Some(file) = &file {
            self.writing = Some(file.first_offset);
        }
        Ok(file)
    }

    /// The record at `offset` is dealt with: its file written or skipped, or the record
    /// discarded, or it is a chunk held by the reassembler.
    pub fn done(&mut self, offset: i64) {
        self.writing = None;
        let after = offset.saturating_add(1);
        self.next = Some(self.next.map_or(after, |next| next.max(after)));
    }

    /// The offset that is safe to commit, if any record was dealt with.
    pub fn committable(&self) -> Option<i64> {
        let next = self.next?;
        Some([self.reassembler.low_watermark(), self.writing].into_iter().flatten().fold(next, i64::min))
    }

    /// The safe offset if it is beyond the last commit.
    pub fn to_commit(&self) -> Option<i64> {
        self.committable().filter(|offset| self.committed.is_none_or(|committed| *offset > committed))
    }

    /// Records a commit of `offset`.
    pub fn committed(&mut self, offset: i64) {
        self.committed = Some(offset);
    }

    /// Forgets the last commit (its outcome is not known), so the safe offset is committed
    /// again.
    pub fn forget_commit(&mut self) {
        self.committed = None;
    }
}

#[cfg(test)]
mod tests {
    use dwsync_contract::Table;
    use dwsync_handoff::{FileKind, FileMeta, split};

    use super::*;

    fn chunks(id: &str, len: usize) -> Vec<FileChunk> {
        let meta = FileMeta {
            file_id: id.into(),
            workspace_id: 1,
            table: Table::Metrics,
            kind: FileKind::Unspecified,
            row_count: 1,
            sources: Vec::new(),
            window_opened_at_ms: 0,
            window_closed_at_ms: 1,
            close_reason: "time".into(),
        };
        split(&meta, &vec![7u8; len], 10)
    }

    #[test]
    fn commits_the_offset_after_the_last_written_file() {
        let mut p = PartitionState::new();
        assert_eq!(p.committable(), None, "nothing read, nothing to commit");
        let f = chunks("f", 25);
        assert!(p.push(0, f[0].clone()).expect("chunk").is_none());
        p.done(0);
        assert_eq!(p.committable(), Some(0), "file f is incomplete: its first chunk is read again");
        assert!(p.push(1, f[1].clone()).expect("chunk").is_none());
        p.done(1);
        let file = p.push(2, f[2].clone()).expect("chunk").expect("complete");
        assert_eq!((file.first_offset, file.last_offset), (0, 2));
        assert_eq!(p.committable(), Some(0), "while f is written, nothing past its first chunk");
        p.done(2);
        assert_eq!(p.committable(), Some(3), "Kafka commits the next offset to read");
        assert_eq!(p.to_commit(), Some(3));
        p.committed(3);
        assert_eq!(p.to_commit(), None, "already committed");
        p.forget_commit();
        assert_eq!(p.to_commit(), Some(3), "committed again");
    }

    #[test]
    fn an_incomplete_file_holds_the_commit_back() {
        let mut p = PartitionState::new();
        let (a, b) = (chunks("a", 15), chunks("b", 5));
        p.push(10, a[0].clone()).expect("chunk");
        p.done(10);
        let small = p.push(11, b[0].clone()).expect("chunk").expect("b complete");
        assert_eq!(small.first_offset, 11);
        assert_eq!(p.committable(), Some(10));
        p.done(11);
        assert_eq!(p.committable(), Some(10), "a, started at 10, is still incomplete");
        p.committed(10);
        let big = p.push(12, a[1].clone()).expect("chunk").expect("a complete");
        assert_eq!(big.first_offset, 10);
        assert_eq!(p.to_commit(), None, "a is being written: the commit stays at 10");
        p.done(12);
        assert_eq!(p.to_commit(), Some(13));
    }

    #[test]
    fn a_discarded_record_moves_the_commit_on() {
        let mut p = PartitionState::new();
        p.done(4);
        assert_eq!(p.to_commit(), Some(5));
        let mut bad = chunks("x", 5).remove(0);
        bad.table = "nope".into();
        assert!(p.push(5, bad).is_err());
        p.done(5);
        assert_eq!(p.to_commit(), Some(6));
    }
}
