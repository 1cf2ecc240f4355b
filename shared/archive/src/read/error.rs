//! Why reading a workspace's history failed: every error names the archive key it is about.

use dwsync_s3::error::StoreError;

/// A failure reading the archive.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The handoff topic's partition count is not positive.
    #[error("invalid handoff partition count {0}")]
    Partitions(i32),
    /// An S3 request failed (listing or reading); the error names the bucket and key.
    #[error(transparent)]
    S3(#[from] StoreError),
    /// A listed object is gone (404 on reading it).
    #[error("archive object s3://{bucket}/{key} is missing (listed, then not found)")]
    Missing {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// A key under the archive's partition prefix that is not an archive object key.
    #[error("archive key {key} is not an archive object key (<prefix>/p<partition>/<start>-<end>/<table>.parquet)")]
    ForeignKey {
        /// The key.
        key: String,
    },
    /// Two listed batches of one partition overlap (a batch archived twice from one start).
    #[error("archive batches overlap in partition {partition}: {previous} and {key}")]
    Overlap {
        /// The partition.
        partition: i32,
        /// A key of the earlier batch.
        previous: String,
        /// A key of the overlapping batch.
        key: String,
    },
    /// The object is not a readable archive object: not Parquet, a short read, no or invalid
    /// `dwsync.archive` footer, a footer naming another batch or part, rows not as the footer says.
    #[error("archive object {key} is unreadable: {reason}")]
    Unreadable {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The object's columns are not its table's v5 schema (names, types, nullability).
    #[error("archive object {key} does not match the v5 schema of {table}: {reason}")]
    Schema {
        /// The key.
        key: String,
        /// The table its key names.
        table: &'static str,
        /// The difference.
        reason: String,
    },
}

impl ReadError {
    /// An [`Unreadable`](Self::Unreadable) error of `key`.
    pub(crate) fn unreadable(key: &str, reason: impl std::fmt::Display) -> Self {
        Self::Unreadable { key: key.to_owned(), reason: reason.to_string() }
    }
}
