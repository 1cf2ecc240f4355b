//! The per-partition side of the loop: each handoff partition's reassembler and safe offset
//! ([`PartitionState`]), fed the records read, told when a record is dealt with, and asked
//! what to commit.

use std::collections::HashMap;
use std::sync::Arc;

use dwsync_handoff::{CompleteFile, HandoffError, HandoffRecord};

use super::reader::Record;
use crate::metrics::Metrics;
use crate::offsets::PartitionState;

/// What a record read did.
pub(super) enum Read {
    /// It completed a file (the offset is the record's): the record is dealt with once the file
    /// is.
    File(CompleteFile, i64),
    /// A chunk the reassembler holds until its file is complete: dealt with.
    Held,
    /// Not a chunk that can be reassembled (counted and logged): skipped, to be dealt with.
    Skipped(i64),
}

/// The handoff partitions this uploader reads.
pub(super) struct Partitions {
    states: HashMap<i32, PartitionState>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Partitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.states.fmt(f)
    }
}

impl Partitions {
    /// No partition read yet; bad records are counted in `metrics`.
    pub(super) fn new(metrics: Arc<Metrics>) -> Self {
        Self { states: HashMap::new(), metrics }
    }

    /// Reassembles one record (not a cut record: those wait for their configuration).
    pub(super) fn read(&mut self, record: Record) -> Read {
        let Record { partition, offset, content, .. } = record;
        let state = self.states.entry(partition).or_default();
        let pushed = match content {
            HandoffRecord::Chunk(chunk) => state.push(offset, chunk),
            HandoffRecord::Cut(_) | HandoffRecord::Bad(_) => {
                let reason = match content {
                    HandoffRecord::Bad(reason) => reason,
                    _ => "cut_out_of_place",
                };
                self.metrics.bad_record(reason);
                tracing::warn!(partition, offset, reason, "Skipping a handoff record that is not a file chunk.");
                return Read::Skipped(offset);
            }
        };
        match pushed {
            Ok(None) => {
                state.done(offset);
                Read::Held
            }
            Ok(Some(file)) => Read::File(file, offset),
            Err(error) => {
                self.metrics.bad_record(handoff_reason(&error));
                tracing::warn!(partition, offset, %error, "Skipping a handoff record that cannot be reassembled.");
                Read::Skipped(offset)
            }
        }
    }

    /// `partition`'s record at `offset` is dealt with: its safe offset may move.
    pub(super) fn done(&mut self, partition: i32, offset: i64) {
        self.states.entry(partition).or_default().done(offset);
    }

    /// Forgets `partition` (revoked, or assigned afresh): its incomplete files are read again
    /// from the committed offset.
    pub(super) fn forget(&mut self, partition: i32) {
        let _ = self.states.remove(&partition);
    }

    /// `partition`'s safe offset, if it is beyond its last commit.
    pub(super) fn to_commit(&self, partition: i32) -> Option<i64> {
        self.states.get(&partition).and_then(PartitionState::to_commit)
    }

    /// Records a commit of `partition`'s `offset`.
    pub(super) fn committed(&mut self, partition: i32, offset: i64) {
        if let Some(state) = self.states.get_mut(&partition) {
            state.committed(offset);
        }
    }

    /// Forgets every partition's last commit (its outcome is not known): the partitions with a
    /// safe offset to commit again.
    pub(super) fn forget_commits(&mut self) -> Vec<i32> {
        let mut again = Vec::new();
        for (partition, state) in &mut self.states {
            state.forget_commit();
            if state.to_commit().is_some() {
                again.push(*partition);
            }
        }
        again
    }
}

/// The `reason` label of a record that failed reassembly.
fn handoff_reason(error: &HandoffError) -> &'static str {
    match error {
        HandoffError::UnknownTable { .. } => "unknown_table",
        HandoffError::SchemaVersion { .. } => "schema_version",
        HandoffError::OutOfOrder { .. } => "out_of_order",
        HandoffError::Checksum { .. } => "checksum",
    }
}
