//! The one list of the API's routes: the router and the OpenAPI document are both built from it.

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};

use super::{AppState, handlers, tokens};
use crate::store::ConfigStore;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// The admin token, or the token of the workspace in the path.
    Workspace,
    /// The admin token only.
    Admin,
}

/// One endpoint of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/workspaces/{id}/sync`.
    CreateSync,
    /// `GET /v1/workspaces/{id}/sync`.
    ReadSync,
    /// `PUT /v1/workspaces/{id}/sync`.
    UpdateSync,
    /// `DELETE /v1/workspaces/{id}/sync`.
    DeleteSync,
    /// `PUT /v1/workspaces/{id}/sync/tables/{table}`.
    SetTable,
    /// `POST /v1/workspaces/{id}/sync/disable`.
    DisableSync,
    /// `POST /v1/workspaces/{id}/sync/enable`.
    EnableSync,
    /// `POST /v1/workspaces/{id}/sync/check`.
    CheckSync,
    /// `GET /v1/workspaces/{id}/status`.
    SyncStatus,
    /// `GET /v1/workspaces`.
    ListWorkspaces,
    /// `POST /v1/workspaces/{id}/archive/purge`.
    PurgeArchive,
    /// `POST /v1/workspaces/{id}/tokens`.
    CreateToken,
    /// `GET /v1/workspaces/{id}/tokens`.
    ListTokens,
    /// `DELETE /v1/workspaces/{id}/tokens/{token_id}`.
    RevokeToken,
    /// `GET /openapi.json`.
    OpenApi,
}

impl Endpoint {
    /// Every endpoint, in the document's order.
    pub const ALL: [Endpoint; 15] = [
        Self::CreateSync,
        Self::ReadSync,
        Self::UpdateSync,
        Self::DeleteSync,
        Self::SetTable,
        Self::DisableSync,
        Self::EnableSync,
        Self::CheckSync,
        Self::SyncStatus,
        Self::ListWorkspaces,
        Self::PurgeArchive,
        Self::CreateToken,
        Self::ListTokens,
        Self::RevokeToken,
        Self::OpenApi,
    ];

    /// The HTTP method.
    pub fn method(self) -> Method {
        match self {
            Self::CreateSync
            | Self::DisableSync
            | Self::EnableSync
            | Self::CheckSync
            | Self::PurgeArchive
            | Self::CreateToken => Method::POST,
            Self::ReadSync | Self::SyncStatus | Self::ListWorkspaces | Self::ListTokens | Self::OpenApi => Method::GET,
            Self::UpdateSync | Self::SetTable => Method::PUT,
            Self::DeleteSync | Self::RevokeToken => Method::DELETE,
        }
    }

    /// The path, with `{id}` and `{table}` parameters.
    pub fn path(self) -> &'static str {
        match self {
            Self::CreateSync | Self::ReadSync | Self::UpdateSync | Self::DeleteSync => "/v1/workspaces/{id}/sync",
            Self::SetTable => "/v1/workspaces/{id}/sync/tables/{table}",
            Self::DisableSync => "/v1/workspaces/{id}/sync/disable",
            Self::EnableSync => "/v1/workspaces/{id}/sync/enable",
            Self::CheckSync => "/v1/workspaces/{id}/sync/check",
            Self::SyncStatus => "/v1/workspaces/{id}/status",
            Self::ListWorkspaces => "/v1/workspaces",
            Self::PurgeArchive => "/v1/workspaces/{id}/archive/purge",
            Self::CreateToken | Self::ListTokens => "/v1/workspaces/{id}/tokens",
            Self::RevokeToken => "/v1/workspaces/{id}/tokens/{token_id}",
            Self::OpenApi => "/openapi.json",
        }
    }

    /// Who may call it.
    pub fn access(self) -> Access {
        match self {
            Self::ListWorkspaces | Self::PurgeArchive | Self::CreateToken | Self::ListTokens | Self::RevokeToken => {
                Access::Admin
            }
            Self::OpenApi => Access::Public,
            _ => Access::Workspace,
        }
    }

    /// The handler, for the router.
    pub(super) fn handler<S: ConfigStore + Clone>(self) -> MethodRouter<AppState<S>> {
        match self {
            Self::CreateSync => post(handlers::create::<S>),
            Self::ReadSync => get(handlers::read::<S>),
            Self::UpdateSync => put(handlers::update::<S>),
            Self::DeleteSync => delete(handlers::delete::<S>),
            Self::SetTable => put(handlers::set_table::<S>),
            Self::DisableSync => post(handlers::disable::<S>),
            Self::EnableSync => post(handlers::enable::<S>),
            Self::CheckSync => post(super::check::check::<S>),
            Self::SyncStatus => get(handlers::status::<S>),
            Self::ListWorkspaces => get(handlers::list::<S>),
            Self::PurgeArchive => post(handlers::purge::<S>),
            Self::CreateToken => post(tokens::create::<S>),
            Self::ListTokens => get(tokens::list::<S>),
            Self::RevokeToken => delete(tokens::revoke::<S>),
            Self::OpenApi => get(handlers::openapi),
        }
    }
}
