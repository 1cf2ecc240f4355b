//! The ingest loop: read a record, decode it, add it to its window; close windows on their
//! partition's time grid or when full; hand the closed windows' files off and commit their
//! source offsets in one transaction. One loop per instance, kafka-delta-ingest style; Kafka
//! holds all durable state. The loop reads on while a transaction commits ([`crate::in_flight`]),
//! and waits for it before the next one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dwsync_retry::Backoff;
use dwsync_telemetry::Health;
use futures_util::StreamExt as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

use crate::batch::gather;
use crate::config::{Config, SourceTopic};
use crate::encode::EncodeError;
use crate::in_flight::{Carrying, CommitError, CommitGate};
use crate::limits::LimitsError;
use crate::metrics;
use crate::parallel;
use crate::rebalance::RebalanceContext;
use crate::window::PartitionKey;
use buffers::{Buffers, BuffersGauge};
use flush::Flusher;
use sources::Sources;
use state::State;

mod buffers;
mod flush;
mod positions;
mod rewind;
mod sources;
mod state;

/// Health component name of the pipeline.
pub const COMPONENT: &str = "pipeline";
/// How long a stopping loop waits for its consumer to leave the group.
const LEAVE_WITHIN: Duration = Duration::from_secs(5);

/// Why the loop stopped (it is then restarted from the committed offsets).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading the source topics failed (subscribing, consuming, seeking, the group's
    /// assignment).
    #[error("reading the source topics failed: {0}")]
    Consume(KafkaError),
    /// Handing files off failed outside a transaction's outcome (creating or initialising the
    /// handoff producer, beginning a transaction, sending a record).
    #[error("handing off failed: {0}")]
    Handoff(KafkaError),
    /// A window could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The record size limits could not be read, or a setting cannot work with them.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// The last handoff transaction failed and was aborted (a rebalance gave the group a new
    /// generation while its offsets were on their way, a delivery failed): the loop reads
    /// everything since the last commit again, without leaving the group. Also what the
    /// record the broker refused carried, if a delivery failed.
    #[error("the handoff transaction was aborted: {0}")]
    Aborted(KafkaError, Option<Carrying>),
    /// The handoff producer is unusable (its transaction could not be aborted, or its outcome
    /// is unknown): a new producer takes over its transactional id (which aborts whatever the
    /// old one left open) and the loop reads everything since the last commit again, without
    /// leaving the group.
    #[error("the handoff producer failed: {0}")]
    ProducerFailed(KafkaError),
    /// The group fenced this static member: another consumer joined with the same
    /// `group.instance.id` (a second process with this instance id). The loop stops rather than
    /// fence it back.
    #[error("fenced by another instance with the same instance id: {0}")]
    Fenced(String),
}

impl PipelineError {
    /// The `reason` label of `dwsync_ingest_loop_restarts_total` for a restart after this error.
    fn restart_reason(&self) -> &'static str {
        match self {
            Self::Consume(_) | Self::Handoff(_) | Self::Limits(_) => "kafka",
            Self::Fenced(_) => "fenced",
            Self::Encode(_) => "encode",
            Self::Aborted(..) => "reread",
            Self::ProducerFailed(_) => "producer",
        }
    }
}

impl From<CommitError> for PipelineError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Aborted { error, refused } => Self::Aborted(error, refused),
            CommitError::Failed(e) => Self::ProducerFailed(e),
        }
    }
}

/// Runs the loop until `shutdown`, restarting it from the committed offsets after an error.
pub async fn run(
    cfg: Arc<Config>,
    topics: Arc<Vec<SourceTopic>>,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), PipelineError> {
    let instance = if cfg.ingest.instance_id.is_empty() {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        cfg.ingest.instance_id.clone()
    };
    // Between restarts: capped exponential backoff with full jitter, so instances failing
    // together (a broker outage) do not come back together.
    let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut restarts = 0u32;
    let mut fences = Fences::default();
    loop {
        let started = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            started = Pipeline::start(&cfg, &topics, &instance, &health) => started,
        };
        match started {
            Ok(mut pipeline) => match pipeline.run(&shutdown).await {
                Ok(()) => return Ok(()),
                Err(e @ PipelineError::Fenced(_)) if fences.another_instance(Instant::now()) => {
                    tracing::error!(error = %e, "Another ingest runs with this instance id; this one stops.");
                    health.set_unready(COMPONENT, e.to_string());
                    return Err(e);
                }
                Err(e) => {
                    tracing::error!(error = %e, "Ingest loop failed; restarting from the committed offsets.");
                    metrics::loop_restarted(e.restart_reason());
                    health.set_unready(COMPONENT, e.to_string());
                    // Its last transaction is decided before a new producer with the same
                    // transactional id starts (which would fence it).
                    if let Err(e) = pipeline.state.settle().await {
                        tracing::warn!(error = %e, "The last handoff transaction did not commit.");
                    }
                }
            },
            // A setting that cannot work with the topics' limits: retrying would not help.
            Err(PipelineError::Limits(LimitsError::Mismatch(e))) => {
                tracing::error!(error = %e, "Ingest cannot run with these settings.");
                return Err(PipelineError::Limits(LimitsError::Mismatch(e)));
            }
            Err(e) => {
                tracing::error!(error = %e, "Ingest loop could not start; retrying.");
                metrics::loop_restarted("start");
                health.set_unready(COMPONENT, e.to_string());
            }
        }
        let delay = backoff.random_delay(restarts);
        restarts = restarts.saturating_add(1);
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// How often this instance was fenced as a static member lately. Once is what a broker outage
/// longer than the session timeout does (librdkafka rejoins, and the group fences the member id
/// it had): the loop starts again and rejoins. [`FENCES_OF_A_TWIN`] times within
/// [`FENCE_WINDOW`] is another instance with the same id fencing this one back each time: it
/// stops.
#[derive(Debug, Default)]
struct Fences(std::collections::VecDeque<Instant>);

/// Fences within [`FENCE_WINDOW`] that mean another instance has this id.
const FENCES_OF_A_TWIN: usize = 2;

/// See [`Fences`].
const FENCE_WINDOW: Duration = Duration::from_secs(60);

impl Fences {
    /// Records a fence at `now`; whether it is another instance's doing.
    fn another_instance(&mut self, now: Instant) -> bool {
        self.0.retain(|at| now.duration_since(*at) < FENCE_WINDOW);
        self.0.push_back(now);
        self.0.len() >= FENCES_OF_A_TWIN
    }
}

/// The time now, in epoch milliseconds.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The loop: its consumer and everything it mutates.
struct Pipeline<'a> {
    /// Shared with the committing thread, which reads the group's metadata from it.
    consumer: Arc<Kafka>,
    state: State<'a>,
    /// Whether the consumer leaves the group when the loop stops: a dynamic member always, a
    /// static one only with `ingest.leave_group_on_shutdown`.
    leave: bool,
}

impl<'a> Pipeline<'a> {
    async fn start(
        cfg: &'a Config,
        topics: &'a [SourceTopic],
        instance: &str,
        health: &Health,
    ) -> Result<Self, PipelineError> {
        crate::handoff::ensure_topics(
            &cfg.kafka.client_config("ingest-admin"),
            &[&cfg.ingest.handoff_topic, &cfg.ingest.dead_letter_topic],
            cfg.ingest.handoff_partitions,
            cfg.ingest.topic_replication_factor,
        )
        .await
        .map_err(PipelineError::Handoff)?;
        let limits = crate::limits::check(cfg, topics).await?;
        let mut consumer_config = cfg.kafka.client_config("ingest");
        consumer_config.set("group.id", &cfg.ingest.group_id);
        for (key, value) in cfg.ingest.consumer_settings() {
            consumer_config.set(key, value);
        }
        if let Some(id) = cfg.ingest.group_instance_id() {
            consumer_config.set("group.instance.id", id);
        }
        crate::limits::apply_to_consumer(&limits, &mut consumer_config);
        // A revocation waits for the transaction committing (the loop reads on meanwhile).
        let gate = Arc::new(CommitGate::new(Duration::from_millis(cfg.ingest.transaction_timeout_ms)));
        let consumer: StreamConsumer<RebalanceContext> = consumer_config
            .create_with_context(RebalanceContext::new(Arc::clone(&gate)))
            .map_err(PipelineError::Consume)?;
        let names: Vec<&str> = topics.iter().map(|t| t.topic.as_str()).collect();
        consumer.subscribe(&names).map_err(PipelineError::Consume)?;
        let transactional_id = format!("dwsync-ingest-{instance}");
        let threads = parallel::threads(cfg.ingest.worker_threads);
        let flusher = Flusher::start(cfg, topics, transactional_id, limits, gate, threads).await?;
        health.set_ready(COMPONENT);
        let is_static = cfg.ingest.group_instance_id().is_some();
        tracing::info!(topics = ?names, group = %cfg.ingest.group_id, instance, is_static, "Ingest loop started.");
        let state = State::new(Sources::new(topics), limits, Buffers::new(cfg.window.clone()), threads, flusher);
        Ok(Self { consumer: Arc::new(consumer), state, leave: !is_static || cfg.ingest.leave_group_on_shutdown })
    }

    async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), PipelineError> {
        let Self { consumer, state, leave } = self;
        let consumer: &Arc<Kafka> = consumer;
        // One stream for the loop's life: `recv` makes a stream per message, registering and
        // unregistering a waker slot under a mutex each time.
        let mut stream = consumer.stream();
        let mut gauge = BuffersGauge::new();
        loop {
            // The next partition due to close; at the latest the next UTC grid point, where an
            // idle loop publishes its tallies.
            let now = now_ms();
            let next = state.buffers.next_due(now);
            let wait = Duration::from_millis(u64::try_from(next - now).unwrap_or(0));
            let step = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    // Open windows are abandoned: their offsets are not committed, so they are read
                    // again (so are those of a transaction that aborts now).
                    tracing::info!(open_windows = state.buffers.open_windows(), "Ingest loop stopping.");
                    let settled = state.settle().await;
                    if *leave {
                        // Before the close: a static member closed first would not leave.
                        dwsync_telemetry::kafka::leave_group(consumer, LEAVE_WITHIN).await;
                    }
                    return match settled {
                        Err(PipelineError::Aborted(..)) => Ok(()),
                        settled => settled,
                    };
                }
                outcome = state.flusher.committed(), if state.flusher.is_committing() => {
                    let buffers = &state.buffers;
                    state.flusher.finish(outcome, || buffers.measure())
                }
                () = tokio::time::sleep(wait) => state.flush_due(consumer).await,
                Some(received) = stream.next() => async {
                    // A rebalance the wait took in came before this record: a revoked partition's
                    // record can only be from its reassignment, a kept partition's rewound now
                    // comes again (so does any later one, from the rewound position).
                    let rewound = state.check_rebalance(consumer)?.rewound;
                    let first_stale = received.as_ref().is_ok_and(|m| state.sources.partition(m).is_some_and(|p| rewound.contains(&p)));
                    // gather stops at a rebalance: one taken in during it came after the batch,
                    // whose records of the revoked and the rewound partitions are then stale.
                    let batch = gather(&mut stream, received);
                    // The only fatal error of a consumer: fenced as a static member.
                    if let Some((_, reason)) = consumer.client().fatal_error() {
                        return Err(PipelineError::Fenced(reason));
                    }
                    let stale: BTreeSet<PartitionKey> = state.check_rebalance(consumer)?.stale();
                    state.process_batch(&batch, usize::from(first_stale), &stale, consumer).await
                }.await,
            };
            match step {
                // The rest of the batch at hand, if any, was dropped with it: read again too.
                Err(PipelineError::Aborted(error, refused)) => {
                    state.flusher.aborted(&error, refused);
                    state.read_again(consumer, &error)?;
                }
                Err(PipelineError::ProducerFailed(error)) => {
                    // Fenced by a newer producer with this transactional id: another ingest with
                    // this instance id. Taking over would fence it back, and so on; the restart
                    // loop counts fences instead (a twin stops on the second).
                    if let Some(reason) = state.flusher.fenced() {
                        return Err(PipelineError::Fenced(format!("the handoff producer: {reason}")));
                    }
                    tracing::warn!(%error, "The handoff producer failed; a new one takes over.");
                    metrics::loop_restarted("producer");
                    state.flusher.replace_producer().await?;
                    state.read_again(consumer, &error)?;
                }
                step => step?,
            }
            gauge.tick(&state.buffers);
        }
    }
}

/// The loop's consumer.
pub(crate) type Kafka = StreamConsumer<RebalanceContext>;

impl Drop for Pipeline<'_> {
    /// Leaves the consumer group explicitly before the consumer closes. librdkafka (2.12) closes
    /// a cooperative consumer that holds no partitions — one that just joined, whose partitions
    /// come in the rebalance's second round — without a `LeaveGroup`: the group then waits for
    /// its session timeout (45 s) and nobody reads the partitions the rebalance moved. An
    /// unsubscribe first leaves in that case too (and revokes as the close would otherwise).
    ///
    /// A static member (`group.instance.id`) does not leave unless `leave_group_on_shutdown`
    /// says so: librdkafka closes it without a `LeaveGroup` (KIP-345), and the group keeps its
    /// partitions for the session timeout, for the instance restarted with the same id (also
    /// the loop's own restart after an error) to take them back without a rebalance. A static
    /// member that leaves at shutdown has left already
    /// ([`leave_group`](dwsync_telemetry::kafka::leave_group): the unsubscribe alone, with the
    /// close right behind it, would not make it send the `LeaveGroup`).
    fn drop(&mut self) {
        if self.leave {
            self.consumer.unsubscribe();
        }
    }
}

#[cfg(test)]
mod fence_tests {
    use super::*;

    #[test]
    fn one_fence_rejoins_two_in_a_minute_are_a_twin() {
        let mut fences = Fences::default();
        let t0 = Instant::now();
        assert!(!fences.another_instance(t0), "an outage longer than the session timeout: rejoin");
        assert!(!fences.another_instance(t0 + Duration::from_secs(300)), "the first has expired");
        assert!(fences.another_instance(t0 + Duration::from_secs(302)), "two in a minute: another instance");
    }
}
