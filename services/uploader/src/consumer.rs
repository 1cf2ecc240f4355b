//! The handoff consumer loop: read a chunk, reassemble, route each complete file by its
//! workspace, then write it, park it in the [`lot`](crate::lot) or skip it, and only then commit
//! that partition's safe offset.
//!
//! Files of different handoff partitions are written concurrently (up to `upload.concurrency`),
//! each write a task; within a partition one file at a time, in offset order, so a partition
//! never gets ahead of its writes: what is read of a partition while its file is written waits
//! in its lane ([`inflight`](crate::inflight)) and is dealt with when the write lands. A file is
//! routed when its turn comes, after the partition's previous file, exactly as if it were the only
//! one. While more than `upload.queued_bytes` wait, no records are read, and librdkafka's bounded
//! queue stops fetching. A revoked partition's waiting records and its write's result are
//! dropped, uncommitted (writes are idempotent, so reading them again is safe).
//!
//! A file is parked when its table is turned off, when older files of its table wait in the lot,
//! or when its destination fails (after a few attempts; at once while the destination is marked
//! failing). Twice a second the loop tries the oldest parked file of each waiting table whose
//! table is on and whose destination's backoff has passed, so a broken workspace costs the others
//! at most one failed attempt per backoff step.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dwsync_config::KafkaConfig;
use dwsync_handoff::{CompleteFile, Cut, Generation, HandoffError, HandoffRecord, cut_value, data_key};
use dwsync_sync_config::{KafkaStore, SyncStatus, is_transient};
use dwsync_telemetry::Health;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers as _, Message as _};
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::{HandoffConfig, LotConfig, UploadConfig};
use crate::delivery::{Delivery, Outcome};
use crate::destinations::{CutPassed, DestinationClient, Destinations, Route};
use crate::inflight::{FlightId, Lanes};
use crate::lag::HandoffConsumer;
use crate::lot::Lot;
use crate::metrics::Metrics;
use crate::offsets::PartitionState;
use crate::rebalance::{HandoffContext, Rebalanced};
use crate::retry::{Backoff, Retrier};
use crate::status::{self, StatusBoard};

/// Pause after a consumer error before reading again (not after a transient one: librdkafka
/// queues many of those during a broker outage, and pausing after each would leave the loop
/// reading stale errors long after the broker is back).
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The health component that is unready while the lot cannot be read or written.
pub const LOT_COMPONENT: &str = "lot";

/// How often parked files are tried.
const LOT_TICK: Duration = Duration::from_millis(500);

/// Most parked files written per tick, so new files are not held up long.
const LOT_FILES_PER_TICK: usize = 16;

/// How often every partition's safe offset is committed again, whether it moved or not: the
/// outcome of an asynchronous commit is not reported ([`Pipeline::commit_again`]).
const RECOMMIT_EVERY: Duration = Duration::from_secs(10);

/// Kafka steps (parking, loading the lot) are retried with this backoff until shutdown.
const KAFKA_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// Why the consumer could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The Kafka consumer could not be created.
    #[error("creating the handoff consumer: {0}")]
    Create(KafkaError),
    /// The handoff topic could not be subscribed to.
    #[error("subscribing to the handoff topic {topic}: {error}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// The group fenced this static member: another uploader joined with the same
    /// `handoff.instance_id`. It stops rather than fence that one back.
    #[error("fenced by another uploader with the same instance id: {0}")]
    Fenced(KafkaError),
}

/// Creates the handoff consumer (`read_committed`, manual commits, from the earliest offset
/// when the group has none, the cooperative-sticky assignor, a static member with
/// `handoff.instance_id`) and subscribes it to the handoff topic.
pub fn subscribe(
    kafka: &KafkaConfig,
    handoff: &HandoffConfig,
    metrics: Arc<Metrics>,
) -> Result<Arc<HandoffConsumer>, ConsumerError> {
    let mut config = kafka.client_config("uploader");
    config
        .set("group.id", &handoff.group_id)
        .set("session.timeout.ms", handoff.session_timeout_ms.to_string())
        .set("isolation.level", "read_committed")
        .set("queued.max.messages.kbytes", handoff.fetch_queue_kbytes.max(1).to_string())
        .set("fetch.queue.backoff.ms", "10")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A rebalance moves only the partitions that change owner; the others keep their files.
        .set("partition.assignment.strategy", "cooperative-sticky");
    if let Some(id) = handoff.group_instance_id() {
        config.set("group.instance.id", id);
    }
    let context = HandoffContext::new(&handoff.topic, metrics, handoff.leaves_on_shutdown());
    let consumer = HandoffConsumer::from_config_and_context(&config, context).map_err(ConsumerError::Create)?;
    consumer
        .subscribe(&[&handoff.topic])
        .map_err(|error| ConsumerError::Subscribe { topic: handoff.topic.clone(), error })?;
    Ok(Arc::new(consumer))
}

/// One handoff record, copied out of the consumer's buffer.
struct Record {
    partition: i32,
    offset: i64,
    /// The payload's size, counted while the record waits in its partition's lane.
    bytes: u64,
    content: HandoffRecord,
}

/// What waits in a partition's lane: a record read behind the partition's file in flight, or a
/// complete file (with the offset of the record that completed it) waiting for a free slot.
enum Waiting {
    Record(Record),
    File(CompleteFile, i64),
}

/// A write that ended, with what the loop needs to finish the file.
struct Landed {
    partition: i32,
    flight: FlightId,
    /// The offset of the record that completed the file.
    offset: i64,
    seq: u64,
    file: CompleteFile,
    dest: Arc<DestinationClient>,
    outcome: Outcome,
}

/// What the loop woke up for.
enum Event {
    Landed(Result<Landed, JoinError>),
    Received(Result<Record, KafkaError>),
    LotTick,
    Report,
    Commit,
    Recommit,
}

/// Whether the loop goes on: [`ControlFlow::Break`] once shutdown began (or the loop must stop).
type Going = ControlFlow<()>;

/// Goes on.
const GO_ON: Going = ControlFlow::Continue(());

/// Stops.
const STOP: Going = ControlFlow::Break(());

/// What became of a file whose turn came.
enum Turn {
    /// Skipped or parked: the next record of its partition may be dealt with.
    Done,
    /// Being written by a task; the partition waits for it to land.
    Flying,
    /// Shutdown began first.
    Shutdown,
}

impl From<Going> for Turn {
    /// Parked ([`GO_ON`]) is [`Turn::Done`], shutdown first [`Turn::Shutdown`].
    fn from(parked: Going) -> Self {
        if parked.is_continue() { Self::Done } else { Self::Shutdown }
    }
}

/// Runs a Kafka step of the lot (`$step`, a future borrowing `$self.lot`) until it succeeds,
/// backing off between attempts: `Some(value)`, or `None` once shutdown began.
macro_rules! until_done {
    ($self:ident, $what:literal, $step:expr) => {{
        let mut retry = $self.retrier($what);
        loop {
            let outcome = tokio::select! {
                biased;
                () = $self.shutdown.cancelled() => break None,
                outcome = $step => outcome,
            };
            match outcome {
                Ok(value) => {
                    if retry.attempts() > 0 {
                        tracing::info!(attempts = retry.attempts(), "{} works again.", $what);
                        $self.reporting.health.set_ready($crate::consumer::LOT_COMPONENT);
                    }
                    break Some(value);
                }
                Err(error) => {
                    $self
                        .reporting
                        .health
                        .set_unready($crate::consumer::LOT_COMPONENT, format!("{} fails: {error}", $what));
                    if !retry.failed(&error).await {
                        break None;
                    }
                }
            }
        }
    }};
}

mod commits;
mod parked;

/// A workspace whose destination fails: when to try it again.
#[derive(Debug, Clone, Copy)]
struct Failing {
    failures: u32,
    next_try: Instant,
}

/// What the loop reports on: the status topic and how often, and the service's health.
pub struct Reporting {
    /// The status topic, if statuses are reported.
    pub store: Option<KafkaStore<SyncStatus>>,
    /// How often.
    pub interval: Duration,
    /// The service's health: the [`LOT_COMPONENT`] is unready while the lot fails.
    pub health: Health,
}

/// The handoff topic the loop reads.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Its name.
    pub topic: &'a str,
    /// Its generation: a file's `seq` is its first offset's position in it.
    pub generation: Generation,
    /// How often offsets are committed at most (`handoff.commit_interval_ms`).
    pub commit_interval: Duration,
}

/// The consumer loop and its per-partition state.
pub struct Pipeline {
    consumer: Arc<HandoffConsumer>,
    topic: String,
    generation: Generation,
    partitions: HashMap<i32, PartitionState>,
    /// Partitions whose safe offset moved since the last commit (`handoff.commit_interval_ms`).
    uncommitted: BTreeSet<i32>,
    commit_interval: Duration,
    destinations: Destinations,
    delivery: Arc<Delivery>,
    lanes: Lanes<Waiting>,
    flights: JoinSet<Landed>,
    lot: Lot,
    lot_backoff: Backoff,
    failing: HashMap<i64, Failing>,
    board: StatusBoard,
    reporting: Reporting,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("topic", &self.topic).field("partitions", &self.partitions).finish()
    }
}

impl Pipeline {
    /// A loop over `consumer`'s records of `source`, committing at most every `commit_interval`,
    /// routing with `destinations`, writing with `delivery` as concurrently as `upload` allows,
    /// parking in `lot`, until `shutdown`.
    #[expect(clippy::too_many_arguments, reason = "the loop's parts, each built by `start`")]
    pub fn new(
        consumer: Arc<HandoffConsumer>,
        Source { topic, generation, commit_interval }: Source<'_>,
        destinations: Destinations,
        (delivery, upload): (Delivery, &UploadConfig),
        (lot, lot_cfg): (Lot, &LotConfig),
        reporting: Reporting,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            consumer,
            topic: topic.to_owned(),
            generation,
            partitions: HashMap::new(),
            uncommitted: BTreeSet::new(),
            commit_interval,
            destinations,
            delivery: Arc::new(delivery),
            lanes: Lanes::new(
                usize::try_from(upload.concurrency).unwrap_or(usize::MAX),
                upload.flight_bytes,
                upload.queued_bytes,
            ),
            flights: JoinSet::new(),
            lot,
            lot_backoff: Backoff::new(
                Duration::from_millis(lot_cfg.retry_initial_ms),
                Duration::from_millis(lot_cfg.retry_max_ms),
            ),
            failing: HashMap::new(),
            board: StatusBoard::new(),
            reporting,
            metrics,
            shutdown,
        }
    }

    /// Runs until shutdown, then waits for the writes in flight, commits every partition's safe
    /// offset and leaves the group.
    pub async fn run(mut self) -> Result<(), ConsumerError> {
        let consumer = Arc::clone(&self.consumer);
        let mut lot_tick = tokio::time::interval(LOT_TICK);
        lot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report_tick = tokio::time::interval(self.reporting.interval);
        report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut commit_tick = tokio::time::interval(self.commit_interval.max(Duration::from_millis(1)));
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recommit_tick = tokio::time::interval(RECOMMIT_EVERY);
        recommit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut transient = 0u64;
        let mut fenced = None;
        loop {
            // `recv` only takes a message off librdkafka's queue in the poll that returns it, so
            // dropping it for another branch loses nothing. It is not polled while the lanes
            // hold too much: librdkafka's queue fills up and stops fetching.
            let event = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                // Before the records and writes, which may always be ready under load.
                _ = commit_tick.tick(), if !self.uncommitted.is_empty() => Event::Commit,
                Some(joined) = self.flights.join_next() => Event::Landed(joined),
                received = consumer.recv(), if !self.lanes.is_full() => Event::Received(received.map(|m| {
                    let payload = m.payload();
                    Record {
                        partition: m.partition(),
                        offset: m.offset(),
                        bytes: payload.map_or(0, |p| p.len() as u64),
                        content: HandoffRecord::classify(cut_header(&m), payload),
                    }
                })),
                _ = lot_tick.tick() => Event::LotTick,
                _ = report_tick.tick() => Event::Report,
                _ = recommit_tick.tick() => Event::Recommit,
            };
            if self.apply_rebalances().await.is_break() {
                break;
            }
            let going = match event {
                Event::Landed(joined) => self.land(joined).await,
                Event::Received(Ok(record)) => {
                    if transient > 0 {
                        tracing::info!(transient_errors = transient, "Reading the handoff topic works again.");
                        transient = 0;
                    }
                    self.handle(record).await
                }
                Event::Received(Err(error)) if is_transient(&error) => {
                    // Informational: librdkafka reconnects and fetches on by itself.
                    transient += 1;
                    if transient == 1 {
                        tracing::warn!(%error, "Reading the handoff topic: the broker does not answer; librdkafka retries.");
                    } else {
                        tracing::debug!(%error, count = transient, "Reading the handoff topic: transient error.");
                    }
                    GO_ON
                }
                // The only fatal error of a consumer: fenced as a static member.
                Event::Received(Err(error @ KafkaError::MessageConsumptionFatal(_))) => {
                    let reason = consumer.client().fatal_error().map(|(_, reason)| reason).unwrap_or_default();
                    tracing::error!(%error, reason, "Another uploader runs with this instance id; this one stops.");
                    fenced = Some(error);
                    STOP
                }
                Event::Received(Err(error)) => {
                    tracing::warn!(%error, "Reading the handoff topic failed; retrying.");
                    tokio::select! {
                        () = self.shutdown.cancelled() => STOP,
                        () = tokio::time::sleep(ERROR_PAUSE) => GO_ON,
                    }
                }
                // Parked files are written one at a time, taking one of the slots.
                Event::LotTick if self.lanes.has_slot() => self.drain_lot().await,
                Event::LotTick => GO_ON,
                Event::Report => {
                    self.report();
                    GO_ON
                }
                Event::Commit => {
                    self.commit_moved();
                    GO_ON
                }
                Event::Recommit => {
                    self.commit_again();
                    GO_ON
                }
            };
            self.metrics.in_flight(self.lanes.flying(), self.lanes.queued_bytes());
            if going.is_break() {
                break;
            }
        }
        self.land_all().await;
        // The consumer closes in `stop`, on a blocking thread: no other strong reference may live.
        drop(consumer);
        self.stop().await;
        fenced.map_or(Ok(()), |error| Err(ConsumerError::Fenced(error)))
    }

    /// Applies the rebalances the context recorded: a revoked or newly assigned partition
    /// starts afresh (its incomplete files are read again from the committed offset, what waits
    /// in its lane is dropped, and so is the result of its write in flight), and an assigned
    /// partition's lot is read before any of its files is handled. Breaks on shutdown.
    async fn apply_rebalances(&mut self) -> Going {
        let mut assigned: Vec<i32> = Vec::new();
        let rebalances = self.consumer.context().take_rebalances();
        // A rebalance ended (an assignment, maybe empty, closes each): commits sent during it
        // failed unseen, so the partitions kept commit again.
        if rebalances.iter().any(|r| matches!(r, Rebalanced::Assigned(_))) {
            self.commit_again();
        }
        for rebalance in rebalances {
            let (Rebalanced::Revoked(partitions) | Rebalanced::Assigned(partitions)) = &rebalance;
            for partition in partitions {
                // A revoked partition's safe offset was committed in the rebalance callback.
                let _ = self.uncommitted.remove(partition);
                self.partitions.remove(partition);
                self.lot.forget(*partition);
                self.lanes.revoke(*partition);
                assigned.retain(|p| p != partition);
            }
            if let Rebalanced::Assigned(partitions) = rebalance {
                assigned.extend(partitions);
            }
        }
        for partition in assigned {
            self.load_lot(partition).await?;
        }
        GO_ON
    }

    /// Deals with one record read: at once, or after the files of its partition before it.
    /// Breaks on shutdown.
    async fn handle(&mut self, record: Record) -> Going {
        let (partition, bytes) = (record.partition, record.bytes);
        self.lanes.queue(partition, Waiting::Record(record), bytes);
        self.advance(partition).await
    }

    /// Deals with what waits in `partition`'s lane, in order, until one of its files is being
    /// written or waits for a slot, or nothing is left. Breaks on shutdown.
    async fn advance(&mut self, partition: i32) -> Going {
        while let Some(pending) = self.lanes.next(partition) {
            let (file, offset) = match pending {
                Waiting::Record(Record { content: HandoffRecord::Cut(cut), offset, .. }) => {
                    self.pass_cut(partition, offset, cut).await?;
                    continue;
                }
                Waiting::Record(record) => match self.read(record) {
                    Some(complete) => complete,
                    None => continue,
                },
                Waiting::File(file, offset) => (file, offset),
            };
            if !self.lanes.has_slot() {
                let bytes = file.bytes.len() as u64;
                self.lanes.hold(partition, Waiting::File(file, offset), bytes);
                return GO_ON;
            }
            match self.dispose(partition, file, offset).await {
                Turn::Done => self.finish(partition, offset),
                Turn::Flying => return GO_ON,
                Turn::Shutdown => return STOP,
            }
        }
        GO_ON
    }

    /// Gives the slots freed by writes that landed to the partitions waiting for one, oldest
    /// first. Breaks on shutdown.
    async fn fill_slots(&mut self) -> Going {
        while let Some(partition) = self.lanes.next_holding() {
            self.advance(partition).await?;
        }
        GO_ON
    }

    /// Reassembles one record: the file it completes, if any (the record counts as dealt with
    /// once the file is); any other record is dealt with now.
    fn read(&mut self, record: Record) -> Option<(CompleteFile, i64)> {
        let Record { partition, offset, content, .. } = record;
        let state = self.partitions.entry(partition).or_default();
        let pushed = match content {
            HandoffRecord::Chunk(chunk) => state.push(offset, chunk),
            HandoffRecord::Cut(_) | HandoffRecord::Bad(_) => {
                let reason = match content {
                    HandoffRecord::Bad(reason) => reason,
                    _ => "cut_out_of_place",
                };
                self.metrics.bad_record(reason);
                tracing::warn!(partition, offset, reason, "Skipping a handoff record that is not a file chunk.");
                state.done(offset);
                self.commit(partition);
                return None;
            }
        };
        match pushed {
            Ok(None) => {
                state.done(offset);
                None
            }
            Ok(Some(file)) => Some((file, offset)),
            Err(error) => {
                self.metrics.bad_record(handoff_reason(&error));
                tracing::warn!(partition, offset, %error, "Skipping a handoff record that cannot be reassembled.");
                state.done(offset);
                self.commit(partition);
                None
            }
        }
    }

    /// Passes a cut record: the files after it are routed by the configuration that placed it,
    /// so it waits until that configuration is followed (or was abandoned by control). Then the
    /// record is dealt with. Breaks on shutdown.
    async fn pass_cut(&mut self, partition: i32, offset: i64, cut: Cut) -> Going {
        let passed = self.destinations.pass_cut(cut.workspace_id, cut.epoch, &self.shutdown).await;
        match passed {
            CutPassed::Shutdown => return STOP,
            CutPassed::Followed => {
                tracing::info!(
                    partition,
                    offset,
                    workspace_id = cut.workspace_id,
                    epoch = cut.epoch,
                    "Passed a cut record."
                );
            }
            CutPassed::Abandoned => tracing::warn!(
                partition,
                offset,
                workspace_id = cut.workspace_id,
                epoch = cut.epoch,
                "A cut record whose configuration never came (control did not finish that change); passed."
            ),
        }
        self.partitions.entry(partition).or_default().done(offset);
        self.commit(partition);
        GO_ON
    }

    /// The file completed by `partition`'s record at `offset` was written, parked or skipped:
    /// the record is dealt with and the partition's safe offset committed.
    fn finish(&mut self, partition: i32, offset: i64) {
        self.partitions.entry(partition).or_default().done(offset);
        self.commit(partition);
    }

    /// Skips or parks a complete file of handoff `partition` (completed by the record at
    /// `offset`), or starts writing it (a slot must be free).
    async fn dispose(&mut self, partition: i32, file: CompleteFile, offset: i64) -> Turn {
        let meta = &file.meta;
        let (workspace_id, table) = (meta.workspace_id, meta.table);
        let Some(seq) = self.generation.position(file.first_offset).ok().and_then(|p| u64::try_from(p).ok()) else {
            // Kafka offsets are never negative nor near 10^12; such an offset means a broken record.
            self.metrics.skipped("invalid_offset");
            tracing::error!(
                workspace_id,
                partition,
                offset = file.first_offset,
                "A handoff offset without a position; skipped."
            );
            return Turn::Done;
        };
        let dest = match self.destinations.route(workspace_id, table, seq) {
            Route::Deliver(dest) => dest,
            Route::Skip(reason) => {
                self.metrics.skipped(reason);
                tracing::info!(workspace_id, table = table.name(), seq, reason, "Skipping a file: not exported.");
                return Turn::Done;
            }
            Route::Park(reason) => return self.park(partition, &file, seq, reason).await.into(),
            Route::Unavailable(message) => {
                self.board.failed(workspace_id, message);
                return self.park(partition, &file, seq, "unavailable").await.into();
            }
        };
        if self.lot.is_waiting(partition, (workspace_id, table)) {
            return self.park(partition, &file, seq, "behind_parked").await.into();
        }
        if self.failing.get(&workspace_id).is_some_and(|f| f.next_try > Instant::now()) {
            return self.park(partition, &file, seq, "destination_failing").await.into();
        }
        let delivery = Arc::clone(&self.delivery);
        let flight = self.lanes.start(partition, file.bytes.len() as u64);
        let _ = self.flights.spawn(async move {
            let outcome = delivery.deliver(&dest, &file, seq).await;
            Landed { partition, flight, offset, seq, file, dest, outcome }
        });
        Turn::Flying
    }

    /// Finishes a write that landed as `dispose` used to after writing inline: the destination
    /// recovered, or failed and the file is parked; then the record is dealt with, the offset
    /// committed, and the freed slot and the partition's lane move on. The result of a revoked
    /// partition's write is dropped. Breaks on shutdown.
    async fn land(&mut self, joined: Result<Landed, JoinError>) -> Going {
        let landed = match joined {
            Ok(landed) => landed,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => {
                // Tasks are aborted only when the loop is dropped: this is never expected.
                tracing::error!(%error, "A delivery task was cancelled; stopping.");
                return STOP;
            }
        };
        let Landed { partition, flight, offset, seq, file, dest, outcome } = landed;
        if !self.lanes.land(partition, flight) {
            tracing::debug!(partition, seq, "A write of a revoked partition landed; its result is dropped.");
            return self.fill_slots().await;
        }
        let workspace_id = file.meta.workspace_id;
        match outcome {
            Outcome::Written(_) => self.written(&dest, &file, seq),
            Outcome::Failed(error) => {
                self.fail(workspace_id, error.summary());
                self.park(partition, &file, seq, "destination_failing").await?;
            }
            Outcome::Refused => self.park(partition, &file, seq, "refused").await?,
            Outcome::Shutdown => return STOP,
        }
        self.finish(partition, offset);
        // Partitions that waited for a slot go first, so a busy partition cannot keep it.
        self.fill_slots().await?;
        self.advance(partition).await
    }

    /// After the loop stopped: waits for the writes in flight (they end at their next step, as
    /// shutdown began) and commits behind those that were written.
    async fn land_all(&mut self) {
        // Revoked partitions' results must be dropped; with shutdown begun, no lot is read.
        let _ = self.apply_rebalances().await;
        while let Some(joined) = self.flights.join_next().await {
            let Ok(Landed { partition, flight, offset, seq, file, dest, outcome }) = joined else { continue };
            if self.lanes.land(partition, flight) && matches!(outcome, Outcome::Written(_)) {
                self.written(&dest, &file, seq);
                self.finish(partition, offset);
            }
        }
    }

    /// Records that `file` (sequence number `seq`) is in `dest`'s bucket.
    fn written(&mut self, dest: &DestinationClient, file: &CompleteFile, seq: u64) {
        let (meta, workspace_id) = (&file.meta, file.meta.workspace_id);
        self.recovered(workspace_id);
        self.board.written(workspace_id, data_key(&dest.prefix, meta.table, meta.kind, workspace_id, seq));
    }

    /// A retrier of a Kafka step, until shutdown.
    fn retrier(&self, what: &'static str) -> Retrier {
        Retrier::new(what, Backoff::new(KAFKA_BACKOFF.0, KAFKA_BACKOFF.1), &self.shutdown)
    }

    /// Reports the statuses that changed (with the lot's waiting files) on the status topic.
    fn report(&mut self) {
        let destinations = &mut self.destinations;
        let summary = self.lot.summary(|(ws, table)| matches!(destinations.route(ws, table, u64::MAX), Route::Park(_)));
        self.board.waiting(&summary);
        let changed = self.board.take_changed();
        if let Some(store) = &self.reporting.store {
            status::report(store, changed);
        }
    }
}

/// The value of a record's cut header, if it has one.
fn cut_header<'a>(message: &'a rdkafka::message::BorrowedMessage<'_>) -> Option<&'a [u8]> {
    cut_value(message.headers()?.iter().map(|h| (h.key, h.value)))
}

/// The `reason` label of a record that failed reassembly.
fn handoff_reason(error: &HandoffError) -> &'static str {
    match error {
        HandoffError::UnknownTable { .. } => "unknown_table",
        HandoffError::SchemaVersion { .. } => "schema_version",
        HandoffError::OutOfOrder { .. } => "out_of_order",
        HandoffError::Checksum { .. } => "checksum",
    }
}
