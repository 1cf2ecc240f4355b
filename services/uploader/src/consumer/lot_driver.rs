//! The lot side of the loop: parking files, reading a partition's lot, writing the oldest parked
//! files when their destination is due, and the failing-destination bookkeeping that decides
//! when it is. The lot's Kafka steps are retried until shutdown; the service is unready (its
//! [`LOT_COMPONENT`]) while they fail.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dwsync_handoff::CompleteFile;
use dwsync_telemetry::Health;
use tokio_util::sync::CancellationToken;

use super::reports::StatusReporter;
use super::{GO_ON, Going, LOT_COMPONENT};
use crate::config::LotConfig;
use crate::delivery::{Delivery, Outcome};
use crate::destinations::{Destinations, Route};
use crate::lot::{Entry, Lot, LotError, ParkedFiles, QueueKey};
use crate::metrics::Metrics;
use crate::retry::{Backoff, Retrier};

/// Most parked files written per tick, so new files are not held up long.
const LOT_FILES_PER_TICK: usize = 16;

/// Kafka steps (parking, loading the lot) are retried with this backoff until shutdown.
const KAFKA_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// Runs a Kafka step of the lot (`$step`, a future borrowing `$self.lot`) until it succeeds,
/// backing off between attempts: `Continue(value)`, or `Break` once shutdown began.
macro_rules! until_done {
    ($self:ident, $what:literal, $step:expr) => {{
        let mut retry = $self.retrier($what);
        loop {
            let outcome = tokio::select! {
                biased;
                () = $self.shutdown.cancelled() => break ControlFlow::Break(()),
                outcome = $step => outcome,
            };
            match outcome {
                Ok(value) => {
                    if retry.attempts() > 0 {
                        tracing::info!(attempts = retry.attempts(), "{} works again.", $what);
                        $self.health.set_ready(LOT_COMPONENT);
                    }
                    break ControlFlow::Continue(value);
                }
                Err(error) => {
                    $self.health.set_unready(LOT_COMPONENT, format!("{} fails: {error}", $what));
                    if retry.failed(&error).await.is_break() {
                        break ControlFlow::Break(());
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

/// What became of a parked file tried.
enum Tried {
    /// It left the lot: written, or dropped (its sync disabled or deleted, or broken).
    Left,
    /// It stays: its table is off, or its destination is unavailable or failing.
    Stays,
}

/// What writing parked files takes besides the lot: their routes, the delivery, and the status
/// board written files and failures are noted on.
pub(super) struct Unpark<'a> {
    /// Routes each file.
    pub(super) destinations: &'a mut Destinations,
    /// Writes it.
    pub(super) delivery: &'a Delivery,
    /// Notes the outcome.
    pub(super) status: &'a mut StatusReporter,
}

/// Drives the lot: which files are parked, which destinations fail, when parked files are
/// tried again.
pub(super) struct LotDriver {
    lot: Lot,
    /// How long a failing destination waits before its next try, by its failures in a row.
    backoff: Backoff,
    failing: HashMap<i64, Failing>,
    /// The service's health: the [`LOT_COMPONENT`] is unready while the lot fails.
    health: Health,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl LotDriver {
    /// Drives `lot`, backing failing destinations off as `cfg` says, until `shutdown`.
    pub(super) fn new(
        lot: Lot,
        cfg: &LotConfig,
        health: Health,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let backoff =
            Backoff::new(Duration::from_millis(cfg.retry_initial_ms), Duration::from_millis(cfg.retry_max_ms));
        Self { lot, backoff, failing: HashMap::new(), health, metrics, shutdown }
    }

    /// Reads `partition`'s lot, retrying until it succeeds; breaks on shutdown.
    pub(super) async fn load(&mut self, partition: i32) -> Going {
        until_done!(self, "Reading the lot", self.lot.load(partition))
    }

    /// Forgets a partition that was revoked.
    pub(super) fn forget(&mut self, partition: i32) {
        self.lot.forget(partition);
    }

    /// Why a file of `key` read from `partition` must be parked rather than written now, if it
    /// must: older files of its table wait in the lot, or its destination is failing.
    pub(super) fn holds_back(&self, partition: i32, key: QueueKey) -> Option<&'static str> {
        if self.lot.is_waiting(partition, key) {
            return Some("behind_parked");
        }
        self.is_failing(key.0).then_some("destination_failing")
    }

    /// Parks a file, retrying until Kafka has it; breaks on shutdown.
    pub(super) async fn park(&mut self, partition: i32, file: &CompleteFile, seq: u64, reason: &'static str) -> Going {
        until_done!(self, "Parking a file", self.lot.park(partition, file, seq))?;
        self.metrics.parked(reason);
        tracing::info!(
            workspace_id = file.meta.workspace_id,
            table = file.meta.table.name(),
            seq,
            reason,
            "Parked a file."
        );
        GO_ON
    }

    /// Marks `workspace_id`'s destination failing with `message`, backing off further (the
    /// caller notes the failure on the status board).
    pub(super) fn fail(&mut self, workspace_id: i64, message: &str) {
        let failures = self.failing.get(&workspace_id).map_or(0, |f| f.failures.saturating_add(1));
        let delay = self.backoff.ceiling(failures);
        self.metrics.destination_failed();
        let _ = self.failing.insert(workspace_id, Failing { failures, next_try: Instant::now() + delay });
        tracing::warn!(workspace_id, retry_in_ms = delay.as_millis() as u64, error = %message, "Destination failing; its files are parked.");
    }

    /// Marks `workspace_id`'s destination working again.
    pub(super) fn recovered(&mut self, workspace_id: i64) {
        if self.failing.remove(&workspace_id).is_some() {
            tracing::info!(workspace_id, "Destination works again.");
        }
    }

    /// Each workspace's files waiting in the lot, those of tables `destinations` has turned off
    /// counted as paused.
    pub(super) fn waiting(&self, destinations: &mut Destinations) -> HashMap<i64, ParkedFiles> {
        self.lot.summary(|(ws, table)| matches!(destinations.route(ws, table, u64::MAX), Route::Park(_)))
    }

    /// Writes the oldest parked files whose table is on and whose destination is due; drops
    /// those of disabled or deleted syncs. Breaks on shutdown.
    pub(super) async fn drain(&mut self, mut with: Unpark<'_>) -> Going {
        let mut budget = LOT_FILES_PER_TICK;
        let mut blocked: Vec<QueueKey> = Vec::new();
        while budget > 0 {
            let heads = self.lot.heads();
            let next = heads.into_iter().find(|(_, key, _)| !blocked.contains(key));
            let Some((partition, key, entry)) = next else { break };
            match self.try_parked(partition, key, &entry, &mut with).await? {
                Tried::Left => budget -= 1,
                Tried::Stays => blocked.push(key),
            }
        }
        GO_ON
    }

    /// Tries one parked file; breaks on shutdown.
    async fn try_parked(
        &mut self,
        partition: i32,
        key: QueueKey,
        entry: &Entry,
        with: &mut Unpark<'_>,
    ) -> ControlFlow<(), Tried> {
        let Unpark { destinations, delivery, status } = with;
        let (workspace_id, table) = key;
        let dest = match destinations.route(workspace_id, table, entry.seq) {
            Route::Deliver(dest) => dest,
            Route::Park(_) => return ControlFlow::Continue(Tried::Stays),
            Route::Unavailable(message) => {
                status.failed(workspace_id, message);
                return ControlFlow::Continue(Tried::Stays);
            }
            Route::Skip(reason) => {
                // Disabled or deleted sync, or a file the table's (new) baseline holds: not kept.
                self.metrics.skipped(reason);
                return self.leave(partition, key, entry.seq).await;
            }
        };
        if self.is_failing(workspace_id) {
            return ControlFlow::Continue(Tried::Stays);
        }
        let fetched = self.lot.fetch(partition, entry).await;
        match &fetched {
            Err(error @ LotError::Kafka(_) | error @ LotError::Timeout { .. }) => {
                self.health.set_unready(LOT_COMPONENT, format!("reading a parked file fails: {error}"));
            }
            _ => self.health.set_ready(LOT_COMPONENT),
        }
        let file = match fetched {
            Ok(file) => file,
            Err(LotError::Broken { seq, reason }) => {
                self.metrics.bad_record("lot_broken");
                tracing::error!(workspace_id, seq, reason, "A parked file cannot be read back; dropping it.");
                return self.leave(partition, key, seq).await;
            }
            Err(error) => {
                tracing::warn!(%error, "Reading a parked file failed; trying again later.");
                return ControlFlow::Continue(Tried::Stays);
            }
        };
        match delivery.deliver(&dest, &file, entry.seq).await {
            Outcome::Written(_) => {
                self.recovered(workspace_id);
                status.written(&dest, &file, entry.seq);
                self.metrics.unparked();
                self.leave(partition, key, entry.seq).await
            }
            Outcome::Failed(error) => {
                let message = error.summary();
                self.fail(workspace_id, &message);
                status.failed(workspace_id, message);
                ControlFlow::Continue(Tried::Stays)
            }
            Outcome::Refused => ControlFlow::Continue(Tried::Stays),
            Outcome::Shutdown => ControlFlow::Break(()),
        }
    }

    /// Marks a parked file done, retrying until Kafka has the marker: it left the lot. Breaks on
    /// shutdown.
    async fn leave(&mut self, partition: i32, key: QueueKey, seq: u64) -> ControlFlow<(), Tried> {
        until_done!(self, "Marking a parked file done", self.lot.done(partition, key, seq))?;
        ControlFlow::Continue(Tried::Left)
    }

    /// Whether `workspace_id`'s destination is failing and not yet due for another try.
    fn is_failing(&self, workspace_id: i64) -> bool {
        self.failing.get(&workspace_id).is_some_and(|f| f.next_try > Instant::now())
    }

    /// A retrier of a Kafka step, until shutdown.
    fn retrier(&self, what: &'static str) -> Retrier {
        Retrier::new(what, Backoff::new(KAFKA_BACKOFF.0, KAFKA_BACKOFF.1), &self.shutdown)
    }
}
