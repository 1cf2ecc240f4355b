//! What a create-only write found, decided the same way for every kind of store: created; or,
//! when an object already was at the key, its stored `dwsync-sha256` tells a replay (the same
//! bytes: already delivered) from a conflict (other bytes, or none recorded: left alone, and the
//! file kept under [`conflict_key`] instead). Never an overwrite.
//!
//! A store takes part by implementing [`CreateOnlyStore`] (S3: [`crate::create_only::CreateOnly`];
//! Google Cloud Storage: `dwsync-gcs`); [`write_once`] is the decision.

use std::future::Future;

use crate::create_only::{Create, Object};

/// How a data object ended up in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Created now.
    Created,
    /// Already there with the same SHA-256: an earlier attempt or a replay wrote it.
    AlreadyDelivered,
    /// Another object is at the key (another SHA-256, or none recorded): it was left alone and
    /// this file was written under `conflict_key` instead.
    Conflict {
        /// The stored object's `dwsync-sha256`, if it has one.
        existing_sha256: Option<String>,
        /// Where this file was kept.
        conflict_key: String,
        /// `false` when even `conflict_key` holds other bytes, so this file was not kept.
        preserved: bool,
    },
}

/// The key a conflicting file is kept under: `<key>.conflict-<first 12 hex digits of its SHA-256>`.
pub fn conflict_key(key: &str, sha256_hex: &str) -> String {
    let short = sha256_hex.get(..12).unwrap_or(sha256_hex);
    format!("{key}.conflict-{short}")
}

/// A store that creates objects without ever overwriting one (one call is one attempt).
pub trait CreateOnlyStore {
    /// A failed request.
    type Error;

    /// Creates `obj` at its key unless an object is there already.
    fn create(&self, obj: &Object) -> impl Future<Output = Result<Create, Self::Error>> + Send;

    /// The `dwsync-sha256` recorded on the object the store reported at `key` (`None` if it has
    /// none); an error if that object is gone.
    fn existing_sha256(&self, key: &str) -> impl Future<Output = Result<Option<String>, Self::Error>> + Send;
}

/// Creates `obj` in `store` unless its key exists; tells a replay (same SHA-256) from a conflict,
/// which is kept under [`conflict_key`].
pub async fn write_once<S: CreateOnlyStore + Sync>(store: &S, obj: &Object) -> Result<Written, S::Error> {
    if let Create::Created = store.create(obj).await? {
        return Ok(Written::Created);
    }
    let existing = store.existing_sha256(&obj.key).await?;
    if existing.as_deref() == Some(obj.sha256_hex.as_str()) {
        return Ok(Written::AlreadyDelivered);
    }
    let copy = Object { key: conflict_key(&obj.key, &obj.sha256_hex), ..obj.clone() };
    let preserved = match store.create(&copy).await? {
        Create::Created => true,
        Create::Exists => store.existing_sha256(&copy.key).await?.as_deref() == Some(obj.sha256_hex.as_str()),
    };
    Ok(Written::Conflict { existing_sha256: existing, conflict_key: copy.key, preserved })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_keys_carry_twelve_hex_digits() {
        let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            conflict_key("p/metrics_v5_1_000000000007.parquet", sha),
            "p/metrics_v5_1_000000000007.parquet.conflict-0123456789ab"
        );
        assert_eq!(conflict_key("k", "abc"), "k.conflict-abc");
    }
}
