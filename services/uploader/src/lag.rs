//! The consumer lag: the uploader group's committed offsets against the end of the handoff
//! topic, sampled by [`dwsync_telemetry::group_lag`] on a thread of its own from the service's
//! start, whatever the consumer loop does (so a stalled or restarting loop shows a growing lag),
//! into `dwsync_uploader_consumer_lag_records` (by partition) and
//! `dwsync_uploader_time_since_commit_seconds`; the service is unready while records have waited
//! longer than `handoff.stall_after_ms` without a commit.

use std::sync::PoisonError;

use dwsync_telemetry::Service;
use dwsync_telemetry::group_lag::{GroupLagError, GroupLagSettings};
use rdkafka::consumer::StreamConsumer;

use crate::config::Config;
use crate::metrics::Lags;
use crate::rebalance::HandoffContext;

/// The handoff consumer, as the consumer loop owns it.
pub type HandoffConsumer = StreamConsumer<HandoffContext>;

/// What the sampler measures: the handoff group on the handoff topic.
pub fn settings(cfg: &Config) -> GroupLagSettings {
    GroupLagSettings {
        group_id: cfg.handoff.group_id.clone(),
        topics: vec![cfg.handoff.topic.clone()],
        interval: cfg.handoff.lag_interval(),
        stall_after: cfg.handoff.stall_after(),
        timeout: cfg.kafka.metadata_timeout(),
    }
}

/// Starts the sampler for the service's whole life; each sample replaces what `lags` holds
/// (read by the gauges).
pub fn spawn(service: &mut Service, cfg: &Config, lags: Lags) -> Result<(), GroupLagError> {
    service.spawn_group_lag(&cfg.kafka, settings(cfg), move |lag| {
        *lags.lock().unwrap_or_else(PoisonError::into_inner) = lag.clone();
    })
}
