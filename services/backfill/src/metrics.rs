//! The backfill's metrics (OpenTelemetry, also served on `/metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dwsync_archive::purge::ObjectPurged;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, ObservableGauge};

/// The backfill's instruments; create after telemetry is initialised.
pub struct Metrics {
    rows_written: Counter<u64>,
    files_written: Counter<u64>,
    files_existing: Counter<u64>,
    jobs: Counter<u64>,
    purge_objects: Counter<u64>,
    purge_rows: Counter<u64>,
    purges: Counter<u64>,
    running: Arc<AtomicU64>,
    queued: Arc<AtomicU64>,
    _gauges: [ObservableGauge<u64>; 2],
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
        let (running, queued): (Arc<AtomicU64>, Arc<AtomicU64>) = (Arc::default(), Arc::default());
        let gauge = |name: &'static str, description: &'static str, value: &Arc<AtomicU64>| {
            let observed = Arc::clone(value);
            m.u64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |observer| observer.observe(observed.load(Ordering::Relaxed), &[]))
                .build()
        };
        let gauges = [
            gauge("dwsync_backfill_jobs_running", "Jobs (workspace baselines) running now.", &running),
            gauge(
                "dwsync_backfill_jobs_queued",
                "Jobs pending and not running (waiting for a slot, the archive or a retry).",
                &queued,
            ),
        ];
        Self {
            rows_written: m
                .u64_counter("dwsync_backfill_rows_written_total")
                .with_description("Rows in the baseline files created, by table.")
                .build(),
            files_written: m
                .u64_counter("dwsync_backfill_files_written_total")
                .with_description("Baseline files created, by table.")
                .build(),
            files_existing: m
                .u64_counter("dwsync_backfill_files_existing_total")
                .with_description("Baseline files found already written (a job run again after a crash), by table.")
                .build(),
            jobs: m
                .u64_counter("dwsync_backfill_jobs_total")
                .with_description("Jobs ended, by outcome (done, failed).")
                .build(),
            purge_objects: m
                .u64_counter("dwsync_backfill_purge_objects_total")
                .with_description("Archive objects purged of a workspace, by outcome (rewritten, deleted).")
                .build(),
            purge_rows: m
                .u64_counter("dwsync_backfill_purge_rows_removed_total")
                .with_description("Archived rows removed by purges.")
                .build(),
            purges: m
                .u64_counter("dwsync_backfill_purges_total")
                .with_description("Archive purge attempts ended, by outcome (done, failed).")
                .build(),
            running,
            queued,
            _gauges: gauges,
        }
    }

    /// A file of `table` with `rows` rows was created.
    pub fn written(&self, table: &'static str, rows: u64) {
        let labels = [KeyValue::new("table", table)];
        self.files_written.add(1, &labels);
        self.rows_written.add(rows, &labels);
    }

    /// A file of `table` was already there.
    pub fn existing(&self, table: &'static str) {
        self.files_existing.add(1, &[KeyValue::new("table", table)]);
    }

    /// A job ended with `outcome`.
    pub fn job(&self, outcome: &'static str) {
        self.jobs.add(1, &[KeyValue::new("outcome", outcome)]);
    }

    /// One archive object was purged of a workspace (nothing counted when it was untouched).
    pub fn purged(&self, purged: ObjectPurged) {
        let (outcome, rows) = match purged {
            ObjectPurged::Untouched => return,
            ObjectPurged::Rewritten { rows } => ("rewritten", rows),
            ObjectPurged::Deleted { rows } => ("deleted", rows),
        };
        self.purge_objects.add(1, &[KeyValue::new("outcome", outcome)]);
        self.purge_rows.add(rows, &[]);
    }

    /// An archive purge attempt ended with `outcome` (`done`, `failed`).
    pub fn purge(&self, outcome: &'static str) {
        self.purges.add(1, &[KeyValue::new("outcome", outcome)]);
    }

    /// Jobs running and queued now.
    pub fn jobs_now(&self, running: usize, queued: usize) {
        self.running.store(running as u64, Ordering::Relaxed);
        self.queued.store(queued as u64, Ordering::Relaxed);
    }
}
