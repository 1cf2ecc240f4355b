//! A workspace's delivery status (`GET /v1/workspaces/{id}/status`): its [`SyncState`], what
//! the uploaders reported, each table's initial sync, the archive purge and the last check.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::check::FailureView;

/// How a workspace's sync is doing, as the status names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Files are delivered.
    Ok,
    /// Its destination fails; files are parked and retried.
    Failing,
    /// An enabled table's initial sync is not done: its incremental files wait.
    InitialSync,
    /// Tables turned off hold files.
    Paused,
    /// The whole sync is disabled.
    Disabled,
    /// No uploader has reported yet.
    Unknown,
    /// The workspace has no sync; only its archive purge is shown.
    NoSync,
}

wire_names!(SyncState {
    Ok => "ok",
    Failing => "failing",
    InitialSync => "initial_sync",
    Paused => "paused",
    Disabled => "disabled",
    Unknown => "unknown",
    NoSync => "no_sync",
});

/// Where an initial sync or an archive purge is (none reported yet: queued).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// Waiting: for its turn, or for the archive.
    Queued,
    /// Under way.
    Running,
    /// Done.
    Done,
    /// Failed; tried again.
    Failed,
}

wire_names!(Progress { Queued => "queued", Running => "running", Done => "done", Failed => "failed" });

/// A workspace's delivery status as the API shows it: last sync, last files, files waiting
/// (parked or of tables turned off), last error, lag, and each table's initial sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncStatusView {
    /// The workspace.
    pub workspace_id: i64,
    /// How the sync is doing.
    pub state: SyncState,
    /// When a file was last written, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub last_sync_at: Option<String>,
    /// The last object keys written, newest last.
    #[serde(default)]
    pub last_files: Vec<String>,
    /// Files waiting: parked for a failing destination, or of tables turned off.
    #[serde(default)]
    pub files_waiting: u64,
    /// Of those, files of tables turned off.
    #[serde(default)]
    pub files_paused: u64,
    /// The last error and when it happened.
    #[serde(default)]
    pub last_error: Option<ErrorView>,
    /// Age of the oldest waiting file since its window closed, in seconds.
    #[serde(default)]
    pub lag_seconds: f64,
    /// When the uploader reported this, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    /// Each table's latest initial sync (tables that had one), in the spec's order.
    #[serde(default)]
    pub initial_syncs: Vec<InitialSyncView>,
    /// The workspace's latest archive purge, if one was asked for.
    #[serde(default)]
    pub archive_purge: Option<PurgeView>,
    /// The workspace's last destination check (`POST …/sync/check` or `?check=true`), if one
    /// ran.
    #[serde(default)]
    pub last_check: Option<LastCheckView>,
}

impl SyncStatusView {
    /// A status of `state` with nothing reported by an uploader, no initial sync, no purge and
    /// no check.
    pub fn unreported(workspace_id: i64, state: SyncState) -> Self {
        Self {
            workspace_id,
            state,
            last_sync_at: None,
            last_files: Vec::new(),
            files_waiting: 0,
            files_paused: 0,
            last_error: None,
            lag_seconds: 0.0,
            updated_at: None,
            initial_syncs: Vec::new(),
            archive_purge: None,
            last_check: None,
        }
    }
}

/// An error with its time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorView {
    /// What failed (never a secret).
    pub message: String,
    /// When, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub at: String,
}

/// One table's latest initial sync: its baseline of the workspace's history, delivered before
/// the table's incremental files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InitialSyncView {
    /// The table.
    #[schema(schema_with = crate::table_name_ref)]
    pub table: String,
    /// `queued` (waiting for its turn or for the archive), `running`, `done`, or `failed`
    /// (tried again).
    pub state: Progress,
    /// Rows written to the bucket so far.
    #[serde(default)]
    pub rows: u64,
    /// Files written so far (`cio-validate` not counted).
    #[serde(default)]
    pub files: u64,
    /// Why it waits (queued) or what failed (failed).
    #[serde(default)]
    pub reason: Option<String>,
    /// Attempts that failed so far.
    #[serde(default)]
    pub failed_attempts: u32,
    /// When it was asked for, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub asked_at: String,
    /// When the backfill last reported on it, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// A workspace's latest archive purge: what it handed off before the cut is removed from the
/// archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurgeView {
    /// The workspace.
    pub workspace_id: i64,
    /// 1 for the workspace's first purge, one more for each later one.
    pub epoch: u64,
    /// The workspace's handoff partition.
    pub partition: i32,
    /// The offset of the purge's cut record: what the workspace handed off before it is purged.
    pub cut: i64,
    /// `queued` (waiting for the archive to pass the cut), `running`, `done` (its archived data
    /// before the cut is gone), or `failed` (tried again).
    pub state: Progress,
    /// When it was asked for, RFC 3339.
    #[schema(format = DateTime)]
    pub requested_at: String,
    /// When it was done, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Archive objects rewritten without the workspace so far.
    #[serde(default)]
    pub objects_rewritten: u64,
    /// Archive objects deleted (they held only the workspace) so far.
    #[serde(default)]
    pub objects_deleted: u64,
    /// The workspace's archived rows removed so far.
    #[serde(default)]
    pub rows_removed: u64,
    /// Why it waits (queued) or what failed (failed).
    #[serde(default)]
    pub reason: Option<String>,
    /// Attempts that failed so far.
    #[serde(default)]
    pub failed_attempts: u32,
    /// When the backfill last reported on it, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
}

/// A workspace's last destination check as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LastCheckView {
    /// When it ran, RFC 3339.
    #[schema(format = DateTime)]
    pub checked_at: String,
    /// Which destination: `stored` or `submitted`.
    #[schema(schema_with = checked)]
    pub destination: String,
    /// Whether every action passed.
    pub ok: bool,
    /// The bucket.
    pub bucket: String,
    /// The actions that passed, in order (`list`, `write`, `read`, `multipart`).
    #[schema(schema_with = crate::check::passed)]
    pub passed: Vec<String>,
    /// The first action that failed, if any.
    #[serde(default)]
    pub failure: Option<FailureView>,
}

/// The schema of which destination a check tried: a [`Checked`](crate::Checked), kept a string.
fn checked() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name(<crate::Checked as utoipa::ToSchema>::name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_the_strings_of_the_wire() {
        for state in [
            SyncState::Ok,
            SyncState::Failing,
            SyncState::InitialSync,
            SyncState::Paused,
            SyncState::Disabled,
            SyncState::Unknown,
            SyncState::NoSync,
        ] {
            let json = serde_json::to_value(state).expect("json");
            assert_eq!(json, serde_json::Value::from(state.as_str()));
            assert_eq!(serde_json::from_value::<SyncState>(json).expect("back"), state);
        }
        for progress in [Progress::Queued, Progress::Running, Progress::Done, Progress::Failed] {
            assert_eq!(serde_json::to_value(progress).expect("json"), serde_json::Value::from(progress.as_str()));
        }
        for kind in [crate::DestinationKind::S3, crate::DestinationKind::Gcs] {
            assert_eq!(serde_json::to_value(kind).expect("json"), serde_json::Value::from(kind.as_str()));
        }
        for checked in [crate::Checked::Stored, crate::Checked::Submitted] {
            assert_eq!(serde_json::to_value(checked).expect("json"), serde_json::Value::from(checked.as_str()));
        }
        assert_eq!(format!("{:<8}|", Progress::Done), "done    |", "padding is honoured");
    }
}
