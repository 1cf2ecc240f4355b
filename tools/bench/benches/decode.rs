//! Decode and encode micro-benchmark: CPU per record of each step of ingest's work on one
//! thread, for JSON and protobuf records of every table (`cargo bench -p dwsync-bench --bench
//! decode`). Prints figures; judges nothing. `DWSYNC_BENCH_RECORDS` sets records per table,
//! `DWSYNC_BENCH_TABLE` / `DWSYNC_BENCH_ENCODING` pick one table / encoding,
//! `DWSYNC_BENCH_REPS` the timed decode passes, `DWSYNC_BENCH_FILE_ROWS` the rows per Parquet
//! file (default: all of a table's records in one file; ingest's windows hold a few thousand),
//! `DWSYNC_BENCH_COLUMNS=1` a line per column of the last file: its encodings and bytes per row
//! before and after compression.

use std::hint::black_box;
use std::time::Instant;

use dwsync_contract::{BatchBuilder, Encoding, Table, decode};
use dwsync_format::{ParquetFileWriter, ParquetOptions};
use dwsync_loadgen::Generator;
use parquet::file::reader::{FileReader, SerializedFileReader};

/// The services' allocator (and its settings, `.cargo/config.toml`), so buffer growth costs here
/// what it costs in ingest.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let per_table: u64 = std::env::var("DWSYNC_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let only = std::env::var("DWSYNC_BENCH_TABLE").ok();
    let only_encoding = std::env::var("DWSYNC_BENCH_ENCODING").ok();
    // Timed decode passes (the best is printed); two runs with different counts under
    // valgrind (`--tool=cachegrind --cache-sim=no`) give the instructions of one decode, which
    // do not drift the way times do on a shared machine.
    let reps: u32 = std::env::var("DWSYNC_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let file_rows: usize =
        std::env::var("DWSYNC_BENCH_FILE_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX).max(1);
    // `DWSYNC_BENCH_PARQUET` sets ingest's Parquet options as JSON (e.g. `{"zstd_level": 3}`).
    let options: ParquetOptions = match std::env::var("DWSYNC_BENCH_PARQUET") {
        Ok(json) => serde_json::from_str(&json)?,
        Err(_) => ParquetOptions::default(),
    };
    let columns = std::env::var("DWSYNC_BENCH_COLUMNS").is_ok_and(|v| v == "1");
    let mut generator = Generator::new(42);
    println!(
        "{:<22} {:>9} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "table", "encoding", "bytes", "decode ns", "+append ns", "+parquet ns", "file B/rec"
    );
    for &table in Table::ALL {
        if only.as_deref().is_some_and(|t| t != table.name()) {
            continue;
        }
        let records: Vec<_> = (0..per_table).map(|n| generator.record(table, 1 + (n % 7) as i64, n)).collect();
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            if only_encoding.as_deref().is_some_and(|e| !e.eq_ignore_ascii_case(&format!("{encoding:?}"))) {
                continue;
            }
            // One contiguous buffer, as records arrive in a fetched batch.
            let buffer: Vec<u8> = records.iter().flat_map(|r| r.encoded(encoding).iter().copied()).collect();
            let mut at = 0;
            let inputs: Vec<&[u8]> = records
                .iter()
                .map(|r| {
                    let len = r.encoded(encoding).len();
                    at += len;
                    &buffer[at - len..at]
                })
                .collect();
            let bytes = inputs.iter().map(|i| i.len()).sum::<usize>() / inputs.len();
            let mut decode_ns = f64::MAX;
            for _ in 0..reps {
                let started = Instant::now();
                for input in &inputs {
                    black_box(decode(table, encoding, input)?);
                }
                decode_ns = decode_ns.min(started.elapsed().as_nanos() as f64 / inputs.len() as f64);
            }
            // Append and encode a file at a time, as ingest does with its windows.
            let (mut append_ns, mut parquet_ns, mut file_bytes) = (0.0, 0.0, 0.0);
            let mut last_file = Vec::new();
            for chunk in inputs.chunks(file_rows) {
                let started = Instant::now();
                let mut builder = BatchBuilder::new(table);
                for input in chunk {
                    builder.append(&decode(table, encoding, input)?);
                }
                let rows = builder.len();
                let batches = builder.finish()?;
                append_ns += started.elapsed().as_nanos() as f64;
                let started = Instant::now();
                let mut writer = ParquetFileWriter::new(table, Vec::new(), &options.for_rows(rows))?;
                for batch in &batches {
                    writer.write(batch)?;
                }
                last_file = black_box(writer.finish()?);
                parquet_ns += started.elapsed().as_nanos() as f64;
                file_bytes += last_file.len() as f64;
            }
            let (append_ns, parquet_ns) = (append_ns / inputs.len() as f64, parquet_ns / inputs.len() as f64);
            let file_bytes = file_bytes / inputs.len() as f64;
            println!(
                "{:<22} {:>9} {:>8} {:>12.0} {:>12.0} {:>12.0} {:>12.1}",
                table.name(),
                format!("{encoding:?}"),
                bytes,
                decode_ns,
                append_ns - decode_ns,
                parquet_ns,
                file_bytes
            );
            if columns {
                print_columns(last_file)?;
            }
        }
    }
    Ok(())
}

/// One line per column of a file: encodings, and bytes per row before and after compression.
fn print_columns(file: Vec<u8>) -> anyhow::Result<()> {
    let reader = SerializedFileReader::new(bytes::Bytes::from(file))?;
    let rows = reader.metadata().file_metadata().num_rows().max(1) as f64;
    for group in reader.metadata().row_groups() {
        for column in group.columns() {
            let encodings: Vec<String> = column.encodings().map(|e| format!("{e:?}")).collect();
            println!(
                "    {:<24} {:>10.1} B/row plain {:>8.1} B/row compressed  {}",
                column.column_path().string(),
                column.uncompressed_size() as f64 / rows,
                column.compressed_size() as f64 / rows,
                encodings.join(",")
            );
        }
    }
    Ok(())
}
