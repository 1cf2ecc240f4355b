//! Archive purges: an admin asks control to remove one workspace's archived data (a workspace
//! leaving the platform); control writes a cut record on the workspace's handoff partition and a
//! [`PurgeRequest`] on the purge topic. The backfill follows that topic and, per request:
//!
//! 1. waits until the archive covers the cut (the initial syncs' rule, [`plan::coverage`] and
//!    [`gap`]) **and** the archiver's group has committed past every batch starting below it:
//!    then each of those batches is whole and the archiver never lists it again (it lists only
//!    at its committed offset), so an object deleted here is never created again;
//! 2. purges every object of those batches ([`Purger::object`]): rewritten without the
//!    workspace's row group, deleted when it held nothing else, untouched when it does not hold
//!    it (so a run after a crash, or for a newer request, only does what is left);
//! 3. reports `queued` (with why it waits), `running` with the counts so far, `done` with the
//!    counts and when it finished, or `failed` with the reason (tried again after capped
//!    exponential backoff) on the purge-status topic, which the backfill alone writes.
//!
//! Purges run one at a time, beside the initial syncs, in a task of their own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dwsync_archive::BatchRange;
use dwsync_archive::purge::{Progress, Purger};
use dwsync_config::KafkaConfig;
use dwsync_retry::Backoff;
use dwsync_sync_config::{KafkaStore, PurgeRequest, PurgeState, PurgeStatus, WorkspaceId};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::gap::{Gap, Handoff};
use crate::metrics::Metrics;
use crate::plan::{self, Coverage};
use crate::report::{PROGRESS_INTERVAL, now_ms};

/// Longest wait for the archiver group's committed offset.
const OFFSET_TIMEOUT: Duration = Duration::from_secs(10);

/// What the purge task needs.
#[derive(Debug)]
pub struct Purges {
    /// The requests (control writes them).
    pub requests: KafkaStore<PurgeRequest>,
    /// The reports (the backfill writes them).
    pub reports: KafkaStore<PurgeStatus>,
    /// Rewrites and deletes archive objects.
    pub purger: Purger,
    /// The handoff topic and the archiver's consumer group.
    pub handoff: (Handoff, String),
    /// The backfill's metrics.
    pub metrics: Arc<Metrics>,
    /// How often requests are looked at.
    pub poll: Duration,
    /// Between attempts of a failed purge.
    pub backoff: Backoff,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    /// Every object is purged.
    Done,
    /// The archive (or the archiver's commit) is not past the cut yet.
    Waiting,
    /// Stopped before the end: a newer request replaced it, or shutdown.
    Stopped,
}

impl Purges {
    /// Runs the purges asked for until `shutdown`.
    pub async fn run(self, shutdown: &CancellationToken) {
        let mut tick = tokio::time::interval(self.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Failed purges waiting out their backoff: (epoch, attempts, not before).
        let mut retry_at: HashMap<i64, (u64, u32, Instant)> = HashMap::new();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut requests = self.requests.cached_all();
            requests.sort_by_key(|r| (r.requested_at_ms, r.workspace_id));
            for request in requests {
                let Some(id) = WorkspaceId::new(request.workspace_id) else { continue };
                let report = self.reports.cached(id).filter(|r| r.is_for(&request));
                if report.as_ref().is_some_and(|r| r.state == PurgeState::Done) {
                    continue;
                }
                if retry_at
                    .get(&request.workspace_id)
                    .is_some_and(|(e, _, at)| *e == request.epoch && *at > Instant::now())
                {
                    continue;
                }
                let span = tracing::info_span!(
                    "purge",
                    workspace_id = request.workspace_id,
                    epoch = request.epoch,
                    partition = request.partition,
                    cut = request.cut
                );
                let attempt = self.attempt(&request, report.clone(), shutdown).instrument(span.clone());
                let outcome = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return,
                    outcome = attempt => outcome,
                };
                match outcome {
                    Ok(ended) => {
                        if ended == Ended::Done {
                            self.metrics.purge("done");
                        }
                        let _ = retry_at.remove(&request.workspace_id);
                    }
                    Err(reason) => {
                        self.metrics.purge("failed");
                        let attempts = match &report.map(|r| r.state) {
                            Some(PurgeState::Failed { attempts, .. }) => attempts.saturating_add(1),
                            _ => 1,
                        };
                        let delay = self.backoff.delay(attempts.saturating_sub(1), &mut rand::rng());
                        span.in_scope(|| {
                            tracing::error!(%reason, attempts, retry_in_ms = delay.as_millis() as u64, "The archive purge failed; it will be tried again.");
                        });
                        let mut failed = self
                            .reports
                            .cached(id)
                            .filter(|r| r.is_for(&request))
                            .unwrap_or_else(|| PurgeStatus::queued(&request, now_ms()));
                        failed.state = PurgeState::Failed { reason, attempts };
                        if let Err(error) = self.report(failed).await {
                            tracing::warn!(%error, "Reporting a failed purge failed.");
                        }
                        let _ =
                            retry_at.insert(request.workspace_id, (request.epoch, attempts, Instant::now() + delay));
                    }
                }
            }
        }
    }

    /// One attempt at `request`, starting from its last report (`previous`, if for it).
    async fn attempt(
        &self,
        request: &PurgeRequest,
        previous: Option<PurgeStatus>,
        shutdown: &CancellationToken,
    ) -> Result<Ended, String> {
        let (partition, cut) = (request.partition, request.cut);
        let batches = self.purger.batches(partition).await.map_err(|e| e.to_string())?;
        let ranges: Vec<BatchRange> = batches.iter().map(|(range, _)| *range).collect();
        let mut status = previous.unwrap_or_else(|| PurgeStatus::queued(request, now_ms()));
        if let Some(waiting) = self.waiting_for(&ranges, partition, cut).await? {
            let queued = PurgeState::Queued { waiting_for: Some(waiting.clone()) };
            if status.state != queued {
                tracing::info!(waiting_for = %waiting, "The archive purge waits.");
                status.state = queued;
                self.report(status).await.map_err(|e| format!("reporting: {e}"))?;
            }
            return Ok(Ended::Waiting);
        }
        tracing::info!("Purging the workspace from the archive.");
        status.state = PurgeState::Running;
        status.finished_at_ms = None;
        self.report(status.clone()).await.map_err(|e| format!("reporting: {e}"))?;
        let mut reported = Instant::now();
        let mut progress = Progress::default();
        for (_, objects) in batches.iter().filter(|(range, _)| range.start < cut) {
            for object in objects {
                if shutdown.is_cancelled() {
                    return Ok(Ended::Stopped);
                }
                if !self.is_latest(request) {
                    tracing::info!("A newer purge request replaced this one.");
                    return Ok(Ended::Stopped);
                }
                let purged =
                    self.purger.object(object, request.workspace_id, &now_ms).await.map_err(|e| e.to_string())?;
                progress.add(purged);
                self.metrics.purged(purged);
                let changed = Progress { objects_read: 0, ..progress } != Progress::default();
                if changed && reported.elapsed() >= PROGRESS_INTERVAL {
                    self.report(counted(&status, progress)).await.map_err(|e| format!("reporting: {e}"))?;
                    reported = Instant::now();
                }
            }
        }
        let mut done = counted(&status, progress);
        done.state = PurgeState::Done;
        done.finished_at_ms = Some(now_ms());
        self.report(done.clone()).await.map_err(|e| format!("reporting: {e}"))?;
        tracing::info!(
            objects_read = progress.objects_read,
            objects_rewritten = done.objects_rewritten,
            objects_deleted = done.objects_deleted,
            rows_removed = done.rows_removed,
            "The workspace is purged from the archive."
        );
        Ok(Ended::Done)
    }

    /// Why the batches starting below `cut` cannot be purged yet, if so: the archive does not
    /// cover the cut, or the archiver has not committed past them.
    async fn waiting_for(&self, ranges: &[BatchRange], partition: i32, cut: i64) -> Result<Option<String>, String> {
        let (handoff, group) = &self.handoff;
        let mut coverage = plan::coverage(ranges, cut);
        if let Coverage::Behind(end) = coverage {
            let gap = handoff
                .between(partition, end.unwrap_or(0), cut)
                .await
                .map_err(|e| format!("reading the handoff topic: {e}"))?;
            if gap == Gap::Empty {
                coverage = Coverage::Covered;
            }
        }
        if let Coverage::Behind(end) = coverage {
            let end = end.map_or_else(|| "nothing archived yet".to_owned(), |end| format!("archived up to {end}"));
            return Ok(Some(format!("the archive to pass offset {cut} of handoff partition {partition} ({end})")));
        }
        let Some(needed) = ranges.iter().filter(|r| r.start < cut).map(|r| r.end).max() else { return Ok(None) };
        let committed = committed(&handoff.kafka, &handoff.topic, group, partition)
            .await?
            .and_then(|offset| handoff.generation.position(offset).ok());
        if committed.is_none_or(|c| c < needed) {
            let committed = committed.map_or_else(|| "none".to_owned(), |c| c.to_string());
            return Ok(Some(format!(
                "the archiver ({group}) to commit position {needed} of handoff partition {partition} (committed: {committed})"
            )));
        }
        Ok(None)
    }

    /// Whether `request` is still the workspace's latest.
    fn is_latest(&self, request: &PurgeRequest) -> bool {
        WorkspaceId::new(request.workspace_id)
            .and_then(|id| self.requests.cached(id))
            .is_none_or(|latest| latest.epoch == request.epoch && latest.cut == request.cut)
    }

    async fn report(&self, mut status: PurgeStatus) -> Result<(), dwsync_sync_config::StoreError> {
        status.updated_at_ms = now_ms();
        self.reports.write(&status).await
    }
}

/// `status` with the counts of this attempt added.
fn counted(status: &PurgeStatus, progress: Progress) -> PurgeStatus {
    let mut out = status.clone();
    out.objects_rewritten += progress.objects_rewritten;
    out.objects_deleted += progress.objects_deleted;
    out.rows_removed += progress.rows_removed;
    out
}

/// The offset `group` has committed on `topic`'s `partition`, if any.
async fn committed(kafka: &KafkaConfig, topic: &str, group: &str, partition: i32) -> Result<Option<i64>, String> {
    let consumer: BaseConsumer = kafka
        .client_config("backfill-purge")
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("a Kafka client: {e}"))?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut list = TopicPartitionList::new();
        list.add_partition(&topic, partition);
        let committed = consumer
            .committed_offsets(list, OFFSET_TIMEOUT)
            .map_err(|e| format!("the archiver's committed offset of {topic}/{partition}: {e}"))?;
        Ok(match committed.find_partition(&topic, partition).map(|e| e.offset()) {
            Some(Offset::Offset(offset)) => Some(offset),
            _ => None,
        })
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_across_attempts() {
        let request = PurgeRequest { workspace_id: 7, epoch: 1, partition: 0, cut: 10, requested_at_ms: 1 };
        let mut before = PurgeStatus::queued(&request, 2);
        before.objects_rewritten = 2;
        before.rows_removed = 5;
        let progress = Progress { objects_read: 4, objects_rewritten: 1, objects_deleted: 1, rows_removed: 3 };
        let after = counted(&before, progress);
        assert_eq!((after.objects_rewritten, after.objects_deleted, after.rows_removed), (3, 1, 8));
    }
}
