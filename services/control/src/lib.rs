//! dwsync control: holds each workspace's sync configuration and serves the REST API over it.
//!
//! The configuration lives on a compacted Kafka topic ([`store::KafkaStore`]); every replica
//! follows it into memory, so replicas are stateless and agree. Secret keys are sealed
//! ([`seal`]) before they are written. See `docs/CONTROL.md` for the API.

pub mod api;
mod config;
pub mod cut;
pub mod model;
pub mod tls;
pub mod validate;

pub use dwsync_sync_config::{seal, store};

use std::future::Future;
use std::io;
use std::net::SocketAddr;

pub use config::{ApiConfig, Config, InitialSyncConfig, InvalidApi, StoreConfig, Transport};
use dwsync_sync_config::{InitialSyncs, SyncStatus};
use dwsync_telemetry::{Service, ServiceError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, Purges, Tokens};
use crate::model::BadWorkspaceId;
use crate::seal::{SealError, Sealer};
use crate::store::{KafkaStore, StoreError};
use crate::validate::Policy;
use dwsync_s3::egress::EgressPolicy;

/// The service's short name, used in logs and Kafka client ids.
pub const NAME: &str = "control";

/// The health component that is unready until the configuration view has caught up.
const STORE_COMPONENT: &str = "config-store";
/// The health component that is unready while no sealing key is configured.
const SEAL_COMPONENT: &str = "seal-key";

/// Why control could not start, or stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP endpoints or a task failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The sealing key is missing or malformed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A key of `api.workspace_tokens` is not a workspace id.
    #[error("api.workspace_tokens: {0}")]
    Tokens(#[from] BadWorkspaceId),
    /// The configuration topic could not be set up or read.
    #[error("configuration store: {0}")]
    Store(#[from] StoreError),
    /// `[api]` cannot be served as configured (plain HTTP off loopback, half a TLS pair).
    #[error(transparent)]
    Api(#[from] InvalidApi),
    /// The API's certificate or key cannot be used.
    #[error("the API's TLS files: {0}")]
    Tls(#[from] tls::TlsError),
    /// Shutdown began while the service was starting.
    #[error("stopped while starting")]
    Stopped,
    /// The API's listen address could not be bound.
    #[error("binding the API listener on {addr}: {error}")]
    Bind {
        /// `api.listen`.
        addr: SocketAddr,
        /// The OS error.
        error: io::Error,
    },
}

/// A started control service: its run loop and where the API listens.
#[derive(Debug)]
pub struct Started {
    /// Health, metrics and the tasks; run it with [`Service::run_until`].
    pub service: Service,
    /// The bound API address (the real port when port `0` was asked for).
    pub api_addr: SocketAddr,
}

/// Runs control until `shutdown` resolves, then stops gracefully.
///
/// Shutdown during start-up (while the broker does not answer yet) ends it too.
pub async fn run(cfg: Config, sealer: Option<Sealer>, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let mut shutdown = std::pin::pin!(shutdown);
    let started = tokio::select! {
        started = start(cfg, sealer) => started?,
        () = &mut shutdown => return Ok(()),
    };
    started.service.run_until(shutdown).await?;
    Ok(())
}

/// Pause between attempts to set up the configuration topic while the broker does not answer.
const CONNECT_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// The stores control follows: configurations, the uploaders' statuses, the initial syncs, the
/// archive purges (requests and reports).
struct Stores {
    configs: KafkaStore,
    statuses: KafkaStore<SyncStatus>,
    initial_syncs: KafkaStore<InitialSyncs>,
    purges: Purges,
    issued_tokens: KafkaStore<dwsync_sync_config::tokens::WorkspaceTokens>,
    checks: KafkaStore<dwsync_sync_config::checks::LastCheck>,
}

/// The stores, followed (until `stop`), the configurations caught up.
async fn connect(cfg: &Config, stop: &CancellationToken) -> Result<Stores, StoreError> {
    use dwsync_sync_config as sc;
    let configs = follow(cfg, &cfg.store, stop).await?;
    let statuses = follow(cfg, &sc::status::status_store(&cfg.store), stop).await?;
    let initial_syncs = follow(cfg, &sc::initial_sync_store(&cfg.store), stop).await?;
    let requests = follow(cfg, &sc::archive_purge_store(&cfg.store), stop).await?;
    let reports = follow(cfg, &sc::archive_purge_status_store(&cfg.store), stop).await?;
    let issued_tokens = follow(cfg, &sc::tokens::token_store(&cfg.store), stop).await?;
    let checks = follow(cfg, &sc::checks::check_store(&cfg.store), stop).await?;
    configs.catch_up().await?;
    // Issued tokens are accepted from the first request on.
    issued_tokens.catch_up().await?;
    Ok(Stores { configs, statuses, initial_syncs, purges: Purges { requests, reports }, issued_tokens, checks })
}

/// A store of `T` on `store`'s topic, followed until `stop`.
async fn follow<T: dwsync_sync_config::TopicValue>(
    cfg: &Config,
    store: &StoreConfig,
    stop: &CancellationToken,
) -> Result<KafkaStore<T>, StoreError> {
    let (values, follower) = KafkaStore::<T>::connect(&cfg.kafka, store).await?;
    drop(tokio::spawn(follower.run(stop.clone())));
    Ok(values)
}

/// Serves health and metrics, sets up and follows the configuration topic until it has caught
/// up, then binds the API; [`Service::run_until`] runs it all.
///
/// Without a `sealer` (no `DWSYNC_SEAL_KEY`) control still runs and serves reads, table
/// toggles and disable/enable, but refuses creates and updates (503) and stays unready.
pub async fn start(cfg: Config, sealer: Option<Sealer>) -> Result<Started, Error> {
    let tokens = Tokens::new(&cfg.api.admin_token, &cfg.api.workspace_tokens)?;
    let transport = cfg.api.transport()?;
    let tls = match &transport {
        Transport::Https(files) => Some(tls::ReloadingTls::new(files.clone())?),
        Transport::PlainLoopback => None,
        Transport::PlainAllowed => {
            tracing::warn!(listen = %cfg.api.listen, "The API serves plain HTTP off loopback (api.allow_plain_http): \
                only behind a proxy or mesh that terminates TLS.");
            None
        }
    };
    if cfg.api.admin_token.is_empty() && cfg.api.workspace_tokens.is_empty() {
        tracing::warn!("No API tokens are configured; every API call will be refused.");
    }
    let mut service = Service::start(NAME, &cfg.http).await?;
    service.health().set_unready(STORE_COMPONENT, "reading the configuration topic");
    if sealer.is_none() {
        tracing::warn!("{} is not set: syncs cannot be created or updated.", seal::KEY_ENV);
        service.health().set_unready(SEAL_COMPONENT, format!("{} is not set", seal::KEY_ENV));
    }
    // Until the broker answers, `/readyz` says why; the followers of a failed attempt stop.
    let Stores { configs: store, statuses, initial_syncs, purges, issued_tokens, checks } = loop {
        let followers = service.shutdown_token().child_token();
        match connect(&cfg, &followers).await {
            Ok(connected) => break connected,
            Err(error) => {
                followers.cancel();
                tracing::warn!(%error, "Setting up the configuration topic failed; retrying.");
                service
                    .health()
                    .set_unready(STORE_COMPONENT, format!("reading the configuration topic fails: {error}"));
                tokio::time::sleep(CONNECT_PAUSE).await;
            }
        }
    };
    let (store_following, stop_following) = (store.following(), service.shutdown_token());
    let health = service.health().clone();
    service.spawn("config-following", async move {
        dwsync_sync_config::store::on_following(store_following, stop_following, |problem| match problem {
            Some(problem) => {
                health.set_unready(STORE_COMPONENT, format!("not following the configuration topic: {problem}"))
            }
            None => health.set_ready(STORE_COMPONENT),
        })
        .await;
        Ok::<(), std::convert::Infallible>(())
    });

    let listener =
        TcpListener::bind(cfg.api.listen).await.map_err(|error| Error::Bind { addr: cfg.api.listen, error })?;
    let api_addr = listener.local_addr().map_err(|error| Error::Bind { addr: cfg.api.listen, error })?;
    let policy =
        Policy { allow_insecure_endpoints: cfg.api.allow_insecure_endpoints, egress: EgressPolicy::new(&cfg.egress) };
    if policy.allow_insecure_endpoints {
        tracing::warn!("http:// endpoints are accepted (api.allow_insecure_endpoints); for local use only.");
    }
    if !cfg.egress.allow.is_empty() {
        let allow: Vec<String> = cfg.egress.allow.iter().map(ToString::to_string).collect();
        tracing::warn!(allow = %allow.join(", "), "Customers' endpoints may reach these non-public networks and hosts (egress.allow).");
    }
    let mut state = AppState::new(store, sealer, tokens, policy, cfg.api.people_retention())
        .with_check_timeout(std::time::Duration::from_millis(cfg.api.check_timeout_ms))
        .with_statuses(statuses)
        .with_initial_syncs(initial_syncs)
        .with_issued_tokens(issued_tokens)
        .with_checks(checks);
    if cfg.initial_sync.enabled {
        let handoff_topic = &cfg.initial_sync.handoff_topic;
        let shutdown = service.shutdown_token();
        let Some(generation) =
            dwsync_sync_config::generation::current_until_shutdown(&cfg.kafka, handoff_topic, &shutdown).await
        else {
            return Err(Error::Stopped);
        };
        let cutter = cut::KafkaCutter::new(&cfg.kafka, handoff_topic, generation, cfg.store.timeout())
            .map_err(|e| Error::Store(StoreError::Kafka(e)))?;
        state = state.with_cutter(std::sync::Arc::new(cutter)).with_purges(purges);
    } else {
        tracing::warn!("Initial syncs are off (initial_sync.enabled = false): new syncs start without history.");
    }
    let app = api::router(state);
    let stop = service.shutdown_token();
    match tls {
        Some(tls) => {
            drop(tokio::spawn(tls.clone().reload_until(cfg.api.tls_reload(), stop.clone())));
            let listener = tls.listen(listener, stop.clone()).map_err(|error| Error::Bind { addr: api_addr, error })?;
            service.spawn("api", async move {
                axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await
            });
            tracing::info!(%api_addr, "Serving the configuration API over HTTPS.");
        }
        None => {
            service.spawn("api", async move {
                axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await
            });
            tracing::info!(%api_addr, "Serving the configuration API over plain HTTP.");
        }
    }
    Ok(Started { service, api_addr })
}

#[cfg(test)]
mod tests {
    use dwsync_config::testing::load_with;
    use figment::Jail;

    use super::*;

    #[test]
    fn defaults_and_compose_variables() {
        let cfg: Config = load_with(None, &[]).expect("defaults");
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8083");
        assert_eq!(cfg.api.listen.to_string(), "127.0.0.1:8090");
        assert_eq!(cfg.store.topic, "dwsync.sync-config");

        let cfg: Config = load_with(
            None,
            &[
                ("DWSYNC_HTTP__LISTEN", "0.0.0.0:8083"),
                ("DWSYNC_TELEMETRY__OTLP_ENDPOINT", "http://otel-collector:4318"),
                ("DWSYNC_API__ADMIN_TOKEN", "0123"),
                ("DWSYNC_API__ALLOW_INSECURE_ENDPOINTS", "true"),
                ("DWSYNC_EGRESS__ALLOW", r#"["minio", "10.0.0.0/8"]"#),
            ],
        )
        .expect("overridden");
        assert_eq!(cfg.http.listen.to_string(), "0.0.0.0:8083");
        assert_eq!(cfg.telemetry.otlp_endpoint.as_deref(), Some("http://otel-collector:4318"));
        assert_eq!(cfg.api.admin_token.expose(), "0123");
        assert!(cfg.api.allow_insecure_endpoints);
        let allow: Vec<String> = cfg.egress.allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["minio", "10.0.0.0/8"], "the compose file's allow-list");
        assert!(!format!("{cfg:?}").contains("0123"), "tokens never printed");

        let cfg: Config =
            load_with(Some("[api.workspace_tokens]\n42 = \"ws-token\"\n"), &[]).expect("workspace tokens from a file");
        assert_eq!(cfg.api.workspace_tokens["42"].expose(), "ws-token");
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment::Jail's closures return figment::Result")]
    fn the_sealing_key_comes_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.clear_env();
            assert_eq!(Sealer::from_env().map(|_| ()), Err(SealError::MissingKey));
            jail.set_env(seal::KEY_ENV, "not a key");
            assert!(matches!(Sealer::from_env(), Err(SealError::BadKey { var: seal::KEY_ENV })));
            let key = "ab".repeat(32);
            jail.set_env(seal::KEY_ENV, &key);
            jail.set_env(
                seal::OLD_KEYS_ENV,
                format!("{}, {}", "cd".repeat(32), "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="),
            );
            let sealer = Sealer::from_env().map_err(|e| e.to_string())?;
            assert_eq!(sealer.current_key_id(), Sealer::new(&[0xab; 32]).current_key_id());
            for old in [[0xcd; 32], [1; 32]] {
                let sealed =
                    Sealer::new(&old).seal(&dwsync_config::Secret::new("s"), "1").map_err(|e| e.to_string())?;
                assert_eq!(sealer.open(&sealed, "1").map_err(|e| e.to_string())?.expose(), "s");
            }
            assert!(!format!("{sealer:?}").contains(&key));
            // The key's variable shares the DWSYNC_ prefix; the config loader ignores it.
            let cfg: Config = dwsync_config::load(None, dwsync_config::ENV_PREFIX).map_err(|e| e.to_string())?;
            assert_eq!(cfg, Config::default());
            Ok(())
        });
    }
}
