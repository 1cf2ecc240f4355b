//! A sync as a client sends it ([`SyncSpec`], secrets in plain text) and as the API shows it
//! ([`SyncView`], secrets never), the workspace list and a table toggle.

use std::collections::BTreeMap;
use std::fmt;

use dwsync_config::Secret;
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// The kinds of destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// AWS S3 or an S3-compatible store (the default).
    #[default]
    S3,
    /// Google Cloud Storage.
    Gcs,
}

wire_names!(DestinationKind { S3 => "s3", Gcs => "gcs" });

/// A secret of a request, sent as its plain text (a [`Secret`] serializes masked).
fn reveal<S: Serializer>(secret: &Option<Secret>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose()),
        None => serializer.serialize_none(),
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A destination as a client sends it, secret in plain text; control checks it
/// (`services/control/src/validate.rs`). Kind `s3` (the default) needs `region`,
/// `access_key_id` and `secret_access_key`; kind `gcs` needs `service_account_key` and refuses
/// the S3 settings. Settings left at their default are not sent.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// `s3` (default) or `gcs`.
    #[serde(default)]
    pub kind: DestinationKind,
    /// Bucket name: 3-63 characters, lowercase letters, digits, dots, hyphens.
    #[serde(default)]
    pub bucket: String,
    /// Key prefix ("path") inside the bucket, no leading or trailing slash. Alias: `path`.
    #[serde(default, alias = "path")]
    pub prefix: String,
    /// The bucket's region (s3 only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// `https://` URL of an S3-compatible store (absent for AWS S3), or of a GCS JSON API other
    /// than Google Cloud's (no path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Path-style addressing (s3 only; MinIO and most S3-compatible stores).
    #[serde(default, skip_serializing_if = "is_false")]
    #[schema(default = false)]
    pub force_path_style: bool,
    /// Whether the store honours `If-None-Match: *` (s3 only). Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(default = true)]
    pub conditional_writes: Option<bool>,
    /// The access key id (s3 only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_key_id: String,
    /// The secret access key (s3 only). Required on every create and update; never returned.
    #[serde(default, serialize_with = "reveal", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, write_only)]
    pub secret_access_key: Option<Secret>,
    /// gcs only: the service account's JSON key file as a string (`client_email`,
    /// `private_key`, `private_key_id`, `project_id`). Required on every create and update;
    /// never returned.
    #[serde(default, serialize_with = "reveal", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, write_only)]
    pub service_account_key: Option<Secret>,
}

impl fmt::Debug for DestinationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationSpec")
            .field("kind", &self.kind)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("secret_access_key", &self.secret_access_key)
            .field("service_account_key", &self.service_account_key)
            .finish_non_exhaustive()
    }
}

/// A sync as a client sends it on create and update (the body of `POST`/`PUT .../sync`, and
/// of `POST .../sync/check`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// The destination, with its secret.
    pub destination: DestinationSpec,
    /// Table name (or `campaign_metadata`, `objects` for their tables together) to on (`true`)
    /// or off (`false`); the tables of one schema must be asked alike; tables not named are on
    /// for a new sync and unchanged on update.
    #[serde(default)]
    pub tables: BTreeMap<String, bool>,
    /// Must be 5 if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 5, maximum = 5)]
    pub schema_version: Option<u32>,
}

/// The body of `PUT .../sync/tables/{table}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TableToggle {
    /// Turn the table on or off.
    pub enabled: bool,
}

/// A sync as the API shows it; the secret is never included, only whether it is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncView {
    /// The workspace.
    pub workspace_id: i64,
    /// The export schema version: always 5.
    pub schema_version: u32,
    /// The whole sync is disabled.
    pub disabled: bool,
    /// Incremented on every change.
    pub revision: u64,
    /// Last change, ms since the Unix epoch.
    pub updated_at_ms: i64,
    /// Where the files go.
    pub destination: DestinationView,
    /// Every v5 table, in the spec's order.
    pub tables: Vec<TableView>,
}

impl SyncView {
    /// The names of the tables turned off.
    pub fn tables_off(&self) -> Vec<&str> {
        self.tables.iter().filter(|t| !t.enabled).map(|t| t.table.as_str()).collect()
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableView> {
        self.tables.iter().find(|t| t.table == name)
    }

    /// `s3://bucket/prefix` (`gs://` for GCS).
    pub fn location(&self) -> String {
        let d = &self.destination;
        let scheme = match d.kind() {
            DestinationKind::S3 => "s3",
            DestinationKind::Gcs => "gs",
        };
        if d.prefix.is_empty() {
            format!("{scheme}://{}", d.bucket)
        } else {
            format!("{scheme}://{}/{}", d.bucket, d.prefix)
        }
    }
}

/// A destination without its secret: the bucket and prefix, and its kind with the kind's
/// settings (the S3 settings for kind `s3`, `client_email` and `service_account_key_set` for
/// kind `gcs`); never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DestinationView {
    /// The bucket.
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    /// The endpoint URL; `null` for AWS S3 (or Google Cloud's for GCS).
    pub endpoint: Option<String>,
    /// `kind` and the settings of that kind.
    #[serde(flatten)]
    pub settings: KindView,
}

impl DestinationView {
    /// The kind of destination.
    pub fn kind(&self) -> DestinationKind {
        match self.settings {
            KindView::S3 { .. } => DestinationKind::S3,
            KindView::Gcs { .. } => DestinationKind::Gcs,
        }
    }
}

/// The kind of a destination (`kind`: `s3` or `gcs`) with the settings only that kind has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KindView {
    /// An S3 destination's.
    S3 {
        /// The region.
        region: String,
        /// Path-style addressing.
        force_path_style: bool,
        /// Whether the store honours `If-None-Match: *`.
        conditional_writes: bool,
        /// The access key id.
        access_key_id: String,
        /// Always `true`: a sync cannot exist without its secret.
        secret_access_key_set: bool,
    },
    /// A GCS destination's.
    Gcs {
        /// The service account of the key.
        client_email: String,
        /// Always `true`: a sync cannot exist without its key.
        service_account_key_set: bool,
    },
}

/// One table's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TableView {
    /// The table name.
    #[schema(schema_with = crate::table_name_ref)]
    pub table: String,
    /// Exported or not.
    pub enabled: bool,
    /// When `enabled` last changed, ms since the Unix epoch.
    #[serde(default)]
    pub changed_at_ms: Option<i64>,
}

/// `GET /v1/workspaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceList {
    /// Every configured sync.
    pub workspaces: Vec<SyncView>,
}
