//! Workspace tokens issued through the API (admin only): `POST` makes one and shows it once,
//! `GET` lists them without the tokens, `DELETE …/{token_id}` revokes one. Only their SHA-256
//! digests are stored, on the token topic; [`Tokens`](super::Tokens) accepts them on their own
//! workspace.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use dwsync_api::{TokenList, TokenSpec, TokenView};
use dwsync_sync_config::tokens::{NewToken, WorkspaceTokens};

use super::AppState;
use super::error::ApiError;
use super::handlers::parse_body;
use super::views;
use crate::model::{BadWorkspaceId, WorkspaceId};
use crate::store::ConfigStore;

/// The most tokens a workspace may hold at once.
pub(super) const MAX_TOKENS: usize = 20;

type Answer<T> = Result<T, ApiError>;

/// The admin's request on `raw_id`, and the token store.
fn admin_on<'a, S>(
    app: &'a AppState<S>,
    headers: &HeaderMap,
    raw_id: &str,
) -> Answer<(WorkspaceId, &'a dwsync_sync_config::KafkaStore<WorkspaceTokens>)> {
    app.tokens.admin(headers)?;
    let id: WorkspaceId = raw_id.parse().map_err(|e: BadWorkspaceId| ApiError::BadRequest(e.to_string()))?;
    let store = app.issued_tokens.as_ref().ok_or(ApiError::TokensUnavailable)?;
    Ok((id, store))
}

/// A token's name: 1 to 64 characters, none of them a control character.
fn checked_name(name: &str) -> Answer<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest("name: 1 to 64 characters, no control characters".into()));
    }
    Ok(name)
}

/// `POST /v1/workspaces/{id}/tokens`: issues a token for the workspace (which needs no sync yet)
/// and answers 201 with it, the only time it is shown.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{id}/tokens",
    operation_id = "createToken",
    summary = "Issue a token for the workspace (admin token only; the workspace needs no sync yet). The answer is the only time the token is shown: only its SHA-256 digest is stored. It is valid on this workspace only, like a configured workspace token.",
    params(super::openapi::WorkspacePath),
    request_body = TokenSpec,
    responses((status = 201, description = "Done.", body = TokenView)),
)]
pub(super) async fn create<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<(StatusCode, Json<TokenView>)> {
    let (id, store) = admin_on(&app, &headers, &id)?;
    let spec: TokenSpec = parse_body(&body)?;
    let name = checked_name(&spec.name)?;
    let _write = app.write_lock.lock().await;
    let mut tokens = store.read(id).await?.unwrap_or(WorkspaceTokens { workspace_id: id.get(), tokens: Vec::new() });
    if tokens.tokens.len() >= MAX_TOKENS {
        return Err(ApiError::TooManyTokens(id, MAX_TOKENS));
    }
    let new = NewToken::generate(name, app.now_ms());
    tokens.tokens.push(new.issued.clone());
    store.write(&tokens).await?;
    tracing::info!(workspace_id = %id, token_id = %new.issued.id, name, "Issued a workspace token.");
    let view = TokenView { token: Some(new.secret), ..views::token(&new.issued) };
    Ok((StatusCode::CREATED, Json(view)))
}

/// `GET /v1/workspaces/{id}/tokens`: the workspace's tokens, without the tokens.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{id}/tokens",
    operation_id = "listTokens",
    summary = "The workspace's issued tokens, oldest first: id, name, creation time, never the token (admin token only).",
    params(super::openapi::WorkspacePath),
    responses((status = 200, description = "Done.", body = TokenList)),
)]
pub(super) async fn list<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<Json<TokenList>> {
    let (id, store) = admin_on(&app, &headers, &id)?;
    let tokens = store.read(id).await?.map(|t| t.tokens.iter().map(views::token).collect()).unwrap_or_default();
    Ok(Json(TokenList { tokens }))
}

/// `DELETE /v1/workspaces/{id}/tokens/{token_id}`: revokes the token; 204, or 404 if the
/// workspace has no such token. Requests with it are refused (401) once this answers.
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{id}/tokens/{token_id}",
    operation_id = "revokeToken",
    summary = "Revoke one of the workspace's issued tokens (admin token only): requests with it are refused from this answer on.",
    params(super::openapi::WorkspacePath, ("token_id" = String, Path, description = "The token's id (from its creation or the list).")),
    responses((status = 204, description = "Done.")),
)]
pub(super) async fn revoke<S: ConfigStore + Clone>(
    State(app): State<AppState<S>>,
    Path((id, token_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer<StatusCode> {
    let (id, store) = admin_on(&app, &headers, &id)?;
    let _write = app.write_lock.lock().await;
    let mut tokens = store.read(id).await?.ok_or_else(|| ApiError::NoToken(id, token_id.clone()))?;
    let before = tokens.tokens.len();
    tokens.tokens.retain(|t| t.id != token_id);
    if tokens.tokens.len() == before {
        return Err(ApiError::NoToken(id, token_id));
    }
    store.write(&tokens).await?;
    tracing::info!(workspace_id = %id, token_id, "Revoked a workspace token.");
    Ok(StatusCode::NO_CONTENT)
}
