//! The status side of the loop: what it wrote and what failed, noted on the [`StatusBoard`] and
//! reported on the status topic every `sync_config.status_interval_ms`.

use std::collections::HashMap;
use std::time::Duration;

use dwsync_handoff::{CompleteFile, data_key};
use dwsync_sync_config::{KafkaStore, SyncStatus};

use crate::destinations::DestinationClient;
use crate::lot::ParkedFiles;
use crate::status::{self, StatusBoard};

/// Notes each workspace's status and reports the changes.
pub(super) struct StatusReporter {
    board: StatusBoard,
    /// The status topic, if statuses are reported.
    store: Option<KafkaStore<SyncStatus>>,
    /// How often.
    interval: Duration,
}

impl StatusReporter {
    /// Reports on `store`, if any, every `interval`.
    pub(super) fn new(store: Option<KafkaStore<SyncStatus>>, interval: Duration) -> Self {
        Self { board: StatusBoard::new(), store, interval }
    }

    /// How often [`report`](Self::report) is due.
    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    /// Notes that `file` (sequence number `seq`) is in `dest`'s bucket.
    pub(super) fn written(&mut self, dest: &DestinationClient, file: &CompleteFile, seq: u64) {
        let (meta, workspace_id) = (&file.meta, file.meta.workspace_id);
        self.board.written(workspace_id, data_key(&dest.prefix, meta.table, meta.kind, workspace_id, seq));
    }

    /// Notes that delivering to `workspace_id` failed with `message` (which holds no secret).
    pub(super) fn failed(&mut self, workspace_id: i64, message: String) {
        self.board.failed(workspace_id, message);
    }

    /// Reports the statuses that changed, with the lot's waiting files (`waiting`), on the
    /// status topic.
    pub(super) fn report(&mut self, waiting: &HashMap<i64, ParkedFiles>) {
        self.board.waiting(waiting);
        let changed = self.board.take_changed();
        if let Some(store) = &self.store {
            status::report(store, changed);
        }
    }
}
