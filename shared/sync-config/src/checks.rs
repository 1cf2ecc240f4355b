//! The last destination check of each workspace: control (its only writer) keeps it on a
//! compacted topic of its own (`store.check_topic`), keyed by workspace id, as JSON, and serves it
//! in the workspace's status, so every control replica shows the same one.

use serde::{Deserialize, Serialize};

use crate::store::StoreConfig;

/// The default topic of the last checks (written by control only).
pub const CHECK_TOPIC: &str = "dwsync.destination-checks";

/// The checks' store settings: `store.check_topic`, otherwise `store`'s.
pub fn check_store(store: &StoreConfig) -> StoreConfig {
    StoreConfig { topic: store.check_topic.clone(), ..store.clone() }
}

/// A workspace's last destination check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastCheck {
    /// The workspace.
    pub workspace_id: i64,
    /// When it ran, ms since the Unix epoch.
    pub at_ms: i64,
    /// Which destination: `stored` or `submitted`.
    pub destination: String,
    /// Whether every action passed.
    pub ok: bool,
    /// The bucket.
    pub bucket: String,
    /// The actions that passed, in order.
    pub passed: Vec<String>,
    /// The first action that failed, if any.
    pub failure: Option<CheckFailure>,
}

/// The failed action of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckFailure {
    /// The failure class (`bucket_missing`, `access_denied`, …).
    pub class: String,
    /// The action (`list`, `write`, `read`, `multipart`).
    pub action: String,
    /// The S3 operation.
    pub operation: String,
    /// The HTTP status, if an answer came.
    pub http_status: Option<u16>,
    /// What failed and what to do (never the server's body).
    pub message: String,
}

crate::store::json_topic_value!(LastCheck);
