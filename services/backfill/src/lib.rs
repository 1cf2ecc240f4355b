//! dwsync backfill: delivers each table's initial sync (its baseline) to the workspace's bucket,
//! folded from the archive the archiver keeps.
//!
//! Control asks for a baseline by writing `TableState::baseline` (epoch, handoff partition, cut,
//! time) in the workspace's sync configuration. The backfill follows the configurations and the
//! initial-sync topic (which it alone writes), plans the pending work ([`plan`]: per workspace
//! and baseline, oldest first, `backfill.concurrency` at once) and runs each [`job`]: wait for the
//! archive to pass the cut, read the workspace's history up to it, fold each table, write its
//! files (`cio-validate` first, create-only keys from `dwsync_handoff::baseline_key`), and report
//! queued / running / done / failed ([`report`]). A catch-up (a baseline with `replay_from`, a
//! table turned back on after a pause) is not folded: its archived files of `[replay_from, cut)`
//! are written one by one as they were, under the keys the uploader uses (`data_key`). A failed job is tried again after capped
//! exponential backoff with jitter. Beside the jobs, [`purge`] removes workspaces from the archive
//! when an admin asks (control's purge topic; reported on the purge-status topic, which the
//! backfill alone writes). It serves `/healthz`, `/readyz` (ready once its topics are read) and
//! `/metrics` ([`metrics`]).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dwsync_archive::ArchiveReader;
use dwsync_config::KafkaConfig;
use dwsync_contract::Table;
use dwsync_retry::{Backoff, Retrier};
use dwsync_s3::egress::EgressPolicy;
use dwsync_sync_config::store::on_following;
use dwsync_sync_config::{InitialSyncs, KafkaStore, Sealer, StoreConfig, SyncConfig, TopicValue, WorkspaceId};
use dwsync_telemetry::kafka::KafkaProbeError;
use dwsync_telemetry::{Health, Service, ServiceError};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub mod config;
pub mod gap;
pub mod job;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod purge;
pub mod report;

pub use config::{BackfillConfig, Config, InvalidConfig};

use job::{Outcome, Shared};
use plan::Work;
use report::Reporter;

/// The service's short name, used in logs and Kafka client ids.
pub const NAME: &str = "backfill";

/// Unready until the configuration topic is read.
const CONFIG_COMPONENT: &str = "sync-config";

/// Unready until the initial-sync topic is read.
const SYNCS_COMPONENT: &str = "initial-syncs";

/// Unready until the archive purge requests are read.
const PURGES_COMPONENT: &str = "archive-purges";

/// Unready until the archive purge reports are read.
const PURGE_REPORTS_COMPONENT: &str = "archive-purge-status";

/// Kafka and the archive's first look are retried with this backoff until shutdown.
const START_BACKOFF: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(10));

/// Why the backfill stopped other than by being asked to.
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
}

/// Runs the backfill until `shutdown` resolves, then stops gracefully.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    start(cfg).await?.run_until(shutdown).await?;
    Ok(())
}

/// Binds the HTTP endpoints and spawns the backfill's loop; [`Service::run_until`] runs it.
pub async fn start(cfg: Config) -> Result<Service, Error> {
    cfg.validate()?;
    let mut service = Service::start(NAME, &cfg.http).await?;
    service.spawn_kafka_probe(&cfg.kafka)?;
    let health = service.health().clone();
    health.set_unready(CONFIG_COMPONENT, "the configuration topic is not read yet");
    health.set_unready(SYNCS_COMPONENT, "the initial-sync topic is not read yet");
    health.set_unready(PURGES_COMPONENT, "the archive purge topic is not read yet");
    health.set_unready(PURGE_REPORTS_COMPONENT, "the archive purge status topic is not read yet");
    let shutdown = service.shutdown_token();
    let metrics = Arc::new(metrics::Metrics::new());
    let (purge_cfg, purge_health, purge_metrics, purge_shutdown) =
        (cfg.clone(), health.clone(), Arc::clone(&metrics), shutdown.clone());
    service.spawn("backfill", async move {
        if let Some(scheduler) = connect(&cfg, &health, metrics, &shutdown).await {
            scheduler.run(&shutdown).await;
        }
        Ok::<(), Infallible>(())
    });
    service.spawn("purge", async move {
        if let Some(purges) = connect_purges(&purge_cfg, &purge_health, purge_metrics, &purge_shutdown).await {
            purges.run(&purge_shutdown).await;
        }
        Ok::<(), Infallible>(())
    });
    Ok(service)
}

/// Follows the archive purge requests and reports; `None` at shutdown.
async fn connect_purges(
    cfg: &Config,
    health: &Health,
    metrics: Arc<metrics::Metrics>,
    shutdown: &CancellationToken,
) -> Option<purge::Purges> {
    let store = &cfg.sync_config.store;
    let requests_cfg = dwsync_sync_config::archive_purge_store(store);
    let requests = follow(&cfg.kafka, &requests_cfg, health, PURGES_COMPONENT, shutdown).await?;
    let reports_cfg = dwsync_sync_config::archive_purge_status_store(store);
    let reports = follow(&cfg.kafka, &reports_cfg, health, PURGE_REPORTS_COMPONENT, shutdown).await?;
    let timeouts = (Duration::from_secs(10), Duration::from_secs(120));
    let client = cfg.archive.client(dwsync_s3::https_client(), timeouts);
    let purger = dwsync_archive::purge::Purger::new(
        client,
        &cfg.archive.bucket,
        &cfg.archive.prefix,
        cfg.archive.retention_days.clone(),
    );
    let handoff = (handoff_topic(cfg, shutdown).await?, cfg.handoff.archiver_group_id.clone());
    Some(purge::Purges {
        requests,
        reports,
        purger,
        handoff,
        metrics,
        poll: cfg.backfill.poll_interval(),
        backoff: cfg.backfill.backoff(),
    })
}

/// The handoff topic with its generation (read until shutdown: `None`).
async fn handoff_topic(cfg: &Config, shutdown: &CancellationToken) -> Option<gap::Handoff> {
    let generation =
        dwsync_sync_config::generation::current_until_shutdown(&cfg.kafka, &cfg.handoff.topic, shutdown).await?;
    Some(gap::Handoff { kafka: cfg.kafka.clone(), topic: cfg.handoff.topic.clone(), generation })
}

/// Follows both topics, reads the handoff topic's partition count, and builds the scheduler
/// (each step retried until it succeeds); `None` at shutdown.
async fn connect(
    cfg: &Config,
    health: &Health,
    metrics: Arc<metrics::Metrics>,
    shutdown: &CancellationToken,
) -> Option<Scheduler> {
    let sealer = Sealer::from_env().map_err(|error| {
        tracing::warn!(%error, "No seal key (DWSYNC_SEAL_KEY): the destinations' secrets cannot be opened; every job will fail until it is set.");
        format!("the backfill has no seal key (DWSYNC_SEAL_KEY): {error}")
    });
    let store = &cfg.sync_config.store;
    let configs: KafkaStore<SyncConfig> = follow(&cfg.kafka, store, health, CONFIG_COMPONENT, shutdown).await?;
    let syncs_cfg = dwsync_sync_config::initial_sync_store(store);
    let syncs: KafkaStore<InitialSyncs> = follow(&cfg.kafka, &syncs_cfg, health, SYNCS_COMPONENT, shutdown).await?;
    let backoff = Backoff::new(START_BACKOFF.0, START_BACKOFF.1);
    let mut retry = Retrier::new("Reading the handoff topic's partition count", backoff, shutdown);
    let partitions = loop {
        match handoff_partitions(&cfg.kafka, &cfg.handoff.topic).await {
            Ok(partitions) => break partitions,
            Err(error) => {
                if retry.failed(&error).await.is_break() {
                    return None;
                }
            }
        }
    };
    let timeouts = (Duration::from_secs(10), Duration::from_secs(120));
    let client = cfg.archive.client(dwsync_s3::https_client(), timeouts);
    let reader = match ArchiveReader::new(client, &cfg.archive.bucket, &cfg.archive.prefix, partitions) {
        Ok(reader) => reader,
        Err(error) => {
            tracing::error!(%error, "The archive cannot be read.");
            return None;
        }
    };
    tracing::info!(
        configurations = configs.cached_all().len(),
        initial_syncs = syncs.cached_all().len(),
        handoff_partitions = partitions,
        archive_bucket = %cfg.archive.bucket,
        archive_prefix = %cfg.archive.prefix,
        "Backfilling initial syncs."
    );
    let b = &cfg.backfill;
    let shared = Shared {
        configs,
        syncs,
        reader,
        sealer,
        egress: EgressPolicy::new(&cfg.egress),
        https: dwsync_s3::egress::customer_https_client(EgressPolicy::new(&cfg.egress)),
        gcs_http: dwsync_gcs::http::customer_http_client(EgressPolicy::new(&cfg.egress))
            .expect("the rustls HTTP client builds (no system TLS to load)"),
        metrics_rows_per_file: b.metrics_rows_per_file,
        max_keys_reported: b.max_keys_reported,
        spill: dwsync_archive::fold::Spill {
            dir: b.spill_dir(),
            budget_bytes: b.memory_budget_bytes,
            counter: metrics.spill_counter().clone(),
        },
        metrics,
        handoff: handoff_topic(cfg, shutdown).await?,
    };
    Some(Scheduler::new(Arc::new(shared), b))
}

/// Connects to a compacted topic, runs its follower, waits until it has read the topic, then
/// keeps `component` ready while it keeps up (retried until shutdown).
async fn follow<T: TopicValue>(
    kafka: &KafkaConfig,
    store: &StoreConfig,
    health: &Health,
    component: &'static str,
    shutdown: &CancellationToken,
) -> Option<KafkaStore<T>> {
    let backoff = Backoff::new(START_BACKOFF.0, START_BACKOFF.1);
    let mut retry = Retrier::new("Reading a compacted topic", backoff, shutdown);
    loop {
        let follower_token = shutdown.child_token();
        let attempt = async {
            let (store, follower) = KafkaStore::<T>::connect(kafka, store).await?;
            let token = follower_token.clone();
            drop(tokio::spawn(async move { follower.run(token).await }));
            store.catch_up().await?;
            Ok::<_, dwsync_sync_config::StoreError>(store)
        };
        let error = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            attempt = attempt => match attempt {
                Ok(connected) => {
                    let component_health = health.clone();
                    drop(tokio::spawn(on_following(connected.following(), shutdown.clone(), move |problem| match problem {
                        Some(problem) => component_health.set_unready(component, format!("not following {}: {problem}", component)),
                        None => component_health.set_ready(component),
                    })));
                    return Some(connected);
                }
                Err(error) => error,
            },
        };
        follower_token.cancel();
        health.set_unready(component, format!("reading {} fails: {error}", store.topic));
        if retry.failed(&error).await.is_break() {
            return None;
        }
    }
}

/// The handoff topic's partition count, from the broker's metadata.
async fn handoff_partitions(kafka: &KafkaConfig, topic: &str) -> Result<i32, String> {
    let consumer: BaseConsumer =
        kafka.client_config("backfill-metadata").create().map_err(|e| format!("a Kafka client: {e}"))?;
    let (topic, timeout) = (topic.to_owned(), kafka.metadata_timeout());
    tokio::task::spawn_blocking(move || {
        let metadata =
            consumer.fetch_metadata(Some(&topic), timeout).map_err(|e| format!("metadata of {topic}: {e}"))?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                i32::try_from(t.partitions().len()).map_err(|e| e.to_string())
            }
            _ => Err(format!("the handoff topic {topic} does not exist (or has no partitions)")),
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether a job's end lets the scheduler start the next pending job at once rather than at its
/// next poll: yes unless it waits for the archive (started again at once, it would only look at
/// the same archive again; the poll is its pace).
fn plans_at_once(outcome: &Outcome) -> bool {
    !matches!(outcome, Outcome::Waiting)
}

/// Plans every poll, and whenever a job ends, and runs the jobs.
struct Scheduler {
    shared: Arc<Shared>,
    concurrency: usize,
    poll: Duration,
    backoff: Backoff,
    jobs: JoinSet<(Work, Outcome)>,
    /// The workspace of each running job.
    running: HashMap<tokio::task::Id, WorkspaceId>,
    /// Failed jobs waiting out their backoff: (epoch, cut, not before).
    retry_at: HashMap<WorkspaceId, (u64, i64, Instant)>,
}

impl Scheduler {
    fn new(shared: Arc<Shared>, cfg: &BackfillConfig) -> Self {
        Self {
            shared,
            concurrency: cfg.concurrency,
            poll: cfg.poll_interval(),
            backoff: cfg.backoff(),
            jobs: JoinSet::new(),
            running: HashMap::new(),
            retry_at: HashMap::new(),
        }
    }

    async fn run(mut self, shutdown: &CancellationToken) {
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(joined) = self.jobs.join_next_with_id() => {
                    // A slot freed: the next job starts now, not at the next poll (with small
                    // jobs, waiting for the poll left the slots idle most of the time).
                    if self.ended(joined) {
                        self.plan().await;
                    }
                }
                _ = tick.tick() => self.plan().await,
            }
        }
        // A job stopped mid-way is safe: run again, it folds the same rows into the same keys.
        self.jobs.shutdown().await;
        tracing::info!("The backfill stopped.");
    }

    /// Takes in a job's end; returns whether to plan at once ([`plans_at_once`]).
    fn ended(&mut self, joined: Result<(tokio::task::Id, (Work, Outcome)), tokio::task::JoinError>) -> bool {
        let metrics = &self.shared.metrics;
        let (id, work, outcome) = match joined {
            Ok((id, (work, outcome))) => (id, work, outcome),
            Err(error) => {
                tracing::error!(%error, "A job panicked; it will be tried again.");
                let _ = self.running.remove(&error.id());
                metrics.job("failed");
                return true;
            }
        };
        let again = plans_at_once(&outcome);
        let _ = self.running.remove(&id);
        let b = work.baseline;
        match outcome {
            Outcome::Done => {
                metrics.job("done");
                let _ = self.retry_at.remove(&work.workspace);
            }
            Outcome::Failed(attempts) => {
                metrics.job("failed");
                let delay = self.backoff.delay(attempts.saturating_sub(1), &mut rand::rng());
                let _ = self.retry_at.insert(work.workspace, (b.epoch, b.cut, Instant::now() + delay));
            }
            Outcome::Waiting | Outcome::Dropped => {}
        }
        again
    }

    /// Plans from what both topics say now: reports new work queued and starts what fits.
    async fn plan(&mut self) {
        let shared = Arc::clone(&self.shared);
        let configs = shared.configs.cached_all();
        let syncs: HashMap<WorkspaceId, InitialSyncs> = shared
            .syncs
            .cached_all()
            .into_iter()
            .filter_map(|s| WorkspaceId::new(s.workspace_id).map(|id| (id, s)))
            .collect();
        let pending = plan::pending(&configs, &syncs);
        let now = Instant::now();
        self.retry_at.retain(|ws, (epoch, cut, at)| {
            *at > now
                && pending.iter().any(|w| w.workspace == *ws && w.baseline.epoch == *epoch && w.baseline.cut == *cut)
        });
        let running: HashSet<WorkspaceId> = self.running.values().copied().collect();
        for work in pending.iter().filter(|w| !running.contains(&w.workspace)) {
            let reported = syncs.get(&work.workspace);
            let new: Vec<Table> = work
                .tables
                .iter()
                .copied()
                .filter(|t| {
                    reported
                        .and_then(|s| s.tables.get(t))
                        .is_none_or(|s| s.epoch != work.baseline.epoch || s.cut != work.baseline.cut)
                })
                .collect();
            if new.is_empty() {
                continue;
            }
            let mut reporter = Reporter::new(&shared.syncs, work.workspace, 0);
            if let Err(error) = reporter.queued(&new, &work.baseline, None).await {
                tracing::warn!(%error, workspace_id = %work.workspace, "Reporting initial syncs queued failed.");
            }
        }
        let waiting = pending.len();
        let mut busy = running;
        busy.extend(self.retry_at.keys().copied());
        let free = self.concurrency.saturating_sub(self.running.len());
        for work in plan::choose(pending, &busy, free) {
            let shared = Arc::clone(&shared);
            let workspace = work.workspace;
            let handle = self.jobs.spawn(async move {
                let outcome = job::run(&shared, &work).await;
                (work, outcome)
            });
            let _ = self.running.insert(handle.id(), workspace);
        }
        shared.metrics.jobs_now(self.running.len(), waiting.saturating_sub(self.running.len()));
    }
}

#[cfg(test)]
mod tests {
    use dwsync_config::HttpConfig;

    use super::*;

    #[test]
    fn a_slot_freed_is_filled_at_once_unless_its_job_waits_for_the_archive() {
        assert!(plans_at_once(&Outcome::Done));
        assert!(plans_at_once(&Outcome::Failed(1)), "the failed job waits out its backoff; others start");
        assert!(plans_at_once(&Outcome::Dropped));
        assert!(!plans_at_once(&Outcome::Waiting), "looked at again at the next poll");
    }

    #[tokio::test]
    async fn an_invalid_configuration_does_not_start() {
        let mut cfg = Config { http: HttpConfig::localhost(0), ..Config::default() };
        cfg.archive.access_key_id = "k".into();
        let err = start(cfg).await.expect_err("half a key pair");
        assert!(matches!(err, Error::Config(InvalidConfig { key: "archive.access_key_id", .. })), "{err:?}");
    }
}
