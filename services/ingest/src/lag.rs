//! The consumer lag: the ingest group's committed offsets against the end of the source topics,
//! sampled by [`dwsync_telemetry::group_lag`] on a thread of its own from the service's start,
//! whatever the loop does (so a stalled or restarting loop shows a growing lag), into
//! `dwsync_ingest_consumer_lag_records` and `dwsync_ingest_time_since_commit_seconds`; ingest is unready
//! while source records have waited longer than [`Config::stall_after`] without a commit.

use dwsync_telemetry::Service;
use dwsync_telemetry::group_lag::{GroupLagError, GroupLagSettings};

use crate::config::{Config, SourceTopic};
use crate::metrics;

/// What the sampler measures: the ingest group on the source topics.
pub fn settings(cfg: &Config, topics: &[SourceTopic]) -> GroupLagSettings {
    GroupLagSettings {
        group_id: cfg.ingest.group_id.clone(),
        topics: topics.iter().map(|t| t.topic.clone()).collect(),
        interval: cfg.lag_interval(),
        stall_after: cfg.stall_after(),
        timeout: cfg.kafka.metadata_timeout(),
    }
}

/// Starts the sampler for the service's whole life, publishing every sample to the gauges.
pub fn spawn(service: &mut Service, cfg: &Config, topics: &[SourceTopic]) -> Result<(), GroupLagError> {
    service.spawn_group_lag(&cfg.kafka, settings(cfg, topics), metrics::group_lag)
}
