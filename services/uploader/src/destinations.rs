//! Workspace → destination: one S3 client per destination, built from that destination's own
//! credentials, looked up by the file's workspace id and nothing else.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use dwsync_contract::Table;
use dwsync_s3::{Location, StaticCredentials as Credentials};

use crate::config::{Destination, InvalidConfig};

/// Longest wait for a connection to the S3 endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest single S3 request (one part of up to `part_bytes`, or one whole small file).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// A destination ready to write to: its settings and its own S3 client.
pub struct DestinationClient {
    /// The workspace this destination belongs to.
    pub workspace_id: i64,
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside the bucket.
    pub prefix: String,
    /// Whether the store supports `If-None-Match: *`.
    pub conditional_writes: bool,
    /// The enabled tables, `None` for all.
    tables: Option<BTreeSet<Table>>,
    /// The client signing with this destination's credentials only.
    pub client: aws_sdk_s3::Client,
}

impl fmt::Debug for DestinationClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationClient")
            .field("workspace_id", &self.workspace_id)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("conditional_writes", &self.conditional_writes)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl DestinationClient {
    /// Builds the client of `dest` (no network access yet).
    pub fn new(dest: &Destination) -> Result<Self, InvalidConfig> {
        let tables = dest.table_filter()?;
        let credentials = Credentials::new(
            dest.access_key_id.clone(),
            dest.secret_access_key.expose().to_owned(),
            None,
            None,
            "dwsync-destination",
        );
        // Our own retry loop (crate::retry) is the only retry policy: the SDK's would multiply
        // attempts and hide them from the retry counter.
        let location = Location {
            region: &dest.region,
            endpoint: dest.endpoint.as_deref(),
            force_path_style: dest.force_path_style,
        };
        let config =
            dwsync_s3::config_builder(location, credentials).retry_config(RetryConfig::disabled()).timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        Ok(Self {
            workspace_id: dest.workspace_id,
            bucket: dest.bucket.clone(),
            prefix: dest.prefix.clone(),
            conditional_writes: dest.conditional_writes,
            tables,
            client: aws_sdk_s3::Client::from_conf(config.build()),
        })
    }

    /// Whether files of `table` are exported to this destination.
    pub fn exports(&self, table: Table) -> bool {
        self.tables.as_ref().is_none_or(|tables| tables.contains(&table))
    }
}

/// Where a file goes.
#[derive(Debug, Clone)]
pub enum Route {
    /// To this destination.
    Deliver(Arc<DestinationClient>),
    /// Nowhere: the workspace has no destination.
    NoDestination,
    /// Nowhere: the workspace's destination does not export the table.
    TableDisabled,
}

impl Route {
    /// The `reason` label of a skipped file, `None` for a delivery.
    pub fn skip_reason(&self) -> Option<&'static str> {
        match self {
            Self::Deliver(_) => None,
            Self::NoDestination => Some("no_destination"),
            Self::TableDisabled => Some("table_disabled"),
        }
    }
}

/// Every configured destination, by workspace.
#[derive(Debug, Default)]
pub struct Destinations {
    by_workspace: HashMap<i64, Arc<DestinationClient>>,
}

impl Destinations {
    /// Builds one client per destination; fails on a duplicate workspace or an unknown table.
    pub fn new(destinations: &[Destination]) -> Result<Self, InvalidConfig> {
        let mut by_workspace = HashMap::new();
        for dest in destinations {
            let client = DestinationClient::new(dest)?;
            if by_workspace.insert(dest.workspace_id, Arc::new(client)).is_some() {
                return Err(InvalidConfig::DuplicateWorkspace(dest.workspace_id));
            }
        }
        Ok(Self { by_workspace })
    }

    /// Where a file of `workspace_id` and `table` goes: only ever that workspace's destination.
    pub fn route(&self, workspace_id: i64, table: Table) -> Route {
        match self.by_workspace.get(&workspace_id) {
            None => Route::NoDestination,
            Some(dest) if !dest.exports(table) => Route::TableDisabled,
            Some(dest) => Route::Deliver(Arc::clone(dest)),
        }
    }

    /// How many destinations there are.
    pub fn len(&self) -> usize {
        self.by_workspace.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_workspace.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use dwsync_config::Secret;

    use super::*;

    fn dest(workspace_id: i64, bucket: &str, tables: &[&str]) -> Destination {
        Destination {
            workspace_id,
            bucket: bucket.into(),
            prefix: format!("p{workspace_id}"),
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            force_path_style: true,
            access_key_id: format!("key-{workspace_id}"),
            secret_access_key: Secret::new(format!("secret-{workspace_id}")),
            tables: tables.iter().map(|t| (*t).to_owned()).collect(),
            conditional_writes: true,
        }
    }

    #[test]
    fn files_route_to_their_own_workspace_only() {
        let all = Destinations::new(&[dest(1, "a", &[]), dest(2, "b", &["deliveries"])]).expect("valid");
        assert_eq!(all.len(), 2);
        let Route::Deliver(a) = all.route(1, Table::People) else { panic!("workspace 1 exports every table") };
        assert_eq!((a.workspace_id, a.bucket.as_str(), a.prefix.as_str()), (1, "a", "p1"));
        let Route::Deliver(b) = all.route(2, Table::Deliveries) else { panic!("workspace 2 exports deliveries") };
        assert_eq!((b.workspace_id, b.bucket.as_str()), (2, "b"));
        assert!(matches!(all.route(2, Table::Metrics), Route::TableDisabled));
        assert!(matches!(all.route(3, Table::Deliveries), Route::NoDestination));
        assert_eq!(all.route(3, Table::Deliveries).skip_reason(), Some("no_destination"));
        assert_eq!(all.route(2, Table::Metrics).skip_reason(), Some("table_disabled"));
    }

    #[test]
    fn each_destination_has_its_own_client_and_hides_its_secret() {
        let mut second = dest(2, "b", &[]);
        second.region = "eu-west-1".into();
        let all = Destinations::new(&[dest(1, "a", &[]), second]).expect("valid");
        for (ws, region) in [(1, "us-east-1"), (2, "eu-west-1")] {
            let Route::Deliver(d) = all.route(ws, Table::Deliveries) else { panic!("routed") };
            let config = d.client.config();
            assert_eq!(config.region().map(|r| r.as_ref()), Some(region));
            assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(1), "retries are ours, not the SDK's");
            let debug = format!("{d:?}");
            assert!(!debug.contains("secret-") && debug.contains(&format!("workspace_id: {ws}")), "{debug}");
        }
    }

    #[test]
    fn invalid_destinations_are_rejected() {
        let err = Destinations::new(&[dest(1, "a", &[]), dest(1, "b", &[])]).expect_err("duplicate");
        assert_eq!(err, InvalidConfig::DuplicateWorkspace(1));
        let err = Destinations::new(&[dest(1, "a", &["nope"])]).expect_err("unknown table");
        assert_eq!(err, InvalidConfig::UnknownTable { workspace_id: 1, table: "nope".into() });
    }
}
