//! The Parquet encode ceiling: the scenario's records decoded with the contract, buffered per
//! (workspace, table) in Arrow builders and written as Parquet in memory, on one thread, the
//! way ingest does it (`services/ingest/src/encode.rs`) — no Kafka, no S3.
//!
//! Records are generated in chunks outside the clock; only decoding, buffering and encoding are
//! timed. Like ingest's memory budget, every buffer is written out when the buffers together
//! pass 64 MiB (counted as ingest counts them: allocated Arrow buffers), and at the end.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use dwsync_contract::{BatchBuilder, Encoding, Table, decode};
use dwsync_format::{ParquetFileWriter, ParquetOptions};
use serde::Serialize;

use crate::report::Throughput;
use crate::scenario::{Message, Scenario};

/// ingest's default `window.memory_budget_bytes`.
const BUDGET_BYTES: usize = 64 << 20;

/// Records generated (untimed) before each timed stretch.
const CHUNK: usize = 20_000;

/// What the encode ceiling measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Encoded {
    /// Records decoded and encoded per second of the timed work.
    pub(crate) throughput: Throughput,
    /// Parquet files written.
    pub(crate) files: u64,
    /// Their bytes.
    pub(crate) parquet_bytes: u64,
    /// Records the contract rejected (none expected).
    pub(crate) rejected: u64,
}

/// Decodes records into Arrow builders per (workspace, table) and writes them out as Parquet
/// files in memory, like ingest's windows under its memory budget.
pub(crate) struct Encoder {
    open: HashMap<(i64, Table), BatchBuilder>,
    bytes: usize,
    options: ParquetOptions,
    records: u64,
    input_bytes: u64,
    rejected: u64,
    files: u64,
    parquet_bytes: u64,
}

impl Encoder {
    /// An encoder with ingest's default Parquet options (zstd level 1).
    pub(crate) fn new() -> Self {
        Self {
            open: HashMap::new(),
            bytes: 0,
            options: ParquetOptions::default(),
            records: 0,
            input_bytes: 0,
            rejected: 0,
            files: 0,
            parquet_bytes: 0,
        }
    }

    /// Decodes one record and buffers its row; writes every buffer out past the budget.
    pub(crate) fn add(&mut self, table: Table, encoding: Encoding, payload: &[u8]) -> anyhow::Result<()> {
        self.records += 1;
        self.input_bytes += payload.len() as u64;
        let Ok(row) = decode(table, encoding, payload) else {
            self.rejected += 1;
            return Ok(());
        };
        let key = (row.workspace_id(), table);
        let before = self.open.get(&key).map_or(0, BatchBuilder::footprint);
        let builder = self.open.entry(key).or_insert_with(|| BatchBuilder::new(table));
        builder.append(&row);
        self.bytes += builder.footprint().saturating_sub(before);
        if self.bytes > BUDGET_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes every buffer out as one Parquet file.
    pub(crate) fn flush(&mut self) -> anyhow::Result<()> {
        for ((_, table), mut builder) in self.open.drain() {
            let rows = builder.len();
            let mut writer = ParquetFileWriter::new(table, Vec::new(), &self.options.for_rows(rows))?;
            for batch in builder.finish().context("building an Arrow batch")? {
                writer.write(&batch)?;
            }
            let bytes = writer.finish()?;
            self.files += 1;
            self.parquet_bytes += bytes.len() as u64;
        }
        self.bytes = 0;
        Ok(())
    }

    /// Records added so far.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Writes out what is left and reports, with the time the work took.
    pub(crate) fn finish(mut self, secs: impl FnOnce() -> f64) -> anyhow::Result<Encoded> {
        self.flush()?;
        Ok(Encoded {
            throughput: Throughput::new(self.records, self.input_bytes, secs()),
            files: self.files,
            parquet_bytes: self.parquet_bytes,
            rejected: self.rejected,
        })
    }
}

/// Runs the encode ceiling over the scenario's records.
pub(crate) fn run(scenario: &Scenario, seed: u64) -> anyhow::Result<Encoded> {
    let mut encoder = Encoder::new();
    let mut timed = Duration::ZERO;
    let mut messages = scenario.messages(seed);
    let mut chunk: Vec<Message> = Vec::with_capacity(CHUNK);
    loop {
        chunk.clear();
        chunk.extend(messages.by_ref().take(CHUNK));
        if chunk.is_empty() {
            break;
        }
        let started = Instant::now();
        for m in &chunk {
            encoder.add(m.table, m.encoding, &m.payload)?;
        }
        timed += started.elapsed();
    }
    let started = Instant::now();
    encoder.finish(|| (timed + started.elapsed()).as_secs_f64())
}
