//! The JSON the API answers with: a sync without its secret, the workspace list, a table toggle.

use dwsync_contract::Table;
use serde::{Deserialize, Serialize};

use dwsync_sync_config::{InitialState, InitialSyncs, PurgeRequest, PurgeStatus, SyncStatus};

use crate::model::WorkspaceId;

use crate::model::{Store, SyncConfig};

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

/// A destination without its secret: the kind, the bucket and prefix, and the kind's settings.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationView {
    /// `s3` or `gcs`.
    pub kind: &'static str,
    /// The bucket.
    pub bucket: String,
    /// The key prefix.
    pub prefix: String,
    /// The endpoint URL, if not AWS S3 (or Google Cloud's for GCS).
    pub endpoint: Option<String>,
    /// The settings of its kind.
    #[serde(flatten)]
    pub settings: KindView,
}

/// The settings only one kind of destination has.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
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
                kind: d.kind(),
                bucket: d.bucket.clone(),
                prefix: d.prefix.clone(),
                endpoint: d.endpoint().map(str::to_owned),
                settings: match &d.store {
                    Store::S3(s3) => KindView::S3 {
                        region: s3.region.clone(),
                        force_path_style: s3.force_path_style,
                        conditional_writes: s3.conditional_writes,
                        access_key_id: s3.access_key_id.clone(),
                        secret_access_key_set: !s3.secret_access_key.ciphertext.is_empty(),
                    },
                    Store::Gcs(gcs) => KindView::Gcs {
                        client_email: gcs.client_email.clone(),
                        service_account_key_set: !gcs.service_account_key.ciphertext.is_empty(),
                    },
                },
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

/// A workspace's delivery status as the API shows it (`GET /v1/workspaces/{id}/status`).
#[derive(Debug, Clone, Serialize)]
pub struct SyncStatusView {
    /// The workspace.
    pub workspace_id: i64,
    /// `ok`, `failing` (its destination fails; files are parked and retried), `initial_sync`
    /// (an enabled table's initial sync is not done: its incremental files wait), `paused`
    /// (tables turned off hold files), `disabled`, `unknown` (no uploader has reported yet), or
    /// `no_sync` (the workspace has no sync; only its archive purge is shown).
    pub state: &'static str,
    /// When a file was last written, RFC 3339.
    pub last_sync_at: Option<String>,
    /// The last object keys written, newest last.
    pub last_files: Vec<String>,
    /// Files waiting: parked for a failing destination, or of tables turned off.
    pub files_waiting: u64,
    /// Of those, files of tables turned off.
    pub files_paused: u64,
    /// The last error and when it happened.
    pub last_error: Option<ErrorView>,
    /// Age of the oldest waiting file since its window closed, in seconds.
    pub lag_seconds: f64,
    /// When the uploader reported this, RFC 3339.
    pub updated_at: Option<String>,
    /// Each table's latest initial sync (tables that had one), in the spec's order.
    pub initial_syncs: Vec<InitialSyncView>,
    /// The workspace's latest archive purge, if one was asked for.
    pub archive_purge: Option<PurgeView>,
    /// The workspace's last destination check (`POST …/sync/check` or `?check=true`), if any.
    pub last_check: Option<LastCheckView>,
}

/// A workspace's last destination check as the status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LastCheckView {
    /// When it ran, RFC 3339.
    pub checked_at: String,
    /// Which destination: `stored` or `submitted`.
    pub destination: String,
    /// Whether every action passed.
    pub ok: bool,
    /// The bucket.
    pub bucket: String,
    /// The actions that passed, in order.
    pub passed: Vec<String>,
    /// The first action that failed, if any.
    pub failure: Option<dwsync_sync_config::checks::CheckFailure>,
}

impl From<&dwsync_sync_config::checks::LastCheck> for LastCheckView {
    fn from(c: &dwsync_sync_config::checks::LastCheck) -> Self {
        Self {
            checked_at: rfc3339(c.at_ms),
            destination: c.destination.clone(),
            ok: c.ok,
            bucket: c.bucket.clone(),
            passed: c.passed.clone(),
            failure: c.failure.clone(),
        }
    }
}

/// A workspace's latest archive purge as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeView {
    /// The workspace.
    pub workspace_id: i64,
    /// 1 for the workspace's first purge, one more for each later one.
    pub epoch: u64,
    /// The workspace's handoff partition.
    pub partition: i32,
    /// The cut: what the workspace handed off before this offset of its partition is purged.
    pub cut: i64,
    /// `queued` (waiting for the archive to pass the cut), `running`, `done` (its archived data
    /// before the cut is gone), or `failed` (tried again).
    pub state: &'static str,
    /// When it was asked for, RFC 3339.
    pub requested_at: String,
    /// When it was done, RFC 3339.
    pub finished_at: Option<String>,
    /// Archive objects rewritten without the workspace so far.
    pub objects_rewritten: u64,
    /// Archive objects deleted (they held only the workspace) so far.
    pub objects_deleted: u64,
    /// The workspace's archived rows removed so far.
    pub rows_removed: u64,
    /// Why it waits (queued) or what failed (failed).
    pub reason: Option<String>,
    /// Attempts that failed so far.
    pub failed_attempts: u32,
    /// When the backfill last reported on it, RFC 3339.
    pub updated_at: Option<String>,
}

impl PurgeView {
    /// `request` as `report`ed by the backfill (a request without a report of its own is queued).
    pub fn new(request: &PurgeRequest, report: Option<&PurgeStatus>) -> Self {
        let report = report.filter(|r| r.is_for(request));
        let (state, reason, failed_attempts) = state_view(report.map(|r| &r.state));
        Self {
            workspace_id: request.workspace_id,
            epoch: request.epoch,
            partition: request.partition,
            cut: request.cut,
            state,
            requested_at: rfc3339(request.requested_at_ms),
            finished_at: report.and_then(|r| r.finished_at_ms).map(rfc3339),
            objects_rewritten: report.map_or(0, |r| r.objects_rewritten),
            objects_deleted: report.map_or(0, |r| r.objects_deleted),
            rows_removed: report.map_or(0, |r| r.rows_removed),
            reason,
            failed_attempts,
            updated_at: report.map(|r| rfc3339(r.updated_at_ms)),
        }
    }
}

/// `POST /v1/workspaces/{id}/tokens`: the new token's name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// What the token is for (1 to 64 characters, no control characters).
    pub name: String,
}

/// An issued token as the API shows it; `token` only in the answer that issued it.
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    /// Its id, to revoke it by.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was issued, RFC 3339.
    pub created_at: String,
    /// The token itself: shown once, never stored, never shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl TokenView {
    /// `issued` without its token.
    pub fn listed(issued: &dwsync_sync_config::tokens::IssuedToken) -> Self {
        Self {
            id: issued.id.clone(),
            name: issued.name.clone(),
            created_at: rfc3339(issued.created_at_ms),
            token: None,
        }
    }
}

/// `GET /v1/workspaces/{id}/tokens`: the workspace's tokens, oldest first, without the tokens.
#[derive(Debug, Clone, Serialize)]
pub struct TokenList {
    /// The tokens.
    pub tokens: Vec<TokenView>,
}

/// One table's initial sync as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InitialSyncView {
    /// The table.
    pub table: &'static str,
    /// `queued` (waiting for its turn or for the archive), `running`, `done`, or `failed` (tried
    /// again).
    pub state: &'static str,
    /// Rows written to the bucket so far.
    pub rows: u64,
    /// Files written so far (`cio-validate` not counted).
    pub files: u64,
    /// Why it waits (queued) or what failed (failed).
    pub reason: Option<String>,
    /// Attempts that failed so far.
    pub failed_attempts: u32,
    /// When it was asked for, RFC 3339.
    pub asked_at: String,
    /// When the backfill last reported on it, RFC 3339.
    pub updated_at: Option<String>,
}

impl InitialSyncView {
    /// The initial syncs of `cfg`'s tables with a baseline, as `reported` by the backfill (an
    /// initial sync without a report of its epoch is queued).
    pub fn all(cfg: &SyncConfig, reported: Option<&InitialSyncs>) -> Vec<Self> {
        Table::ALL
            .iter()
            .filter_map(|t| {
                let baseline = cfg.tables.get(t)?.baseline?;
                let report = reported
                    .and_then(|r| r.tables.get(t))
                    .filter(|r| r.epoch == baseline.epoch && r.cut == baseline.cut);
                let (state, reason, failed_attempts) = state_view(report.map(|r| &r.state));
                Some(Self {
                    table: t.name(),
                    state,
                    rows: report.map_or(0, |r| r.rows),
                    files: report.map_or(0, |r| r.files),
                    reason,
                    failed_attempts,
                    asked_at: rfc3339(baseline.at_ms),
                    updated_at: report.map(|r| rfc3339(r.updated_at_ms)),
                })
            })
            .collect()
    }
}

/// A reported state (an initial sync's or a purge's; none reported: queued) as the API shows it:
/// its name, why it waits or what failed, and the failed attempts.
fn state_view(state: Option<&InitialState>) -> (&'static str, Option<String>, u32) {
    match state {
        None => ("queued", None, 0),
        Some(InitialState::Queued { waiting_for }) => ("queued", waiting_for.clone(), 0),
        Some(InitialState::Running) => ("running", None, 0),
        Some(InitialState::Done) => ("done", None, 0),
        Some(InitialState::Failed { reason, attempts }) => ("failed", Some(reason.clone()), *attempts),
    }
}

/// An error with its time.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorView {
    /// What failed (never a secret).
    pub message: String,
    /// When, RFC 3339.
    pub at: String,
}

impl SyncStatusView {
    /// The view of `cfg`'s sync with the uploader's report and the backfill's, if any.
    pub fn new(cfg: &SyncConfig, reported: Option<&SyncStatus>, initial: Option<&InitialSyncs>) -> Self {
        let workspace_id = cfg.workspace_id.get();
        let initial_syncs = InitialSyncView::all(cfg, initial);
        let initial_pending =
            initial_syncs.iter().any(|v| v.state != "done" && v.table.parse().is_ok_and(|t: Table| cfg.is_enabled(t)));
        let Some(r) = reported else {
            let state = if cfg.disabled {
                "disabled"
            } else if initial_pending {
                "initial_sync"
            } else {
                "unknown"
            };
            return Self { initial_syncs, ..Self::unreported(workspace_id, state) };
        };
        let state = if cfg.disabled {
            "disabled"
        } else if r.failing {
            "failing"
        } else if initial_pending {
            "initial_sync"
        } else if r.files_paused > 0 || cfg.tables.values().any(|t| !t.enabled) {
            "paused"
        } else {
            "ok"
        };
        Self {
            workspace_id,
            state,
            last_sync_at: r.last_sync_at_ms.map(rfc3339),
            last_files: r.last_files.clone(),
            files_waiting: r.files_waiting,
            files_paused: r.files_paused,
            last_error: r.last_error.as_ref().map(|e| ErrorView { message: e.message.clone(), at: rfc3339(e.at_ms) }),
            lag_seconds: r.lag_ms as f64 / 1000.0,
            updated_at: Some(rfc3339(r.updated_at_ms)),
            initial_syncs,
            archive_purge: None,
            last_check: None,
        }
    }

    /// The status of a workspace without a sync whose archive was purged (`state: no_sync`).
    pub fn without_sync(id: WorkspaceId, purge: PurgeView) -> Self {
        Self { archive_purge: Some(purge), ..Self::unreported(id.get(), "no_sync") }
    }

    /// `state` with nothing reported by an uploader, no initial sync and no purge.
    fn unreported(workspace_id: i64, state: &'static str) -> Self {
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

/// `ms` since the Unix epoch as RFC 3339 (UTC, milliseconds).
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
