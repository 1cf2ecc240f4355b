//! The configuration REST API (axum): routes, auth, handlers, errors and the OpenAPI document.

mod auth;
pub mod check;
mod error;
mod handlers;
mod initial;
pub mod openapi;
pub mod routes;
mod tokens;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

pub use auth::{Principal, Tokens};
use axum::Router;
pub use error::ApiError;
pub use routes::{Access, Endpoint};
use tokio::sync::Mutex;

use dwsync_sync_config::checks::LastCheck;
use dwsync_sync_config::tokens::WorkspaceTokens;
use dwsync_sync_config::{InitialSyncs, KafkaStore, PurgeRequest, PurgeStatus, SyncStatus};

use crate::cut::Cutter;

use crate::seal::Sealer;
use crate::store::ConfigStore;
use crate::validate::Policy;

/// Longest wait for a connection to a checked destination.
const CHECK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A clock in ms since the Unix epoch (injected so tests can move time).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What every handler needs: the store, the sealer, the tokens and the rules.
#[derive(Clone)]
pub struct AppState<S> {
    /// Where configurations live.
    pub store: S,
    /// Seals secret keys before they are stored; without it creates and updates are refused.
    pub sealer: Option<Sealer>,
    /// The bearer tokens.
    pub tokens: Arc<Tokens>,
    /// What validation allows.
    pub policy: Policy,
    /// How long a turned-off people table's files are kept.
    pub people_retention: Duration,
    /// Serialises this replica's read-modify-write cycles.
    pub write_lock: Arc<Mutex<()>>,
    /// The current time.
    pub clock: Clock,
    /// The uploaders' reports, if this replica follows the status topic.
    pub statuses: Option<KafkaStore<SyncStatus>>,
    /// The backfill's reports of initial syncs, if this replica follows their topic.
    pub initial_syncs: Option<KafkaStore<InitialSyncs>>,
    /// Writes the cut records of initial syncs; `None` when initial syncs are off
    /// (`initial_sync.enabled = false`): syncs then start with the next files, without history.
    pub cutter: Option<Arc<dyn Cutter>>,
    /// Archive purges: the requests (control writes them) and the backfill's reports; `None`
    /// when this replica does not follow them (purges are then refused with 503).
    pub purges: Option<Purges>,
    /// The tokens issued through the API (control writes them); `None` when this replica does
    /// not follow their topic (issuing is then refused with 503).
    pub issued_tokens: Option<KafkaStore<WorkspaceTokens>>,
    /// How destination checks connect (through the policy's egress rules).
    pub checker: check::Checker,
    /// Each workspace's last destination check (control writes it); `None` when this replica
    /// does not follow its topic (checks are then answered but not kept).
    pub checks: Option<KafkaStore<LastCheck>>,
}

/// The archive purge topics control follows.
#[derive(Clone, Debug)]
pub struct Purges {
    /// The requests; control is their only writer.
    pub requests: KafkaStore<PurgeRequest>,
    /// The backfill's reports.
    pub reports: KafkaStore<PurgeStatus>,
}

impl<S> AppState<S> {
    /// The state with the system clock and a fresh write lock.
    pub fn new(store: S, sealer: Option<Sealer>, tokens: Tokens, policy: Policy, people_retention: Duration) -> Self {
        let checker = check::Checker {
            https: dwsync_s3::egress::customer_https_client(policy.egress.clone()),
            gcs_http: dwsync_gcs::http::customer_http_client(policy.egress.clone())
                .expect("the rustls HTTP client builds (no system TLS to load)"),
            connect_timeout: CHECK_CONNECT_TIMEOUT,
            attempt_timeout: Duration::from_millis(crate::config::DEFAULT_CHECK_TIMEOUT_MS),
        };
        Self {
            checker,
            store,
            sealer,
            tokens: Arc::new(tokens),
            policy,
            people_retention,
            write_lock: Arc::new(Mutex::new(())),
            clock: Arc::new(system_now_ms),
            statuses: None,
            initial_syncs: None,
            cutter: None,
            purges: None,
            issued_tokens: None,
            checks: None,
        }
    }

    /// Keeps each workspace's last destination check on `checks` and serves it in the status.
    pub fn with_checks(mut self, checks: KafkaStore<LastCheck>) -> Self {
        self.checks = Some(checks);
        self
    }

    /// Issues workspace tokens on `issued`, and accepts them (each on its own workspace).
    pub fn with_issued_tokens(mut self, issued: KafkaStore<WorkspaceTokens>) -> Self {
        self.tokens = Arc::new(self.tokens.as_ref().clone().with_issued(issued.clone()));
        self.issued_tokens = Some(issued);
        self
    }

    /// Also serves the backfill's reports of initial syncs from `initial_syncs`.
    pub fn with_initial_syncs(mut self, initial_syncs: KafkaStore<InitialSyncs>) -> Self {
        self.initial_syncs = Some(initial_syncs);
        self
    }

    /// Asks for initial syncs, writing their cut records with `cutter`.
    pub fn with_cutter(mut self, cutter: Arc<dyn Cutter>) -> Self {
        self.cutter = Some(cutter);
        self
    }

    /// Serves archive purges: writes requests to `purges.requests`, reads their reports.
    pub fn with_purges(mut self, purges: Purges) -> Self {
        self.purges = Some(purges);
        self
    }

    /// Destination checks wait at most `timeout` for one request.
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.checker.attempt_timeout = timeout;
        self.checker.connect_timeout = timeout.min(CHECK_CONNECT_TIMEOUT);
        self
    }

    /// Also serves the uploaders' reports from `statuses`.
    pub fn with_statuses(mut self, statuses: KafkaStore<SyncStatus>) -> Self {
        self.statuses = Some(statuses);
        self
    }

    fn now_ms(&self) -> i64 {
        (self.clock)()
    }
}

/// The API's router over `state`, one route per [`Endpoint`]; JSON errors for anything else.
pub fn router<S: ConfigStore + Clone>(state: AppState<S>) -> Router {
    Endpoint::ALL
        .iter()
        .fold(Router::new(), |router, e| router.route(e.path(), e.handler::<S>()))
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
}

/// Milliseconds since the Unix epoch.
fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
