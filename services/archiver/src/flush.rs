//! Writing one batch: encode an object per part (on a blocking thread), create them all in the
//! archive (a few at once, each retried until it is there), and only then commit the batch's end.

use std::sync::Arc;

use dwsync_format::WriteError;
use dwsync_s3::create_only::Create;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::batch::Batch;
use crate::file::ArchivedFile;
use crate::metrics::Metrics;
use crate::store::{GaveUp, Store};
use dwsync_archive::BatchRange;
use dwsync_archive::write::{self, Encoded, FileRows};

/// How writing a batch ended.
#[derive(Debug)]
pub enum Flushed {
    /// Every object of the batch is in the archive (created now or before).
    Written {
        /// Objects created now.
        created: usize,
        /// Objects that were already there.
        existing: usize,
        /// Rows in the batch's objects.
        rows: u64,
    },
    /// Given up before every object was written: nothing may be committed.
    GaveUp(GaveUp),
}

/// Why a batch could not be written at all.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Encoding an object failed (never expected: the rows were decoded with the contract schema).
    #[error("encoding an archive object: {0}")]
    Encode(#[from] WriteError),
    /// The encoding thread failed.
    #[error("the encoding thread failed: {0}")]
    Join(String),
}

/// What a batch's writes need.
#[derive(Debug, Clone)]
pub struct Writer {
    /// The archive.
    pub store: Arc<Store>,
    /// The handoff topic (recorded in each object's footer).
    pub topic: String,
    /// Objects written at once.
    pub concurrency: usize,
    /// The archiver's metrics.
    pub metrics: Arc<Metrics>,
    /// Shutdown.
    pub shutdown: CancellationToken,
}

impl Writer {
    /// Encodes `batch` (the records `range`) and writes its objects; `lost()` says whether the
    /// partition was lost meanwhile (then writing stops at the next failure).
    pub async fn flush(
        &self,
        range: BatchRange,
        batch: Batch,
        lost: impl Fn() -> bool + Clone + Send + 'static,
    ) -> Result<Flushed, FlushError> {
        let (topic, prefix) = (self.topic.clone(), self.store.prefix().to_owned());
        let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<Encoded>, WriteError> {
            let mut objects = Vec::new();
            for (part, files) in batch.into_parts() {
                let rows: Vec<FileRows<'_>> = files.iter().map(ArchivedFile::rows_for_archive).collect();
                objects.extend(write::encode(&topic, &prefix, range, part, &rows)?);
            }
            Ok(objects)
        })
        .await
        .map_err(|e| FlushError::Join(e.to_string()))??;
        let rows = encoded.iter().map(|e| e.object.rows).sum();
        let (mut created, mut existing) = (0, 0);
        let mut pending = encoded.into_iter();
        let mut writes = JoinSet::new();
        loop {
            while writes.len() < self.concurrency.max(1) {
                let Some(Encoded { part, object }) = pending.next() else { break };
                let (store, shutdown, lost, metrics) =
                    (Arc::clone(&self.store), self.shutdown.clone(), lost.clone(), Arc::clone(&self.metrics));
                let (rows, key) = (object.rows, object.key.clone());
                let retry_metrics = Arc::clone(&metrics);
                writes.spawn(async move {
                    let outcome = store.create(object, shutdown, lost, move || retry_metrics.retry()).await;
                    match outcome {
                        Ok(Create::Created) => {
                            metrics.written(part.table.name(), rows);
                            tracing::debug!(key, rows, "Created an archive object.");
                        }
                        Ok(Create::Exists) => {
                            metrics.existing(part.table.name());
                            tracing::info!(
                                key,
                                "An archive object was already written (before a restart); kept as it is."
                            );
                        }
                        Err(_) => {}
                    }
                    outcome
                });
            }
            let Some(joined) = writes.join_next().await else { break };
            match joined {
                Ok(Ok(Create::Created)) => created += 1,
                Ok(Ok(Create::Exists)) => existing += 1,
                Ok(Err(gave_up)) => {
                    writes.abort_all();
                    return Ok(Flushed::GaveUp(gave_up));
                }
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => return Err(FlushError::Join(error.to_string())),
            }
        }
        Ok(Flushed::Written { created, existing, rows })
    }
}
