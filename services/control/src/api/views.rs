//! The API's answers ([`dwsync_api`]) built from the stored domain: a sync without its secret,
//! a workspace's status with its initial syncs, archive purge and last check, an issued token.

use dwsync_api::{
    DestinationView, ErrorView, InitialSyncView, KindView, LastCheckView, Progress, PurgeView, SyncState,
    SyncStatusView, SyncView, TableView, TokenView,
};
use dwsync_contract::Table;
use dwsync_sync_config::checks::LastCheck;
use dwsync_sync_config::tokens::IssuedToken;
use dwsync_sync_config::{InitialState, InitialSyncs, PurgeRequest, PurgeStatus, SyncStatus};

use crate::model::{Store, SyncConfig, WorkspaceId};

/// `cfg` as the API shows it: the secret never, only whether it is set.
pub fn sync(cfg: &SyncConfig) -> SyncView {
    let d = &cfg.destination;
    SyncView {
        workspace_id: cfg.workspace_id.get(),
        schema_version: cfg.schema_version,
        disabled: cfg.disabled,
        revision: cfg.revision,
        updated_at_ms: cfg.updated_at_ms,
        destination: DestinationView {
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
            .map(|t| TableView {
                table: t.name().to_owned(),
                enabled: cfg.is_enabled(*t),
                changed_at_ms: cfg.tables.get(t).map(|s| s.changed_at_ms),
            })
            .collect(),
    }
}

/// A workspace's last destination check as the status shows it.
pub fn last_check(c: &LastCheck) -> LastCheckView {
    LastCheckView {
        checked_at: rfc3339(c.at_ms),
        destination: c.destination.clone(),
        ok: c.ok,
        bucket: c.bucket.clone(),
        passed: c.passed.clone(),
        failure: c.failure.as_ref().map(|f| dwsync_api::FailureView {
            class: f.class.clone(),
            action: f.action.clone(),
            operation: f.operation.clone(),
            http_status: f.http_status,
            message: f.message.clone(),
        }),
    }
}

/// `request` as `report`ed by the backfill (a request without a report of its own is queued).
pub fn purge(request: &PurgeRequest, report: Option<&PurgeStatus>) -> PurgeView {
    let report = report.filter(|r| r.is_for(request));
    let (state, reason, failed_attempts) = progress(report.map(|r| &r.state));
    PurgeView {
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

/// `issued` as listed: without its token.
pub fn token(issued: &IssuedToken) -> TokenView {
    TokenView {
        id: issued.id.clone(),
        name: issued.name.clone(),
        created_at: rfc3339(issued.created_at_ms),
        token: None,
    }
}

/// The initial syncs of `cfg`'s tables with a baseline, as `reported` by the backfill (an
/// initial sync without a report of its epoch is queued).
pub fn initial_syncs(cfg: &SyncConfig, reported: Option<&InitialSyncs>) -> Vec<InitialSyncView> {
    Table::ALL
        .iter()
        .filter_map(|t| {
            let baseline = cfg.tables.get(t)?.baseline?;
            let report =
                reported.and_then(|r| r.tables.get(t)).filter(|r| r.epoch == baseline.epoch && r.cut == baseline.cut);
            let (state, reason, failed_attempts) = progress(report.map(|r| &r.state));
            Some(InitialSyncView {
                table: t.name().to_owned(),
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

/// A reported state (an initial sync's or a purge's; none reported: queued) as the API shows it:
/// its progress, why it waits or what failed, and the failed attempts.
fn progress(state: Option<&InitialState>) -> (Progress, Option<String>, u32) {
    match state {
        None => (Progress::Queued, None, 0),
        Some(InitialState::Queued { waiting_for }) => (Progress::Queued, waiting_for.clone(), 0),
        Some(InitialState::Running) => (Progress::Running, None, 0),
        Some(InitialState::Done) => (Progress::Done, None, 0),
        Some(InitialState::Failed { reason, attempts }) => (Progress::Failed, Some(reason.clone()), *attempts),
    }
}

/// The status of `cfg`'s sync with the uploader's report and the backfill's, if any.
pub fn status(cfg: &SyncConfig, reported: Option<&SyncStatus>, initial: Option<&InitialSyncs>) -> SyncStatusView {
    let workspace_id = cfg.workspace_id.get();
    let initial_syncs = initial_syncs(cfg, initial);
    let initial_pending = initial_syncs
        .iter()
        .any(|v| v.state != Progress::Done && v.table.parse().is_ok_and(|t: Table| cfg.is_enabled(t)));
    let Some(r) = reported else {
        let state = if cfg.disabled {
            SyncState::Disabled
        } else if initial_pending {
            SyncState::InitialSync
        } else {
            SyncState::Unknown
        };
        return SyncStatusView { initial_syncs, ..SyncStatusView::unreported(workspace_id, state) };
    };
    let state = if cfg.disabled {
        SyncState::Disabled
    } else if r.failing {
        SyncState::Failing
    } else if initial_pending {
        SyncState::InitialSync
    } else if r.files_paused > 0 || cfg.tables.values().any(|t| !t.enabled) {
        SyncState::Paused
    } else {
        SyncState::Ok
    };
    SyncStatusView {
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
pub fn without_sync(id: WorkspaceId, purge: PurgeView) -> SyncStatusView {
    SyncStatusView { archive_purge: Some(purge), ..SyncStatusView::unreported(id.get(), SyncState::NoSync) }
}

/// `ms` since the Unix epoch as RFC 3339 (UTC, milliseconds).
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}
