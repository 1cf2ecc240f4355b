//! One complete file's way into its workspace's bucket: write its sync's `cio-validate` first,
//! then create the data object, with a bounded number of attempts; the caller parks the file
//! when they are used up. One [`Delivery`] is shared by every delivery in flight.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dwsync_handoff::{CompleteFile, data_key};
use dwsync_retry::Attempted;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::UploadConfig;
use crate::destinations::DestinationClient;
use crate::metrics::Metrics;
use crate::retry::Backoff;
use crate::sink::{Object, PartSizes, Sink, StoreError, Written};
use crate::syncs::Syncs;

/// What became of an attempt to deliver a file.
#[derive(Debug)]
pub enum Outcome {
    /// It is in its bucket (created now, found from an earlier attempt, or kept as a conflict).
    Written(Written),
    /// Every attempt failed; the last error.
    Failed(StoreError),
    /// The destination belongs to another workspace: nothing was written (never expected).
    Refused,
    /// Shutdown began first: the file must not be committed.
    Shutdown,
}

/// Writes complete files to their workspaces' destinations, several at once.
#[derive(Debug)]
pub struct Delivery {
    syncs: Mutex<Syncs>,
    parts: PartSizes,
    backoff: Backoff,
    attempts: u32,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl Delivery {
    /// Delivers with `upload`'s part sizes, attempts and retry delays until `shutdown`.
    pub fn new(upload: &UploadConfig, metrics: Arc<Metrics>, shutdown: CancellationToken) -> Self {
        Self {
            syncs: Mutex::new(Syncs::new()),
            parts: PartSizes { threshold: upload.multipart_threshold_bytes, part_bytes: upload.part_bytes },
            backoff: Backoff::new(
                Duration::from_millis(upload.retry_initial_ms),
                Duration::from_millis(upload.retry_max_ms),
            ),
            attempts: upload.attempts.max(1),
            metrics,
            shutdown,
        }
    }

    /// Writes `file` (sequence number `seq`) to `dest`, which must be its workspace's.
    pub async fn deliver(&self, dest: &DestinationClient, file: &CompleteFile, seq: u64) -> Outcome {
        let meta = &file.meta;
        if dest.workspace_id != meta.workspace_id {
            // Routing looks destinations up by the file's workspace id only; this guard makes a
            // cross-tenant write impossible even if that ever broke.
            tracing::error!(
                file_workspace_id = meta.workspace_id,
                destination_workspace_id = dest.workspace_id,
                "Refusing to write a file to another workspace's destination."
            );
            return Outcome::Refused;
        }
        let key = data_key(&dest.prefix, meta.table, meta.kind, meta.workspace_id, seq);
        let span = tracing::info_span!(
            "upload",
            workspace_id = meta.workspace_id,
            table = meta.table.name(),
            seq,
            key = %key,
            bytes = file.bytes.len(),
            bucket = %dest.bucket,
        );
        self.write(dest, file, key).instrument(span).await
    }

    async fn write(&self, dest: &DestinationClient, file: &CompleteFile, key: String) -> Outcome {
        let sink = Sink::new(dest, self.parts);
        let sync = (file.meta.workspace_id, file.meta.window_closed_at_ms);
        // A workspace's files are delivered one at a time (they share a handoff partition), so
        // two deliveries racing here could only both write `cio-validate`, which is harmless.
        let validated = self.syncs().is_validated(sync.0, sync.1);
        if !validated {
            match self.attempting("cio-validate", || sink.write_validate()).await {
                Ok(()) => {}
                Err(outcome) => return outcome,
            }
            self.syncs().mark_validated(sync.0, sync.1);
            tracing::debug!(window_closed_at_ms = sync.1, "Wrote cio-validate for a new sync.");
        }
        let table = file.meta.table.name();
        let object = Object {
            key,
            body: Bytes::copy_from_slice(&file.bytes),
            sha256_hex: file.sha256_hex.clone(),
            rows: file.meta.row_count,
        };
        let started = Instant::now();
        let written = match self.attempting("data file", || sink.write(&object)).await {
            Ok(written) => written,
            Err(outcome) => return outcome,
        };
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
        Outcome::Written(written)
    }

    fn syncs(&self) -> MutexGuard<'_, Syncs> {
        // Every update is a single insert or removal, so a poisoned set is still whole.
        self.syncs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one write step up to the configured attempts (the one retry policy,
    /// `dwsync_retry::retry_attempts`); an error that retrying cannot fix (denied, no such
    /// bucket, bad request) ends at once.
    async fn attempting<T, Fut>(&self, what: &'static str, op: impl FnMut() -> Fut) -> Result<T, Outcome>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let on_retry = |error: &StoreError, attempt: u32, delay: Duration| {
            self.metrics.retry();
            let (attempt, retry_in_ms) = (attempt + 1, delay.as_millis() as u64);
            tracing::warn!(%error, attempt, retry_in_ms, "Writing the {what} failed; retrying.");
        };
        let transient = StoreError::is_transient;
        match dwsync_retry::retry_attempts(&self.backoff, self.attempts, &self.shutdown, transient, on_retry, op).await
        {
            Attempted::Done(value) => Ok(value),
            Attempted::Failed { error, attempts } => {
                tracing::warn!(%error, attempts, "Writing the {what} failed.");
                Err(Outcome::Failed(error))
            }
            Attempted::Shutdown => Err(Outcome::Shutdown),
        }
    }
}

#[cfg(test)]
mod tests {
    use dwsync_config::Secret;
    use dwsync_contract::Table;
    use dwsync_handoff::{FileKind, FileMeta};

    use dwsync_s3::SharedHttpClient;

    use super::*;
    use crate::config::Destination;

    /// Workspace 1's destination at `endpoint` with `(access_key_id, secret)`, on `https`.
    fn destination(endpoint: String, (key, secret): (String, String), https: &SharedHttpClient) -> DestinationClient {
        let dest = Destination {
            workspace_id: 1,
            bucket: "bucket-of-1".into(),
            prefix: String::new(),
            region: "us-east-1".into(),
            endpoint: Some(endpoint),
            force_path_style: true,
            access_key_id: key,
            secret_access_key: Secret::new(secret),
            tables: Vec::new(),
            conditional_writes: true,
            kind: crate::config::DestinationKind::S3,
            service_account_key: Secret::default(),
        };
        let gcs = dwsync_gcs::http::http_client().expect("client");
        DestinationClient::new(&dest, https, &gcs).expect("valid")
    }

    /// A small metrics file of `workspace_id` at offset 5.
    fn file_of(workspace_id: i64) -> CompleteFile {
        let meta = FileMeta {
            file_id: "f".into(),
            workspace_id,
            table: Table::Metrics,
            kind: FileKind::Unspecified,
            row_count: 1,
            sources: Vec::new(),
            window_opened_at_ms: 0,
            window_closed_at_ms: 1,
            close_reason: "time".into(),
        };
        CompleteFile { meta, first_offset: 5, last_offset: 5, bytes: vec![1, 2, 3], sha256_hex: "00".into() }
    }

    fn delivery(upload: &UploadConfig) -> Delivery {
        let metrics = Arc::new(Metrics::new(crate::metrics::Lags::default()));
        Delivery::new(upload, metrics, CancellationToken::new())
    }

    #[tokio::test]
    async fn a_customer_endpoint_resolving_to_loopback_fails_at_once_without_a_request() {
        // `localhost` resolves to 127.0.0.1 (/etc/hosts), where the test S3 server listens.
        let endpoint = dwsync_tests::s3_endpoint().replace("127.0.0.1", "localhost");
        let customer = dwsync_s3::egress::customer_https_client(dwsync_s3::egress::EgressPolicy::default());
        let dest = destination(endpoint, (dwsync_tests::s3_access_key(), dwsync_tests::s3_secret_key()), &customer);
        // Retries that would take minutes if the refusal were retried in place.
        let delivery = delivery(&UploadConfig { attempts: 5, retry_initial_ms: 60_000, ..UploadConfig::default() });
        let started = Instant::now();
        match delivery.deliver(&dest, &file_of(1), 5).await {
            Outcome::Failed(error) => {
                assert!(error.is_egress_refused() && !error.is_transient(), "{error:?}");
                assert_eq!(
                    error.summary(),
                    "PutObject s3://bucket-of-1/cio-validate: refused: endpoint host \"localhost\" points to a \
                     loopback address; customer endpoints must be public"
                );
            }
            other => panic!("refused: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not retried in place");
    }

    #[tokio::test]
    async fn a_file_is_never_written_to_another_workspaces_destination() {
        // Nothing listens here: a write attempt would fail with ConnectionFailed, not Refused.
        let credentials = ("key-1".to_owned(), "secret-1".to_owned());
        let dest = destination("http://127.0.0.1:9".into(), credentials, &dwsync_s3::https_client());
        let delivery = delivery(&UploadConfig { attempts: 1, ..UploadConfig::default() });
        assert!(
            matches!(delivery.deliver(&dest, &file_of(2), 5).await, Outcome::Refused),
            "workspace 2's file, 1's bucket"
        );
        match delivery.deliver(&dest, &file_of(1), 5).await {
            Outcome::Failed(error) => assert_eq!(error.code.as_deref(), Some("ConnectionFailed"), "{error}"),
            other => panic!("its own file is attempted: {other:?}"),
        }
    }
}
