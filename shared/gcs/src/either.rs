//! A failed request to a destination of either kind (S3 or GCS), for the services that write to
//! both: classed the same way whatever the kind.

use dwsync_s3::create_only::S3Error;

use crate::error::GcsError;

/// A failed request to an S3 or a GCS destination.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// An S3 request failed.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// A GCS request failed.
    #[error(transparent)]
    Gcs(#[from] GcsError),
}

impl DestinationError {
    /// A one-line summary for operators (the status endpoint).
    pub fn summary(&self) -> String {
        match self {
            Self::S3(e) => e.summary(),
            Self::Gcs(e) => e.summary(),
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::S3(e) => e.is_transient(),
            Self::Gcs(e) => e.is_transient(),
        }
    }

    /// Whether the egress policy refused the endpoint: nothing was sent.
    pub fn is_egress_refused(&self) -> bool {
        match self {
            Self::S3(e) => e.is_egress_refused(),
            Self::Gcs(e) => e.is_egress_refused(),
        }
    }

    /// The store's error code, or the class of a request without an answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::S3(e) => e.code.as_deref(),
            Self::Gcs(e) => e.code.as_deref(),
        }
    }
}
