//! A workspace's delivery status, as the uploader reports it on a compacted topic (keyed by
//! workspace id, JSON value) and the control API serves it.

use serde::{Deserialize, Serialize};

use crate::store::StoreConfig;

/// The default status topic.
pub const STATUS_TOPIC: &str = "dwsync.sync-status";

/// The status topic's store settings: `store.status_topic`, otherwise `store`'s.
pub fn status_store(store: &StoreConfig) -> StoreConfig {
    StoreConfig { topic: store.status_topic.clone(), ..store.clone() }
}

/// The last error a workspace's deliveries met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastError {
    /// What failed (an S3 error code and message; never a secret).
    pub message: String,
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
}

/// How a workspace's files are getting to its bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Whose status it is.
    pub workspace_id: i64,
    /// Whether its destination is failing right now (files are parked and retried).
    pub failing: bool,
    /// When a file was last written to the bucket, ms since the Unix epoch.
    pub last_sync_at_ms: Option<i64>,
    /// The object keys of the last files written, newest last (a few).
    pub last_files: Vec<String>,
    /// Files kept for later: parked because the destination fails, or of tables turned off.
    pub files_waiting: u64,
    /// Of those, files of tables turned off.
    pub files_paused: u64,
    /// The last error, if any delivery failed since the uploader started.
    pub last_error: Option<LastError>,
    /// Age of the oldest waiting file (from its window's close), in ms; 0 when none waits.
    pub lag_ms: i64,
    /// When this status was reported, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

impl SyncStatus {
    /// A status with nothing delivered and nothing waiting.
    pub fn new(workspace_id: i64) -> Self {
        Self {
            workspace_id,
            failing: false,
            last_sync_at_ms: None,
            last_files: Vec::new(),
            files_waiting: 0,
            files_paused: 0,
            last_error: None,
            lag_ms: 0,
            updated_at_ms: 0,
        }
    }
}

crate::store::json_topic_value!(SyncStatus);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TopicValue;

    #[test]
    fn round_trips_and_rejects_bad_ids() {
        let mut s = SyncStatus::new(7);
        s.last_error = Some(LastError { message: "AccessDenied".into(), at_ms: 5 });
        s.files_waiting = 3;
        let back = SyncStatus::decode(&s.encode()).expect("decodes");
        assert_eq!(back, s);
        assert_eq!(back.workspace_id().get(), 7);
        assert!(SyncStatus::decode(&SyncStatus::new(0).encode()).is_err());
        assert!(SyncStatus::decode(b"{").is_err());
    }
}
