//! Writes one object to a destination without ever overwriting, whatever its kind:
//!
//! - S3: a conditional PUT (`If-None-Match: *`) or a conditionally completed multipart upload
//!   ([`dwsync_s3::create_only`]); stores without conditional writes get the weaker
//!   HEAD-then-PUT.
//! - GCS: `ifGenerationMatch=0` on a single upload or a resumable upload's last chunk
//!   ([`dwsync_gcs::create_only`]).
//!
//! When the key is taken, the stored `dwsync-sha256` tells a replay from a conflict, and a
//! conflicting file is kept under `<key>.conflict-<sha12>`: one decision for both kinds
//! ([`dwsync_s3::written`]). One call is one attempt; the caller retries ([`crate::retry`]).

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use dwsync_handoff::validate_key;
use dwsync_s3::written::write_once;

use crate::destinations::{DestinationClient, StoreClient};

pub use dwsync_s3::create_only::{Object, PartSizes, part_size};
pub use dwsync_s3::error::StoreError;
pub use dwsync_s3::written::{Written, conflict_key};
pub use dwsync_s3::{PARQUET_CONTENT_TYPE, ROWS_METADATA, SHA256_METADATA};

/// Writes objects to one destination with its own client.
#[derive(Debug, Clone, Copy)]
pub struct Sink<'a> {
    dest: &'a DestinationClient,
    parts: PartSizes,
}

impl<'a> Sink<'a> {
    /// A sink writing to `dest`.
    pub fn new(dest: &'a DestinationClient, parts: PartSizes) -> Self {
        Self { dest, parts }
    }

    /// Writes the empty `cio-validate` object (a plain write: it is rewritten before every sync).
    pub async fn write_validate(&self) -> Result<(), StoreError> {
        let key = validate_key(&self.dest.prefix);
        match &self.dest.store {
            StoreClient::S3 { client, .. } => {
                let put = client.put_object().bucket(&self.dest.bucket).key(&key).body(ByteStream::from_static(b""));
                put.send().await.map_err(|e| StoreError::from_sdk("PutObject", &self.dest.bucket, &key, e))?;
            }
            StoreClient::Gcs(bucket) => bucket.put(&key, Bytes::new()).await?,
        }
        Ok(())
    }

    /// Creates `obj` unless its key exists; tells a replay (same SHA-256) from a conflict.
    pub async fn write(&self, obj: &Object) -> Result<Written, StoreError> {
        match &self.dest.store {
            StoreClient::S3 { client, conditional_writes } => {
                let writer =
                    dwsync_s3::create_only::CreateOnly::new(client, &self.dest.bucket, *conditional_writes, self.parts);
                Ok(write_once(&writer, obj).await?)
            }
            StoreClient::Gcs(bucket) => {
                Ok(write_once(&dwsync_gcs::create_only::CreateOnly::new(bucket, self.parts), obj).await?)
            }
        }
    }
}
