//! Everything the loop mutates (kept apart from the consumer, which messages borrow): records
//! decoded into the [`Buffers`], and the flushes that commit them when their windows close
//! ([`Flusher`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use rdkafka::Message as _;
use rdkafka::consumer::Consumer as _;
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;

use super::buffers::{Buffers, Closing};
use super::flush::{Flusher, Flushing};
use super::rewind::{self, Rewound};
use super::sources::Sources;
use super::{Kafka, PipelineError, now_ms};
use crate::batch::{Decoded, Decoder};
use crate::blocking::block_in_place;
use crate::dead_letter::DeadLetter;
use crate::in_flight::GroupMetadata;
use crate::limits::Limits;
use crate::metrics::{self, Tally};
use crate::parallel;
use crate::window::PartitionKey;

/// The loop's state.
pub(super) struct State<'a> {
    /// The source topics.
    pub(super) sources: Sources<'a>,
    /// Record size limits, read from the topics at start.
    limits: Limits,
    /// The records read since their partitions' last commit.
    pub(super) buffers: Buffers,
    /// Records decoded and dead-lettered since the last flush, by table.
    tally: Tally,
    /// Threads decoding, the loop's own included.
    threads: usize,
    /// The handoff transactions.
    pub(super) flusher: Flusher<'a>,
}

impl<'a> State<'a> {
    /// Nothing read yet.
    pub(super) fn new(
        sources: Sources<'a>,
        limits: Limits,
        buffers: Buffers,
        threads: usize,
        flusher: Flusher<'a>,
    ) -> Self {
        Self { sources, limits, buffers, tally: Tally::default(), threads, flusher }
    }

    /// Decodes a batch of records on the worker threads, then adds them to their windows in
    /// order (flushing when a window fills or the memory budget is exceeded). The first `skip`
    /// records and those of `stale` partitions are left to their next owner or to their second
    /// reading.
    pub(super) async fn process_batch(
        &mut self,
        batch: &[BorrowedMessage<'_>],
        skip: usize,
        stale: &BTreeSet<PartitionKey>,
        consumer: &Arc<Kafka>,
    ) -> Result<(), PipelineError> {
        let decoder = Decoder {
            topic_index: self.sources.index(),
            topics: self.sources.topics(),
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

    /// Adds a decoded record to its window, or its rejection to the dead letters.
    async fn process(
        &mut self,
        msg: &BorrowedMessage<'_>,
        partition: PartitionKey,
        decoded: Decoded<'_>,
        now: i64,
        consumer: &Arc<Kafka>,
    ) -> Result<(), PipelineError> {
        let table = self.sources.topic(partition).table;
        self.buffers.read(partition, msg.offset(), now);
        match decoded {
            Ok((key, row)) => {
                self.tally.record(table, metrics::Decoded::Row);
                if let Some(trigger) = self.buffers.add(key, &row, partition, msg.offset(), now) {
                    let closing = self.buffers.close_around(trigger);
                    self.commit(closing, consumer).await?;
                }
                // The loop reads nothing while it flushes, so the buffers are back under the
                // budget before the next record (backpressure: librdkafka stops fetching when
                // its bounded queue is full).
                while let Some(trigger) = self.buffers.over_budget() {
                    let closing = self.buffers.close_around(trigger);
                    self.commit(closing, consumer).await?;
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
                self.buffers.dead_letter(partition, letter);
                if self.buffers.dead_letters_full() {
                    self.flush_all(consumer).await?;
                }
            }
        }
        Ok(())
    }

    /// Closes the windows of the partitions whose grid point came (with their neighbours) and
    /// commits those partitions.
    pub(super) async fn flush_due(&mut self, consumer: &Arc<Kafka>) -> Result<(), PipelineError> {
        // A revocation noticed while `recv` was interrupted must be applied before committing.
        let _ = self.check_rebalance(consumer)?;
        let closing = self.buffers.close_due(now_ms());
        self.commit(closing, consumer).await
    }

    /// Closes every window and commits every partition read (the dead letters' memory is full).
    async fn flush_all(&mut self, consumer: &Arc<Kafka>) -> Result<(), PipelineError> {
        // A revocation noticed while `recv` was interrupted must be applied before committing.
        let _ = self.check_rebalance(consumer)?;
        let closing = self.buffers.close_all();
        self.commit(closing, consumer).await
    }

    /// Commits `closing`'s partitions with its windows and their dead letters: once the last
    /// transaction committed, hands them off in a new one whose commit is scheduled while the
    /// loop reads on ([`Flusher::flush`]). (If the last one did not commit, or this one fails,
    /// everything since the last commit is read again: nothing taken here is missed.)
    async fn commit(&mut self, closing: Closing, consumer: &Arc<Kafka>) -> Result<(), PipelineError> {
        self.tally.publish();
        let Closing { partitions, windows } = closing;
        if partitions.is_empty() && windows.is_empty() {
            return Ok(());
        }
        let flushing = Flushing {
            dead: self.buffers.take_dead_letters(&partitions),
            offsets: self.buffers.offsets(&partitions, &self.sources).map_err(PipelineError::Consume)?,
            partitions: partitions.len(),
            windows,
        };
        let buffers = &self.buffers;
        self.flusher.flush(flushing, group_metadata(consumer), || buffers.measure()).await?;
        // Read on from here: a failed commit restarts the loop from the committed offsets.
        self.buffers.committing(&partitions);
        Ok(())
    }

    /// Waits for the last transaction to commit, if one is committing.
    pub(super) async fn settle(&mut self) -> Result<(), PipelineError> {
        let buffers = &self.buffers;
        self.flusher.settle(|| buffers.measure()).await
    }

    /// Applies a revocation, if one came ([`rewind::after_revocation`]).
    pub(super) fn check_rebalance(&mut self, consumer: &Kafka) -> Result<Rewound, PipelineError> {
        rewind::after_revocation(&mut self.buffers, &self.sources, consumer)
    }

    /// Reads everything since the last commit again ([`rewind::read_again`]).
    pub(super) fn read_again(&mut self, consumer: &Kafka, error: &KafkaError) -> Result<(), PipelineError> {
        rewind::read_again(&mut self.buffers, consumer, error)
    }
}

/// The consumer group's metadata, read by the committing thread just before it adds the offsets.
fn group_metadata(consumer: &Arc<Kafka>) -> GroupMetadata {
    let consumer = Arc::clone(consumer);
    Arc::new(move || consumer.group_metadata())
}
