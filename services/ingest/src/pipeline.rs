//! The ingest loop: read a record, decode it, add it to its window; close windows on their
//! partition's time grid or when full; hand the closed windows' files off and commit their
//! source offsets in one transaction. One loop per instance, kafka-delta-ingest style; Kafka
//! holds all durable state. The loop reads on while a transaction commits ([`crate::in_flight`]),
//! and waits for it before the next one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::blocking::block_in_place;
use dwsync_retry::Backoff;
use dwsync_telemetry::Health;
use futures_util::StreamExt as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::batch::{Decoded, Decoder, gather};
use crate::config::{Config, SourceTopic};
use crate::dead_letter::{DeadLetter, DeadLetters, LetterForm};
use crate::encode::{EncodeError, EncodedFile, encode};
use crate::handoff::{Committed, Handoff, HandoffTopics};
use crate::in_flight::{Carrying, CommitError, CommitGate, CommittingTransaction, GroupMetadata};
use crate::limits::{Limits, LimitsError};
use crate::metrics::{self, Tally};
use crate::parallel;
use crate::rebalance::RebalanceContext;
use crate::window::{CloseReason, PartitionKey, WindowKey, Windows};
use buffers::BUFFERS_EVERY;

mod buffers;
mod rewind;

/// Health component name of the pipeline.
pub const COMPONENT: &str = "pipeline";
/// Dead letters held in memory before a flush is forced.
const DEAD_LETTER_BYTES: usize = 16 << 20;
/// Estimated bytes of the windows encoded together in a flush before their files are sent:
/// small enough that the broker takes a group's files while the next group encodes (16 MiB
/// left most flushes one group, then all of their deliveries were waited for at the end).
const ENCODE_GROUP_BYTES: usize = 4 << 20;
/// Most windows encoded together per worker thread: fewer would start the threads more often
/// for the tens of thousands of small windows of a 10,000-workspace flush.
const ENCODE_GROUP_WINDOWS_PER_THREAD: usize = 16;

/// How long a stopping loop waits for its consumer to leave the group.
const LEAVE_WITHIN: Duration = Duration::from_secs(5);

/// Why the loop stopped (it is then restarted from the committed offsets).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Kafka refused an operation (consume, produce, transaction).
    #[error("Kafka: {0}")]
    Kafka(#[from] KafkaError),
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
            Self::Kafka(_) | Self::Limits(_) => "kafka",
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

/// A handoff producer with `transactional_id` (fencing any older one with it), on a blocking
/// thread: initialising transactions waits for the broker.
async fn new_handoff(
    cfg: &Config,
    transactional_id: &str,
    limits: &Limits,
    gate: &Arc<CommitGate>,
) -> Result<Handoff, PipelineError> {
    let (config, id, ingest) =
        (cfg.kafka.client_config("ingest-handoff"), transactional_id.to_owned(), cfg.ingest.clone());
    let (limits, gate) = (*limits, Arc::clone(gate));
    let handoff = tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_millis(ingest.transaction_timeout_ms);
        let topics = HandoffTopics { handoff: &ingest.handoff_topic, dead_letter: &ingest.dead_letter_topic };
        Handoff::new(config, &id, topics, ingest.chunk_bytes, &limits, timeout, gate)
    })
    .await
    .map_err(|_| KafkaError::Canceled)??;
    Ok(handoff)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

struct Pipeline<'a> {
    /// Shared with the committing thread, which reads the group's metadata from it.
    consumer: Arc<Kafka>,
    state: State<'a>,
    /// Whether the consumer leaves the group when the loop stops: a dynamic member always, a
    /// static one only with `ingest.leave_group_on_shutdown`.
    leave: bool,
}

/// Everything the loop mutates (kept apart from the consumer, which messages borrow).
struct State<'a> {
    cfg: &'a Config,
    topics: &'a [SourceTopic],
    topic_index: HashMap<String, usize>,
    handoff: Handoff,
    windows: Windows,
    dead: DeadLetters,
    /// Record size limits, read from the topics at start.
    limits: Limits,
    /// How dead letters are written (after the broker refused one, less of them).
    letter_form: LetterForm,
    /// The handoff producer's transactional id (a new producer takes it over).
    transactional_id: String,
    /// Where a revocation waits for the transaction committing (shared with the consumer).
    gate: Arc<CommitGate>,
    /// The partitions read since their last commit: where they stand (one lookup per record).
    unflushed: BTreeMap<PartitionKey, Unflushed>,
    tally: Tally,
    /// Threads decoding and encoding, the loop's own included.
    threads: usize,
    /// The last transaction, while it commits.
    committing: Option<CommittingFlush>,
}

/// A flush whose transaction is committing.
struct CommittingFlush {
    transaction: CommittingTransaction,
    /// Why each of its windows closed.
    reasons: Vec<&'static str>,
    /// Table and Parquet bytes of each of its files.
    handed: Vec<(&'static str, usize)>,
    /// Its dead letters by table and error class.
    dead_lettered: BTreeMap<(&'static str, &'static str), u64>,
    /// When the flush began.
    started: Instant,
    /// How long the loop spent in it (encoding and sending).
    loop_time: Duration,
    /// How long it waited for the previous transaction to commit before it began.
    previous_wait: Duration,
}

/// Waits for the last transaction, if one is committing (never resolves otherwise).
async fn committed(pending: &mut Option<CommittingFlush>) -> Result<Committed, CommitError> {
    match pending {
        Some(p) => (&mut p.transaction).await,
        None => std::future::pending().await,
    }
}

/// A partition read since its last commit.
#[derive(Debug, Clone, Copy)]
struct Unflushed {
    /// First offset read since the last commit: where it is read again from if its buffered
    /// records are dropped.
    from: i64,
    /// Next offset to read (what a commit of the partition commits).
    next: i64,
    /// When it is due to close its windows and commit (its grid point after its first such
    /// record: [`Windows::next_close`]; later if it shares windows with partitions due later:
    /// [`Windows::due_now`]).
    due: i64,
    /// When its first record since its last commit was read (epoch ms).
    opened: i64,
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
        .await?;
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
        let consumer: StreamConsumer<RebalanceContext> =
            consumer_config.create_with_context(RebalanceContext::new(Arc::clone(&gate)))?;
        let names: Vec<&str> = topics.iter().map(|t| t.topic.as_str()).collect();
        consumer.subscribe(&names)?;
        let transactional_id = format!("dwsync-ingest-{instance}");
        let handoff = new_handoff(cfg, &transactional_id, &limits, &gate).await?;
        health.set_ready(COMPONENT);
        let is_static = cfg.ingest.group_instance_id().is_some();
        tracing::info!(topics = ?names, group = %cfg.ingest.group_id, instance, is_static, "Ingest loop started.");
        let state = State {
            cfg,
            topics,
            topic_index: topics.iter().enumerate().map(|(i, t)| (t.topic.clone(), i)).collect(),
            handoff,
            windows: Windows::new(cfg.window.clone()),
            dead: DeadLetters::default(),
            limits,
            transactional_id,
            gate,
            letter_form: LetterForm::Whole,
            unflushed: BTreeMap::new(),
            tally: Tally::default(),
            threads: parallel::threads(cfg.ingest.worker_threads),
            committing: None,
        };
        Ok(Self { consumer: Arc::new(consumer), state, leave: !is_static || cfg.ingest.leave_group_on_shutdown })
    }

    async fn run(&mut self, shutdown: &CancellationToken) -> Result<(), PipelineError> {
        let Self { consumer, state, leave } = self;
        let consumer: &Arc<Kafka> = consumer;
        // One stream for the loop's life: `recv` makes a stream per message, registering and
        // unregistering a waker slot under a mutex each time.
        let mut stream = consumer.stream();
        let mut next_lag = Instant::now();
        loop {
            // The next partition due to close; at the latest the next UTC grid point, where an
            // idle loop publishes its tallies.
            let now = now_ms();
            let next =
                state.unflushed.values().map(|u| u.due).min().unwrap_or(i64::MAX).min(state.windows.next_boundary(now));
            let wait = Duration::from_millis(u64::try_from(next - now).unwrap_or(0));
            let step = tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    // Open windows are abandoned: their offsets are not committed, so they are read
                    // again (so are those of a transaction that aborts now).
                    tracing::info!(open_windows = state.windows.len(), "Ingest loop stopping.");
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
                outcome = committed(&mut state.committing), if state.committing.is_some() => match state.committing.take() {
                    Some(pending) => outcome.map(|committed| state.handed_off(pending, committed)).map_err(Into::into),
                    None => Ok(()),
                },
                () = tokio::time::sleep(wait) => state.flush_due(consumer).await,
                Some(received) = stream.next() => async {
                    // A rebalance the wait took in came before this record: a revoked partition's
                    // record can only be from its reassignment, a kept partition's rewound now
                    // comes again (so does any later one, from the rewound position).
                    let (_, rewound) = state.check_rebalance(consumer)?;
                    let first_stale = received.as_ref().is_ok_and(|m| state.partition(m).is_some_and(|p| rewound.contains(&p)));
                    // gather stops at a rebalance: one taken in during it came after the batch,
                    // whose records of the revoked and the rewound partitions are then stale.
                    let batch = gather(&mut stream, received);
                    // The only fatal error of a consumer: fenced as a static member.
                    if let Some((_, reason)) = consumer.client().fatal_error() {
                        return Err(PipelineError::Fenced(reason));
                    }
                    let (revoked, rewound) = state.check_rebalance(consumer)?;
                    let stale: BTreeSet<PartitionKey> = revoked.union(&rewound).copied().collect();
                    state.process_batch(&batch, usize::from(first_stale), &stale, consumer).await
                }.await,
            };
            match step {
                // The rest of the batch at hand, if any, was dropped with it: read again too.
                Err(PipelineError::Aborted(error, refused)) => {
                    if refused == Some(Carrying::DeadLetter) && crate::dead_letter::refused_as_such(&error) {
                        state.letter_form = state.letter_form.after_refusal();
                        tracing::warn!(%error, form = ?state.letter_form, "The broker refused a dead letter; the next try writes them in this form.");
                    }
                    state.read_again(consumer, &error)?;
                }
                Err(PipelineError::ProducerFailed(error)) => {
                    // Fenced by a newer producer with this transactional id: another ingest with
                    // this instance id. Taking over would fence it back, and so on; the restart
                    // loop counts fences instead (a twin stops on the second).
                    if let Some(reason) = state.handoff.fenced() {
                        return Err(PipelineError::Fenced(format!("the handoff producer: {reason}")));
                    }
                    tracing::warn!(%error, "The handoff producer failed; a new one takes over.");
                    metrics::loop_restarted("producer");
                    state.handoff = new_handoff(state.cfg, &state.transactional_id, &state.limits, &state.gate).await?;
                    state.read_again(consumer, &error)?;
                }
                step => step?,
            }
            if Instant::now() >= next_lag {
                state.measure_buffers();
                next_lag = Instant::now() + BUFFERS_EVERY;
            }
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

impl State<'_> {
    /// Decodes a batch of records on the worker threads, then adds them to their windows in
    /// order (flushing when a window fills or the memory budget is exceeded). The first `skip`
    /// records and those of `stale` partitions are left to their next owner or to their second
    /// reading.
    async fn process_batch(
        &mut self,
        batch: &[BorrowedMessage<'_>],
        skip: usize,
        stale: &BTreeSet<PartitionKey>,
        consumer: &Arc<Kafka>,
    ) -> Result<(), PipelineError> {
        let decoder = Decoder {
            topic_index: &self.topic_index,
            topics: self.topics,
            max_record_bytes: self.limits.max_record_bytes,
        };
        let decoded = block_in_place(|| parallel::map_ordered(batch, self.threads, |m| decoder.decode(m)));
        let now = now_ms();
        for (msg, decoded) in batch.iter().zip(decoded).skip(skip) {
            let Some((topic, decoded)) = decoded else { continue };
            let partition = (topic, msg.partition());
            if stale.contains(&partition) {
                continue;
            }
            self.process(msg, partition, decoded, now, consumer).await?;
        }
        Ok(())
    }

    async fn process(
        &mut self,
        msg: &BorrowedMessage<'_>,
        partition: PartitionKey,
        decoded: Decoded<'_>,
        now: i64,
        consumer: &Arc<Kafka>,
    ) -> Result<(), PipelineError> {
        let table = self.topics[partition.0].table;
        let offset = msg.offset();
        let windows = &self.windows;
        let _ = self.unflushed.entry(partition).and_modify(|u| u.next = offset + 1).or_insert_with(|| Unflushed {
            from: offset,
            next: offset + 1,
            due: windows.next_close(partition.1, now),
            opened: now,
        });
        match decoded {
            Ok((key, row)) => {
                self.tally.record(table, metrics::Decoded::Row);
                if let Some(trigger) = self.windows.add(key, &row, partition, msg.offset(), now) {
                    let partitions = self.windows.partitions_to_flush(trigger.0);
                    self.flush(&partitions, Some(trigger), consumer).await?;
                }
                // The loop reads nothing while it flushes, so the buffers are back under the
                // budget before the next record (backpressure: librdkafka stops fetching when
                // its bounded queue is full).
                while let Some(trigger) = self.windows.over_budget() {
                    let partitions = self.windows.partitions_to_flush(trigger.0);
                    self.flush(&partitions, Some(trigger), consumer).await?;
                }
            }
            Err(rejection) => {
                self.tally.record(table, metrics::Decoded::DeadLetter);
                let (class, reason) = (rejection.class, rejection.reason.as_str());
                tracing::warn!(
                    topic = msg.topic(),
                    partition = msg.partition(),
                    offset = msg.offset(),
                    class,
                    reason,
                    schema_id = rejection.schema_id,
                    "Record dead-lettered."
                );
                let letter = DeadLetter::new(msg, table.name(), &rejection, self.limits.dead_letter_bytes);
                self.dead.push(partition, letter);
                if self.dead.bytes() >= DEAD_LETTER_BYTES {
                    self.flush_all(consumer).await?;
                }
            }
        }
        Ok(())
    }

    /// Closes the windows of the partitions whose grid point came (with their neighbours) and
    /// commits those partitions.
    async fn flush_due(&mut self, consumer: &Arc<Kafka>) -> Result<(), PipelineError> {
        // A revocation noticed while `recv` was interrupted must be applied before committing.
        let _ = self.check_rebalance(consumer)?;
        let now = now_ms();
        let due: BTreeSet<PartitionKey> =
            self.unflushed.iter().filter(|(_, u)| u.due <= now).map(|(p, _)| *p).collect();
        let unflushed = &self.unflushed;
        let (due, waiting) = self.windows.due_now(&due, |p| unflushed.get(&p).map(|u| (u.due, u.opened)), now);
        for (p, at) in waiting {
            if let Some(u) = self.unflushed.get_mut(&p) {
                u.due = at;
            }
        }
        let (partitions, closed) = self.windows.close_due(&due);
        self.commit(closed, &partitions, consumer).await
    }

    /// Closes every window and commits every partition read (the dead letters' memory is full).
    async fn flush_all(&mut self, consumer: &Arc<Kafka>) -> Result<(), PipelineError> {
        // A revocation noticed while `recv` was interrupted must be applied before committing.
        let _ = self.check_rebalance(consumer)?;
        let partitions: BTreeSet<PartitionKey> = self.unflushed.keys().copied().collect();
        let closed = self.windows.close_all();
        self.commit(closed, &partitions, consumer).await
    }

    async fn flush(
        &mut self,
        partitions: &BTreeSet<PartitionKey>,
        trigger: Option<(WindowKey, CloseReason)>,
        consumer: &Arc<Kafka>,
    ) -> Result<(), PipelineError> {
        let closed = self.windows.close_partitions(partitions, trigger);
        self.commit(closed, partitions, consumer).await
    }

    async fn commit(
        &mut self,
        closed: Vec<crate::window::ClosedWindow>,
        partitions: &BTreeSet<PartitionKey>,
        consumer: &Arc<Kafka>,
    ) -> Result<(), PipelineError> {
        self.tally.publish();
        if partitions.is_empty() && closed.is_empty() {
            return Ok(());
        }
        // One transaction at a time, each begun only once the previous one committed (if it did
        // not, the loop restarts from the group's committed offsets: nothing read since counts).
        let settling = Instant::now();
        self.settle().await?;
        let (started, previous_wait) = (Instant::now(), settling.elapsed());
        let now = now_ms();
        let reasons: Vec<&'static str> = closed.iter().map(|c| c.reason.as_str()).collect();
        let dead = self.dead.take(partitions);
        let mut offsets = TopicPartitionList::new();
        for p in partitions {
            if let Some(u) = self.unflushed.get(p) {
                offsets.add_partition_offset(&self.topics[p.0].topic, p.1, Offset::Offset(u.next))?;
            }
        }
        let group: GroupMetadata = {
            let consumer = Arc::clone(consumer);
            Arc::new(move || consumer.group_metadata())
        };
        let span = tracing::info_span!(
            "flush",
            windows = closed.len(),
            dead_letters = dead.len(),
            partitions = partitions.len()
        );
        let (handoff, threads) = (&self.handoff, self.threads);
        let (topics, options) = (self.topics, &self.cfg.parquet);
        let mut handed: Vec<(&'static str, usize)> = Vec::with_capacity(closed.len());
        let mut dead_lettered = BTreeMap::new();
        let letter_form = self.letter_form;
        let transaction = async {
            let mut tx = handoff.begin()?;
            // Encoded a group at a time and sent at once: a flush of many windows never holds
            // all their files (the producer's queue is bounded too).
            let mut windows = closed.into_iter().peekable();
            while windows.peek().is_some() {
                let mut batch = Vec::new();
                let mut bytes = 0;
                while let Some(c) = windows
                    .next_if(|_| bytes < ENCODE_GROUP_BYTES && batch.len() < threads * ENCODE_GROUP_WINDOWS_PER_THREAD)
                {
                    bytes += c.window.footprint();
                    batch.push(c);
                }
                let parent = tracing::Span::current();
                let files = block_in_place(|| {
                    parallel::map_owned(batch, threads, |c| {
                        let span = tracing::info_span!(
                            parent: &parent,
                            "window",
                            workspace_id = c.key.workspace_id,
                            table = c.key.table.name(),
                            kind = c.key.kind.as_str_name(),
                            rows = c.window.builder.len(),
                            reason = c.reason.as_str(),
                            opened_at_ms = c.window.opened_at_ms,
                        );
                        let _enter = span.enter();
                        let file = encode(c, topics, options, now)?;
                        tracing::debug!(bytes = file.bytes.len(), file_id = %file.meta.file_id, "Window encoded.");
                        Ok(file)
                    })
                });
                for file in files {
                    let file: EncodedFile = file.map_err(PipelineError::Encode)?;
                    tx.send_file(&file).await?;
                    handed.push((file.meta.table.name(), file.bytes.len()));
                }
            }
            for letter in &dead {
                let sent = match letter_form {
                    LetterForm::Whole => tx.send_dead_letter(letter).await,
                    LetterForm::Reference => tx.send_dead_letter(&letter.reference()).await,
                    LetterForm::NotWritten => Err(KafkaError::Canceled),
                };
                match sent {
                    Ok(()) => *dead_lettered.entry((letter.table, letter.class)).or_default() += 1,
                    // This record only: its offset is committed with the others, so it is
                    // logged with its place in the source topic, where it still is.
                    Err(error) => {
                        tracing::error!(%error, source = %letter.source, table = letter.table, class = letter.class, bytes = letter.size(), form = ?letter_form, "The dead letter was not written; the record is skipped (it stays at this place in its source topic).");
                        metrics::dead_letter_failed(letter.table, letter.class);
                    }
                }
            }
            Ok::<_, PipelineError>(tx.commit_in_background(offsets, group))
        }
        .instrument(span)
        .await?;
        // Read on from here: a failed commit restarts the loop from the committed offsets.
        for p in partitions {
            let _ = self.unflushed.remove(p);
        }
        let loop_time = started.elapsed();
        self.committing =
            Some(CommittingFlush { transaction, reasons, handed, dead_lettered, started, loop_time, previous_wait });
        Ok(())
    }

    /// Waits for the last transaction to commit, if one is committing.
    async fn settle(&mut self) -> Result<(), PipelineError> {
        if let Some(mut pending) = self.committing.take() {
            let committed = (&mut pending.transaction).await?;
            self.handed_off(pending, committed);
        }
        Ok(())
    }

    /// Counts and logs a committed flush.
    fn handed_off(&mut self, pending: CommittingFlush, committed: Committed) {
        if committed.dead_letters > 0 {
            self.letter_form = LetterForm::Whole;
        }
        let CommittingFlush { reasons, handed, dead_lettered, started, loop_time, previous_wait, .. } = pending;
        metrics::dead_lettered(&dead_lettered);
        for reason in reasons {
            metrics::window_closed(reason);
        }
        for (table, bytes) in handed {
            metrics::file_handed_off(table, bytes);
        }
        metrics::flushed(started.elapsed().as_secs_f64());
        metrics::buffers(self.windows.footprint(), self.windows.len());
        tracing::info!(
            files = committed.files,
            bytes = committed.bytes,
            chunks = committed.chunks,
            dead_letters = committed.dead_letters,
            ms = started.elapsed().as_millis() as u64,
            loop_ms = loop_time.as_millis() as u64,
            previous_wait_ms = previous_wait.as_millis() as u64,
            commit_wait_ms = committed.commit_wait.as_millis() as u64,
            delivery_wait_ms = committed.delivery_wait.as_millis() as u64,
            offsets_wait_ms = committed.offsets_wait.as_millis() as u64,
            "Handed off."
        );
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
