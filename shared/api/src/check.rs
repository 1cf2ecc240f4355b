//! A destination check's answer (`POST /v1/workspaces/{id}/sync/check`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, Type};

/// The actions of a check, in the order they are tried (`dwsync_s3::check::Action`).
pub const ACTIONS: [&str; 4] = ["list", "write", "read", "multipart"];

/// The classes of a failed action (`dwsync_s3::check::FailureClass`).
pub const FAILURE_CLASSES: [&str; 10] = [
    "bucket_missing",
    "access_denied",
    "wrong_region",
    "bad_signature",
    "unknown_access_key",
    "tls_failure",
    "timeout",
    "unreachable",
    "egress_refused",
    "other",
];

/// A string of `names` (the wire keeps strings, so that a client reads names added later).
fn one_of(names: &[&'static str], description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names.iter().copied()))
        .description(Some(description))
        .build()
}

/// The schema of an action's name.
fn action() -> Object {
    one_of(&ACTIONS, "`list`, `write`, `read` or `multipart`.")
}

/// The schema of a failure's class.
fn class() -> Object {
    one_of(&FAILURE_CLASSES, "The failure class.")
}

/// The schema of the actions that passed.
pub(crate) fn passed() -> utoipa::openapi::Array {
    ArrayBuilder::new()
        .items(one_of(&ACTIONS, "An action."))
        .description(Some("The actions that passed, in order."))
        .build()
}

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
    #[schema(schema_with = passed)]
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
    #[schema(schema_with = class)]
    pub class: String,
    /// `list`, `write`, `read` or `multipart`.
    #[schema(schema_with = action)]
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
