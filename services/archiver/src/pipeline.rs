//! The archiver's loop: read handoff records, reassemble and decode files into each partition's
//! batch, write a batch when it is due (or early when memory is short), commit its end, and
//! keep every assigned partition's state.
//!
//! Batches are written inline: the loop reads nothing while it writes, so librdkafka's bounded
//! queue stops fetching (backpressure), and a rebalance callback, which runs only while the loop
//! reads, never lands in the middle of a batch's writes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dwsync_handoff::generation::OutOfSpan;
use dwsync_handoff::{Generation, HandoffRecord, Located, cut_value};
use dwsync_retry::{Backoff, retry_until_shutdown};
use dwsync_sync_config::is_transient;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers as _, Message as _};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::ArchiveConfig;
use crate::file;
use crate::flush::{FlushError, Flushed, Writer};
use crate::kafka::{self, HandoffConsumer, KafkaStepError, Rebalanced};
use crate::metrics::Metrics;
use crate::partition::{Arrival, Due, Ending, Limits, PartitionState};
use crate::store::{GaveUp, Store};
use dwsync_archive::key::forced_end;

/// How often batches are checked for their age.
const TICK: Duration = Duration::from_millis(500);

/// Pause after a consumer error that is not transient.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Kafka queries (where a partition starts) are retried with this backoff until shutdown.
const KAFKA_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// Why the loop stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A batch could not be encoded.
    #[error(transparent)]
    Flush(#[from] FlushError),
    /// A handoff offset without a position in the topic's generation (never below 10^12).
    #[error(transparent)]
    Position(#[from] OutOfSpan),
}

/// Why a batch is written: [`Due`], or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Due(Due),
    /// The instance holds more than `archive.max_buffered_bytes`.
    Memory,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Due(due) => due.as_str(),
            Self::Memory => "memory",
        }
    }
}

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Continue,
    Shutdown,
}

/// One record read, copied out of the consumer's buffer.
struct Record {
    partition: i32,
    offset: i64,
    content: HandoffRecord,
}

/// The archiver's loop and the state of its assigned partitions.
pub struct Pipeline {
    consumer: Arc<HandoffConsumer>,
    topic: String,
    /// The handoff topic's generation: batches and files are kept at positions in it, offsets
    /// are committed as offsets.
    generation: Generation,
    partitions: BTreeMap<i32, PartitionState>,
    writer: Writer,
    limits: Limits,
    max_buffered: u64,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("topic", &self.topic).field("partitions", &self.partitions).finish()
    }
}

impl Pipeline {
    /// A loop over `consumer`'s records of `topic` (of `generation`), writing batches into
    /// `store` as `archive` says, until `shutdown`.
    pub fn new(
        consumer: Arc<HandoffConsumer>,
        (topic, generation): (&str, Generation),
        store: Store,
        archive: &ArchiveConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let writer = Writer {
            store: Arc::new(store),
            topic: topic.to_owned(),
            concurrency: archive.write_concurrency,
            metrics: Arc::clone(&metrics),
            shutdown: shutdown.clone(),
        };
        Self {
            consumer,
            topic: topic.to_owned(),
            generation,
            partitions: BTreeMap::new(),
            writer,
            limits: Limits { flush_bytes: archive.flush_bytes, flush_interval: archive.flush_interval() },
            max_buffered: archive.max_buffered_bytes,
            metrics,
            shutdown,
        }
    }

    /// Runs until shutdown (open batches are dropped uncommitted: read again after a restart),
    /// then leaves the group.
    pub async fn run(mut self) -> Result<(), PipelineError> {
        let consumer = Arc::clone(&self.consumer);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut transient = 0u64;
        let outcome = loop {
            let received = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break Ok(()),
                received = consumer.recv() => Some(received.map(|m| Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    content: HandoffRecord::classify(cut_header(&m), m.payload()),
                })),
                _ = tick.tick() => None,
            };
            if self.apply_rebalances().await == Step::Shutdown {
                break Ok(());
            }
            let step = match received {
                Some(Ok(record)) => {
                    if transient > 0 {
                        tracing::info!(transient_errors = transient, "Reading the handoff topic works again.");
                        transient = 0;
                    }
                    self.handle(record).await
                }
                Some(Err(error)) if is_transient(&error) => {
                    // Informational: librdkafka reconnects and fetches on by itself.
                    transient += 1;
                    if transient == 1 {
                        tracing::warn!(%error, "Reading the handoff topic: the broker does not answer; librdkafka retries.");
                    }
                    Ok(Step::Continue)
                }
                Some(Err(error)) => self.pause(&error).await,
                None => self.flush_due().await,
            };
            self.metrics.buffered(self.buffered_bytes());
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::Shutdown) => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        drop(consumer);
        self.stop().await;
        outcome
    }

    /// Waits a moment after a consumer error that is not transient.
    async fn pause(&self, error: &KafkaError) -> Result<Step, PipelineError> {
        tracing::warn!(%error, "Reading the handoff topic failed; retrying.");
        tokio::select! {
            () = self.shutdown.cancelled() => Ok(Step::Shutdown),
            () = tokio::time::sleep(ERROR_PAUSE) => Ok(Step::Continue),
        }
    }

    /// Leaves the group and closes the consumer on a blocking thread.
    async fn stop(self) {
        let consumer = self.consumer;
        let closed = tokio::task::spawn_blocking(move || {
            consumer.unsubscribe();
            drop(consumer);
        });
        if let Err(error) = closed.await {
            tracing::warn!(%error, "Closing the handoff consumer failed.");
        }
    }

    /// Applies the recorded rebalances: revoked partitions' batches are dropped (nothing of
    /// them is committed), assigned ones start at the group's committed offset, with the end
    /// of a batch written there before, if any.
    async fn apply_rebalances(&mut self) -> Step {
        for rebalance in self.consumer.context().take_rebalances() {
            match rebalance {
                Rebalanced::Revoked(partitions) => {
                    for partition in partitions {
                        self.partitions.remove(&partition);
                    }
                }
                Rebalanced::Assigned(partitions) => {
                    for partition in partitions {
                        let Some(start) = self.start_of(partition).await else { return Step::Shutdown };
                        let Ok(start) = self.generation.position(start) else {
                            tracing::error!(
                                partition,
                                start,
                                "A committed offset past 10^12 has no position; not archived."
                            );
                            continue;
                        };
                        let Some(ending) = self.ending_at(partition, start).await else { return Step::Shutdown };
                        tracing::info!(partition, start, ?ending, "Archiving a handoff partition.");
                        self.partitions.insert(partition, PartitionState::new(partition, start, ending));
                    }
                }
            }
        }
        Step::Continue
    }

    /// Where `partition`'s first batch starts, retried until shutdown (`None`).
    async fn start_of(&self, partition: i32) -> Option<i64> {
        let backoff = Backoff::new(KAFKA_BACKOFF.0, KAFKA_BACKOFF.1);
        let on_failure = |error: &KafkaStepError, attempt: u32, delay: Duration| {
            tracing::warn!(%error, attempt = attempt + 1, retry_in_ms = delay.as_millis() as u64, "Reading the committed offset failed; retrying.");
        };
        retry_until_shutdown(&backoff, &self.shutdown, on_failure, || {
            kafka::start_offset(&self.consumer, &self.topic, partition)
        })
        .await
    }

    /// How the batch of `partition` starting at `start` must end: forced by the objects a run
    /// before a restart wrote there, else free. `None` on shutdown.
    async fn ending_at(&self, partition: i32, start: i64) -> Option<Ending> {
        let store = &self.writer.store;
        let keys = store.list(partition, start, &self.shutdown).await.ok()?;
        let end = forced_end(store.prefix(), partition, start, keys.iter().map(String::as_str));
        Some(end.map_or(Ending::Free, Ending::Forced))
    }

    /// Reads one record into its partition's batch, then writes what is due.
    async fn handle(&mut self, record: Record) -> Result<Step, PipelineError> {
        let Record { partition, offset, content } = record;
        let offset = self.generation.position(offset)?;
        let Some(state) = self.partitions.get_mut(&partition) else {
            tracing::debug!(partition, offset, "A record of a partition not assigned; skipped.");
            return Ok(Step::Continue);
        };
        match state.arrival(offset) {
            Arrival::Stale => return Ok(Step::Continue),
            Arrival::FlushFirst => {
                if self.flush(partition, Reason::Due(Due::Forced)).await? == Step::Shutdown {
                    return Ok(Step::Shutdown);
                }
            }
            Arrival::Add => {}
        }
        let Some(state) = self.partitions.get_mut(&partition) else { return Ok(Step::Continue) };
        let now = Instant::now();
        let pushed = match content {
            HandoffRecord::Chunk(chunk) => state.push(offset, chunk, now),
            HandoffRecord::Cut(cut) => {
                // Where an initial sync divides the partition: part of the batch, not a file.
                state.skip(offset, now);
                tracing::debug!(
                    partition,
                    offset,
                    workspace_id = cut.workspace_id,
                    epoch = cut.epoch,
                    "Passed a cut record."
                );
                Ok(None)
            }
            HandoffRecord::Bad(reason) => {
                state.skip(offset, now);
                self.metrics.bad_record(reason);
                tracing::warn!(partition, offset, reason, "Skipping a handoff record that is not a file chunk.");
                Ok(None)
            }
        };
        match pushed {
            Ok(None) => {}
            Ok(Some(complete)) => match file::decode(complete) {
                Ok(file) => state.add(file),
                Err(error) => {
                    self.metrics.bad_record("unreadable_file");
                    tracing::error!(partition, offset, %error, "Skipping a handed-off file that cannot be read.");
                }
            },
            Err(error) => {
                self.metrics.bad_record("reassembly");
                tracing::warn!(partition, offset, %error, "Skipping a handoff record that cannot be reassembled.");
            }
        }
        if let Some(due) = state.due(now, self.limits)
            && self.flush(partition, Reason::Due(due)).await? == Step::Shutdown
        {
            return Ok(Step::Shutdown);
        }
        self.relieve_memory().await
    }

    /// Writes the batches that are due by age (or reached a forced end).
    async fn flush_due(&mut self) -> Result<Step, PipelineError> {
        let now = Instant::now();
        let due: Vec<(i32, Due)> =
            self.partitions.iter().filter_map(|(p, s)| s.due(now, self.limits).map(|d| (*p, d))).collect();
        for (partition, due) in due {
            if self.flush(partition, Reason::Due(due)).await? == Step::Shutdown {
                return Ok(Step::Shutdown);
            }
        }
        Ok(Step::Continue)
    }

    /// While the instance holds more than `archive.max_buffered_bytes`, writes the largest
    /// batch that may end now.
    async fn relieve_memory(&mut self) -> Result<Step, PipelineError> {
        while self.buffered_bytes() > self.max_buffered {
            let largest = self
                .partitions
                .iter()
                .filter(|(_, s)| s.can_end_early())
                .max_by_key(|(_, s)| s.buffered_bytes())
                .map(|(p, _)| *p);
            let Some(partition) = largest else { break };
            if self.flush(partition, Reason::Memory).await? == Step::Shutdown {
                return Ok(Step::Shutdown);
            }
        }
        Ok(Step::Continue)
    }

    /// Bytes held by every assigned partition.
    fn buffered_bytes(&self) -> u64 {
        self.partitions.values().map(PartitionState::buffered_bytes).sum()
    }

    /// Writes `partition`'s batch, commits its end, and learns how the next batch ends.
    async fn flush(&mut self, partition: i32, reason: Reason) -> Result<Step, PipelineError> {
        let Some(state) = self.partitions.get_mut(&partition) else { return Ok(Step::Continue) };
        let Some((range, batch)) = state.take() else { return Ok(Step::Continue) };
        let files = batch.files();
        let span = tracing::info_span!("batch", partition, start = range.start, end = range.end);
        let consumer = Arc::clone(&self.consumer);
        let lost = move || consumer.assignment_lost();
        let flushed = self.writer.flush(range, batch, lost).instrument(span.clone()).await?;
        match flushed {
            Flushed::Written { created, existing, rows } => {
                if let Located::Here(end) = self.generation.locate(range.end) {
                    kafka::commit(&self.consumer, &self.topic, partition, end);
                }
                self.metrics.batch(reason.as_str());
                span.in_scope(|| {
                    tracing::info!(reason = reason.as_str(), files, created, existing, rows, "Archived a batch.");
                });
            }
            Flushed::GaveUp(GaveUp::Shutdown) => return Ok(Step::Shutdown),
            Flushed::GaveUp(GaveUp::Abandoned) => {
                // The partition is being taken away: its next owner writes the batch.
                tracing::warn!(
                    partition,
                    start = range.start,
                    "The partition was lost while its batch was written; dropped uncommitted."
                );
                self.partitions.remove(&partition);
                return Ok(Step::Continue);
            }
        }
        let Some(ending) = self.ending_at(partition, range.end).await else { return Ok(Step::Shutdown) };
        if let Some(state) = self.partitions.get_mut(&partition) {
            state.set_ending(ending);
        }
        Ok(Step::Continue)
    }
}

/// The value of a record's cut header, if it has one.
fn cut_header<'a>(message: &'a rdkafka::message::BorrowedMessage<'_>) -> Option<&'a [u8]> {
    cut_value(message.headers()?.iter().map(|h| (h.key, h.value)))
}
