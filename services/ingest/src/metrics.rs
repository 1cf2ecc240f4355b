//! ingest's metrics (OpenTelemetry, also on `/metrics`), added once per flush, not per record.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use dwsync_contract::Table;
use dwsync_telemetry::group_lag::GroupLag;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};

struct Instruments {
    consumed: Counter<u64>,
    decoded: Counter<u64>,
    dead_lettered: Counter<u64>,
    dead_letters_failed: Counter<u64>,
    restarts: Counter<u64>,
    windows_closed: Counter<u64>,
    files: Counter<u64>,
    bytes: Counter<u64>,
    flush_seconds: Histogram<f64>,
    buffered_bytes: Gauge<u64>,
    open_windows: Gauge<u64>,
    lag: Gauge<i64>,
    since_commit: Gauge<f64>,
}

static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
    let m = dwsync_telemetry::meter("dwsync-ingest");
    Instruments {
        consumed: m
            .u64_counter("dwsync_ingest_records_consumed_total")
            .with_description("Source records consumed, by table.")
            .build(),
        decoded: m
            .u64_counter("dwsync_ingest_records_decoded_total")
            .with_description("Source records decoded into rows, by table.")
            .build(),
        dead_lettered: m
            .u64_counter("dwsync_ingest_records_dead_lettered_total")
            .with_description(
                "Source records written to the dead-letter topic (counted once, when their transaction commits), by table and error class.",
            )
            .build(),
        dead_letters_failed: m
            .u64_counter("dwsync_ingest_dead_letters_failed_total")
            .with_description(
                "Undecodable source records whose dead letter the producer refused (logged with their topic, partition and offset; their offsets are committed), by table and error class.",
            )
            .build(),
        restarts: m
            .u64_counter("dwsync_ingest_loop_restarts_total")
            .with_description(
                "Times the ingest loop started again from the committed offsets (`start`: it could not start; `kafka`, `encode`: it failed; `reread`: an aborted transaction, read again in place; `producer`: a failed handoff producer replaced, read again in place).",
            )
            .build(),
        windows_closed: m
            .u64_counter("dwsync_ingest_windows_closed_total")
            .with_description("Windows closed, by reason.")
            .build(),
        files: m
            .u64_counter("dwsync_ingest_files_handed_off_total")
            .with_description("Parquet files handed off, by table.")
            .build(),
        bytes: m
            .u64_counter("dwsync_ingest_handed_off_bytes_total")
            .with_description("Parquet bytes handed off.")
            .build(),
        flush_seconds: m
            .f64_histogram("dwsync_ingest_flush_seconds")
            .with_description("Time to encode and commit one flush (one Kafka transaction).")
            .build(),
        buffered_bytes: m
            .u64_gauge("dwsync_ingest_buffered_bytes")
            .with_description("Estimated heap bytes of the open windows (what window.memory_budget_bytes bounds).")
            .build(),
        open_windows: m.u64_gauge("dwsync_ingest_open_windows").with_description("Open windows.").build(),
        lag: m
            .i64_gauge("dwsync_ingest_consumer_lag_records")
            .with_description(
                "Source records the group has still to read: committed offsets to the end of the source topics \
                 (0 where only transaction markers or aborted records follow). The group's, the same on every instance.",
            )
            .build(),
        since_commit: m
            .f64_gauge("dwsync_ingest_time_since_commit_seconds")
            .with_description(
                "Seconds the longest-waiting source partition with records pending has gone without a commit (0 when nothing is pending).",
            )
            .build(),
    }
});

/// Counts of records read, gathered between two flushes (a record read again after a rewind
/// counts again; dead letters are counted when committed: [`dead_lettered`]).
pub struct Tally {
    /// Records consumed and decoded, per table (indexed by `Table as usize`: two counter bumps
    /// per record, no map lookup).
    counts: [(u64, u64); Table::ALL.len()],
}

impl Default for Tally {
    fn default() -> Self {
        Self { counts: [(0, 0); Table::ALL.len()] }
    }
}

impl Tally {
    /// A record of `table` was consumed; `decoded` says whether it became a row.
    pub fn record(&mut self, table: Table, decoded: Decoded) {
        let (consumed, rows) = &mut self.counts[table as usize];
        *consumed += 1;
        if decoded == Decoded::Row {
            *rows += 1;
        }
    }

    /// Adds the tally to the instruments and resets it.
    pub fn publish(&mut self) {
        let i = &*INSTRUMENTS;
        for (&table, (consumed, decoded)) in Table::ALL.iter().zip(std::mem::take(&mut self.counts)) {
            if consumed > 0 {
                i.consumed.add(consumed, &[KeyValue::new("table", table.name())]);
            }
            if decoded > 0 {
                i.decoded.add(decoded, &[KeyValue::new("table", table.name())]);
            }
        }
    }
}

/// What a consumed record became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A row of its window.
    Row,
    /// A dead letter.
    DeadLetter,
}

/// Dead letters of a committed transaction, by (table, class).
pub fn dead_lettered(counts: &BTreeMap<(&'static str, &'static str), u64>) {
    for (&(table, class), &n) in counts {
        INSTRUMENTS.dead_lettered.add(n, &[KeyValue::new("table", table), KeyValue::new("class", class)]);
    }
}

/// A dead letter of `table` and `class` could not be written.
pub fn dead_letter_failed(table: &'static str, class: &'static str) {
    INSTRUMENTS.dead_letters_failed.add(1, &[KeyValue::new("table", table), KeyValue::new("class", class)]);
}

/// The loop starts again from the committed offsets, for `reason`.
pub fn loop_restarted(reason: &'static str) {
    INSTRUMENTS.restarts.add(1, &[KeyValue::new("reason", reason)]);
}

/// A window closed for `reason`.
pub fn window_closed(reason: &'static str) {
    INSTRUMENTS.windows_closed.add(1, &[KeyValue::new("reason", reason)]);
}

/// A file of `table` with `bytes` bytes was handed off.
pub fn file_handed_off(table: &'static str, bytes: usize) {
    INSTRUMENTS.files.add(1, &[KeyValue::new("table", table)]);
    INSTRUMENTS.bytes.add(bytes as u64, &[]);
}

/// A flush took `seconds`.
pub fn flushed(seconds: f64) {
    INSTRUMENTS.flush_seconds.record(seconds, &[]);
}

/// The current buffer state.
pub fn buffers(bytes: usize, windows: usize) {
    INSTRUMENTS.buffered_bytes.record(bytes as u64, &[]);
    INSTRUMENTS.open_windows.record(windows as u64, &[]);
}

/// The group's lag as sampled by [`crate::lag`]: records pending over every source partition,
/// and the longest wait without a commit. Nothing before the first successful sample (an
/// unknown lag is not 0).
pub fn group_lag(lag: &GroupLag) {
    if !lag.sampled {
        return;
    }
    INSTRUMENTS.lag.record(lag.total(), &[]);
    INSTRUMENTS.since_commit.record(lag.seconds_since_commit(), &[]);
}
