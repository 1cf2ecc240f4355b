//! A destination check's answer (`POST /v1/workspaces/{id}/sync/check`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which destination was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Checked {
    /// The workspace's stored sync's.
    Stored,
    /// The one in the request's body.
    Submitted,
}

wire_names!(Checked { Stored => "stored", Submitted => "submitted" });

/// A check's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CheckView {
    /// The workspace.
    #[serde(default)]
    pub workspace_id: i64,
    /// Which destination was checked.
    pub destination: Checked,
    /// Whether every action passed.
    pub ok: bool,
    /// The bucket.
    #[serde(default)]
    pub bucket: String,
    /// The actions that passed, in order (`list`, `write`, `read`, `multipart`).
    pub passed: Vec<String>,
    /// The first action that failed, if any; the later ones were not tried.
    #[serde(default)]
    pub failure: Option<FailureView>,
}

/// The failed action of a check (also as the status keeps it, in `last_check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = CheckFailure)]
pub struct FailureView {
    /// `bucket_missing`, `access_denied`, `wrong_region`, `bad_signature`, `unknown_access_key`,
    /// `tls_failure`, `timeout`, `unreachable`, `egress_refused` or `other`.
    pub class: String,
    /// `list`, `write`, `read` or `multipart`.
    pub action: String,
    /// The S3 operation (or the GCS JSON API's).
    #[serde(default)]
    pub operation: String,
    /// The HTTP status, if an answer came.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// What failed and what to do, built from the class (never the server's own words).
    pub message: String,
}
