//! dwsync uploader: writes handed-off Parquet files to each workspace's bucket, then commits.
//!
//! [`start`] subscribes to the handoff topic (`read_committed`) and runs the [`consumer`] loop:
//! chunks are reassembled per partition ([`offsets`]), each complete file is routed by its
//! workspace id to that workspace's own destination ([`destinations`]), its sync's
//! `cio-validate` is written, then the data object is created without ever overwriting
//! ([`sink`]), retried with backoff ([`retry`]) until it succeeds, and only then is the
//! partition's offset committed. Files of different partitions are written concurrently, those
//! of one partition one at a time and in order ([`inflight`]); every S3 client shares one HTTPS
//! connection pool ([`dwsync_s3::https_client`]). It also serves `/healthz`, `/readyz` and `/metrics`
//! ([`metrics`], the lag gauge from [`lag`]).

use std::future::Future;
use std::sync::Arc;

use dwsync_telemetry::kafka::KafkaProbeError;
use dwsync_telemetry::{Service, ServiceError};

pub mod config;
pub mod consumer;
pub mod delivery;
pub mod destinations;
pub mod inflight;
pub mod lag;
pub mod lot;
pub mod metrics;
pub mod offsets;
pub mod rebalance;
pub mod retry;
pub mod sink;
pub mod status;
pub mod syncs;

pub use config::{Config, Destination, DestinationKind, HandoffConfig, InvalidConfig, UploadConfig};

/// The service's short name, used in logs and Kafka client ids.
pub const NAME: &str = "uploader";

/// Why uploader stopped other than by being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot run.
    #[error("invalid configuration: {0}")]
    Config(#[from] InvalidConfig),
    /// The HTTP endpoints or a task failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The Kafka probe's client could not be created.
    #[error(transparent)]
    Kafka(#[from] KafkaProbeError),
    /// The handoff consumer could not be created or subscribed.
    #[error(transparent)]
    Consumer(#[from] consumer::ConsumerError),
    /// The lot's Kafka clients could not be created.
    #[error(transparent)]
    Lot(#[from] lot::LotError),
    /// The lag sampler could not start.
    #[error(transparent)]
    Lag(#[from] dwsync_telemetry::group_lag::GroupLagError),
}

/// Runs uploader until `shutdown` resolves, then stops gracefully.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    start(cfg).await?.run_until(shutdown).await?;
    Ok(())
}

/// The health component that is unready until the configuration topic has been read.
const CONFIG_COMPONENT: &str = "sync-config";

/// Binds the HTTP endpoints and spawns uploader's tasks; [`Service::run_until`] runs them.
///
/// When following the configuration topic, the handoff consumer starts only after the topic
/// has been read to its end, so no file is routed with a configuration not yet seen.
pub async fn start(cfg: Config) -> Result<Service, Error> {
    cfg.validate()?;
    let destinations = destinations::Destinations::new(&cfg.destinations)?;
    let mut service = Service::start(NAME, &cfg.http).await?;
    service.spawn_kafka_probe(&cfg.kafka)?;
    let lags = metrics::Lags::default();
    lag::spawn(&mut service, &cfg, Arc::clone(&lags))?;
    let metrics = Arc::new(metrics::Metrics::new(lags));
    let shutdown = service.shutdown_token();
    let lot = lot::Lot::new(&cfg.kafka, &cfg.lot, &cfg.handoff.topic, shutdown.clone())?;
    let health = service.health().clone();
    if cfg.sync_config.follow {
        health.set_unready(CONFIG_COMPONENT, "reading the configuration topic");
    }
    let main = async move {
        let (destinations, reporting) = match follow(&cfg, destinations, &health, &shutdown).await {
            Some(followed) => followed,
            None => return Ok(()),
        };
        let Some(generation) =
            dwsync_sync_config::generation::current_until_shutdown(&cfg.kafka, &cfg.handoff.topic, &shutdown).await
        else {
            return Ok(());
        };
        let consumer = consumer::subscribe(&cfg.kafka, &cfg.handoff, Arc::clone(&metrics))?;
        let topic = cfg.handoff.topic.clone();
        let statics: Vec<_> = cfg.destinations.iter().map(|d| d.workspace_id).collect();
        tracing::info!(
            topic = %topic,
            group_id = %cfg.handoff.group_id,
            follows_control = cfg.sync_config.follow,
            ?statics,
            "Delivering handoff files."
        );
        let delivery = delivery::Delivery::new(&cfg.upload, Arc::clone(&metrics), shutdown.clone());
        let pipeline = consumer::Pipeline::new(consumer::Parts {
            consumer,
            source: consumer::Source { topic: &topic, generation, commit_interval: cfg.handoff.commit_interval() },
            destinations,
            delivery,
            upload: &cfg.upload,
            lot,
            lot_config: &cfg.lot,
            reporting,
            metrics,
            shutdown,
        });
        pipeline.run().await.map_err(Error::from)
    };
    service.spawn("handoff-consumer", main);
    Ok(service)
}

/// Connects to both topics, starts following them, and waits until the configuration is read.
/// The followers stop when `stop` is cancelled (the caller cancels it when this fails, so a
/// retry does not leave them behind).
/// The topics the uploader follows: the configurations, the initial syncs (it waits on them
/// before a table's incremental files), and the one it reports statuses on.
struct Followed {
    configs: dwsync_sync_config::KafkaStore,
    initial_syncs: dwsync_sync_config::KafkaStore<dwsync_sync_config::InitialSyncs>,
    status: dwsync_sync_config::KafkaStore<dwsync_sync_config::SyncStatus>,
}

async fn connect(
    cfg: &Config,
    store_cfg: &dwsync_sync_config::StoreConfig,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Followed, dwsync_sync_config::StoreError> {
    use dwsync_sync_config::KafkaStore;
    let status_cfg = dwsync_sync_config::status::status_store(store_cfg);
    let initial_cfg = dwsync_sync_config::initial_sync_store(store_cfg);
    let (configs, follower) = KafkaStore::connect(&cfg.kafka, store_cfg).await?;
    let (status, status_follower) = KafkaStore::connect(&cfg.kafka, &status_cfg).await?;
    let (initial_syncs, initial_follower) = KafkaStore::connect(&cfg.kafka, &initial_cfg).await?;
    drop(tokio::spawn(follower.run(stop.clone())));
    drop(tokio::spawn(status_follower.run(stop.clone())));
    drop(tokio::spawn(initial_follower.run(stop.clone())));
    configs.catch_up().await?;
    initial_syncs.catch_up().await?;
    Ok(Followed { configs, initial_syncs, status })
}

/// Connects to the configuration and status topics (retrying until shutdown) and waits until
/// the configuration has been read; `None` on shutdown.
async fn follow(
    cfg: &Config,
    mut destinations: destinations::Destinations,
    health: &dwsync_telemetry::Health,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Option<(destinations::Destinations, consumer::Reporting)> {
    let interval = std::time::Duration::from_millis(cfg.sync_config.status_interval_ms);
    let health = health.clone();
    if !cfg.sync_config.follow {
        return Some((destinations, consumer::Reporting { store: None, interval, health }));
    }
    let sealer = match dwsync_sync_config::Sealer::from_env() {
        Ok(sealer) => Some(sealer),
        Err(error) => {
            tracing::warn!(%error, "No seal key: files of workspaces configured through control are parked.");
            None
        }
    };
    let store_cfg = &cfg.sync_config.store;
    let backoff = retry::Backoff::new(std::time::Duration::from_millis(500), std::time::Duration::from_secs(10));
    let mut retry = retry::Retrier::new("Reading the configuration topic", backoff, shutdown);
    let connected = loop {
        let followers = shutdown.child_token();
        let attempt = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            attempt = connect(cfg, store_cfg, &followers) => attempt,
        };
        match attempt {
            Ok(connected) => break connected,
            Err(error) => {
                followers.cancel();
                health.set_unready(CONFIG_COMPONENT, format!("reading the configuration topic fails: {error}"));
                if retry.failed(&error).await.is_break() {
                    return None;
                }
            }
        }
    };
    let Followed { configs: store, initial_syncs, status } = connected;
    tracing::info!(workspaces = store.cached_all().len(), topic = %store_cfg.topic, "Following the configuration topic.");
    let component = health.clone();
    drop(tokio::spawn(dwsync_sync_config::store::on_following(store.following(), shutdown.clone(), move |problem| {
        match problem {
            Some(problem) => {
                component.set_unready(CONFIG_COMPONENT, format!("not following the configuration topic: {problem}"))
            }
            None => component.set_ready(CONFIG_COMPONENT),
        }
    })));
    destinations.follow(store, initial_syncs, sealer, dwsync_s3::egress::EgressPolicy::new(&cfg.egress));
    Some((destinations, consumer::Reporting { store: Some(status), interval, health }))
}

#[cfg(test)]
mod tests {
    use dwsync_config::HttpConfig;
    use dwsync_config::testing::load_with;
    use dwsync_telemetry::testing;

    use super::*;

    #[test]
    fn defaults_and_compose_variables() {
        let cfg: Config = load_with(None, &[]).expect("defaults");
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.http.listen.to_string(), "127.0.0.1:8082");
        assert_eq!(cfg.handoff.topic, "dwsync.handoff");

        let cfg: Config = load_with(
            None,
            &[
                ("DWSYNC_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092"),
                ("DWSYNC_HTTP__LISTEN", "0.0.0.0:8082"),
                ("DWSYNC_HANDOFF__GROUP_ID", "uploader-2"),
                ("DWSYNC_HANDOFF__INSTANCE_ID", "dwsync-uploader-1"),
                ("DWSYNC_UPLOAD__RETRY_MAX_MS", "5000"),
                ("DWSYNC_TELEMETRY__OTLP_ENDPOINT", "http://otel-collector:4318"),
            ],
        )
        .expect("overridden");
        assert_eq!(cfg.kafka.bootstrap_servers, "kafka:9092");
        assert_eq!(cfg.http.listen.to_string(), "0.0.0.0:8082");
        assert_eq!(cfg.handoff.group_id, "uploader-2");
        assert_eq!(cfg.handoff.group_instance_id(), Some("dwsync-uploader-1"), "static membership");
        assert!(!cfg.handoff.leaves_on_shutdown(), "a static member keeps its partitions by default");
        assert_eq!(cfg.upload.retry_max_ms, 5000);
        assert_eq!(cfg.telemetry.otlp_endpoint.as_deref(), Some("http://otel-collector:4318"));
    }

    #[tokio::test]
    async fn serves_health_and_metrics_until_shutdown() {
        testing::init_once();
        let cfg = Config { http: HttpConfig::localhost(0), kafka: testing::unreachable_kafka(), ..Config::default() };
        testing::check_service(start(cfg).await.expect("start"), true).await;
    }

    #[tokio::test]
    async fn an_invalid_configuration_does_not_start() {
        let mut cfg = Config { http: HttpConfig::localhost(0), ..Config::default() };
        cfg.upload.part_bytes = 1024;
        let err = start(cfg).await.expect_err("part size below 5 MiB");
        assert!(matches!(err, Error::Config(InvalidConfig::Value { key: "upload.part_bytes", .. })), "{err:?}");
    }
}
