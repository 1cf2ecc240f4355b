//! Workspace tokens issued through the API: control writes each workspace's tokens on a
//! compacted topic of its own (`store.token_topic`), keyed by workspace id, as JSON. A token is
//! stored only as its SHA-256 digest, with a name, an id to revoke it by, and its creation time;
//! the token itself is shown once, in the answer that issued it.

use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::StoreConfig;

/// The default topic of issued tokens (written by control only).
pub const TOKEN_TOPIC: &str = "dwsync.api-tokens";

/// What every issued token begins with, so a leaked one is recognizable (secret scanners).
pub const TOKEN_PREFIX: &str = "dws_";

/// The issued tokens' store settings: `store.token_topic`, otherwise `store`'s.
pub fn token_store(store: &StoreConfig) -> StoreConfig {
    StoreConfig { topic: store.token_topic.clone(), ..store.clone() }
}

/// One issued token, without the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedToken {
    /// Its id, to revoke it by (16 hex digits, random).
    pub id: String,
    /// The name given when it was issued.
    pub name: String,
    /// When it was issued, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// The SHA-256 digest of the token, hex.
    pub sha256: String,
}

/// Every token issued for a workspace and not revoked.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkspaceTokens {
    /// The workspace.
    pub workspace_id: i64,
    /// Its tokens, oldest first.
    pub tokens: Vec<IssuedToken>,
}

crate::store::json_topic_value!(WorkspaceTokens);

/// A token just made: the secret to show once, and what is stored of it.
#[derive(Debug)]
pub struct NewToken {
    /// The token (`dws_` then 43 base64url characters: 256 random bits).
    pub secret: String,
    /// What is stored.
    pub issued: IssuedToken,
}

impl NewToken {
    /// A new random token named `name`, issued at `now_ms`.
    pub fn generate(name: &str, now_ms: i64) -> Self {
        let mut bits = [0_u8; 32];
        rand::rng().fill_bytes(&mut bits);
        let secret = format!("{TOKEN_PREFIX}{}", base64url(&bits));
        let mut id = [0_u8; 8];
        rand::rng().fill_bytes(&mut id);
        let id = id.iter().map(|b| format!("{b:02x}")).collect();
        let issued = IssuedToken { id, name: name.to_owned(), created_at_ms: now_ms, sha256: digest_hex(&secret) };
        Self { secret, issued }
    }
}

/// The SHA-256 digest of `token`, hex, as [`IssuedToken::sha256`] holds it.
pub fn digest_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` in unpadded base64url.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0_u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TopicValue;

    #[test]
    fn a_new_token_is_random_prefixed_and_stored_as_its_digest() {
        let a = NewToken::generate("ci", 1_700_000_000_000);
        let b = NewToken::generate("ci", 1_700_000_000_000);
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.issued.id, b.issued.id);
        assert!(a.secret.starts_with(TOKEN_PREFIX) && a.secret.len() == TOKEN_PREFIX.len() + 43, "{}", a.secret);
        assert_eq!(a.issued.id.len(), 16);
        assert_eq!(a.issued.sha256, digest_hex(&a.secret));
        let stored = WorkspaceTokens { workspace_id: 42, tokens: vec![a.issued.clone()] };
        let bytes = stored.encode();
        assert!(!String::from_utf8_lossy(&bytes).contains(&a.secret), "the token itself is never stored");
        assert_eq!(WorkspaceTokens::decode(&bytes).expect("decodes"), stored);
    }

    #[test]
    fn base64url_of_known_values() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
