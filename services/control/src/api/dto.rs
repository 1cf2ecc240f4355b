//! The JSON the API answers with: a sync without its secret, the workspace list, a table toggle.

use dwsync_contract::Table;
use serde::{Deserialize, Serialize};

use crate::model::SyncConfig;

/// A sync as the API shows it; the secret key is never included, only whether it is set.
#[derive(Debug, Clone, Serialize)]
pub struct SyncView {
    /// The workspace.
    pub workspace_id: i64,
    /// Always 5.
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

/// A destination without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationView {
    /// The bucket.
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    /// The region.
    pub region: String,
    /// The endpoint URL, if not AWS S3.
    pub endpoint: Option<String>,
    /// Path-style addressing.
    pub force_path_style: bool,
    /// Whether the store honours `If-None-Match: *`.
    pub conditional_writes: bool,
    /// The access key id.
    pub access_key_id: String,
    /// Always `true`: a sync cannot exist without its secret.
    pub secret_access_key_set: bool,
}

/// One table's state.
#[derive(Debug, Clone, Serialize)]
pub struct TableView {
    /// The table name.
    pub table: &'static str,
    /// Exported or not.
    pub enabled: bool,
    /// When `enabled` last changed, ms since the Unix epoch.
    pub changed_at_ms: Option<i64>,
}

/// `GET /v1/workspaces`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceList {
    /// Every configured sync.
    pub workspaces: Vec<SyncView>,
}

/// The body of `PUT .../sync/tables/{table}`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableToggle {
    /// Turn the table on or off.
    pub enabled: bool,
}

impl From<&SyncConfig> for SyncView {
    fn from(cfg: &SyncConfig) -> Self {
        let d = &cfg.destination;
        Self {
            workspace_id: cfg.workspace_id.get(),
            schema_version: cfg.schema_version,
            disabled: cfg.disabled,
            revision: cfg.revision,
            updated_at_ms: cfg.updated_at_ms,
            destination: DestinationView {
                bucket: d.bucket.clone(),
                prefix: d.prefix.clone(),
                region: d.region.clone(),
                endpoint: d.endpoint.clone(),
                force_path_style: d.force_path_style,
                conditional_writes: d.conditional_writes,
                access_key_id: d.access_key_id.clone(),
                secret_access_key_set: !d.secret_access_key.ciphertext.is_empty(),
            },
            tables: Table::ALL
                .iter()
                .map(|t| {
                    let state = cfg.tables.get(t);
                    TableView {
                        table: t.name(),
                        enabled: cfg.is_enabled(*t),
                        changed_at_ms: state.map(|s| s.changed_at_ms),
                    }
                })
                .collect(),
        }
    }
}
