//! The handoff consumer loop: read a chunk, reassemble, route each complete file by its
//! workspace, then write it, park it in the [`lot`](crate::lot) or skip it, and only then commit
//! that partition's safe offset. One file at a time, so a partition never gets ahead of its
//! writes.
//!
//! A file is parked when its table is turned off, when older files of its table wait in the lot,
//! or when its destination fails (after a few attempts; at once while the destination is marked
//! failing). Twice a second the loop tries the oldest parked file of each waiting table whose
//! table is on and whose destination's backoff has passed, so a broken workspace costs the others
//! at most one failed attempt per backoff step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dwsync_config::KafkaConfig;
use dwsync_handoff::{CompleteFile, FileChunk, HandoffError, data_key};
use dwsync_proto::Message as _;
use dwsync_sync_config::{KafkaStore, SyncStatus};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::{HandoffConfig, LotConfig};
use crate::delivery::{Delivery, Outcome};
use crate::destinations::{Destinations, Route};
use crate::lag::HandoffConsumer;
use crate::lot::{Entry, Lot, LotError, QueueKey};
use crate::metrics::Metrics;
use crate::offsets::PartitionState;
use crate::rebalance::{HandoffContext, Rebalanced};
use crate::retry::{Backoff, Retrier};
use crate::status::{self, StatusBoard};

/// Pause after a consumer error before reading again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// How often parked files are tried.
const LOT_TICK: Duration = Duration::from_millis(500);

/// Most parked files written per tick, so new files are not held up long.
const LOT_FILES_PER_TICK: usize = 16;

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
}

/// Creates the handoff consumer (`read_committed`, manual commits, from the earliest offset
/// when the group has none) and subscribes it to the handoff topic.
pub fn subscribe(
    kafka: &KafkaConfig,
    handoff: &HandoffConfig,
    metrics: Arc<Metrics>,
) -> Result<Arc<HandoffConsumer>, ConsumerError> {
    let mut config = kafka.client_config("uploader");
    config
        .set("group.id", &handoff.group_id)
        .set("isolation.level", "read_committed")
        .set("queued.max.messages.kbytes", handoff.fetch_queue_kbytes.max(1).to_string())
        .set("fetch.queue.backoff.ms", "10")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    let context = HandoffContext::new(&handoff.topic, metrics);
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
    chunk: Result<FileChunk, &'static str>,
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
                Ok(value) => break Some(value),
                Err(error) => {
                    if !retry.failed(&error).await {
                        break None;
                    }
                }
            }
        }
    }};
}

/// A workspace whose destination fails: when to try it again.
#[derive(Debug, Clone, Copy)]
struct Failing {
    failures: u32,
    next_try: Instant,
}

/// What the loop reports on: the status topic and how often.
pub struct Reporting {
    /// The status topic, if statuses are reported.
    pub store: Option<KafkaStore<SyncStatus>>,
    /// How often.
    pub interval: Duration,
}

/// The consumer loop and its per-partition state.
pub struct Pipeline {
    consumer: Arc<HandoffConsumer>,
    topic: String,
    partitions: HashMap<i32, PartitionState>,
    destinations: Destinations,
    delivery: Delivery,
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
    /// A loop over `consumer`'s records of `topic`, routing with `destinations`, writing with
    /// `delivery`, parking in `lot`, until `shutdown`.
    #[expect(clippy::too_many_arguments, reason = "the loop's parts, each built by `start`")]
    pub fn new(
        consumer: Arc<HandoffConsumer>,
        topic: &str,
        destinations: Destinations,
        delivery: Delivery,
        (lot, lot_cfg): (Lot, &LotConfig),
        reporting: Reporting,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            consumer,
            topic: topic.to_owned(),
            partitions: HashMap::new(),
            destinations,
            delivery,
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

    /// Runs until shutdown, then commits every partition's safe offset and leaves the group.
    pub async fn run(mut self) -> Result<(), ConsumerError> {
        let consumer = Arc::clone(&self.consumer);
        let mut lot_tick = tokio::time::interval(LOT_TICK);
        lot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report_tick = tokio::time::interval(self.reporting.interval);
        report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // `recv` only takes a message off librdkafka's queue in the poll that returns it, so
            // dropping it for another branch loses nothing.
            let received = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                received = consumer.recv() => received.map(|m| Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    chunk: decode(m.payload()),
                }),
                _ = lot_tick.tick() => {
                    if !self.apply_rebalances().await || !self.drain_lot().await {
                        break;
                    }
                    continue;
                }
                _ = report_tick.tick() => {
                    self.report();
                    continue;
                }
            };
            if !self.apply_rebalances().await {
                break;
            }
            match received {
                Ok(record) => {
                    if !self.handle(record).await {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "Reading the handoff topic failed; retrying.");
                    tokio::select! {
                        () = self.shutdown.cancelled() => break,
                        () = tokio::time::sleep(ERROR_PAUSE) => {}
                    }
                }
            }
        }
        // The consumer closes in `stop`, on a blocking thread: no other strong reference may live.
        drop(consumer);
        self.stop().await;
        Ok(())
    }

    /// Applies the rebalances the context recorded: a revoked or newly assigned partition
    /// starts afresh (its incomplete files are read again from the committed offset), and an
    /// assigned partition's lot is read before any of its files is handled. `false` on shutdown.
    async fn apply_rebalances(&mut self) -> bool {
        for rebalance in self.consumer.context().take_rebalances() {
            match rebalance {
                Rebalanced::Revoked(partitions) => {
                    for partition in partitions {
                        self.partitions.remove(&partition);
                        self.lot.forget(partition);
                    }
                }
                Rebalanced::Assigned(partitions) => {
                    for partition in partitions {
                        self.partitions.remove(&partition);
                        if !self.load_lot(partition).await {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// Reads `partition`'s lot, retrying until it succeeds; `false` on shutdown.
    async fn load_lot(&mut self, partition: i32) -> bool {
        until_done!(self, "Reading the lot", self.lot.load(partition)).is_some()
    }

    /// Deals with one record; `false` when shutdown interrupted a file's delivery.
    async fn handle(&mut self, record: Record) -> bool {
        let Record { partition, offset, chunk } = record;
        let state = self.partitions.entry(partition).or_default();
        let pushed = match chunk {
            Ok(chunk) => state.push(offset, chunk),
            Err(reason) => {
                self.metrics.bad_record(reason);
                tracing::warn!(partition, offset, reason, "Skipping a handoff record that is not a file chunk.");
                state.done(offset);
                self.commit(partition);
                return true;
            }
        };
        match pushed {
            Ok(None) => state.done(offset),
            Ok(Some(file)) => {
                if !self.dispose(partition, file).await {
                    return false;
                }
                self.partitions.entry(partition).or_default().done(offset);
                self.commit(partition);
            }
            Err(error) => {
                self.metrics.bad_record(handoff_reason(&error));
                tracing::warn!(partition, offset, %error, "Skipping a handoff record that cannot be reassembled.");
                state.done(offset);
                self.commit(partition);
            }
        }
        true
    }

    /// Writes, parks or skips a complete file of handoff `partition`; `false` on shutdown.
    async fn dispose(&mut self, partition: i32, file: CompleteFile) -> bool {
        let meta = &file.meta;
        let (workspace_id, table) = (meta.workspace_id, meta.table);
        let Ok(seq) = u64::try_from(file.first_offset) else {
            // Kafka offsets are never negative; a negative one means a broken record.
            self.metrics.skipped("invalid_offset");
            return true;
        };
        let dest = match self.destinations.route(workspace_id, table) {
            Route::Deliver(dest) => dest,
            Route::Skip(reason) => {
                self.metrics.skipped(reason);
                tracing::info!(workspace_id, table = table.name(), seq, reason, "Skipping a file: not exported.");
                return true;
            }
            Route::Park(reason) => return self.park(partition, &file, seq, reason).await,
            Route::Unavailable(message) => {
                self.board.failed(workspace_id, message);
                return self.park(partition, &file, seq, "unavailable").await;
            }
        };
        if self.lot.is_waiting(partition, (workspace_id, table)) {
            return self.park(partition, &file, seq, "behind_parked").await;
        }
        if self.failing.get(&workspace_id).is_some_and(|f| f.next_try > Instant::now()) {
            return self.park(partition, &file, seq, "destination_failing").await;
        }
        match self.delivery.deliver(&dest, &file, seq).await {
            Outcome::Written(_) => {
                self.recovered(workspace_id);
                self.board.written(workspace_id, data_key(&dest.prefix, table, meta.kind, workspace_id, seq));
                true
            }
            Outcome::Failed(error) => {
                self.fail(workspace_id, error.summary());
                self.park(partition, &file, seq, "destination_failing").await
            }
            Outcome::Refused => self.park(partition, &file, seq, "refused").await,
            Outcome::Shutdown => false,
        }
    }

    /// Parks a file, retrying until Kafka has it; `false` on shutdown.
    async fn park(&mut self, partition: i32, file: &CompleteFile, seq: u64, reason: &'static str) -> bool {
        let parked = until_done!(self, "Parking a file", self.lot.park(partition, file, seq)).is_some();
        if parked {
            self.metrics.parked(reason);
            tracing::info!(
                workspace_id = file.meta.workspace_id,
                table = file.meta.table.name(),
                seq,
                reason,
                "Parked a file."
            );
        }
        parked
    }

    /// A retrier of a Kafka step, until shutdown.
    fn retrier(&self, what: &'static str) -> Retrier {
        Retrier::new(what, Backoff::new(KAFKA_BACKOFF.0, KAFKA_BACKOFF.1), &self.shutdown)
    }

    /// Marks `workspace_id`'s destination failing with `message`, backing off further.
    fn fail(&mut self, workspace_id: i64, message: String) {
        let failures = self.failing.get(&workspace_id).map_or(0, |f| f.failures.saturating_add(1));
        let delay = self.lot_backoff.ceiling(failures);
        self.metrics.destination_failed();
        let _ = self.failing.insert(workspace_id, Failing { failures, next_try: Instant::now() + delay });
        tracing::warn!(workspace_id, retry_in_ms = delay.as_millis() as u64, error = %message, "Destination failing; its files are parked.");
        self.board.failed(workspace_id, message);
    }

    /// Marks `workspace_id`'s destination working again.
    fn recovered(&mut self, workspace_id: i64) {
        if self.failing.remove(&workspace_id).is_some() {
            tracing::info!(workspace_id, "Destination works again.");
        }
    }

    /// Writes the oldest parked files whose table is on and whose destination is due; drops
    /// those of disabled or deleted syncs. `false` on shutdown.
    async fn drain_lot(&mut self) -> bool {
        let mut budget = LOT_FILES_PER_TICK;
        let mut blocked: Vec<QueueKey> = Vec::new();
        while budget > 0 {
            let heads = self.lot.heads();
            let next = heads.into_iter().find(|(_, key, _)| !blocked.contains(key));
            let Some((partition, key, entry)) = next else { break };
            match self.try_parked(partition, key, &entry).await {
                Some(true) => budget -= 1,
                Some(false) => blocked.push(key),
                None => return false,
            }
        }
        true
    }

    /// Tries one parked file: `Some(true)` when it left the lot, `Some(false)` when it must
    /// wait, `None` on shutdown.
    async fn try_parked(&mut self, partition: i32, key: QueueKey, entry: &Entry) -> Option<bool> {
        let (workspace_id, table) = key;
        let dest = match self.destinations.route(workspace_id, table) {
            Route::Deliver(dest) => dest,
            Route::Park(_) => return Some(false),
            Route::Unavailable(message) => {
                self.board.failed(workspace_id, message);
                return Some(false);
            }
            Route::Skip(reason) => {
                // Disabled or deleted sync: its files are not kept.
                self.metrics.skipped(reason);
                return self.leave_lot(partition, key, entry.seq).await.then_some(true);
            }
        };
        if self.failing.get(&workspace_id).is_some_and(|f| f.next_try > Instant::now()) {
            return Some(false);
        }
        let file = match self.lot.fetch(partition, entry).await {
            Ok(file) => file,
            Err(LotError::Broken { seq, reason }) => {
                self.metrics.bad_record("lot_broken");
                tracing::error!(workspace_id, seq, reason, "A parked file cannot be read back; dropping it.");
                return self.leave_lot(partition, key, seq).await.then_some(true);
            }
            Err(error) => {
                tracing::warn!(%error, "Reading a parked file failed; trying again later.");
                return Some(false);
            }
        };
        match self.delivery.deliver(&dest, &file, entry.seq).await {
            Outcome::Written(_) => {
                self.recovered(workspace_id);
                self.board
                    .written(workspace_id, data_key(&dest.prefix, table, file.meta.kind, workspace_id, entry.seq));
                self.metrics.unparked();
                self.leave_lot(partition, key, entry.seq).await.then_some(true)
            }
            Outcome::Failed(error) => {
                self.fail(workspace_id, error.summary());
                Some(false)
            }
            Outcome::Refused => Some(false),
            Outcome::Shutdown => None,
        }
    }

    /// Marks a parked file done, retrying until Kafka has the marker; `false` on shutdown.
    async fn leave_lot(&mut self, partition: i32, key: QueueKey, seq: u64) -> bool {
        until_done!(self, "Marking a parked file done", self.lot.done(partition, key, seq)).is_some()
    }

    /// Reports the statuses that changed (with the lot's waiting files) on the status topic.
    fn report(&mut self) {
        let destinations = &mut self.destinations;
        let summary = self.lot.summary(|(ws, table)| matches!(destinations.route(ws, table), Route::Park(_)));
        self.board.waiting(&summary);
        let changed = self.board.take_changed();
        if let Some(store) = &self.reporting.store {
            status::report(store, changed);
        }
    }

    /// Commits `partition`'s safe offset (asynchronously) if it moved.
    fn commit(&mut self, partition: i32) {
        let Some(state) = self.partitions.get_mut(&partition) else { return };
        let Some(offset) = state.to_commit() else { return };
        let mut list = TopicPartitionList::new();
        if let Err(error) = list.add_partition_offset(&self.topic, partition, Offset::Offset(offset)) {
            tracing::warn!(%error, partition, offset, "Cannot list an offset to commit.");
            return;
        }
        self.consumer.context().set_committable(partition, offset);
        match self.consumer.commit(&list, CommitMode::Async) {
            Ok(()) => {
                state.committed(offset);
                tracing::debug!(partition, offset, "Committing the handoff offset.");
            }
            Err(error) => {
                self.metrics.commit_failed();
                tracing::warn!(%error, partition, offset, "Cannot commit the handoff offset; the next commit retries.");
            }
        }
    }

    /// Commits every partition's safe offset synchronously, then closes the consumer (leaving
    /// the group) on a blocking thread.
    async fn stop(self) {
        let consumer = self.consumer;
        let closed = tokio::task::spawn_blocking(move || {
            let offsets = consumer.context().committable();
            if offsets.count() > 0 {
                match consumer.commit(&offsets, CommitMode::Sync) {
                    Ok(()) => tracing::info!("Committed the handoff offsets at shutdown."),
                    Err(error) => tracing::warn!(%error, "Cannot commit the handoff offsets at shutdown."),
                }
            }
            drop(consumer);
        })
        .await;
        if let Err(error) = closed {
            tracing::warn!(%error, "Closing the handoff consumer failed.");
        }
    }
}

/// Decodes a record's payload as a [`FileChunk`], or says why it is not one.
fn decode(payload: Option<&[u8]>) -> Result<FileChunk, &'static str> {
    let payload = payload.ok_or("empty")?;
    FileChunk::decode(payload).map_err(|_| "not_protobuf")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_that_are_not_chunks_are_named() {
        assert_eq!(decode(None).err(), Some("empty"));
        assert_eq!(decode(Some(b"\xff\xff\xff")).err(), Some("not_protobuf"));
        let chunk = FileChunk { file_id: "f".into(), chunk_count: 1, ..FileChunk::default() };
        assert_eq!(decode(Some(&chunk.encode_to_vec())), Ok(chunk));
    }
}
