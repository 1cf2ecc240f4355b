//! The archiver's metrics (OpenTelemetry, also served on `/metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, ObservableGauge};

/// The archiver's instruments; create after telemetry is initialised.
pub struct Metrics {
    objects_written: Counter<u64>,
    objects_existing: Counter<u64>,
    objects_expired: Counter<u64>,
    rows_archived: Counter<u64>,
    batches: Counter<u64>,
    retries: Counter<u64>,
    bad_records: Counter<u64>,
    buffered: Arc<AtomicU64>,
    _buffered_bytes: ObservableGauge<u64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the instruments.
    pub fn new() -> Self {
        let m = dwsync_telemetry::meter(env!("CARGO_PKG_NAME"));
        let buffered: Arc<AtomicU64> = Arc::default();
        let observed = Arc::clone(&buffered);
        Self {
            objects_written: m
                .u64_counter("dwsync_archiver_objects_written_total")
                .with_description("Archive objects created, by table.")
                .build(),
            objects_existing: m
                .u64_counter("dwsync_archiver_objects_existing_total")
                .with_description(
                    "Archive objects found already written (a batch read again after a restart), by table.",
                )
                .build(),
            objects_expired: m
                .u64_counter("dwsync_archiver_objects_expired_total")
                .with_description("Archive objects deleted past their table's retention, by table.")
                .build(),
            rows_archived: m
                .u64_counter("dwsync_archiver_rows_archived_total")
                .with_description("Rows in the archive objects created, by table.")
                .build(),
            batches: m
                .u64_counter("dwsync_archiver_batches_total")
                .with_description("Batches written and committed, by reason (size, age, forced, memory).")
                .build(),
            retries: m
                .u64_counter("dwsync_archiver_retries_total")
                .with_description("Failed archive writes that were retried after a backoff.")
                .build(),
            bad_records: m
                .u64_counter("dwsync_archiver_bad_records_total")
                .with_description("Handoff records or files skipped as unreadable, by reason.")
                .build(),
            _buffered_bytes: m
                .u64_observable_gauge("dwsync_archiver_buffered_bytes")
                .with_description(
                    "Bytes held in open batches and partial files (bounded by archive.max_buffered_bytes).",
                )
                .with_callback(move |observer| observer.observe(observed.load(Ordering::Relaxed), &[]))
                .build(),
            buffered,
        }
    }

    /// An object of `table` with `rows` rows was created.
    pub fn written(&self, table: &'static str, rows: u64) {
        let labels = [KeyValue::new("table", table)];
        self.objects_written.add(1, &labels);
        self.rows_archived.add(rows, &labels);
    }

    /// An object of `table` was already there.
    pub fn existing(&self, table: &'static str) {
        self.objects_existing.add(1, &[KeyValue::new("table", table)]);
    }

    /// `n` archive objects of `table` were deleted past their retention.
    pub fn expired(&self, table: &'static str, n: u64) {
        self.objects_expired.add(n, &[KeyValue::new("table", table)]);
    }

    /// A batch was written and committed.
    pub fn batch(&self, reason: &'static str) {
        self.batches.add(1, &[KeyValue::new("reason", reason)]);
    }

    /// A write is retried.
    pub fn retry(&self) {
        self.retries.add(1, &[]);
    }

    /// A record or file was skipped.
    pub fn bad_record(&self, reason: &'static str) {
        self.bad_records.add(1, &[KeyValue::new("reason", reason)]);
    }

    /// The bytes held now.
    pub fn buffered(&self, bytes: u64) {
        self.buffered.store(bytes, Ordering::Relaxed);
    }
}
