//! [`ErrorBody`]: every error answer's body, `{"error": "..."}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error answer's body. The message never holds a secret, nor says whether another
/// workspace exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What was wrong, and what to do.
    pub error: String,
}
