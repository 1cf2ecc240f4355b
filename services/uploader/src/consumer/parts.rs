//! What the consumer loop is built from: [`Parts`], each built by [`start`](crate::start) and
//! handed to [`Pipeline::new`](super::Pipeline::new), which splits them among the loop's own.

use std::sync::Arc;
use std::time::Duration;

use dwsync_handoff::Generation;
use dwsync_sync_config::{KafkaStore, SyncStatus};
use dwsync_telemetry::Health;
use tokio_util::sync::CancellationToken;

use crate::config::{LotConfig, UploadConfig};
use crate::delivery::Delivery;
use crate::destinations::Destinations;
use crate::lag::HandoffConsumer;
use crate::lot::Lot;
use crate::metrics::Metrics;

/// What the loop reports on: the status topic and how often, and the service's health.
pub struct Reporting {
    /// The status topic, if statuses are reported.
    pub store: Option<KafkaStore<SyncStatus>>,
    /// How often.
    pub interval: Duration,
    /// The service's health: the [`LOT_COMPONENT`](super::LOT_COMPONENT) is unready while the lot fails.
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

/// What [`Pipeline::new`](super::Pipeline::new) builds the loop from, each part built by [`start`](crate::start).
pub struct Parts<'a> {
    /// The subscribed handoff consumer ([`subscribe`](super::subscribe)).
    pub consumer: Arc<HandoffConsumer>,
    /// What it reads.
    pub source: Source<'a>,
    /// Routes each file to its workspace's destination.
    pub destinations: Destinations,
    /// Writes the files.
    pub delivery: Delivery,
    /// How many writes may fly at once, and the bytes in flight and waiting.
    pub upload: &'a UploadConfig,
    /// Where files are parked.
    pub lot: Lot,
    /// How failing destinations back off.
    pub lot_config: &'a LotConfig,
    /// Where statuses and the lot's health are reported.
    pub reporting: Reporting,
    /// The service's metrics.
    pub metrics: Arc<Metrics>,
    /// Ends the loop.
    pub shutdown: CancellationToken,
}
