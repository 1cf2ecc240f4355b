//! Bearer tokens: one admin token for everything, one token per workspace for its own sync
//! (from the config file), and the tokens the admin issued through the API for a workspace
//! (their digests on the token topic).
//!
//! A presented token is compared with every configured token, each through SHA-256 and a
//! constant-time equality, so neither the match nor its position nor the length leaks by timing;
//! then, for the workspace of the path only, with every token issued for it.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use dwsync_config::Secret;
use dwsync_sync_config::KafkaStore;
use dwsync_sync_config::tokens::{WorkspaceTokens, digest_hex};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::error::ApiError;
use crate::model::{BadWorkspaceId, WorkspaceId};

/// Who a valid token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// The admin: every workspace, and the list of workspaces.
    Admin,
    /// One workspace's owner.
    Workspace(WorkspaceId),
}

/// The configured tokens, kept as SHA-256 digests, and the issued ones' store.
#[derive(Clone, Default)]
pub struct Tokens {
    admin: Option<[u8; 32]>,
    workspaces: Vec<(WorkspaceId, [u8; 32])>,
    issued: Option<KafkaStore<WorkspaceTokens>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("admin", &self.admin.is_some())
            .field("workspaces", &self.workspaces.len())
            .field("issued", &self.issued.is_some())
            .finish()
    }
}

impl Tokens {
    /// The admin token (empty: no admin) and the workspace tokens by workspace id.
    pub fn new(admin: &Secret, workspaces: &BTreeMap<String, Secret>) -> Result<Self, BadWorkspaceId> {
        let digest_of = |s: &Secret| (!s.is_empty()).then(|| digest(s.expose()));
        let mut parsed = Vec::new();
        for (id, token) in workspaces {
            if let Some(d) = digest_of(token) {
                parsed.push((id.parse()?, d));
            }
        }
        Ok(Self { admin: digest_of(admin), workspaces: parsed, issued: None })
    }

    /// Also accepts, on its own workspace, every token `issued` holds for it.
    pub fn with_issued(mut self, issued: KafkaStore<WorkspaceTokens>) -> Self {
        self.issued = Some(issued);
        self
    }

    /// Who the request's `Authorization: Bearer` token speaks for, among the configured tokens.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let presented = digest(bearer(headers).ok_or(ApiError::Unauthorized)?);
        let admin = self.admin.map_or(Choice::from(0), |d| d.ct_eq(&presented));
        let mut found = None;
        for (id, d) in &self.workspaces {
            // No early exit: every token is compared.
            if bool::from(d.ct_eq(&presented)) {
                found = Some(*id);
            }
        }
        if bool::from(admin) {
            Ok(Principal::Admin)
        } else {
            found.map(Principal::Workspace).ok_or(ApiError::Unauthorized)
        }
    }

    /// Checks that the request may act on the workspace `raw_id` (the path segment), then
    /// parses it. A workspace token on any other id is refused with 403 before the id is looked
    /// at, so the answer never tells whether it exists.
    /// A token issued through the API is valid on its own workspace only (elsewhere: 401).
    pub fn workspace(&self, headers: &HeaderMap, raw_id: &str) -> Result<WorkspaceId, ApiError> {
        match self.authenticate(headers) {
            Ok(Principal::Admin) => raw_id.parse().map_err(|e: BadWorkspaceId| ApiError::BadRequest(e.to_string())),
            Ok(Principal::Workspace(own)) if own.to_string() == raw_id => Ok(own),
            Ok(Principal::Workspace(_)) => Err(ApiError::Forbidden),
            Err(ApiError::Unauthorized) => self.issued_for(headers, raw_id).ok_or(ApiError::Unauthorized),
            Err(other) => Err(other),
        }
    }

    /// The workspace `raw_id`, if the request's token is one issued for it.
    fn issued_for(&self, headers: &HeaderMap, raw_id: &str) -> Option<WorkspaceId> {
        let issued = self.issued.as_ref()?;
        let id: WorkspaceId = raw_id.parse().ok()?;
        let presented = digest_hex(bearer(headers)?);
        let tokens = issued.cached(id)?;
        let mut found = Choice::from(0);
        for token in &tokens.tokens {
            // No early exit: every token of the workspace is compared.
            found |= token.sha256.as_bytes().ct_eq(presented.as_bytes());
        }
        bool::from(found).then_some(id)
    }

    /// Checks that the request carries the admin token.
    pub fn admin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.authenticate(headers)? {
            Principal::Admin => Ok(()),
            Principal::Workspace(_) => Err(ApiError::Forbidden),
        }
    }
}

/// The request's `Authorization: Bearer` token, if it has a non-empty one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn tokens() -> Tokens {
        let ws = BTreeMap::from([("42".to_owned(), Secret::new("t42")), ("7".to_owned(), Secret::new(""))]);
        Tokens::new(&Secret::new("root"), &ws).expect("tokens")
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let _ = h.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
        h
    }

    #[test]
    fn principals() {
        let t = tokens();
        assert_eq!(t.authenticate(&bearer("root")).expect("admin"), Principal::Admin);
        let ws = WorkspaceId::new(42).expect("id");
        assert_eq!(t.authenticate(&bearer("t42")).expect("ws"), Principal::Workspace(ws));
        assert!(matches!(t.authenticate(&bearer("nope")), Err(ApiError::Unauthorized)));
        assert!(matches!(t.authenticate(&HeaderMap::new()), Err(ApiError::Unauthorized)));
        assert!(matches!(t.authenticate(&bearer("")), Err(ApiError::Unauthorized)), "empty tokens never match");
    }

    #[test]
    fn workspace_scope() {
        let t = tokens();
        assert_eq!(t.workspace(&bearer("t42"), "42").expect("own").get(), 42);
        assert!(matches!(t.workspace(&bearer("t42"), "43"), Err(ApiError::Forbidden)));
        assert!(matches!(t.workspace(&bearer("t42"), "junk"), Err(ApiError::Forbidden)));
        assert!(matches!(t.workspace(&bearer("root"), "junk"), Err(ApiError::BadRequest(_))));
        assert!(t.admin(&bearer("root")).is_ok());
        assert!(matches!(t.admin(&bearer("t42")), Err(ApiError::Forbidden)));
    }

    #[test]
    fn bad_workspace_keys_are_refused() {
        let ws = BTreeMap::from([("forty-two".to_owned(), Secret::new("t"))]);
        assert!(Tokens::new(&Secret::default(), &ws).is_err());
    }
}
