//! Workspace tokens issued through the API: the request naming one, and the tokens as shown.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/workspaces/{id}/tokens`: the new token's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// What the token is for (1 to 64 characters, no control characters).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
}

/// An issued token as the API shows it; `token` only in the answer that issued it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Its id, to revoke it by.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was issued, RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The token itself (`dws_…`): shown once, in the answer that issued it; never stored,
    /// never shown again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub token: Option<String>,
}

/// `GET /v1/workspaces/{id}/tokens`: the workspace's tokens, oldest first, without the tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// The tokens.
    pub tokens: Vec<TokenView>,
}
