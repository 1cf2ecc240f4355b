//! The sync as a client sends it; the stored domain is [`dwsync_sync_config::model`], re-exported here.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

pub use dwsync_sync_config::model::*;

/// The kinds of destination a client can choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// AWS S3 or an S3-compatible store (the default).
    #[default]
    S3,
    /// Google Cloud Storage.
    Gcs,
}

/// A destination as a client sends it, secret in plain text; checked by [`crate::validate`].
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSpec {
    /// `s3` (default) or `gcs`.
    #[serde(default)]
    pub kind: DestinationKind,
    /// The bucket name.
    #[serde(default)]
    pub bucket: String,
    /// Key prefix ("path") inside the bucket.
    #[serde(default, alias = "path")]
    pub prefix: String,
    /// The bucket's region (S3 only).
    #[serde(default)]
    pub region: String,
    /// Endpoint URL of an S3-compatible store, or of a GCS JSON API other than Google Cloud's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style addressing (S3 only).
    #[serde(default)]
    pub force_path_style: bool,
    /// Whether the store honours `If-None-Match: *` (S3 only). Default: `true`.
    #[serde(default)]
    pub conditional_writes: Option<bool>,
    /// The access key id (S3 only).
    #[serde(default)]
    pub access_key_id: String,
    /// The secret access key, in plain text (S3 only); required on every create and update.
    #[serde(default)]
    pub secret_access_key: Option<dwsync_config::Secret>,
    /// The service account's JSON key, as text (GCS only); required on every create and update.
    #[serde(default)]
    pub service_account_key: Option<dwsync_config::Secret>,
}

impl fmt::Debug for DestinationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationSpec")
            .field("kind", &self.kind)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("secret_access_key", &self.secret_access_key)
            .field("service_account_key", &self.service_account_key)
            .finish_non_exhaustive()
    }
}

/// A sync as a client sends it on create and update (the body of `POST`/`PUT .../sync`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// The destination, with its secret.
    pub destination: DestinationSpec,
    /// Tables to turn on (`true`) or off (`false`) by name; tables not named are on for a new
    /// sync and unchanged on update.
    #[serde(default)]
    pub tables: BTreeMap<String, bool>,
    /// Must be 5 if given.
    #[serde(default)]
    pub schema_version: Option<u32>,
}
