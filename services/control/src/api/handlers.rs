//! The handlers: authorize, validate, read-modify-write under the state's write lock, answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use dwsync_api::{PurgeView, SyncStatusView, SyncView, TableToggle, WorkspaceList};
use dwsync_contract::Table;
use serde::de::DeserializeOwned;

use super::AppState;
use super::check::{self, CheckParam};
use super::error::ApiError;
use super::initial;
use super::views;
use crate::model::{
    BadWorkspaceId, Destination, DestinationKind, GcsStore, S3Store, SCHEMA_VERSION, Store, SyncConfig, SyncSpec,
    TableState, WorkspaceId,
};
use crate::store::ConfigStore;
use crate::validate::{self, Valid};
use dwsync_handoff::Cut;
use dwsync_sync_config::{InitialSyncs, PurgeRequest};

type Answer<T> = Result<T, ApiError>;

/// `POST /v1/workspaces/{id}/sync`: creates the sync; 409 if it exists.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{id}/sync",
    operation_id = "createSync",
    summary = "Create a workspace's sync (all tables on unless named off).",
    params(super::openapi::WorkspacePath, CheckParam),
    request_body = SyncSpec,
    responses((status = 201, description = "Done.", body = SyncView)),
)]
pub(super) async fn create<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<(StatusCode, Json<SyncView>)> {
    let id = app.tokens.workspace(&headers, &id)?;
    let param = CheckParam::parse(query.as_deref())?;
    let valid = validate::validate(parse_body::<SyncSpec>(&body)?, &app.policy)?;
    validate::egress(&valid, &app.policy).await?;
    check::require(&app, id, &valid, param).await?;
    let _write = app.write_lock.lock().await;
    if app.store.get(id).await?.is_some() {
        return Err(ApiError::Exists(id));
    }
    let now = app.now_ms();
    let mut tables: std::collections::BTreeMap<Table, TableState> =
        Table::ALL.iter().map(|t| (*t, TableState::new(true, now))).collect();
    for (table, enabled) in &valid.tables {
        let _ = tables.insert(*table, TableState::new(*enabled, now));
    }
    let mut cfg = SyncConfig {
        workspace_id: id,
        schema_version: SCHEMA_VERSION,
        destination: destination(&app, id, valid)?,
        tables,
        disabled: false,
        updated_at_ms: now,
        revision: 1,
    };
    let asks = initial::asks(None, &cfg, |_, _| true);
    let epoch = cfg.revision;
    initial::ask(app.cutter.as_ref(), &mut cfg, &asks, epoch, now).await?;
    app.store.put(cfg.clone()).await?;
    tracing::info!(workspace_id = %id, bucket = %cfg.destination.bucket, "Sync created.");
    Ok((StatusCode::CREATED, Json(views::sync(&cfg))))
}

/// `GET /v1/workspaces/{id}/sync`: the sync, without its secret.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{id}/sync",
    operation_id = "readSync",
    summary = "Read a workspace's sync; the secret key is never returned.",
    params(super::openapi::WorkspacePath),
    responses((status = 200, description = "Done.", body = SyncView)),
)]
pub(super) async fn read<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<SyncView>> {
    let id = app.tokens.workspace(&headers, &id)?;
    let cfg = app.store.get(id).await?.ok_or(ApiError::NotFound(id))?;
    Ok(Json(views::sync(&cfg)))
}

/// `PUT /v1/workspaces/{id}/sync`: replaces the destination (secret required again) and turns
/// the named tables on or off; applies from the next sync.
#[utoipa::path(
    put,
    path = "/v1/workspaces/{id}/sync",
    operation_id = "updateSync",
    summary = "Replace a workspace's destination (the secret key must be sent again) and turn named tables on or off; applies from the next sync.",
    params(super::openapi::WorkspacePath, CheckParam),
    request_body = SyncSpec,
    responses((status = 200, description = "Done.", body = SyncView)),
)]
pub(super) async fn update<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<SyncView>> {
    let id = app.tokens.workspace(&headers, &id)?;
    let param = CheckParam::parse(query.as_deref())?;
    let valid = validate::validate(parse_body::<SyncSpec>(&body)?, &app.policy)?;
    validate::egress(&valid, &app.policy).await?;
    check::require(&app, id, &valid, param).await?;
    let _write = app.write_lock.lock().await;
    let mut cfg = app.store.get(id).await?.ok_or(ApiError::NotFound(id))?;
    let before = cfg.clone();
    let now = app.now_ms();
    for (table, enabled) in &valid.tables {
        let _ = cfg.set_table(*table, *enabled, now, app.people_retention)?;
    }
    cfg.destination = destination(&app, id, valid)?;
    ask_for_change(&app, &before, &mut cfg, now).await?;
    cfg.touch(now);
    app.store.put(cfg.clone()).await?;
    tracing::info!(workspace_id = %id, revision = cfg.revision, "Sync updated.");
    Ok(Json(views::sync(&cfg)))
}

/// `DELETE /v1/workspaces/{id}/sync`: removes the sync.
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{id}/sync",
    operation_id = "deleteSync",
    summary = "Delete a workspace's sync.",
    params(super::openapi::WorkspacePath),
    responses((status = 204, description = "Done.")),
)]
pub(super) async fn delete<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<StatusCode> {
    let id = app.tokens.workspace(&headers, &id)?;
    let _write = app.write_lock.lock().await;
    app.store.get(id).await?.ok_or(ApiError::NotFound(id))?;
    app.store.delete(id).await?;
    tracing::info!(workspace_id = %id, "Sync deleted.");
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/workspaces/{id}/sync/tables/{name}`: turns one of the spec's schemas on or off: a
/// table alone in its schema, or `campaign_metadata` (campaigns and actions) or `objects`
/// (objects and object types), whose tables move together.
#[utoipa::path(
    put,
    path = "/v1/workspaces/{id}/sync/tables/{table}",
    operation_id = "setTable",
    summary = "Turn one of the spec's schemas on or off: a table alone in its schema, or campaign_metadata (campaigns and actions together) or objects (objects and object types together); a table of those two schemas alone is refused (400, naming the schema). People off for longer than the retention (default 7 days) cannot be turned on again (409).",
    params(super::openapi::WorkspacePath, ("table" = super::openapi::SchemaName, Path, description = "A schema: a v5 table alone in its schema, campaign_metadata or objects.")),
    request_body = TableToggle,
    responses((status = 200, description = "Done.", body = SyncView)),
)]
pub(super) async fn set_table<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Json<SyncView>> {
    let id = app.tokens.workspace(&headers, &id)?;
    let tables = validate::parse_schema(&name)?;
    let TableToggle { enabled } = parse_body(&body)?;
    modify(&app, id, |cfg, now| {
        let mut changed = false;
        for table in tables {
            changed |= cfg.set_table(*table, enabled, now, app.people_retention)?;
        }
        Ok(changed)
    })
    .await
}

/// `POST /v1/workspaces/{id}/sync/disable`: nothing is written or kept until re-enabled.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{id}/sync/disable",
    operation_id = "disableSync",
    summary = "Disable the whole sync: nothing is written, nothing kept.",
    params(super::openapi::WorkspacePath),
    responses((status = 200, description = "Done.", body = SyncView)),
)]
pub(super) async fn disable<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<SyncView>> {
    let id = app.tokens.workspace(&headers, &id)?;
    modify(&app, id, |cfg, _| Ok(!std::mem::replace(&mut cfg.disabled, true))).await
}

/// `POST /v1/workspaces/{id}/sync/enable`: the sync starts again, with a new initial sync of
/// every enabled table (when initial syncs are on), as if it were a new integration.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{id}/sync/enable",
    operation_id = "enableSync",
    summary = "Enable the sync again: a new initial sync of every enabled table (its history from the archive, when initial syncs are on), then incremental files, as if it were a new integration.",
    params(super::openapi::WorkspacePath),
    responses((status = 200, description = "Done.", body = SyncView)),
)]
pub(super) async fn enable<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<SyncView>> {
    let id = app.tokens.workspace(&headers, &id)?;
    modify(&app, id, |cfg, _| {
        let was_disabled = std::mem::replace(&mut cfg.disabled, false);
        if was_disabled {
            initial::forget_baselines_of_tables_off(cfg);
        }
        Ok(was_disabled)
    })
    .await
}

/// `GET /v1/workspaces`: every sync (admin only).
#[utoipa::path(
    get,
    path = "/v1/workspaces",
    operation_id = "listWorkspaces",
    summary = "List every workspace's sync (admin token only).",
    responses((status = 200, description = "Done.", body = WorkspaceList)),
)]
pub(super) async fn list<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    headers: HeaderMap,
) -> Answer<Json<WorkspaceList>> {
    app.tokens.admin(&headers)?;
    let workspaces = app.store.list().await?.iter().map(views::sync).collect();
    Ok(Json(WorkspaceList { workspaces }))
}

/// `POST /v1/workspaces/{id}/archive/purge`: asks the backfill to remove everything the workspace
/// handed off until now from the archive (admin only). A cut record on the workspace's handoff
/// partition marks "until now"; the request is stored on the purge topic (a newer one replaces
/// an older one). 202 with the request.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{id}/archive/purge",
    operation_id = "purgeArchive",
    summary = "Purge the workspace's archived data (admin token only): everything it handed off until now is removed from the archive by the backfill (every archive object holding it rewritten without it, or deleted). Answers 202 with the request; GET .../status shows its progress (archive_purge). A newer request replaces a pending one.",
    params(super::openapi::WorkspacePath),
    responses((status = 202, description = "Done.", body = PurgeView)),
)]
pub(super) async fn purge<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<(StatusCode, Json<PurgeView>)> {
    app.tokens.admin(&headers)?;
    let id: WorkspaceId = id.parse().map_err(|e: BadWorkspaceId| ApiError::BadRequest(e.to_string()))?;
    let (Some(cutter), Some(purges)) = (app.cutter.as_ref(), app.purges.as_ref()) else {
        return Err(ApiError::PurgeUnavailable);
    };
    let _write = app.write_lock.lock().await;
    let epoch = purges.requests.read(id).await?.map_or(1, |previous| previous.epoch + 1);
    // Epoch 0 in the cut record: no configuration revision is waited for (it routes nothing).
    let placed = cutter.cut(Cut { workspace_id: id.get(), epoch: 0 }).await?;
    let request = PurgeRequest {
        workspace_id: id.get(),
        epoch,
        partition: placed.partition,
        cut: placed.offset,
        requested_at_ms: app.now_ms(),
    };
    purges.requests.write(&request).await?;
    tracing::info!(workspace_id = %id, epoch, partition = placed.partition, cut = placed.offset, "Archive purge asked for.");
    Ok((StatusCode::ACCEPTED, Json(views::purge(&request, None))))
}

/// The workspace's latest archive purge with the backfill's report, if one was asked for.
async fn archive_purge<S>(app: &AppState<S>, id: WorkspaceId) -> Answer<Option<PurgeView>> {
    let Some(purges) = &app.purges else { return Ok(None) };
    let Some(request) = purges.requests.read(id).await? else { return Ok(None) };
    let report = purges.reports.read(id).await?;
    Ok(Some(views::purge(&request, report.as_ref())))
}

/// `GET /v1/workspaces/{id}/status`: what the uploaders last reported for the sync, and the
/// workspace's archive purge, if any (also for a workspace without a sync: a workspace leaving
/// may have deleted it).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{id}/status",
    operation_id = "syncStatus",
    summary = "A workspace's delivery status: last sync, last files, files waiting (parked or of tables turned off), last error, lag, and each table's initial sync (queued, running with rows and files so far, done, failed with the reason).",
    params(super::openapi::WorkspacePath),
    responses((status = 200, description = "Done.", body = SyncStatusView)),
)]
pub(super) async fn status<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<SyncStatusView>> {
    let id = app.tokens.workspace(&headers, &id)?;
    let purge = archive_purge(&app, id).await?;
    let Some(cfg) = app.store.get(id).await? else {
        return purge.map(|p| Json(views::without_sync(id, p))).ok_or(ApiError::NotFound(id));
    };
    let reported = match &app.statuses {
        Some(statuses) => statuses.read(id).await?,
        None => None,
    };
    let initial = match &app.initial_syncs {
        Some(initial_syncs) => initial_syncs.read(id).await?,
        None => None,
    };
    let mut view = views::status(&cfg, reported.as_ref(), initial.as_ref());
    view.archive_purge = purge;
    if let Some(checks) = &app.checks {
        view.last_check = checks.read(id).await?.as_ref().map(views::last_check);
    }
    Ok(Json(view))
}

/// `GET /openapi.json`: the API's OpenAPI 3 document (no token needed).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    summary = "This document.",
    responses((status = 200, description = "The OpenAPI document.", body = Object)),
)]
pub(super) async fn openapi() -> Json<serde_json::Value> {
    Json(super::openapi::document())
}

/// Answers a path no route matches.
pub(super) async fn no_route() -> ApiError {
    ApiError::NoRoute
}

/// Answers a method the route does not have.
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Applies `change` to the stored sync under the write lock; stores it only if it changed.
async fn modify<S: ConfigStore + Clone>(
    app: &AppState<S>,
    id: WorkspaceId,
    change: impl FnOnce(&mut SyncConfig, i64) -> Answer<bool>,
) -> Answer<Json<SyncView>> {
    let _write = app.write_lock.lock().await;
    let mut cfg = app.store.get(id).await?.ok_or(ApiError::NotFound(id))?;
    let before = cfg.clone();
    let now = app.now_ms();
    if change(&mut cfg, now)? {
        ask_for_change(app, &before, &mut cfg, now).await?;
        cfg.touch(now);
        app.store.put(cfg.clone()).await?;
        tracing::info!(workspace_id = %id, revision = cfg.revision, disabled = cfg.disabled, "Sync changed.");
    }
    Ok(Json(views::sync(&cfg)))
}

/// Writes what changing `before` into `cfg` asks of the backfill (a cut, and each table's
/// baseline or pause) into `cfg`, as of its next revision; nothing when initial syncs are off.
async fn ask_for_change<S>(app: &AppState<S>, before: &SyncConfig, cfg: &mut SyncConfig, now: i64) -> Answer<()> {
    if app.cutter.is_none() {
        return Ok(());
    }
    let delivered = delivered_baselines(app, cfg.workspace_id).await?;
    let asks = initial::asks(Some(before), cfg, |t, b| delivered.as_ref().is_none_or(|d| d.is_done(t, b)));
    let epoch = cfg.revision + 1;
    initial::ask(app.cutter.as_ref(), cfg, &asks, epoch, now).await
}

/// The backfill's reports on `id`'s initial syncs, caught up; `None` when this replica does not
/// follow them (in-memory tests), where every baseline counts as delivered.
async fn delivered_baselines<S>(app: &AppState<S>, id: WorkspaceId) -> Answer<Option<InitialSyncs>> {
    match &app.initial_syncs {
        Some(store) => Ok(Some(store.read(id).await?.unwrap_or_else(|| InitialSyncs::new(id.get())))),
        None => Ok(None),
    }
}

/// The stored destination of a valid spec, its secret sealed for workspace `id`.
fn destination<S>(app: &AppState<S>, id: WorkspaceId, valid: Valid) -> Answer<Destination> {
    let sealer = app.sealer.as_ref().ok_or(ApiError::NoSealKey)?;
    let sealed = sealer.seal(&valid.secret, &id.to_string())?;
    let d = valid.destination;
    let store = match (d.kind, valid.client_email) {
        (DestinationKind::Gcs, Some(client_email)) => {
            Store::Gcs(GcsStore { endpoint: d.endpoint, client_email, service_account_key: sealed })
        }
        _ => Store::S3(S3Store {
            region: d.region,
            endpoint: d.endpoint,
            force_path_style: d.force_path_style,
            conditional_writes: d.conditional_writes.unwrap_or(true),
            access_key_id: d.access_key_id,
            secret_access_key: sealed,
        }),
    };
    Ok(Destination { bucket: d.bucket, prefix: d.prefix, store })
}

/// Parses a JSON body; the error names the problem and where, never the values sent.
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Answer<T> {
    serde_json::from_slice(body).map_err(|err| {
        let text = err.to_string();
        let named = ["unknown field", "missing field", "unknown variant"];
        let detail = if named.iter().any(|n| text.starts_with(n)) {
            text
        } else {
            format!("{:?} error at line {}, column {}", err.classify(), err.line(), err.column()).to_lowercase()
        };
        ApiError::BadRequest(format!("request body is not valid: {detail}"))
    })
}
