//! One complete file's way into its workspace's bucket: route it by workspace, write its sync's
//! `cio-validate` first, then create the data object, retrying S3 failures until they succeed
//! or the service stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dwsync_handoff::{CompleteFile, data_key};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::UploadConfig;
use crate::destinations::{DestinationClient, Destinations, Route};
use crate::metrics::Metrics;
use crate::retry::{Backoff, retry_until_shutdown};
use crate::s3_sink::{Object, PartSizes, S3Error, Sink, Written};
use crate::syncs::Syncs;

/// What became of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// It is in its bucket (created now, found from an earlier attempt, or kept as a conflict).
    Written(Written),
    /// It was not written, for this reason (`no_destination`, `table_disabled`).
    Skipped(&'static str),
}

/// Writes complete files to their workspaces' destinations.
#[derive(Debug)]
pub struct Delivery {
    destinations: Destinations,
    syncs: Syncs,
    parts: PartSizes,
    backoff: Backoff,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl Delivery {
    /// Delivers to `destinations` with `upload`'s part sizes and retry delays until `shutdown`.
    pub fn new(
        destinations: Destinations,
        upload: &UploadConfig,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            destinations,
            syncs: Syncs::new(),
            parts: PartSizes { threshold: upload.multipart_threshold_bytes, part_bytes: upload.part_bytes },
            backoff: Backoff::new(
                Duration::from_millis(upload.retry_initial_ms),
                Duration::from_millis(upload.retry_max_ms),
            ),
            metrics,
            shutdown,
        }
    }

    /// Delivers `file`; `None` when shutdown began first (the file must not be committed).
    pub async fn deliver(&mut self, file: CompleteFile) -> Option<Delivered> {
        let meta = &file.meta;
        let (workspace_id, table) = (meta.workspace_id, meta.table);
        let route = self.destinations.route(workspace_id, table);
        let dest = match route {
            Route::Deliver(dest) => dest,
            skipped => {
                let reason = skipped.skip_reason().unwrap_or("unknown");
                self.metrics.skipped(reason);
                tracing::warn!(
                    workspace_id,
                    table = table.name(),
                    file_id = %meta.file_id,
                    first_offset = file.first_offset,
                    reason,
                    "Skipping a file: no destination exports it."
                );
                return Some(Delivered::Skipped(reason));
            }
        };
        let Ok(seq) = u64::try_from(file.first_offset) else {
            // Kafka offsets are never negative; a negative one means a broken record.
            self.metrics.skipped("invalid_offset");
            tracing::error!(workspace_id, first_offset = file.first_offset, "Skipping a file with a negative offset.");
            return Some(Delivered::Skipped("invalid_offset"));
        };
        let key = data_key(&dest.prefix, table, meta.kind, workspace_id, seq);
        let span = tracing::info_span!(
            "upload",
            workspace_id,
            table = table.name(),
            seq,
            key = %key,
            bytes = file.bytes.len(),
            bucket = %dest.bucket,
        );
        self.write(&dest, file, key).instrument(span).await.map(Delivered::Written)
    }

    async fn write(&mut self, dest: &DestinationClient, file: CompleteFile, key: String) -> Option<Written> {
        let sink = Sink::new(dest, self.parts);
        let sync = (file.meta.workspace_id, file.meta.window_closed_at_ms);
        if !self.syncs.is_validated(sync.0, sync.1) {
            self.retrying("cio-validate", || sink.write_validate()).await?;
            self.syncs.mark_validated(sync.0, sync.1);
            tracing::debug!(window_closed_at_ms = sync.1, "Wrote cio-validate for a new sync.");
        }
        let table = file.meta.table.name();
        let object =
            Object { key, body: Bytes::from(file.bytes), sha256_hex: file.sha256_hex, rows: file.meta.row_count };
        let started = Instant::now();
        let written = self.retrying("data file", || sink.write(&object)).await?;
        let took = started.elapsed();
        match &written {
            Written::Created => {
                self.metrics.uploaded(table, object.body.len(), took);
                tracing::info!(took_ms = took.as_millis() as u64, "Uploaded a file.");
            }
            Written::AlreadyDelivered => {
                self.metrics.already_delivered(took);
                tracing::info!("The file was already delivered (a replay); moving on.");
            }
            Written::Conflict { existing_sha256, conflict_key, preserved } => {
                self.metrics.conflict(took);
                tracing::error!(
                    sha256 = %object.sha256_hex,
                    existing_sha256 = existing_sha256.as_deref().unwrap_or("none"),
                    conflict_key = %conflict_key,
                    preserved,
                    "Another object is at this file's key; it was left alone and the file kept under the conflict key."
                );
            }
        }
        Some(written)
    }

    /// Runs one S3 step until it succeeds; `None` on shutdown.
    async fn retrying<T, Fut>(&self, what: &'static str, op: impl FnMut() -> Fut) -> Option<T>
    where
        Fut: Future<Output = Result<T, S3Error>>,
    {
        let metrics = &self.metrics;
        retry_until_shutdown(
            &self.backoff,
            &self.shutdown,
            |error: &S3Error, attempt, delay| {
                metrics.retry();
                tracing::warn!(
                    %error,
                    attempt = attempt + 1,
                    retry_in_ms = delay.as_millis() as u64,
                    "Writing the {what} failed; retrying."
                );
            },
            op,
        )
        .await
    }
}
