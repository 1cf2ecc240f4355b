//! The archive bucket: listing a batch's start and creating objects without ever overwriting,
//! each retried with backoff until it succeeds, shutdown, or the partition is lost.

use std::sync::Arc;
use std::time::Duration;

use dwsync_retry::Backoff;
use dwsync_s3::Location;
use dwsync_s3::create_only::{Create, CreateOnly, Object, PartSizes};
use dwsync_s3::error::StoreError;
use tokio_util::sync::CancellationToken;

use crate::config::{ArchiveConfig, ArchiveStore};
use dwsync_archive::key::batch_start_prefix;

/// Longest wait for a connection to the S3 endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest single S3 request.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a step was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    /// Shutdown began.
    Shutdown,
    /// The caller said to stop (its partition was lost).
    Abandoned,
}

/// The archive bucket with its own client.
#[derive(Debug, Clone)]
pub struct Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    conditional: bool,
    parts: PartSizes,
    backoff: Backoff,
}

impl Store {
    /// A store for `cfg`'s bucket, retrying with `archive`'s backoff (no network access yet).
    pub fn new(cfg: &ArchiveStore, archive: &ArchiveConfig) -> Self {
        let location =
            Location { region: &cfg.region, endpoint: cfg.endpoint.as_deref(), force_path_style: cfg.force_path_style };
        let credentials = dwsync_s3::credentials::operator_credentials(
            &cfg.access_key_id,
            cfg.secret_access_key.expose(),
            &cfg.region,
            "dwsync-archive",
        );
        // The retry loops here are the only retry policy, so every failure is logged and counted.
        let timeouts = (CONNECT_TIMEOUT, ATTEMPT_TIMEOUT);
        let client = dwsync_s3::client_without_retries(location, credentials, dwsync_s3::https_client(), timeouts);
        Self {
            client,
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            conditional: cfg.conditional_writes,
            parts: PartSizes { threshold: cfg.multipart_threshold_bytes, part_bytes: cfg.part_bytes },
            backoff: Backoff::new(
                Duration::from_millis(archive.retry_initial_ms),
                Duration::from_millis(archive.retry_max_ms),
            ),
        }
    }

    /// The S3 client (its retry policy is the caller's).
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// The key prefix of the archive.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Every key of a batch of `partition` starting at `start` (one attempt).
    async fn list_once(&self, partition: i32, start: i64) -> Result<Vec<String>, StoreError> {
        let prefix = batch_start_prefix(&self.prefix, partition, start);
        let listed = dwsync_s3::list::list_prefix(&self.client, &self.bucket, &prefix).await?;
        Ok(listed.into_iter().map(|l| l.key).collect())
    }

    /// [`list_once`](Self::list_once) retried until it succeeds or shutdown.
    pub async fn list(&self, partition: i32, start: i64, shutdown: &CancellationToken) -> Result<Vec<String>, GaveUp> {
        let on_failure = |error: &StoreError, attempt: u32, delay: Duration| {
            tracing::warn!(%error, attempt = attempt + 1, retry_in_ms = delay.as_millis() as u64, partition, start, "Listing the archive failed; retrying.");
        };
        dwsync_retry::retry_until_shutdown(&self.backoff, shutdown, on_failure, || self.list_once(partition, start))
            .await
            .ok_or(GaveUp::Shutdown)
    }

    /// Creates `object` unless its key exists (an existing object is never rewritten), retrying
    /// every failure with backoff until it succeeds, shutdown, or `abandon()` says to stop.
    pub async fn create(
        self: Arc<Self>,
        object: Object,
        shutdown: CancellationToken,
        abandon: impl Fn() -> bool,
        on_retry: impl Fn(),
    ) -> Result<Create, GaveUp> {
        let writer = CreateOnly::new(&self.client, &self.bucket, self.conditional, self.parts);
        let mut attempt = 0u32;
        loop {
            let outcome = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Err(GaveUp::Shutdown),
                outcome = writer.create(&object) => outcome,
            };
            let error = match outcome {
                Ok(created) => return Ok(created),
                Err(error) => error,
            };
            if abandon() {
                return Err(GaveUp::Abandoned);
            }
            let delay = self.backoff.delay(attempt, &mut rand::rng());
            if error.is_transient() {
                tracing::warn!(%error, attempt = attempt + 1, retry_in_ms = delay.as_millis() as u64, "Writing an archive object failed; retrying.");
            } else {
                tracing::error!(error = %error.summary(), attempt = attempt + 1, retry_in_ms = delay.as_millis() as u64, "Writing an archive object is refused (credentials, bucket?); retrying, nothing is committed past it.");
            }
            on_retry();
            attempt = attempt.saturating_add(1);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Err(GaveUp::Shutdown),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}
