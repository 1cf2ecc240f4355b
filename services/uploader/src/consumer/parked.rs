//! The lot side of the consumer loop: parking files, reading a partition's lot, writing the
//! oldest parked files when their destination is due, and the failing-destination bookkeeping
//! that decides when it is.

use std::time::Instant;

use dwsync_handoff::CompleteFile;

use super::{Failing, GO_ON, Going, LOT_FILES_PER_TICK, Pipeline, STOP};
use crate::delivery::Outcome;
use crate::destinations::Route;
use crate::lot::{Entry, LotError, QueueKey};

impl Pipeline {
    /// Reads `partition`'s lot, retrying until it succeeds; breaks on shutdown.
    pub(super) async fn load_lot(&mut self, partition: i32) -> Going {
        going(until_done!(self, "Reading the lot", self.lot.load(partition)))
    }

    /// Parks a file, retrying until Kafka has it; breaks on shutdown.
    pub(super) async fn park(&mut self, partition: i32, file: &CompleteFile, seq: u64, reason: &'static str) -> Going {
        let parked = going(until_done!(self, "Parking a file", self.lot.park(partition, file, seq)));
        if parked.is_continue() {
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

    /// Marks `workspace_id`'s destination failing with `message`, backing off further.
    pub(super) fn fail(&mut self, workspace_id: i64, message: String) {
        let failures = self.failing.get(&workspace_id).map_or(0, |f| f.failures.saturating_add(1));
        let delay = self.lot_backoff.ceiling(failures);
        self.metrics.destination_failed();
        let _ = self.failing.insert(workspace_id, Failing { failures, next_try: Instant::now() + delay });
        tracing::warn!(workspace_id, retry_in_ms = delay.as_millis() as u64, error = %message, "Destination failing; its files are parked.");
        self.board.failed(workspace_id, message);
    }

    /// Marks `workspace_id`'s destination working again.
    pub(super) fn recovered(&mut self, workspace_id: i64) {
        if self.failing.remove(&workspace_id).is_some() {
            tracing::info!(workspace_id, "Destination works again.");
        }
    }

    /// Writes the oldest parked files whose table is on and whose destination is due; drops
    /// those of disabled or deleted syncs. Breaks on shutdown.
    pub(super) async fn drain_lot(&mut self) -> Going {
        let mut budget = LOT_FILES_PER_TICK;
        let mut blocked: Vec<QueueKey> = Vec::new();
        while budget > 0 {
            let heads = self.lot.heads();
            let next = heads.into_iter().find(|(_, key, _)| !blocked.contains(key));
            let Some((partition, key, entry)) = next else { break };
            match self.try_parked(partition, key, &entry).await {
                Some(true) => budget -= 1,
                Some(false) => blocked.push(key),
                None => return STOP,
            }
        }
        GO_ON
    }

    /// Tries one parked file: `Some(true)` when it left the lot, `Some(false)` when it must
    /// wait, `None` on shutdown.
    pub(super) async fn try_parked(&mut self, partition: i32, key: QueueKey, entry: &Entry) -> Option<bool> {
        let (workspace_id, table) = key;
        let dest = match self.destinations.route(workspace_id, table, entry.seq) {
            Route::Deliver(dest) => dest,
            Route::Park(_) => return Some(false),
            Route::Unavailable(message) => {
                self.board.failed(workspace_id, message);
                return Some(false);
            }
            Route::Skip(reason) => {
                // Disabled or deleted sync, or a file the table's (new) baseline holds: not kept.
                self.metrics.skipped(reason);
                return self.leave_lot(partition, key, entry.seq).await.is_continue().then_some(true);
            }
        };
        if self.failing.get(&workspace_id).is_some_and(|f| f.next_try > Instant::now()) {
            return Some(false);
        }
        let fetched = self.lot.fetch(partition, entry).await;
        match &fetched {
            Err(error @ LotError::Kafka(_) | error @ LotError::Timeout { .. }) => {
                self.reporting
                    .health
                    .set_unready(super::LOT_COMPONENT, format!("reading a parked file fails: {error}"));
            }
            _ => self.reporting.health.set_ready(super::LOT_COMPONENT),
        }
        let file = match fetched {
            Ok(file) => file,
            Err(LotError::Broken { seq, reason }) => {
                self.metrics.bad_record("lot_broken");
                tracing::error!(workspace_id, seq, reason, "A parked file cannot be read back; dropping it.");
                return self.leave_lot(partition, key, seq).await.is_continue().then_some(true);
            }
            Err(error) => {
                tracing::warn!(%error, "Reading a parked file failed; trying again later.");
                return Some(false);
            }
        };
        match self.delivery.deliver(&dest, &file, entry.seq).await {
            Outcome::Written(_) => {
                self.written(&dest, &file, entry.seq);
                self.metrics.unparked();
                self.leave_lot(partition, key, entry.seq).await.is_continue().then_some(true)
            }
            Outcome::Failed(error) => {
                self.fail(workspace_id, error.summary());
                Some(false)
            }
            Outcome::Refused => Some(false),
            Outcome::Shutdown => None,
        }
    }

    /// Marks a parked file done, retrying until Kafka has the marker; breaks on shutdown.
    pub(super) async fn leave_lot(&mut self, partition: i32, key: QueueKey, seq: u64) -> Going {
        going(until_done!(self, "Marking a parked file done", self.lot.done(partition, key, seq)))
    }
}

/// A step retried until done: it went on with `Some`, shutdown came first with `None`.
fn going<T>(done: Option<T>) -> Going {
    if done.is_some() { GO_ON } else { STOP }
}
