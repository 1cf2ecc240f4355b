//! Workspace → destination: one client per destination (S3, or GCS for a `gcs` destination from
//! control), built from that destination's own credentials, looked up by the file's workspace id
//! and nothing else.
//!
//! Destinations come from the control service's configuration topic (followed live; a change
//! builds a new client for the next file, in-flight writes finish with the old one) and, for
//! setups without control, from the `[[destinations]]` of the config file. A workspace's secret
//! is sealed with its workspace id as associated data, so it opens only for that workspace.
//!
//! Destinations from control are customers' endpoints: their clients share an HTTPS client per
//! kind that refuses, at every connection, names resolving into the operator's network
//! ([`dwsync_s3::egress`], [`dwsync_gcs::http`]), and an endpoint that is such an address is
//! refused before its client is built (the file is parked, like any file of a failing destination). The
//! `[[destinations]]` of the config file are the operator's own and are not restricted.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dwsync_contract::Table;
use dwsync_s3::egress::EgressPolicy;
use dwsync_s3::{Location, SharedHttpClient, StaticCredentials as Credentials};
use dwsync_sync_config::{Baseline, InitialSyncs, KafkaStore, Sealer, Store, SyncConfig, WorkspaceId};
use tokio_util::sync::CancellationToken;

use crate::config::{Destination, DestinationKind, InvalidConfig};

/// Longest wait for a connection to the S3 endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest single request (one part or chunk of up to `part_bytes`, or one whole small file).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// A destination ready to write to: its settings and its own client.
pub struct DestinationClient {
    /// The workspace this destination belongs to.
    pub workspace_id: i64,
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside the bucket.
    pub prefix: String,
    /// The enabled tables, `None` for all.
    tables: Option<BTreeSet<Table>>,
    /// The client of its kind, with this destination's credentials only.
    pub store: StoreClient,
}

/// A destination's client, by kind.
pub enum StoreClient {
    /// An S3 client signing with the destination's keys.
    S3 {
        /// The client.
        client: aws_sdk_s3::Client,
        /// Whether the store supports `If-None-Match: *`.
        conditional_writes: bool,
    },
    /// A GCS bucket with the destination's service account key.
    Gcs(dwsync_gcs::Bucket),
}

impl fmt::Debug for DestinationClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.store {
            StoreClient::S3 { conditional_writes, .. } => format!("s3 (conditional_writes: {conditional_writes})"),
            StoreClient::Gcs(_) => "gcs".to_owned(),
        };
        f.debug_struct("DestinationClient")
            .field("workspace_id", &self.workspace_id)
            .field("kind", &kind)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

impl DestinationClient {
    /// Builds the client of a `[[destinations]]` entry (no network access yet); a GCS entry's
    /// requests go through `gcs`.
    pub fn new(dest: &Destination, https: &SharedHttpClient, gcs: &reqwest::Client) -> Result<Self, InvalidConfig> {
        let tables = dest.table_filter()?;
        dest.check_fields()?;
        let workspace_id = dest.workspace_id;
        let store = match dest.kind {
            DestinationKind::Gcs => {
                gcs_store(gcs, dest.endpoint.as_deref(), &dest.bucket, dest.service_account_key.expose())
                    .map_err(|e| e.invalid_config(workspace_id))?
            }
            DestinationKind::S3 => {
                let location = Location {
                    region: &dest.region,
                    endpoint: dest.endpoint.as_deref(),
                    force_path_style: dest.force_path_style,
                };
                let credentials = (dest.access_key_id.as_str(), dest.secret_access_key.expose());
                s3_store(location, credentials, dest.conditional_writes, https)
            }
        };
        Ok(Self { workspace_id, bucket: dest.bucket.clone(), prefix: dest.prefix.clone(), tables, store })
    }

    /// Builds the client of a followed sync configuration with its opened secret (an S3 secret
    /// access key, or a GCS service account's JSON key).
    fn followed(cfg: &SyncConfig, secret: &str, clients: &CustomerClients) -> Result<Self, String> {
        let d = &cfg.destination;
        let store = match &d.store {
            Store::S3(s3) => {
                let location = Location {
                    region: &s3.region,
                    endpoint: s3.endpoint.as_deref(),
                    force_path_style: s3.force_path_style,
                };
                let credentials = (s3.access_key_id.as_str(), secret);
                s3_store(location, credentials, s3.conditional_writes, &clients.s3)
            }
            Store::Gcs(gcs) => {
                gcs_store(&clients.gcs, gcs.endpoint.as_deref(), &d.bucket, secret).map_err(|e| e.to_string())?
            }
        };
        // Tables turned off are decided per file from the configuration (they are parked).
        let (workspace_id, bucket, prefix) = (cfg.workspace_id.get(), d.bucket.clone(), d.prefix.clone());
        Ok(Self { workspace_id, bucket, prefix, tables: None, store })
    }

    /// Whether files of `table` are exported to this destination.
    pub fn exports(&self, table: Table) -> bool {
        self.tables.as_ref().is_none_or(|tables| tables.contains(&table))
    }
}

/// Why a GCS destination's client cannot be built.
#[derive(Debug, thiserror::Error)]
enum GcsSetupError {
    /// The service account key is not one.
    #[error("the service account key {0}")]
    Key(dwsync_gcs::BadKey),
    /// The bucket's client cannot be set up (endpoint, key's credentials).
    #[error(transparent)]
    Bucket(dwsync_gcs::bucket::BadBucket),
}

impl GcsSetupError {
    /// The config error of a static destination of `workspace_id` that cannot be built: the
    /// field at fault, never the key's content.
    fn invalid_config(&self, workspace_id: i64) -> InvalidConfig {
        match self {
            Self::Key(e) => InvalidConfig::BadServiceAccountKey { workspace_id, reason: e.to_string() },
            Self::Bucket(dwsync_gcs::bucket::BadBucket::Key) => {
                InvalidConfig::BadServiceAccountKey { workspace_id, reason: "cannot sign tokens".to_owned() }
            }
            Self::Bucket(e @ dwsync_gcs::bucket::BadBucket::Endpoint) => {
                InvalidConfig::BadEndpoint { workspace_id, reason: e.to_string() }
            }
        }
    }
}

/// The client of an S3 bucket at `location`, signing with `(access_key_id, secret)`, on `https`:
/// for followed and static destinations alike.
fn s3_store(
    location: Location<'_>,
    (access_key_id, secret): (&str, &str),
    conditional_writes: bool,
    https: &SharedHttpClient,
) -> StoreClient {
    let credentials = Credentials::new(access_key_id, secret, None, None, "dwsync-destination");
    // Our own retry loop (crate::retry) is the only retry policy: the SDK's would multiply
    // attempts and hide them from the retry counter.
    let client =
        dwsync_s3::client_without_retries(location, credentials, https.clone(), (CONNECT_TIMEOUT, ATTEMPT_TIMEOUT));
    StoreClient::S3 { client, conditional_writes }
}

/// The client of the GCS bucket `bucket` at `endpoint` (`None`: Google's), signing with the
/// service account key `key_json`, on `http`: for followed and static destinations alike.
fn gcs_store(
    http: &reqwest::Client,
    endpoint: Option<&str>,
    bucket: &str,
    key_json: &str,
) -> Result<StoreClient, GcsSetupError> {
    let key = dwsync_gcs::ServiceAccountKey::parse(key_json).map_err(GcsSetupError::Key)?;
    let timeouts = dwsync_gcs::bucket::Timeouts { attempt: ATTEMPT_TIMEOUT };
    let client =
        dwsync_gcs::Bucket::new(http.clone(), endpoint, bucket, &key, timeouts).map_err(GcsSetupError::Bucket)?;
    Ok(StoreClient::Gcs(client))
}

/// Where a file goes.
#[derive(Debug, Clone)]
pub enum Route {
    /// To this destination.
    Deliver(Arc<DestinationClient>),
    /// Nowhere yet: kept in the lot (its table is turned off).
    Park(&'static str),
    /// Nowhere yet: the configuration cannot be used (its secret does not open); kept in the lot.
    Unavailable(String),
    /// Nowhere, and not kept: the workspace has no sync, or it is disabled, or (static
    /// destinations) does not export the table, or the file belongs to the table's baseline
    /// (its rows reach the bucket in the initial sync's files).
    Skip(&'static str),
}

/// How long a cut record waits for the configuration that asked for it (control writes the
/// configuration right after the cut record; one that never comes was abandoned).
const CUT_WAIT: Duration = Duration::from_secs(15);

/// How often a waiting cut record looks at the configuration again.
const CUT_POLL: Duration = Duration::from_millis(50);

/// What became of a cut record's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPassed {
    /// The configuration that asked for the initial sync (or a later one) is followed.
    Followed,
    /// It did not come within the wait: control gave up on that change.
    Abandoned,
    /// Shutdown.
    Shutdown,
}

/// The HTTP clients of customers' destinations, one per kind, resolving through the egress policy.
#[derive(Debug)]
struct CustomerClients {
    s3: SharedHttpClient,
    gcs: reqwest::Client,
}

/// Every destination, by workspace.
#[derive(Debug)]
pub struct Destinations {
    /// The egress policy and its HTTP clients (one connection pool per kind), checking every
    /// connection, of the followed destinations' clients (customers' endpoints).
    customer: Option<(EgressPolicy, CustomerClients)>,
    statics: HashMap<i64, Arc<DestinationClient>>,
    followed: Option<KafkaStore>,
    /// The backfill's reports of initial syncs (followed with the configurations).
    initial_syncs: Option<KafkaStore<InitialSyncs>>,
    /// (workspace, table) whose baseline was seen delivered: incremental files go.
    delivered: HashMap<(i64, Table), Baseline>,
    sealer: Option<Sealer>,
    /// Clients of followed configurations, with the revision they were built from.
    built: HashMap<i64, (u64, Arc<DestinationClient>)>,
}

impl Destinations {
    /// Builds one client per static destination; fails on a duplicate workspace or an unknown table.
    pub fn new(destinations: &[Destination]) -> Result<Self, InvalidConfig> {
        let https = dwsync_s3::https_client();
        let gcs = dwsync_gcs::http::http_client().expect("the rustls HTTP client builds (no system TLS to load)");
        let mut statics = HashMap::new();
        for dest in destinations {
            let client = DestinationClient::new(dest, &https, &gcs)?;
            if statics.insert(dest.workspace_id, Arc::new(client)).is_some() {
                return Err(InvalidConfig::DuplicateWorkspace(dest.workspace_id));
            }
        }
        Ok(Self {
            customer: None,
            statics,
            followed: None,
            initial_syncs: None,
            delivered: HashMap::new(),
            sealer: None,
            built: HashMap::new(),
        })
    }

    /// Also follows the configurations of `store` and the initial syncs of `initial_syncs`,
    /// opening secrets with `sealer`; their endpoints may lead where `egress` admits.
    pub fn follow(
        &mut self,
        store: KafkaStore,
        initial_syncs: KafkaStore<InitialSyncs>,
        sealer: Option<Sealer>,
        egress: EgressPolicy,
    ) {
        let clients = CustomerClients {
            s3: dwsync_s3::egress::customer_https_client(egress.clone()),
            gcs: dwsync_gcs::http::customer_http_client(egress.clone())
                .expect("the rustls HTTP client builds (no system TLS to load)"),
        };
        self.customer = Some((egress, clients));
        self.followed = Some(store);
        self.initial_syncs = Some(initial_syncs);
        self.sealer = sealer;
    }

    /// Waits until the configuration revision `epoch` of `workspace_id` (or a later one) is
    /// followed, so that the files after a cut record are routed by the configuration that
    /// placed it. Without followed configurations there is nothing to wait for, nor for epoch 0:
    /// no configuration has revision 0 (an archive purge's cut, which routes nothing).
    pub async fn pass_cut(&self, workspace_id: i64, epoch: u64, shutdown: &CancellationToken) -> CutPassed {
        if epoch == 0 {
            return CutPassed::Followed;
        }
        let Some((store, id)) = self.followed.as_ref().zip(WorkspaceId::new(workspace_id)) else {
            return CutPassed::Followed;
        };
        let deadline = tokio::time::Instant::now() + CUT_WAIT;
        loop {
            if store.cached(id).is_some_and(|cfg| cfg.revision >= epoch) {
                return CutPassed::Followed;
            }
            if tokio::time::Instant::now() >= deadline {
                return CutPassed::Abandoned;
            }
            tokio::select! {
                () = shutdown.cancelled() => return CutPassed::Shutdown,
                () = tokio::time::sleep(CUT_POLL) => {}
            }
        }
    }

    /// Where a file of `workspace_id` and `table` starting at handoff offset `seq` goes: only
    /// ever that workspace's destination.
    pub fn route(&mut self, workspace_id: i64, table: Table, seq: u64) -> Route {
        let followed = self.followed.as_ref().zip(WorkspaceId::new(workspace_id)).and_then(|(s, id)| s.cached(id));
        if let Some(cfg) = followed {
            return self.route_followed(&cfg, table, seq);
        }
        let _ = self.built.remove(&workspace_id);
        match self.statics.get(&workspace_id) {
            None => Route::Skip("no_destination"),
            Some(dest) if !dest.exports(table) => Route::Skip("table_disabled"),
            Some(dest) => Route::Deliver(Arc::clone(dest)),
        }
    }

    fn route_followed(&mut self, cfg: &SyncConfig, table: Table, seq: u64) -> Route {
        let id = cfg.workspace_id.get();
        if cfg.disabled {
            return Route::Skip("sync_disabled");
        }
        if cfg.schema_version != dwsync_contract::SCHEMA_VERSION {
            return Route::Unavailable(format!("schema version {} is not supported", cfg.schema_version));
        }
        let state = cfg.tables.get(&table);
        let baseline = state.and_then(|s| s.baseline);
        let offset = i64::try_from(seq).unwrap_or(i64::MAX);
        if let Some(baseline) = &baseline
            && baseline.holds(offset)
        {
            return Route::Skip("in_baseline");
        }
        if !cfg.is_enabled(table) {
            // Off since a cut: the archive keeps the file, the catch-up replays it.
            if state.and_then(|s| s.off_from).is_some_and(|from| offset >= from) {
                return Route::Skip("off_archived");
            }
            return Route::Park("table_off");
        }
        if let Some(baseline) = baseline
            && !self.baseline_delivered(id, table, baseline)
        {
            return Route::Park("initial_sync");
        }
        if let Some((revision, client)) = self.built.get(&id)
            && *revision == cfg.revision
        {
            return Route::Deliver(Arc::clone(client));
        }
        let Some(sealer) = &self.sealer else {
            return Route::Unavailable("the uploader has no seal key (DWSYNC_SEAL_KEY) to open the secret".into());
        };
        // The workspace id is the associated data: another workspace's sealed secret fails here.
        let secret = match sealer.open(cfg.destination.sealed(), &id.to_string()) {
            Ok(secret) => secret,
            Err(error) => return Route::Unavailable(format!("the secret key does not open: {error}")),
        };
        let Some((egress, clients)) = &self.customer else {
            return Route::Unavailable("no egress policy for followed destinations".into());
        };
        if let Some(endpoint) = cfg.destination.endpoint()
            && let Err(refused) = egress.check_literal_endpoint(endpoint)
        {
            return Route::Unavailable(refused.to_string());
        }
        let client = match DestinationClient::followed(cfg, secret.expose(), clients) {
            Ok(client) => Arc::new(client),
            Err(unusable) => return Route::Unavailable(unusable),
        };
        let kind = cfg.destination.kind();
        tracing::info!(workspace_id = id, revision = cfg.revision, kind, bucket = %client.bucket, "Using a new destination configuration.");
        let _ = self.built.insert(id, (cfg.revision, Arc::clone(&client)));
        Route::Deliver(client)
    }

    /// Whether the backfill reported `table`'s `baseline` of `workspace_id` delivered (remembered
    /// once seen, so the report is not looked up for every file after).
    fn baseline_delivered(&mut self, workspace_id: i64, table: Table, baseline: Baseline) -> bool {
        if self.delivered.get(&(workspace_id, table)) == Some(&baseline) {
            return true;
        }
        let reported = self.initial_syncs.as_ref().zip(WorkspaceId::new(workspace_id)).and_then(|(s, id)| s.cached(id));
        let done = reported.is_some_and(|r| r.is_done(table, &baseline));
        if done {
            let _ = self.delivered.insert((workspace_id, table), baseline);
            tracing::info!(
                workspace_id,
                table = table.name(),
                epoch = baseline.epoch,
                "Initial sync delivered: incremental files follow."
            );
        }
        done
    }

    /// How many static destinations there are.
    pub fn len(&self) -> usize {
        self.statics.len()
    }

    /// Whether there are no static destinations.
    pub fn is_empty(&self) -> bool {
        self.statics.is_empty()
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
            kind: DestinationKind::S3,
            service_account_key: Secret::default(),
        }
    }

    #[test]
    fn files_route_to_their_own_workspace_only() {
        let mut all = Destinations::new(&[dest(1, "a", &[]), dest(2, "b", &["deliveries"])]).expect("valid");
        assert_eq!(all.len(), 2);
        let Route::Deliver(a) = all.route(1, Table::People, 0) else { panic!("workspace 1 exports every table") };
        assert_eq!((a.workspace_id, a.bucket.as_str(), a.prefix.as_str()), (1, "a", "p1"));
        let Route::Deliver(b) = all.route(2, Table::Deliveries, 0) else { panic!("workspace 2 exports deliveries") };
        assert_eq!((b.workspace_id, b.bucket.as_str()), (2, "b"));
        assert!(matches!(all.route(2, Table::Metrics, 0), Route::Skip("table_disabled")));
        assert!(matches!(all.route(3, Table::Deliveries, 0), Route::Skip("no_destination")));
    }

    #[test]
    fn each_destination_has_its_own_client_and_hides_its_secret() {
        let mut second = dest(2, "b", &[]);
        second.region = "eu-west-1".into();
        let mut all = Destinations::new(&[dest(1, "a", &[]), second]).expect("valid");
        for (ws, region) in [(1, "us-east-1"), (2, "eu-west-1")] {
            let Route::Deliver(d) = all.route(ws, Table::Deliveries, 0) else { panic!("routed") };
            let StoreClient::S3 { client, .. } = &d.store else { panic!("static destinations are S3") };
            let config = client.config();
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

    #[tokio::test]
    async fn a_gcs_destination_names_the_field_at_fault() {
        let key = dwsync_tests::gcs::service_account_key();
        let gcs = |endpoint: &str| Destination {
            kind: DestinationKind::Gcs,
            endpoint: Some(endpoint.to_owned()),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            force_path_style: false,
            service_account_key: Secret::new(key.clone()),
            ..dest(7, "b", &[])
        };
        let mut all = Destinations::new(&[gcs("http://127.0.0.1:4443")]).expect("a GCS destination");
        let Route::Deliver(d) = all.route(7, Table::Deliveries, 0) else { panic!("routed") };
        assert!(matches!(d.store, StoreClient::Gcs(_)), "{d:?}");
        let err = Destinations::new(&[gcs("not a url")]).expect_err("a malformed endpoint");
        assert!(matches!(err, InvalidConfig::BadEndpoint { workspace_id: 7, .. }), "{err:?}");
        assert!(err.to_string().contains("`endpoint`") && !err.to_string().contains("PRIVATE"), "{err}");
    }
}
