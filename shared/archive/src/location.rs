//! Where an archive is: its bucket, prefix and the credentials to read it, as a service's
//! configuration names them (`[archive]` of the backfill; the same keys and meaning as the
//! archiver's `[store]`, less its write settings, plus the archiver's `archive.retention_days`).

use std::time::Duration;

use dwsync_config::Secret;
use dwsync_s3::credentials::{credential_source, operator_credentials};
use dwsync_s3::{Location, SharedHttpClient};
use serde::{Deserialize, Serialize};

use crate::retention::RetentionDays;

/// An archive's bucket, prefix, endpoint and credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveLocation {
    /// The bucket. Default: `"dwsync-archive"`.
    pub bucket: String,
    /// Key prefix of every archive object. Default: `"archive"`.
    pub prefix: String,
    /// Signing region. Default: `"us-east-1"`.
    pub region: String,
    /// Endpoint of an S3-compatible store; none for AWS S3. Default: none.
    pub endpoint: Option<String>,
    /// Path-style addressing (MinIO, s3s). Default: `false`.
    pub force_path_style: bool,
    /// Access key id. Default: empty: with the secret key empty too, the AWS default credential
    /// chain (environment, web identity / IRSA, ECS, instance profile).
    pub access_key_id: String,
    /// Secret access key, never printed. Default: empty (see `access_key_id`).
    pub secret_access_key: Secret,
    /// Days each table's archive objects are kept: the archiver's `archive.retention_days`, the
    /// same value (a purge never leaves an object its retention would have deleted). Default:
    /// `events = 30`, `inbound = 30`.
    pub retention_days: RetentionDays,
}

impl Default for ArchiveLocation {
    fn default() -> Self {
        Self {
            bucket: "dwsync-archive".into(),
            prefix: "archive".into(),
            region: "us-east-1".into(),
            endpoint: None,
            force_path_style: false,
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            retention_days: RetentionDays::default(),
        }
    }
}

impl ArchiveLocation {
    /// What is missing for it to be usable (`(key, message)`, the key relative to the section).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.bucket.is_empty() {
            return Some(("bucket", "must not be empty"));
        }
        if credential_source(&self.access_key_id, self.secret_access_key.expose()).is_err() {
            return Some((
                "access_key_id",
                "set both access_key_id and secret_access_key, or neither (the AWS default credential chain)",
            ));
        }
        None
    }

    /// A client of the archive on `https`, without the SDK's retries, with a `connect` timeout
    /// and an `attempt` timeout per request.
    pub fn client(&self, https: SharedHttpClient, timeouts: (Duration, Duration)) -> aws_sdk_s3::Client {
        let location = Location {
            region: &self.region,
            endpoint: self.endpoint.as_deref(),
            force_path_style: self.force_path_style,
        };
        let credentials =
            operator_credentials(&self.access_key_id, self.secret_access_key.expose(), &self.region, "dwsync-archive");
        dwsync_s3::client_without_retries(location, credentials, https, timeouts)
    }
}
