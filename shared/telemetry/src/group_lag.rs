//! A consumer group's lag measured from outside the group: its committed offsets against the
//! end of its topics, sampled on a thread of its own for the service's whole life.
//!
//! The loop that consumes can stall, restart or wait for the broker: it then updates nothing,
//! and a lag it computed itself (the high watermark less its position) stays where it was. This
//! sampler never joins the group: every `interval` it lists the topics' partitions, asks the
//! group coordinator for the group's committed offsets and the leaders for the partitions' low
//! and high watermarks, so a group that stops committing shows a lag that grows with the input.
//!
//! **Transaction markers.** The topics dwsync reads can end with commit or abort markers, or
//! with aborted records, which a `read_committed` consumer never receives: a group caught up on
//! such a partition commits the offset after its last record, and `high − committed` stays ≥ 1
//! forever. So a partition with `committed < high` whose committed offset did not move since the
//! previous sample is *probed*: a second, `read_committed` client reads it from the committed
//! offset until it receives a record (records are pending: lag `high − committed`) or the end of
//! the partition (nothing is pending: lag 0). The outcome is kept while the committed offset and
//! the high watermark stay the same, so an idle partition is read once, not every sample. A
//! partition the group never committed counts from its low watermark (`auto.offset.reset =
//! earliest`, as the services consume).
//!
//! **Stalls.** For each partition with records pending the sampler keeps the time since its
//! committed offset last moved (or since the records became pending, or since the sampler
//! started, whichever is latest); the group's [`GroupLag::since_commit`] is the longest of these.
//! Over `stall_after`, the service is unready ([`COMPONENT`], with the reason), and ready again
//! once the group commits. When a sample fails (the broker away) the last lag is kept and the
//! stall clock runs on.
//!
//! The figures are the group's, not an instance's: every instance of a service reports the
//! same values (aggregate them with `max`, not `sum`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dwsync_config::KafkaConfig;
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

use crate::{Health, Service};

mod clients;
mod tracker;

use clients::Clients;
use tracker::Tracker;

/// The health component the sampler marks unready while the group makes no progress.
pub const COMPONENT: &str = "progress";

/// Consecutive failed samples, with the brokers answering metadata requests, after which the
/// sampler's clients are created anew.
const REBUILD_AFTER: u32 = 3;

/// A topic partition.
pub type TopicPartition = (String, i32);

/// What to measure and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLagSettings {
    /// The consumer group whose committed offsets are measured (the sampler never joins it).
    pub group_id: String,
    /// The topics the group consumes; a topic that does not exist (yet) is skipped.
    pub topics: Vec<String>,
    /// Pause between two samples.
    pub interval: Duration,
    /// The service is unready while records have waited this long without a commit.
    pub stall_after: Duration,
    /// Longest wait for one request (metadata, committed offsets, watermarks, a probe).
    pub timeout: Duration,
}

/// Why the sampler could not start or a sample failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupLagError {
    /// A Kafka client could not be created (an invalid client property).
    #[error("creating the lag sampler's Kafka client: {0}")]
    Client(KafkaError),
    /// The sampler's thread could not be started.
    #[error("starting the lag sampler's thread: {0}")]
    Thread(std::io::Error),
    /// The brokers did not answer a metadata request.
    #[error("fetching the metadata of topic {topic}: {error}")]
    Metadata {
        /// The topic asked about.
        topic: String,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// A request after the metadata failed (committed offsets, watermarks, a probe).
    #[error("{what}: {error}")]
    Request {
        /// What was asked.
        what: &'static str,
        /// librdkafka's error.
        error: KafkaError,
    },
}

/// The group's lag as of the last sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupLag {
    /// Records pending per partition: `high − committed` where a `read_committed` consumer
    /// still has records to read, else 0. Every partition of the topics is listed.
    pub partitions: BTreeMap<TopicPartition, i64>,
    /// How long the longest-waiting partition with records pending has gone without a commit;
    /// zero when nothing is pending.
    pub since_commit: Duration,
    /// Whether `since_commit` is over the settings' `stall_after`.
    pub stalled: bool,
    /// Whether the figures come from a successful sample (false until the first one; the last
    /// figures stay, with the stall clock running on, while samples fail).
    pub sampled: bool,
}

impl GroupLag {
    /// Records pending over all partitions.
    pub fn total(&self) -> i64 {
        self.partitions.values().sum()
    }

    /// [`since_commit`](Self::since_commit) in seconds.
    pub fn seconds_since_commit(&self) -> f64 {
        self.since_commit.as_secs_f64()
    }

    /// The reason the service is unready while the group is stalled.
    pub fn stall_reason(&self) -> String {
        format!("no commit for {} s with {} records pending", self.since_commit.as_secs(), self.total())
    }
}

/// Measures a consumer group's lag from outside it; see the [module](self) documentation.
pub struct GroupLagSampler {
    kafka: KafkaConfig,
    name: String,
    settings: GroupLagSettings,
    clients: Option<Clients>,
    tracker: Tracker,
    failures: u32,
}

impl std::fmt::Debug for GroupLagSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLagSampler").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl GroupLagSampler {
    /// A sampler of `settings.group_id` on `kafka`'s brokers, its clients named
    /// `<prefix>-<name>` and `<prefix>-<name>-probe`.
    ///
    /// Fails only on an invalid client configuration; unreachable brokers are not an error.
    pub fn new(kafka: &KafkaConfig, name: &str, settings: GroupLagSettings) -> Result<Self, GroupLagError> {
        let clients = Clients::new(kafka, name, &settings.group_id)?;
        Ok(Self {
            kafka: kafka.clone(),
            name: name.to_owned(),
            tracker: Tracker::new(settings.stall_after),
            settings,
            clients: Some(clients),
            failures: 0,
        })
    }

    /// Takes one sample now (blocking, up to a few `timeout`s): the group's lag, or why the
    /// sample failed (the previous figures are then kept; [`last`](Self::last) reports them).
    pub fn sample(&mut self) -> Result<GroupLag, GroupLagError> {
        let clients = match self.clients.take() {
            Some(clients) => clients,
            None => Clients::new(&self.kafka, &self.name, &self.settings.group_id)?,
        };
        clients.drain_events();
        let sampled = clients.offsets(&self.settings.topics, self.settings.timeout).and_then(|offsets| {
            let targets = self.tracker.to_probe(&offsets);
            let probed =
                if targets.is_empty() { BTreeMap::new() } else { clients.probe(&targets, self.settings.timeout)? };
            Ok(self.tracker.update(&offsets, &probed, Instant::now()))
        });
        match &sampled {
            Ok(_) => self.failures = 0,
            // The brokers are away: nothing a new client would change.
            Err(GroupLagError::Metadata { .. }) => {}
            Err(_) => self.failures += 1,
        }
        if self.failures >= REBUILD_AFTER {
            tracing::info!(group = %self.settings.group_id, failures = self.failures, "Lag sampler failing while the brokers answer; creating its clients anew.");
            self.failures = 0;
            // Dropped: the next sample creates them anew.
        } else {
            self.clients = Some(clients);
        }
        sampled
    }

    /// The last sample's figures, with the stall clock at now.
    pub fn last(&self) -> GroupLag {
        self.tracker.report(Instant::now())
    }

    /// Samples every `interval` on a thread of its own until `shutdown` is cancelled, handing
    /// each result to `publish` and keeping [`COMPONENT`] unready while the group is stalled.
    ///
    /// A plain thread, not a blocking task: a sample in progress never holds up the runtime's
    /// shutdown. Returns once the thread is started.
    pub fn spawn(
        mut self,
        health: Health,
        shutdown: CancellationToken,
        mut publish: impl FnMut(&GroupLag) + Send + 'static,
    ) -> Result<(), GroupLagError> {
        let interval = self.settings.interval;
        let _detached = std::thread::Builder::new()
            .name(format!("{}-lag", self.name))
            .spawn(move || {
                let mut failing = false;
                while !shutdown.is_cancelled() {
                    let lag = match self.sample() {
                        Ok(lag) => {
                            if failing {
                                tracing::info!(group = %self.settings.group_id, "Lag sampling works again.");
                            }
                            failing = false;
                            lag
                        }
                        Err(error) => {
                            if failing {
                                tracing::debug!(group = %self.settings.group_id, %error, "Lag sample failed; retrying.");
                            } else {
                                tracing::warn!(group = %self.settings.group_id, %error, "Lag sample failed; retrying every interval.");
                            }
                            failing = true;
                            self.last()
                        }
                    };
                    publish(&lag);
                    if lag.stalled {
                        health.set_unready(COMPONENT, lag.stall_reason());
                    } else {
                        health.set_ready(COMPONENT);
                    }
                    sleep_unless_cancelled(interval, &shutdown);
                }
            })
            .map_err(GroupLagError::Thread)?;
        Ok(())
    }
}

/// Sleeps `duration`, waking every 100 ms to return early once `shutdown` is cancelled.
fn sleep_unless_cancelled(duration: Duration, shutdown: &CancellationToken) {
    let deadline = Instant::now() + duration;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || shutdown.is_cancelled() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

impl Service {
    /// Starts a [`GroupLagSampler`] of `settings` for the service's whole life (client
    /// `<name>-lag`), handing every sample to `publish` (which records the service's gauges).
    pub fn spawn_group_lag(
        &mut self,
        kafka: &KafkaConfig,
        settings: GroupLagSettings,
        publish: impl FnMut(&GroupLag) + Send + 'static,
    ) -> Result<(), GroupLagError> {
        let sampler = GroupLagSampler::new(kafka, &format!("{}-lag", self.name), settings)?;
        sampler.spawn(self.health().clone(), self.shutdown_token(), publish)
    }
}
