//! A static destination of the config file (`[[destinations]]`): its kind, its fields, and the
//! checks of what each kind requires.

use std::collections::BTreeSet;

use dwsync_config::Secret;
use dwsync_contract::Table;
use serde::{Deserialize, Serialize};

use super::InvalidConfig;

/// Which store a static destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// Amazon S3 or an S3-compatible store: `region`, `endpoint`, `force_path_style`,
    /// `access_key_id`, `secret_access_key`, `conditional_writes`.
    #[default]
    S3,
    /// Google Cloud Storage through its JSON API: `service_account_key`, and `endpoint` for
    /// another server than Google's.
    Gcs,
}

impl DestinationKind {
    /// The kind's name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Gcs => "gcs",
        }
    }
}

/// One workspace's bucket (`[[destinations]]`): only files of `workspace_id` are written here,
/// with this destination's own credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// The workspace whose files go here. Required; positive; one destination per workspace.
    pub workspace_id: i64,
    /// `"s3"` or `"gcs"`. Default: `"s3"`.
    #[serde(default)]
    pub kind: DestinationKind,
    /// The bucket. Required.
    pub bucket: String,
    /// Key prefix ("path") inside the bucket, without leading or trailing `/`. Default: `""`,
    /// the bucket's root.
    #[serde(default)]
    pub prefix: String,
    /// S3: the bucket's region (signing region). Default: `"us-east-1"`.
    #[serde(default = "default_region")]
    pub region: String,
    /// Endpoint URL of an S3-compatible store (`http://minio:9000`), or of a GCS JSON API server
    /// (`http://gcs:4443`). Default: none, AWS S3 or Google's.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style addressing (`<endpoint>/<bucket>/<key>`), which most S3-compatible stores
    /// need. Default: `false`.
    #[serde(default)]
    pub force_path_style: bool,
    /// S3: access key id of the workspace's credentials. Required for S3.
    #[serde(default)]
    pub access_key_id: String,
    /// S3: secret access key, never logged or dumped. Required for S3.
    #[serde(default)]
    pub secret_access_key: Secret,
    /// GCS: the service account's JSON key (as Google's console downloads it), never logged or
    /// dumped. Required for GCS.
    #[serde(default)]
    pub service_account_key: Secret,
    /// The v5 tables to export (`["deliveries", "metrics"]`); files of other tables are skipped.
    /// Default: `[]`, all tables.
    #[serde(default)]
    pub tables: Vec<String>,
    /// S3: whether the store supports conditional writes (`If-None-Match: *`), as AWS S3 and
    /// MinIO do. With `false`, objects are written with the weaker HEAD-then-PUT, which can
    /// overwrite when two writers race on one key. Default: `true`. (GCS writes are always
    /// conditional: `ifGenerationMatch=0`.)
    #[serde(default = "default_true")]
    pub conditional_writes: bool,
}

pub(super) fn default_region() -> String {
    "us-east-1".into()
}

fn default_true() -> bool {
    true
}

impl Destination {
    /// Checks the fields its kind requires are set, and no other kind's are.
    pub fn check_fields(&self) -> Result<(), InvalidConfig> {
        let (workspace_id, kind) = (self.workspace_id, self.kind.name());
        let (required, foreign) = match self.kind {
            DestinationKind::S3 => (
                vec![
                    ("bucket", self.bucket.is_empty()),
                    ("region", self.region.is_empty()),
                    ("access_key_id", self.access_key_id.is_empty()),
                    ("secret_access_key", self.secret_access_key.is_empty()),
                ],
                vec![("service_account_key", !self.service_account_key.is_empty())],
            ),
            DestinationKind::Gcs => (
                vec![("bucket", self.bucket.is_empty()), ("service_account_key", self.service_account_key.is_empty())],
                vec![
                    ("region", self.region != default_region()),
                    ("force_path_style", self.force_path_style),
                    ("access_key_id", !self.access_key_id.is_empty()),
                    ("secret_access_key", !self.secret_access_key.is_empty()),
                    ("conditional_writes", !self.conditional_writes),
                ],
            ),
        };
        if let Some((field, _)) = required.into_iter().find(|(_, empty)| *empty) {
            return Err(InvalidConfig::Missing { workspace_id, field });
        }
        if let Some((field, _)) = foreign.into_iter().find(|(_, set)| *set) {
            return Err(InvalidConfig::NotForKind { workspace_id, field, kind });
        }
        if self.kind == DestinationKind::Gcs {
            dwsync_gcs::ServiceAccountKey::parse(self.service_account_key.expose())
                .map_err(|e| InvalidConfig::BadServiceAccountKey { workspace_id, reason: e.to_string() })?;
        }
        Ok(())
    }

    /// The enabled tables: `None` for all of them, else the named ones.
    pub fn table_filter(&self) -> Result<Option<BTreeSet<Table>>, InvalidConfig> {
        if self.tables.is_empty() {
            return Ok(None);
        }
        let tables = self
            .tables
            .iter()
            .map(|name| {
                name.parse::<Table>()
                    .map_err(|_| InvalidConfig::UnknownTable { workspace_id: self.workspace_id, table: name.clone() })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(tables))
    }
}
