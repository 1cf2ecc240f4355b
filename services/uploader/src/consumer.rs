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
//!
//! The loop is made of parts that own their state, each in its own module and built from the
//! [`parts`] `start` hands over: the [`reader`] takes records off the handoff consumer, the
//! [`partitions`] reassemble them and know each partition's safe offset, the [`commits`] send
//! those offsets to Kafka, the [`writes`] fly, the [`lot_driver`] parks and retries files and
//! tracks failing destinations, and the [`reports`] note and report each workspace's status.
//! This module routes each file between them.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use dwsync_handoff::{CompleteFile, Cut, Generation, HandoffRecord};
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

use crate::delivery::Outcome;
use crate::destinations::{CutPassed, DestinationClient, Destinations, Route};
use crate::metrics::Metrics;
use crate::rebalance::Rebalanced;

mod commits;
mod lot_driver;
mod partitions;
mod parts;
mod reader;
mod reports;
mod writes;

use commits::Commits;
use lot_driver::{LotDriver, Unpark};
use partitions::{Partitions, Read};
pub use parts::{Parts, Reporting, Source};
pub use reader::{ConsumerError, subscribe};
use reader::{Reader, Record};
use reports::StatusReporter;
use writes::{InLane, Landed, Writes};

/// The health component that is unready while the lot cannot be read or written.
pub const LOT_COMPONENT: &str = "lot";

/// How often parked files are tried.
const LOT_TICK: Duration = Duration::from_millis(500);

/// How often every partition's safe offset is committed again, whether it moved or not: the
/// outcome of an asynchronous commit is not reported ([`Commits::commit_again`]).
const RECOMMIT_EVERY: Duration = Duration::from_secs(10);

/// What the loop woke up for.
enum Event {
    Landed(Result<Landed, JoinError>),
    Received(Result<Record, rdkafka::error::KafkaError>),
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

/// What became of a file whose turn came (unless shutdown came first).
enum Disposed {
    /// Skipped or parked: the next record of its partition may be dealt with.
    Done,
    /// Being written by a task; the partition waits for it to land.
    Flying,
}

/// The consumer loop: it routes each file read between its parts.
pub struct Pipeline {
    reader: Reader,
    /// Generation of the handoff topic, which places each file's `seq`.
    generation: Generation,
    partitions: Partitions,
    commits: Commits,
    destinations: Destinations,
    writes: Writes,
    lot: LotDriver,
    status: StatusReporter,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("topic", &self.commits.topic()).field("partitions", &self.partitions).finish()
    }
}

impl Pipeline {
    /// A loop over `parts.consumer`'s records of `parts.source`, committing at most every
    /// `commit_interval`, routing with `destinations`, writing with `delivery` as concurrently
    /// as `upload` allows, parking in `lot`, until `shutdown`.
    pub fn new(parts: Parts<'_>) -> Self {
        let Parts { consumer, source, destinations, delivery, upload, lot, lot_config, reporting, metrics, shutdown } =
            parts;
        let Reporting { store, interval, health } = reporting;
        Self {
            commits: Commits::new(Arc::clone(&consumer), source.topic, source.commit_interval, Arc::clone(&metrics)),
            reader: Reader::new(consumer, shutdown.clone()),
            generation: source.generation,
            partitions: Partitions::new(Arc::clone(&metrics)),
            destinations,
            writes: Writes::new(delivery, upload),
            lot: LotDriver::new(lot, lot_config, health, Arc::clone(&metrics), shutdown.clone()),
            status: StatusReporter::new(store, interval),
            metrics,
            shutdown,
        }
    }

    /// Runs until shutdown, then waits for the writes in flight, commits every partition's safe
    /// offset and leaves the group.
    pub async fn run(mut self) -> Result<(), ConsumerError> {
        let mut lot_tick = tokio::time::interval(LOT_TICK);
        lot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report_tick = tokio::time::interval(self.status.interval());
        report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut commit_tick = tokio::time::interval(self.commits.interval().max(Duration::from_millis(1)));
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recommit_tick = tokio::time::interval(RECOMMIT_EVERY);
        recommit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Records are not read while the lanes hold too much: librdkafka's queue fills up
            // and stops fetching.
            let event = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                // Before the records and writes, which may always be ready under load.
                _ = commit_tick.tick(), if self.commits.has_moved() => Event::Commit,
                Some(joined) = self.writes.join_next() => Event::Landed(joined),
                received = self.reader.recv(), if !self.writes.is_full() => Event::Received(received),
                _ = lot_tick.tick() => Event::LotTick,
                _ = report_tick.tick() => Event::Report,
                _ = recommit_tick.tick() => Event::Recommit,
            };
            if self.apply_rebalances().await.is_break() {
                break;
            }
            let going = match event {
                Event::Landed(joined) => self.land(joined).await,
                Event::Received(received) => match self.reader.received(received).await {
                    ControlFlow::Continue(Some(record)) => self.handle(record).await,
                    ControlFlow::Continue(None) => GO_ON,
                    ControlFlow::Break(()) => STOP,
                },
                // Parked files are written one at a time, taking one of the slots.
                Event::LotTick if self.writes.has_slot() => {
                    let with = Unpark {
                        destinations: &mut self.destinations,
                        delivery: self.writes.delivery(),
                        status: &mut self.status,
                    };
                    self.lot.drain(with).await
                }
                Event::LotTick => GO_ON,
                Event::Report => {
                    let waiting = self.lot.waiting(&mut self.destinations);
                    self.status.report(&waiting);
                    GO_ON
                }
                Event::Commit => {
                    self.commits.commit_moved(&mut self.partitions);
                    GO_ON
                }
                Event::Recommit => {
                    self.commits.commit_again(&mut self.partitions);
                    GO_ON
                }
            };
            self.writes.gauge(&self.metrics);
            if going.is_break() {
                break;
            }
        }
        self.land_all().await;
        self.stop().await
    }

    /// Applies the rebalances the context recorded: a revoked or newly assigned partition
    /// starts afresh (its incomplete files are read again from the committed offset, what waits
    /// in its lane is dropped, and so is the result of its write in flight), and an assigned
    /// partition's lot is read before any of its files is handled. Breaks on shutdown.
    async fn apply_rebalances(&mut self) -> Going {
        let mut assigned: Vec<i32> = Vec::new();
        let rebalances = self.reader.take_rebalances();
        // A rebalance ended (an assignment, maybe empty, closes each): commits sent during it
        // failed unseen, so the partitions kept commit again.
        if rebalances.iter().any(|r| matches!(r, Rebalanced::Assigned(_))) {
            self.commits.commit_again(&mut self.partitions);
        }
        for rebalance in rebalances {
            let (Rebalanced::Revoked(partitions) | Rebalanced::Assigned(partitions)) = &rebalance;
            for partition in partitions {
                // A revoked partition's safe offset was committed in the rebalance callback.
                self.commits.forget(*partition);
                self.partitions.forget(*partition);
                self.lot.forget(*partition);
                self.writes.revoke(*partition);
                assigned.retain(|p| p != partition);
            }
            if let Rebalanced::Assigned(partitions) = rebalance {
                assigned.extend(partitions);
            }
        }
        for partition in assigned {
            self.lot.load(partition).await?;
        }
        GO_ON
    }

    /// Deals with one record read: at once, or after the files of its partition before it.
    /// Breaks on shutdown.
    async fn handle(&mut self, record: Record) -> Going {
        let partition = record.partition;
        self.writes.queue(record);
        self.advance(partition).await
    }

    /// Deals with what waits in `partition`'s lane, in order, until one of its files is being
    /// written or waits for a slot, or nothing is left. Breaks on shutdown.
    async fn advance(&mut self, partition: i32) -> Going {
        while let Some(waiting) = self.writes.next(partition) {
            let (file, offset) = match waiting {
                InLane::Record(Record { content: HandoffRecord::Cut(cut), offset, .. }) => {
                    self.pass_cut(partition, offset, cut).await?;
                    continue;
                }
                InLane::Record(record) => match self.partitions.read(record) {
                    Read::File(file, offset) => (file, offset),
                    Read::Held => continue,
                    Read::Skipped(offset) => {
                        self.finish(partition, offset);
                        continue;
                    }
                },
                InLane::File(file, offset) => (file, offset),
            };
            if !self.writes.has_slot() {
                self.writes.hold(partition, file, offset);
                return GO_ON;
            }
            match self.dispose(partition, file, offset).await? {
                Disposed::Done => self.finish(partition, offset),
                Disposed::Flying => return GO_ON,
            }
        }
        GO_ON
    }

    /// Gives the slots freed by writes that landed to the partitions waiting for one, oldest
    /// first. Breaks on shutdown.
    async fn fill_slots(&mut self) -> Going {
        while let Some(partition) = self.writes.next_holding() {
            self.advance(partition).await?;
        }
        GO_ON
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
        self.finish(partition, offset);
        GO_ON
    }

    /// `partition`'s record at `offset` is dealt with (the file it completed written, parked or
    /// skipped): the partition's safe offset is committed.
    fn finish(&mut self, partition: i32, offset: i64) {
        self.partitions.done(partition, offset);
        self.commits.note(&mut self.partitions, partition);
    }

    /// Skips or parks a complete file of handoff `partition` (completed by the record at
    /// `offset`), or starts writing it (a slot must be free). Breaks on shutdown.
    async fn dispose(&mut self, partition: i32, file: CompleteFile, offset: i64) -> ControlFlow<(), Disposed> {
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
            return ControlFlow::Continue(Disposed::Done);
        };
        let dest = match self.destinations.route(workspace_id, table, seq) {
            Route::Deliver(dest) => dest,
            Route::Skip(reason) => {
                self.metrics.skipped(reason);
                tracing::info!(workspace_id, table = table.name(), seq, reason, "Skipping a file: not exported.");
                return ControlFlow::Continue(Disposed::Done);
            }
            Route::Park(reason) => {
                self.lot.park(partition, &file, seq, reason).await?;
                return ControlFlow::Continue(Disposed::Done);
            }
            Route::Unavailable(message) => {
                self.status.failed(workspace_id, message);
                self.lot.park(partition, &file, seq, "unavailable").await?;
                return ControlFlow::Continue(Disposed::Done);
            }
        };
        if let Some(reason) = self.lot.holds_back(partition, (workspace_id, table)) {
            self.lot.park(partition, &file, seq, reason).await?;
            return ControlFlow::Continue(Disposed::Done);
        }
        self.writes.start(partition, file, offset, seq, dest);
        ControlFlow::Continue(Disposed::Flying)
    }

    /// Finishes a write that landed: the destination recovered, or failed and the file is
    /// parked; then the record is dealt with, the offset committed, and the freed slot and the
    /// partition's lane move on. The result of a revoked partition's write is dropped. Breaks on
    /// shutdown.
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
        if !self.writes.land(&landed) {
            tracing::debug!(
                partition = landed.partition,
                seq = landed.seq,
                "A write of a revoked partition landed; its result is dropped."
            );
            return self.fill_slots().await;
        }
        let Landed { partition, offset, seq, file, dest, outcome, .. } = landed;
        let workspace_id = file.meta.workspace_id;
        match outcome {
            Outcome::Written(_) => self.written(&dest, &file, seq),
            Outcome::Failed(error) => {
                let message = error.summary();
                self.lot.fail(workspace_id, &message);
                self.status.failed(workspace_id, message);
                self.lot.park(partition, &file, seq, "destination_failing").await?;
            }
            Outcome::Refused => self.lot.park(partition, &file, seq, "refused").await?,
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
        while let Some(joined) = self.writes.join_next().await {
            let Ok(landed) = joined else { continue };
            if self.writes.land(&landed) && matches!(landed.outcome, Outcome::Written(_)) {
                self.written(&landed.dest, &landed.file, landed.seq);
                self.finish(landed.partition, landed.offset);
            }
        }
    }

    /// Records that `file` (sequence number `seq`) is in `dest`'s bucket: its destination works.
    fn written(&mut self, dest: &DestinationClient, file: &CompleteFile, seq: u64) {
        self.lot.recovered(file.meta.workspace_id);
        self.status.written(dest, file, seq);
    }

    /// Stops reading, then commits every partition's safe offset and closes the consumer (once
    /// the reader's reference to it is gone); the other parts go after. Fails if this member was
    /// fenced.
    async fn stop(self) -> Result<(), ConsumerError> {
        let fenced = self.reader.stop();
        self.commits.close().await;
        fenced.map_or(Ok(()), |error| Err(ConsumerError::Fenced(error)))
    }
}
