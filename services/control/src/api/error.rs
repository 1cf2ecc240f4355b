//! [`ApiError`]: every failure of the API, as a status and a JSON `{"error": "..."}` body.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::WWW_AUTHENTICATE;
use axum::response::{IntoResponse, Response};
use dwsync_api::ErrorBody;

use crate::model::{ReenableRefused, WorkspaceId};
use crate::seal::SealError;
use crate::store::StoreError;
use crate::validate::ValidationError;

/// Why a request failed. Messages never hold secrets or say whether another workspace exists.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or not a known one.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token is valid but not for this workspace (or not an admin token).
    #[error("this token may not access this resource")]
    Forbidden,
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The request breaks a validation rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The workspace has no sync configured.
    #[error("workspace {0} has no sync configured")]
    NotFound(WorkspaceId),
    /// No such route.
    #[error("no such endpoint; see GET /openapi.json")]
    NoRoute,
    /// The route exists, not with this method.
    #[error("method not allowed on this endpoint; see GET /openapi.json")]
    MethodNotAllowed,
    /// Creating a sync that exists.
    #[error("workspace {0} already has a sync; change it with PUT")]
    Exists(WorkspaceId),
    /// Turning people on after its retention.
    #[error(transparent)]
    Reenable(#[from] ReenableRefused),
    /// The configuration store did not answer.
    #[error("the configuration store is unavailable; try again")]
    Store(#[from] StoreError),
    /// No sealing key is configured, so no secret can be stored.
    #[error("secrets cannot be stored: the control service has no sealing key (DWSYNC_SEAL_KEY)")]
    NoSealKey,
    /// Sealing the secret failed.
    #[error("the secret could not be sealed")]
    Seal(#[from] SealError),
    /// Archive purges are not served by this replica (initial syncs are off, or it does not
    /// follow the purge topics).
    #[error(
        "archive purges are not available: control needs initial syncs on (initial_sync.enabled) and the archive purge topic"
    )]
    PurgeUnavailable,
    /// Tokens cannot be issued: this replica does not follow the token topic.
    #[error("tokens cannot be issued here: control does not follow the token topic (store.token_topic)")]
    TokensUnavailable,
    /// The workspace already has the most tokens it may have.
    #[error("workspace {0} already has {1} tokens; revoke one first")]
    TooManyTokens(WorkspaceId, usize),
    /// No token with that id was issued for the workspace.
    #[error("workspace {0} has no token {1:?}")]
    NoToken(WorkspaceId, String),
    /// `?check=true`: the destination failed its check; nothing was changed.
    #[error("destination check failed ({class}): {message}; nothing was changed")]
    CheckFailed {
        /// The failure class (`access_denied`, ...).
        class: String,
        /// What failed and what to do.
        message: String,
    },
    /// The initial sync's cut record could not be written; nothing was changed.
    #[error("the initial sync could not be started (the handoff topic did not answer); nothing was changed, try again")]
    Cut(#[from] crate::cut::CutError),
}

impl ApiError {
    /// The HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::BadRequest(_) | Self::Invalid(_) | Self::CheckFailed { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) | Self::NoRoute | Self::NoToken(..) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Exists(_) | Self::Reenable(_) | Self::TooManyTokens(..) => StatusCode::CONFLICT,
            Self::Store(_) | Self::NoSealKey | Self::Cut(_) | Self::PurgeUnavailable | Self::TokensUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Seal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Store(err) => tracing::warn!(error = %err, "Configuration store failed a request."),
            Self::Seal(err) => tracing::error!(error = %err, "Sealing a secret failed."),
            Self::Cut(err) => tracing::warn!(error = %err, "Writing a cut record failed."),
            _ => tracing::debug!(status = status.as_u16(), error = %self, "Request refused."),
        }
        let body = Json(ErrorBody { error: self.to_string() });
        if status == StatusCode::UNAUTHORIZED {
            (status, [(WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}
