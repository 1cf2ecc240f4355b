//! The backfill's metrics (OpenTelemetry, also served on `/metrics`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dwsync_archive::fold::SpillCounter;
use dwsync_archive::purge::ObjectPurged;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter, ObservableCounter, ObservableGauge};

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
    spill: SpillCounter,
    _gauges: [ObservableGauge<u64>; 2],
    _spilled: [ObservableCounter<u64>; 2],
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
        Self::with_meter(&dwsync_telemetry::meter(env!("CARGO_PKG_NAME")))
    }

    /// Creates the instruments on `m` (tests give a meter of their own).
    pub fn with_meter(m: &Meter) -> Self {
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
        let spill = SpillCounter::default();
        let spilled = |name: &'static str, description: &'static str, value: fn(&SpillCounter) -> u64| {
            let observed = spill.clone();
            m.u64_observable_counter(name)
                .with_description(description)
                .with_callback(move |observer| observer.observe(value(&observed), &[]))
                .build()
        };
        let spilled = [
            spilled(
                "dwsync_backfill_spilled_bytes_total",
                "Bytes the folds wrote to spill files past backfill.memory_budget_bytes (LZ4-compressed, every level and run).",
                SpillCounter::bytes,
            ),
            spilled(
                "dwsync_backfill_spills_total",
                "Folds (a table, or the context's people or objects) that passed their memory budget and spilled.",
                SpillCounter::folds,
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
            spill,
            _gauges: gauges,
            _spilled: spilled,
        }
    }

    /// The counter every job's folds spill into (give it to their [`dwsync_archive::fold::Spill`]).
    pub fn spill_counter(&self) -> &SpillCounter {
        &self.spill
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

#[cfg(test)]
mod tests {
    use arrow::compute::concat_batches;
    use arrow_array::RecordBatch;
    use dwsync_archive::fold::{Context, Folder, Spill};
    use dwsync_contract::{BatchBuilder, Encoding, Table, arrow_schema, decode};
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    use super::*;

    /// `n` generated attribute changes of `n / 4` people, in batches of 500.
    fn changes(n: u64) -> Vec<RecordBatch> {
        let mut generator = dwsync_loadgen::Generator::new(3);
        let mut builder = BatchBuilder::new(Table::Attributes);
        for i in 0..n {
            let record = generator.record(Table::Attributes, 7, i);
            let mut json: serde_json::Value =
                serde_json::from_slice(record.encoded(Encoding::Json)).expect("generated JSON");
            json["internal_customer_id"] = format!("p{}", i % (n / 4)).into();
            let bytes = serde_json::to_vec(&json).expect("JSON");
            builder.append(&decode(Table::Attributes, Encoding::Json, &bytes).expect("a valid record"));
        }
        let whole = concat_batches(&arrow_schema(Table::Attributes), &builder.finish().expect("batches")).expect("one");
        (0..whole.num_rows()).step_by(500).map(|at| whole.slice(at, 500.min(whole.num_rows() - at))).collect()
    }

    fn folded(history: &[RecordBatch], spill: Option<&Spill>) -> Vec<RecordBatch> {
        let context = Context::default();
        let mut folder = Folder::new(Table::Attributes, &context, spill).expect("folder");
        let mut out = Vec::new();
        for batch in history {
            out.extend(folder.push(batch.clone()).expect("push"));
        }
        out.extend(folder.finish().expect("finish").map(|b| b.expect("batch")));
        out
    }

    /// The value of the counter `name` in the Prometheus text of `registry`.
    fn counter(registry: &prometheus::Registry, name: &str) -> f64 {
        registry
            .gather()
            .iter()
            .find(|family| family.name() == name)
            .map_or(0.0, |family| family.get_metric().iter().map(|m| m.get_counter().get_value()).sum())
    }

    #[test]
    fn a_fold_past_its_budget_counts_its_spill_and_gives_the_same_rows() {
        let registry = prometheus::Registry::new();
        let reader = dwsync_telemetry::prometheus_reader(&registry).expect("reader");
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        let metrics = Metrics::with_meter(&provider.meter("dwsync-backfill-test"));
        let history = changes(20_000);
        let unbudgeted = folded(&history, None);
        let rows = unbudgeted.iter().map(RecordBatch::num_rows).sum::<usize>();
        assert!((5_000..=20_000).contains(&rows), "the latest row per (person, name): {rows}");

        let dir = tempfile::tempdir().expect("temp dir");
        let spill =
            |budget_bytes| Spill { dir: dir.path().to_owned(), budget_bytes, counter: metrics.spill_counter().clone() };
        assert_eq!(folded(&history, Some(&spill(64 << 20))), unbudgeted, "within the budget");
        assert_eq!(counter(&registry, "dwsync_backfill_spills_total"), 0.0, "nothing spilled within the budget");
        assert_eq!(counter(&registry, "dwsync_backfill_spilled_bytes_total"), 0.0);

        assert_eq!(folded(&history, Some(&spill(32 << 10))), unbudgeted, "a 32 KiB budget: the same rows");
        assert_eq!(counter(&registry, "dwsync_backfill_spills_total"), 1.0);
        let bytes = counter(&registry, "dwsync_backfill_spilled_bytes_total");
        assert!(bytes > 0.0, "spilled bytes counted: {bytes}");
        assert_eq!(bytes, metrics.spill_counter().bytes() as f64);
    }
}
