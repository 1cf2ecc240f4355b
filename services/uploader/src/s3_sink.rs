//! Writes one object to a destination without ever overwriting: a conditional PUT
//! (`If-None-Match: *`) or a conditionally completed multipart upload; on `412` a HEAD compares
//! the stored `dwsync-sha256` to tell a replay from a conflict; a conflicting file is kept under
//! `<key>.conflict-<sha12>`. Stores without conditional writes get the weaker HEAD-then-PUT.
//!
//! The create-only write itself is shared ([`dwsync_s3::create_only`]); one call is one
//! attempt; the caller retries ([`crate::retry`]).

use aws_sdk_s3::primitives::ByteStream;
use dwsync_handoff::validate_key;
use dwsync_s3::create_only::{Create, CreateOnly};

use crate::destinations::DestinationClient;

pub use dwsync_s3::create_only::{Object, PartSizes, S3Error, part_size};
pub use dwsync_s3::{PARQUET_CONTENT_TYPE, ROWS_METADATA, SHA256_METADATA};

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

/// Writes objects to one destination with its own client.
#[derive(Debug, Clone, Copy)]
pub struct Sink<'a> {
    dest: &'a DestinationClient,
    writer: CreateOnly<'a>,
}

impl<'a> Sink<'a> {
    /// A sink writing to `dest`.
    pub fn new(dest: &'a DestinationClient, parts: PartSizes) -> Self {
        Self { dest, writer: CreateOnly::new(&dest.client, &dest.bucket, dest.conditional_writes, parts) }
    }

    /// Writes the empty `cio-validate` object (a plain PUT: it is rewritten before every sync).
    pub async fn write_validate(&self) -> Result<(), S3Error> {
        let key = validate_key(&self.dest.prefix);
        let put = self.dest.client.put_object().bucket(&self.dest.bucket).key(&key).body(ByteStream::from_static(b""));
        put.send().await.map_err(|e| S3Error::from_sdk("PutObject", &self.dest.bucket, &key, e))?;
        Ok(())
    }

    /// Creates `obj` unless its key exists; tells a replay (same SHA-256) from a conflict.
    pub async fn write(&self, obj: &Object) -> Result<Written, S3Error> {
        if let Create::Created = self.writer.create(obj).await? {
            return Ok(Written::Created);
        }
        let existing = self.existing_sha256(&obj.key).await?;
        if existing.as_deref() == Some(obj.sha256_hex.as_str()) {
            return Ok(Written::AlreadyDelivered);
        }
        let copy = Object { key: conflict_key(&obj.key, &obj.sha256_hex), ..obj.clone() };
        let preserved = match self.writer.create(&copy).await? {
            Create::Created => true,
            Create::Exists => self.existing_sha256(&copy.key).await?.as_deref() == Some(obj.sha256_hex.as_str()),
        };
        Ok(Written::Conflict { existing_sha256: existing, conflict_key: copy.key, preserved })
    }

    /// The `dwsync-sha256` of the object known to exist at `key` (`None` if it has none).
    async fn existing_sha256(&self, key: &str) -> Result<Option<String>, S3Error> {
        let Some(head) = self.writer.head(key).await? else {
            return Err(S3Error {
                operation: "HeadObject",
                bucket: self.dest.bucket.clone(),
                key: key.to_owned(),
                status: Some(404),
                code: Some("ObjectGone".into()),
                message: "the object the store reported as existing is gone".into(),
            });
        };
        Ok(head.metadata().and_then(|m| m.get(SHA256_METADATA)).cloned())
    }
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
