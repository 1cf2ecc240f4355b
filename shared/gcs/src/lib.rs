//! Google Cloud Storage destinations: a customer's bucket written through GCS's JSON API with the
//! service account key the customer gave, create-only.
//!
//! - [`key`]: the service account's JSON key, checked for what signing needs (`client_email`,
//!   `private_key`, ...) without ever showing it.
//! - [`http`]: the HTTP clients (one connection pool each): customers' endpoints resolve
//!   through the [`dwsync_s3::egress`] policy at every connection, as S3 endpoints do.
//! - [`bucket`]: one bucket with its own credentials (tokens from `google-cloud-auth`:
//!   self-signed JWTs, RS256, no token endpoint is called), object metadata, plain writes.
//! - [`create_only`]: an object created with `ifGenerationMatch=0`, in one request or, above a
//!   threshold, as a resumable upload finalized under the same precondition; it takes part in
//!   [`dwsync_s3::written`] (replay or conflict), so GCS and S3 decide alike.
//! - [`error`]: a failed request as a [`dwsync_s3::error::StoreError`], the type and classes
//!   S3 failures have; [`check`]: a destination tried before it is trusted.
//!
//! Why this client and not a GCS SDK: docs/DESTINATIONS.md.

pub mod bucket;
pub mod check;
pub mod create_only;
pub mod error;
pub mod http;
pub mod key;

pub use bucket::{Bucket, DEFAULT_ENDPOINT};
pub use dwsync_s3::error::StoreError;
pub use key::{BadKey, ServiceAccountKey};
