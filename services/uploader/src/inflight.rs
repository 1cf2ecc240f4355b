//! Which handoff partitions have a delivery in flight, what waits behind each, and the bounds:
//! at most `concurrency` deliveries at once, a new one only while the files in flight total less
//! than `max_flight_bytes` (one file always may fly), and no new records read while more than
//! `max_queued_bytes` wait in memory.
//!
//! A partition is a lane: one delivery at a time, everything read after that file waits in the
//! lane's queue, in offset order, until the delivery lands. A lane whose next file finds every
//! slot taken [`hold`](Lanes::hold)s it at the front of its queue and waits its turn for a slot,
//! first come first served. Pure bookkeeping: the consumer loop starts and lands the deliveries.

use std::collections::{HashMap, VecDeque};

/// Names one delivery, so a result of a revoked partition is told from the current one's.
pub type FlightId = u64;

/// One partition's lane.
#[derive(Debug)]
struct Lane<T> {
    /// The delivery in flight, if any.
    flight: Option<FlightId>,
    /// Whether the front of the queue is a file waiting for a slot.
    holding: bool,
    /// What was read after the file in flight (or held), with its size in bytes.
    queue: VecDeque<(T, u64)>,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Self { flight: None, holding: false, queue: VecDeque::new() }
    }
}

impl<T> Lane<T> {
    fn is_busy(&self) -> bool {
        self.flight.is_some() || self.holding
    }

    fn bytes(&self) -> u64 {
        self.queue.iter().map(|(_, bytes)| bytes).sum()
    }
}

/// The lanes of the partitions this uploader reads, with their bounds.
#[derive(Debug)]
pub struct Lanes<T> {
    concurrency: usize,
    max_flight_bytes: u64,
    max_queued_bytes: u64,
    queued_bytes: u64,
    /// Deliveries started and not landed, revoked partitions' included (they still run), with
    /// the bytes of their files.
    flights: HashMap<FlightId, u64>,
    /// Sum of `flights`' bytes.
    flight_bytes: u64,
    lanes: HashMap<i32, Lane<T>>,
    /// Lanes holding a file until a slot is free, oldest first.
    holding: VecDeque<i32>,
    next_id: FlightId,
}

impl<T> Lanes<T> {
    /// Lanes allowing `concurrency` deliveries at once (at least one), new ones while less than
    /// `max_flight_bytes` are in flight, and `max_queued_bytes` waiting in memory before reading
    /// stops.
    pub fn new(concurrency: usize, max_flight_bytes: u64, max_queued_bytes: u64) -> Self {
        Self {
            concurrency: concurrency.max(1),
            max_flight_bytes,
            max_queued_bytes,
            queued_bytes: 0,
            flights: HashMap::new(),
            flight_bytes: 0,
            lanes: HashMap::new(),
            holding: VecDeque::new(),
            next_id: 0,
        }
    }

    /// Whether `partition` has a delivery in flight or a file waiting for a slot: what is read
    /// of it now must [`queue`](Self::queue).
    pub fn is_busy(&self, partition: i32) -> bool {
        self.lanes.get(&partition).is_some_and(Lane::is_busy)
    }

    /// Appends `item` (`bytes` long) to `partition`'s queue.
    pub fn queue(&mut self, partition: i32, item: T, bytes: u64) {
        self.queued_bytes += bytes;
        self.lanes.entry(partition).or_default().queue.push_back((item, bytes));
    }

    /// The next item of an idle `partition`, oldest first; `None` when it is busy or has none.
    pub fn next(&mut self, partition: i32) -> Option<T> {
        let lane = self.lanes.get_mut(&partition)?;
        if lane.is_busy() {
            return None;
        }
        let (item, bytes) = lane.queue.pop_front()?;
        self.queued_bytes -= bytes;
        Some(item)
    }

    /// Whether a delivery may start now: fewer than `concurrency` fly, and their files total
    /// less than `max_flight_bytes` (or none flies).
    pub fn has_slot(&self) -> bool {
        self.flights.is_empty() || (self.flights.len() < self.concurrency && self.flight_bytes < self.max_flight_bytes)
    }

    /// Keeps `file` (`bytes` long), the next file of an idle `partition`, until a slot is free;
    /// the partition is busy until [`next_holding`](Self::next_holding) returns it.
    pub fn hold(&mut self, partition: i32, file: T, bytes: u64) {
        self.queued_bytes += bytes;
        let lane = self.lanes.entry(partition).or_default();
        lane.queue.push_front((file, bytes));
        lane.holding = true;
        self.holding.push_back(partition);
    }

    /// When a slot is free, the partition that has held a file longest, made idle so that
    /// [`next`](Self::next) returns that file.
    pub fn next_holding(&mut self) -> Option<i32> {
        if !self.has_slot() {
            return None;
        }
        let partition = self.holding.pop_front()?;
        if let Some(lane) = self.lanes.get_mut(&partition) {
            lane.holding = false;
        }
        Some(partition)
    }

    /// Starts a delivery of an idle `partition` (a file of `bytes`), which is busy until it
    /// [`land`](Self::land)s.
    pub fn start(&mut self, partition: i32, bytes: u64) -> FlightId {
        self.next_id += 1;
        let _ = self.flights.insert(self.next_id, bytes);
        self.flight_bytes += bytes;
        self.lanes.entry(partition).or_default().flight = Some(self.next_id);
        self.next_id
    }

    /// A delivery ended: `true` when it is `partition`'s current one (now idle), `false` when
    /// the partition was revoked since (the result is to be dropped).
    pub fn land(&mut self, partition: i32, id: FlightId) -> bool {
        if let Some(bytes) = self.flights.remove(&id) {
            self.flight_bytes -= bytes;
        }
        match self.lanes.get_mut(&partition) {
            Some(lane) if lane.flight == Some(id) => {
                lane.flight = None;
                true
            }
            _ => false,
        }
    }

    /// Forgets `partition` (revoked, or assigned afresh): its queue is dropped and the result of
    /// its delivery in flight will be.
    pub fn revoke(&mut self, partition: i32) {
        if let Some(lane) = self.lanes.remove(&partition) {
            self.queued_bytes -= lane.bytes();
        }
        self.holding.retain(|p| *p != partition);
    }

    /// Whether more bytes wait than allowed: no new record is read until some are delivered.
    pub fn is_full(&self) -> bool {
        self.queued_bytes > self.max_queued_bytes
    }

    /// Deliveries in flight.
    pub fn flying(&self) -> usize {
        self.flights.len()
    }

    /// Bytes waiting in the queues.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes every item `partition` has ready.
    fn drain(lanes: &mut Lanes<&'static str>, partition: i32) -> Vec<&'static str> {
        std::iter::from_fn(|| lanes.next(partition)).collect()
    }

    #[test]
    fn a_partition_waits_for_its_delivery_and_keeps_its_order() {
        let mut lanes = Lanes::new(4, u64::MAX, 1_000);
        assert!(!lanes.is_busy(0));
        let flight = lanes.start(0, 10);
        assert!(lanes.is_busy(0));
        lanes.queue(0, "b", 10);
        lanes.queue(0, "c", 10);
        assert_eq!(lanes.next(0), None, "nothing passes the file in flight");
        assert!(!lanes.is_busy(1), "other partitions go on");
        assert!(lanes.land(0, flight));
        assert!(!lanes.is_busy(0));
        assert_eq!(lanes.next(0), Some("b"));
        let second = lanes.start(0, 10);
        assert_eq!(lanes.next(0), None);
        assert!(lanes.land(0, second));
        assert_eq!(drain(&mut lanes, 0), ["c"]);
        assert_eq!(lanes.queued_bytes(), 0);
    }

    #[test]
    fn at_most_concurrency_deliveries_fly_and_holders_take_turns() {
        let mut lanes = Lanes::new(2, u64::MAX, 1_000);
        let a = lanes.start(0, 10);
        let _b = lanes.start(1, 10);
        assert!(!lanes.has_slot());
        assert_eq!(lanes.flying(), 2);
        lanes.hold(2, "file of 2", 5);
        lanes.queue(2, "after it", 5);
        lanes.hold(3, "file of 3", 5);
        assert!(lanes.is_busy(2) && lanes.is_busy(3));
        assert_eq!(lanes.next(2), None, "holding: waits for a slot");
        assert_eq!(lanes.next_holding(), None, "no slot yet");
        assert!(lanes.land(0, a));
        assert_eq!(lanes.next_holding(), Some(2), "the first to hold gets the slot");
        assert_eq!(lanes.next(2), Some("file of 2"), "its held file comes first");
        let _c = lanes.start(2, 10);
        assert_eq!(lanes.next_holding(), None, "slots are full again");
        assert_eq!(lanes.next(2), None);
        assert_eq!(lanes.queued_bytes(), 10);
    }

    #[test]
    fn a_delivery_starts_only_while_the_files_in_flight_are_under_their_byte_bound() {
        let mut lanes: Lanes<&'static str> = Lanes::new(8, 100, 1_000);
        let big = lanes.start(0, 500);
        assert!(!lanes.has_slot(), "one file over the bound flies alone");
        assert!(lanes.land(0, big));
        assert!(lanes.has_slot(), "with nothing in flight any file may start");
        let a = lanes.start(0, 60);
        assert!(lanes.has_slot(), "60 of 100 bytes fly");
        let b = lanes.start(1, 40);
        assert!(!lanes.has_slot(), "100 of 100 bytes fly");
        assert_eq!(lanes.flying(), 2);
        assert!(lanes.land(1, b));
        assert!(lanes.has_slot());
        lanes.revoke(0);
        assert!(!lanes.land(0, a), "a revoked partition's result is dropped");
        assert_eq!(lanes.flying(), 0, "and its bytes no longer count");
        for partition in 0..8 {
            assert!(lanes.has_slot(), "{partition} small files fly");
            let _ = lanes.start(partition, 1);
        }
        assert!(!lanes.has_slot(), "small files: concurrency is the bound");
        assert_eq!(lanes.flying(), 8);
    }

    #[test]
    fn one_slot_means_one_delivery_at_a_time() {
        let mut lanes = Lanes::new(0, u64::MAX, 1_000);
        let a = lanes.start(0, 10);
        assert!(!lanes.has_slot(), "a concurrency of 0 is taken as 1");
        lanes.hold(1, "f", 1);
        assert!(lanes.land(0, a));
        assert_eq!(lanes.next_holding(), Some(1));
        assert_eq!(lanes.next(1), Some("f"));
    }

    #[test]
    fn reading_stops_while_more_bytes_than_allowed_wait() {
        let mut lanes = Lanes::new(1, u64::MAX, 100);
        let flight = lanes.start(0, 10);
        lanes.queue(0, "a", 60);
        assert!(!lanes.is_full());
        lanes.queue(0, "b", 40);
        assert!(!lanes.is_full(), "at the bound is not over it");
        lanes.queue(0, "c", 1);
        assert!(lanes.is_full());
        assert!(lanes.land(0, flight));
        assert_eq!(lanes.next(0), Some("a"));
        assert!(!lanes.is_full());
        assert_eq!(lanes.queued_bytes(), 41);
    }

    #[test]
    fn a_revoked_partition_drops_its_queue_and_its_result() {
        let mut lanes = Lanes::new(1, u64::MAX, 100);
        let old = lanes.start(0, 10);
        lanes.queue(0, "a", 60);
        lanes.hold(1, "held", 50);
        assert!(lanes.is_full());
        lanes.revoke(0);
        lanes.revoke(1);
        assert_eq!(lanes.queued_bytes(), 0);
        assert!(!lanes.is_busy(0) && !lanes.is_busy(1));
        assert!(!lanes.has_slot(), "the revoked delivery still runs");
        // Assigned again, the partition starts afresh before the old delivery lands.
        lanes.queue(0, "again", 1);
        assert_eq!(lanes.next(0), Some("again"));
        assert!(!lanes.land(0, old), "the old result is dropped");
        assert!(lanes.has_slot());
        assert_eq!(lanes.next_holding(), None, "a revoked holder does not come back");
        let new = lanes.start(0, 10);
        assert!(lanes.land(0, new));
    }
}
