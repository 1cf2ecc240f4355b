//! The uploader's metrics (OpenTelemetry, also served on `/metrics`), recorded once per file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dwsync_telemetry::group_lag::GroupLag;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, ObservableGauge};

/// The group's lag as last sampled ([`crate::lag`]), read by the lag gauges.
pub type Lags = Arc<Mutex<GroupLag>>;

/// The uploader's instruments; create after telemetry is initialised.
pub struct Metrics {
    files_uploaded: Counter<u64>,
    bytes_uploaded: Counter<u64>,
    upload_seconds: Histogram<f64>,
    already_delivered: Counter<u64>,
    conflicts: Counter<u64>,
    retries: Counter<u64>,
    files_skipped: Counter<u64>,
    bad_records: Counter<u64>,
    commit_failures: Counter<u64>,
    files_parked: Counter<u64>,
    files_unparked: Counter<u64>,
    destination_failures: Counter<u64>,
    /// Deliveries in flight and bytes queued behind them, read by their gauges.
    in_flight: Arc<(AtomicU64, AtomicU64)>,
    _consumer_lag: ObservableGauge<i64>,
    _seconds_since_commit: ObservableGauge<f64>,
    _deliveries_in_flight: ObservableGauge<u64>,
    _queued_bytes: ObservableGauge<u64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Creates the instruments; the lag gauges report what `lags` holds when read.
    pub fn new(lags: Lags) -> Self {
        let m = dwsync_telemetry::meter(env!("CARGO_PKG_NAME"));
        let since = Arc::clone(&lags);
        let in_flight: Arc<(AtomicU64, AtomicU64)> = Arc::default();
        let (flying, queued) = (Arc::clone(&in_flight), Arc::clone(&in_flight));
        Self {
            in_flight,
            _deliveries_in_flight: m
                .u64_observable_gauge("dwsync_uploader_deliveries_in_flight")
                .with_description("Files being written now (at most upload.concurrency).")
                .with_callback(move |observer| observer.observe(flying.0.load(Ordering::Relaxed), &[]))
                .build(),
            _queued_bytes: m
                .u64_observable_gauge("dwsync_uploader_queued_bytes")
                .with_description("Bytes of handoff records held behind the files being written.")
                .with_callback(move |observer| observer.observe(queued.1.load(Ordering::Relaxed), &[]))
                .build(),
            files_uploaded: m
                .u64_counter("dwsync_uploader_files_uploaded_total")
                .with_description("Data files created in a destination bucket, by table.")
                .build(),
            bytes_uploaded: m
                .u64_counter("dwsync_uploader_uploaded_bytes_total")
                .with_description("Bytes of the data files created in destination buckets.")
                .build(),
            upload_seconds: m
                .f64_histogram("dwsync_uploader_upload_seconds")
                .with_description("Time to write one data file, retries included, by outcome.")
                .with_boundaries(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0])
                .build(),
            already_delivered: m
                .u64_counter("dwsync_uploader_already_delivered_total")
                .with_description("Data files found already written with the same SHA-256 (replays).")
                .build(),
            conflicts: m
                .u64_counter("dwsync_uploader_conflicts_total")
                .with_description("Data files whose key held another object; kept under <key>.conflict-<sha>.")
                .build(),
            retries: m
                .u64_counter("dwsync_uploader_retries_total")
                .with_description("Failed S3 writes that were retried after a backoff.")
                .build(),
            files_skipped: m
                .u64_counter("dwsync_uploader_files_skipped_total")
                .with_description(
                    "Complete files not written, by reason (no_destination, sync_disabled, table_disabled, invalid_offset).",
                )
                .build(),
            bad_records: m
                .u64_counter("dwsync_uploader_bad_records_total")
                .with_description("Handoff records skipped because they are not a valid chunk of a file, by reason.")
                .build(),
            commit_failures: m
                .u64_counter("dwsync_uploader_commit_failures_total")
                .with_description("Handoff offset commits that failed (retried with the next commit).")
                .build(),
            files_parked: m
                .u64_counter("dwsync_uploader_files_parked_total")
                .with_description(
                    "Files kept in the lot for later, by reason (table_off, destination_failing, behind_parked, unavailable).",
                )
                .build(),
            files_unparked: m
                .u64_counter("dwsync_uploader_files_unparked_total")
                .with_description("Parked files written to their bucket.")
                .build(),
            destination_failures: m
                .u64_counter("dwsync_uploader_destination_failures_total")
                .with_description("Deliveries that failed after their attempts; the destination is tried again with backoff.")
                .build(),
            _consumer_lag: m
                .i64_observable_gauge("dwsync_uploader_consumer_lag_records")
                .with_description(
                    "Handoff records the group has still to read, by partition: committed offset to the end \
                     (0 where only transaction markers or aborted records follow). The group's, the same on every instance.",
                )
                .with_callback(move |observer| {
                    let lag = lags.lock().unwrap_or_else(PoisonError::into_inner);
                    for ((_, partition), pending) in &lag.partitions {
                        observer.observe(*pending, &[KeyValue::new("partition", i64::from(*partition))]);
                    }
                })
                .build(),
            _seconds_since_commit: m
                .f64_observable_gauge("dwsync_uploader_time_since_commit_seconds")
                .with_description(
                    "Seconds the longest-waiting handoff partition with records pending has gone without a commit (0 when nothing is pending).",
                )
                .with_callback(move |observer| {
                    let lag = since.lock().unwrap_or_else(PoisonError::into_inner);
                    if lag.sampled {
                        observer.observe(lag.seconds_since_commit(), &[]);
                    }
                })
                .build(),
        }
    }

    /// A data file was created.
    pub fn uploaded(&self, table: &'static str, bytes: usize, took: Duration) {
        self.files_uploaded.add(1, &[KeyValue::new("table", table)]);
        self.bytes_uploaded.add(bytes as u64, &[]);
        self.upload_seconds.record(took.as_secs_f64(), &[KeyValue::new("outcome", "created")]);
    }

    /// A data file was already there with the same SHA-256.
    pub fn already_delivered(&self, took: Duration) {
        self.already_delivered.add(1, &[]);
        self.upload_seconds.record(took.as_secs_f64(), &[KeyValue::new("outcome", "already_delivered")]);
    }

    /// A data file's key held another object.
    pub fn conflict(&self, took: Duration) {
        self.conflicts.add(1, &[]);
        self.upload_seconds.record(took.as_secs_f64(), &[KeyValue::new("outcome", "conflict")]);
    }

    /// An S3 write failed and will be retried.
    pub fn retry(&self) {
        self.retries.add(1, &[]);
    }

    /// A complete file was not written, for `reason`.
    pub fn skipped(&self, reason: &'static str) {
        self.files_skipped.add(1, &[KeyValue::new("reason", reason)]);
    }

    /// A file was parked, for `reason`.
    pub fn parked(&self, reason: &'static str) {
        self.files_parked.add(1, &[KeyValue::new("reason", reason)]);
    }

    /// A delivery failed after its attempts.
    pub fn destination_failed(&self) {
        self.destination_failures.add(1, &[]);
    }

    /// A parked file was written.
    pub fn unparked(&self) {
        self.files_unparked.add(1, &[]);
    }

    /// A handoff record was skipped, for `reason`.
    pub fn bad_record(&self, reason: &'static str) {
        self.bad_records.add(1, &[KeyValue::new("reason", reason)]);
    }

    /// `deliveries` are in flight with `queued_bytes` waiting behind them.
    pub fn in_flight(&self, deliveries: usize, queued_bytes: u64) {
        self.in_flight.0.store(deliveries as u64, Ordering::Relaxed);
        self.in_flight.1.store(queued_bytes, Ordering::Relaxed);
    }

    /// An offset commit failed.
    pub fn commit_failed(&self) {
        self.commit_failures.add(1, &[]);
    }
}
