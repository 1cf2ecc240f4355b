//! Archive purges: an admin's request to remove one workspace's archived data (control writes
//! it on its own compacted topic), and the backfill's report of how far it got (the backfill
//! writes it on another). Both are keyed by workspace id, JSON values.

use serde::{Deserialize, Serialize};

use crate::store::StoreConfig;

/// The default topic of purge requests (written by control only).
pub const ARCHIVE_PURGE_TOPIC: &str = "dwsync.archive-purges";

/// The default topic of purge reports (written by the backfill only).
pub const ARCHIVE_PURGE_STATUS_TOPIC: &str = "dwsync.archive-purge-status";

/// The purge requests' store settings: `store.archive_purge_topic`, otherwise `store`'s.
pub fn archive_purge_store(store: &StoreConfig) -> StoreConfig {
    StoreConfig { topic: store.archive_purge_topic.clone(), ..store.clone() }
}

/// The purge reports' store settings: `store.archive_purge_status_topic`, otherwise `store`'s.
pub fn archive_purge_status_store(store: &StoreConfig) -> StoreConfig {
    StoreConfig { topic: store.archive_purge_status_topic.clone(), ..store.clone() }
}

/// A workspace's latest purge request: everything it handed off before the cut goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRequest {
    /// The workspace.
    pub workspace_id: i64,
    /// 1 for its first request, one more for each later one (the newer wins).
    pub epoch: u64,
    /// Its handoff partition.
    pub partition: i32,
    /// The offset of the cut record written for the request: archive batches starting below it
    /// are purged of the workspace.
    pub cut: i64,
    /// When it was asked for, ms since the Unix epoch.
    pub requested_at_ms: i64,
}

/// Where a purge is: the states of an initial sync. `Queued` waits for the archive to pass the
/// cut (and the archiver to commit past it), `Running` rewrites objects (counts so far), `Done`:
/// every archived object of the workspace before the cut is rewritten or deleted, `Failed`: the
/// last attempt failed, it is tried again.
pub type PurgeState = crate::initial::InitialState;

/// The backfill's report on a workspace's latest purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeStatus {
    /// The workspace.
    pub workspace_id: i64,
    /// The request's epoch ([`PurgeRequest::epoch`]).
    pub epoch: u64,
    /// The request's cut.
    pub cut: i64,
    /// Where it is.
    #[serde(flatten)]
    pub state: PurgeState,
    /// Archive objects rewritten without the workspace so far.
    pub objects_rewritten: u64,
    /// Archive objects deleted (they held only the workspace) so far.
    pub objects_deleted: u64,
    /// The workspace's archived rows removed so far.
    pub rows_removed: u64,
    /// When the request was made, ms since the Unix epoch.
    pub requested_at_ms: i64,
    /// When it was done, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// When this was reported, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

impl PurgeStatus {
    /// A queued purge of `request`.
    pub fn queued(request: &PurgeRequest, now_ms: i64) -> Self {
        Self {
            workspace_id: request.workspace_id,
            epoch: request.epoch,
            cut: request.cut,
            state: PurgeState::Queued { waiting_for: None },
            objects_rewritten: 0,
            objects_deleted: 0,
            rows_removed: 0,
            requested_at_ms: request.requested_at_ms,
            finished_at_ms: None,
            updated_at_ms: now_ms,
        }
    }

    /// Whether this reports `request` (same epoch and cut).
    pub fn is_for(&self, request: &PurgeRequest) -> bool {
        self.epoch == request.epoch && self.cut == request.cut
    }

    /// Whether `request` is done.
    pub fn is_done_for(&self, request: &PurgeRequest) -> bool {
        self.is_for(request) && self.state == PurgeState::Done
    }
}

crate::store::json_topic_value!(PurgeRequest);
crate::store::json_topic_value!(PurgeStatus);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TopicValue;

    #[test]
    fn requests_and_reports_round_trip() {
        let request = PurgeRequest { workspace_id: 7, epoch: 2, partition: 1, cut: 90, requested_at_ms: 5 };
        assert_eq!(PurgeRequest::decode(&request.encode()).expect("decodes"), request);
        let mut status = PurgeStatus::queued(&request, 6);
        assert!(status.is_for(&request) && !status.is_done_for(&request));
        status.state = PurgeState::Done;
        status.finished_at_ms = Some(9);
        let json = String::from_utf8(status.encode()).expect("utf-8");
        assert!(json.contains(r#""state":"done""#), "{json}");
        let back = PurgeStatus::decode(json.as_bytes()).expect("decodes");
        assert!(back.is_done_for(&request));
        assert!(!back.is_done_for(&PurgeRequest { epoch: 3, ..request.clone() }), "a newer request");
        assert!(PurgeRequest::decode(&PurgeRequest { workspace_id: 0, ..request }.encode()).is_err());
    }
}
