//! The writes in flight: each a task delivering one file, at most one per handoff partition,
//! with what was read of a partition behind its write waiting in the partition's lane
//! ([`Lanes`], which also bounds the writes and the bytes waiting).

use std::sync::Arc;

use dwsync_handoff::CompleteFile;
use tokio::task::{JoinError, JoinSet};

use super::reader::Record;
use crate::config::UploadConfig;
use crate::delivery::{Delivery, Outcome};
use crate::destinations::DestinationClient;
use crate::inflight::{FlightId, Lanes};
use crate::metrics::Metrics;

/// What waits in a partition's lane: a record read behind the partition's file in flight, or a
/// complete file (with the offset of the record that completed it) waiting for a free slot.
pub(super) enum InLane {
    /// A record, not yet dealt with.
    Record(Record),
    /// A complete file and the offset of the record that completed it.
    File(CompleteFile, i64),
}

/// A write that ended, with what the loop needs to finish the file.
pub(super) struct Landed {
    /// The file's handoff partition.
    pub(super) partition: i32,
    flight: FlightId,
    /// The offset of the record that completed the file.
    pub(super) offset: i64,
    /// The file's sequence number.
    pub(super) seq: u64,
    /// The file.
    pub(super) file: CompleteFile,
    /// Where it was written.
    pub(super) dest: Arc<DestinationClient>,
    /// How the write ended.
    pub(super) outcome: Outcome,
}

/// The partitions' lanes and the tasks writing their files.
pub(super) struct Writes {
    lanes: Lanes<InLane>,
    tasks: JoinSet<Landed>,
    delivery: Arc<Delivery>,
}

impl Writes {
    /// Writes with `delivery`, as concurrently as `upload` allows.
    pub(super) fn new(delivery: Delivery, upload: &UploadConfig) -> Self {
        Self {
            lanes: Lanes::new(
                usize::try_from(upload.concurrency).unwrap_or(usize::MAX),
                upload.flight_bytes,
                upload.queued_bytes,
            ),
            tasks: JoinSet::new(),
            delivery: Arc::new(delivery),
        }
    }

    /// The delivery every write uses (the lot's writes too, inline).
    pub(super) fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// Appends a record read to its partition's lane.
    pub(super) fn queue(&mut self, record: Record) {
        let (partition, bytes) = (record.partition, record.bytes);
        self.lanes.queue(partition, InLane::Record(record), bytes);
    }

    /// What waits next in an idle `partition`'s lane, oldest first.
    pub(super) fn next(&mut self, partition: i32) -> Option<InLane> {
        self.lanes.next(partition)
    }

    /// Keeps `partition`'s next `file` (completed by the record at `offset`) until a slot is free.
    pub(super) fn hold(&mut self, partition: i32, file: CompleteFile, offset: i64) {
        let bytes = file.bytes.len() as u64;
        self.lanes.hold(partition, InLane::File(file, offset), bytes);
    }

    /// When a slot is free, the partition that has held a file longest; its lane moves on.
    pub(super) fn next_holding(&mut self) -> Option<i32> {
        self.lanes.next_holding()
    }

    /// Whether a write may start now.
    pub(super) fn has_slot(&self) -> bool {
        self.lanes.has_slot()
    }

    /// Whether more bytes wait than allowed: no record is read until some are written.
    pub(super) fn is_full(&self) -> bool {
        self.lanes.is_full()
    }

    /// Starts writing `file` (sequence number `seq`, completed by `partition`'s record at
    /// `offset`) to `dest` in a task; `partition` waits until it lands.
    pub(super) fn start(
        &mut self,
        partition: i32,
        file: CompleteFile,
        offset: i64,
        seq: u64,
        dest: Arc<DestinationClient>,
    ) {
        let delivery = Arc::clone(&self.delivery);
        let flight = self.lanes.start(partition, file.bytes.len() as u64);
        let _ = self.tasks.spawn(async move {
            let outcome = delivery.deliver(&dest, &file, seq).await;
            Landed { partition, flight, offset, seq, file, dest, outcome }
        });
    }

    /// The next write that ends; `None` (at once) when none is in flight.
    pub(super) async fn join_next(&mut self) -> Option<Result<Landed, JoinError>> {
        self.tasks.join_next().await
    }

    /// Frees the slot and the lane of a write that landed: `true` when it is its partition's
    /// current one, `false` when the partition was revoked since (the result is to be dropped).
    pub(super) fn land(&mut self, landed: &Landed) -> bool {
        self.lanes.land(landed.partition, landed.flight)
    }

    /// Forgets `partition` (revoked, or assigned afresh): what waits in its lane is dropped, and
    /// so will the result of its write in flight be.
    pub(super) fn revoke(&mut self, partition: i32) {
        self.lanes.revoke(partition);
    }

    /// Sets the gauges of the writes in flight and the bytes waiting.
    pub(super) fn gauge(&self, metrics: &Metrics) {
        metrics.in_flight(self.lanes.flying(), self.lanes.queued_bytes());
    }
}
