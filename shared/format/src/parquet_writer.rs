//! Streams `RecordBatch`es of one table into a Parquet file with the contract schema.
//!
//! Row groups are cut by rows and by bytes; each finished row group is written straight to the
//! output, so the writer never holds a second full copy of the file.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use arrow_array::RecordBatch;
use dwsync_contract::{Field, FieldType, SCHEMA_VERSION, Table, arrow_schema};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter, add_encoded_arrow_schema_to_metadata};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::{ColumnPath, SchemaDescriptor};
use serde::{Deserialize, Serialize};

/// Compression codec of the Parquet files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Zstandard (default): the best size for the CPU on this data.
    #[default]
    Zstd,
    /// Snappy: faster, about 4x larger files than zstd on typical records.
    Snappy,
    /// LZ4 (raw).
    Lz4,
    /// No compression.
    Uncompressed,
}

/// Parquet encoding options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ParquetOptions {
    /// Compression codec (default `zstd`).
    pub codec: Codec,
    /// Zstandard level (default 1; level 3 saves only ~3% more on this data).
    pub zstd_level: i32,
    /// Maximum rows in one row group (default 1,000,000).
    pub max_row_group_rows: usize,
    /// Maximum encoded bytes of one row group (default 64 MiB).
    pub max_row_group_bytes: usize,
    /// Files with fewer rows than this use `small_file_codec` (default 1,000; 0 = never): the
    /// parquet crate sets up a zstd context per column of every file, ~20 µs each, which costs
    /// more than zstd saves on a few hundred rows (docs/PERFORMANCE.md).
    pub small_file_rows: usize,
    /// Codec of files under `small_file_rows` rows (default `snappy`, which every warehouse reads).
    pub small_file_codec: Codec,
    /// Files with fewer rows are written without dictionaries (default 100; 0 = always with):
    /// setting up a dictionary costs every column more than it saves on a few dozen rows — a
    /// 20-row `metrics` file took 20 % fewer instructions to write without, and came out 4 %
    /// smaller (docs/PERFORMANCE.md).
    pub dictionary_min_rows: usize,
    /// Files with fewer rows carry statistics per column chunk only, without a page index
    /// (default 1,000; 0 = always a page index): a small file has one page per column, whose
    /// index only repeats the chunk's minimum and maximum.
    pub page_index_min_rows: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            codec: Codec::Zstd,
            zstd_level: 1,
            max_row_group_rows: 1_000_000,
            max_row_group_bytes: 64 << 20,
            small_file_rows: 1_000,
            small_file_codec: Codec::Snappy,
            dictionary_min_rows: 100,
            page_index_min_rows: 1_000,
        }
    }
}

impl ParquetOptions {
    /// The options of a file of `rows` rows: its codec, dictionaries and statistics.
    pub fn for_rows(&self, rows: usize) -> FileOptions {
        FileOptions {
            codec: if rows < self.small_file_rows { self.small_file_codec } else { self.codec },
            zstd_level: self.zstd_level,
            max_row_group_rows: self.max_row_group_rows,
            max_row_group_bytes: self.max_row_group_bytes,
            dictionary: rows >= self.dictionary_min_rows,
            page_index: rows >= self.page_index_min_rows,
        }
    }
}

/// The options of one file, resolved from [`ParquetOptions`] for its number of rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileOptions {
    /// Compression codec.
    pub codec: Codec,
    /// Zstandard level (with [`Codec::Zstd`]).
    pub zstd_level: i32,
    /// Maximum rows in one row group.
    pub max_row_group_rows: usize,
    /// Maximum encoded bytes of one row group.
    pub max_row_group_bytes: usize,
    /// Dictionary encoding of the columns (never of those with a new value per row,
    /// [`new_value_per_row`]).
    pub dictionary: bool,
    /// Statistics per page and a page index; else per column chunk only.
    pub page_index: bool,
}

impl Default for FileOptions {
    /// The default options of a large file.
    fn default() -> Self {
        ParquetOptions::default().for_rows(usize::MAX)
    }
}

/// A Parquet encoding failure.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Invalid options (e.g. a zstd level out of range).
    #[error("invalid Parquet options: {0}")]
    Options(String),
    /// The batch does not have the table's contract schema.
    #[error("batch for table {table} does not match its v5 schema")]
    SchemaMismatch {
        /// The writer's table.
        table: Table,
    },
    /// The Parquet encoder or the output failed.
    #[error("Parquet encoding failed: {0}")]
    Parquet(#[from] ParquetError),
}

/// What every file of one table with the same options shares: its writer properties, with the
/// Arrow schema already encoded in their metadata, and its Parquet schema. Built once per
/// (table, options): with 10,000 workspaces ingest writes tens of thousands of files a window,
/// and converting and encoding the schemas was ~6 % of writing one (docs/PERFORMANCE.md).
struct Setup {
    properties: WriterProperties,
    schema: SchemaDescriptor,
}

/// Setups by table and options; a handful of entries (tables × the options in use).
type Setups = Mutex<HashMap<(Table, FileOptions), Arc<Setup>>>;

/// The setups built so far.
static SETUPS: OnceLock<Setups> = OnceLock::new();

impl Setup {
    /// The setup of `table` with `options`, built on first use.
    fn of(table: Table, options: &FileOptions) -> Result<Arc<Self>, WriteError> {
        let setups = SETUPS.get_or_init(Mutex::default);
        let key = (table, options.clone());
        if let Some(setup) = setups.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return Ok(Arc::clone(setup));
        }
        let setup = Arc::new(Self::build(table, options)?);
        setups.lock().unwrap_or_else(PoisonError::into_inner).insert(key, Arc::clone(&setup));
        Ok(setup)
    }

    fn build(table: Table, options: &FileOptions) -> Result<Self, WriteError> {
        let compression = match options.codec {
            Codec::Zstd => Compression::ZSTD(
                ZstdLevel::try_new(options.zstd_level).map_err(|e| WriteError::Options(e.to_string()))?,
            ),
            Codec::Snappy => Compression::SNAPPY,
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::Uncompressed => Compression::UNCOMPRESSED,
        };
        let metadata = vec![
            KeyValue::new("dwsync.table".to_owned(), table.name().to_owned()),
            KeyValue::new("dwsync.schema_version".to_owned(), SCHEMA_VERSION.to_string()),
        ];
        let mut props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(options.max_row_group_rows.max(1)))
            .set_max_row_group_bytes(Some(options.max_row_group_bytes.max(1)))
            .set_statistics_enabled(if options.page_index { EnabledStatistics::Page } else { EnabledStatistics::Chunk })
            .set_dictionary_enabled(options.dictionary)
            .set_created_by(concat!("dwsync ", env!("CARGO_PKG_VERSION")).to_owned())
            .set_key_value_metadata(Some(metadata));
        for field in table.def().fields.iter().filter(|f| new_value_per_row(table, f)) {
            props = props.set_column_dictionary_enabled(ColumnPath::from(field.name), false);
        }
        let mut properties = props.build();
        let schema = arrow_schema(table);
        // What `ArrowWriter` would do for every file: the Parquet schema, and the Arrow schema
        // in the metadata (readers such as pyarrow take the exact Arrow types from it).
        let schema_descriptor =
            ArrowSchemaConverter::new().with_coerce_types(properties.coerce_types()).convert(&schema)?;
        add_encoded_arrow_schema_to_metadata(&schema, &mut properties);
        Ok(Self { properties, schema: schema_descriptor })
    }
}

/// Columns named so hold a new value on (almost) every row in every table: sequence numbers,
/// and the ids of deliveries, events and SMS messages (a delivery's metrics or an event's
/// deliveries rarely share a window).
const PER_ROW_COLUMNS: &[&str] = &["seq_num", "delivery_id", "event_id", "in_reply_to_delivery_id", "message_sid"];

/// Whether `field` of `table` mostly holds a new value per row, so is written without a
/// dictionary: a one-column key, a timestamp (milliseconds), or one of [`PER_ROW_COLUMNS`].
///
/// A dictionary of values that do not repeat only costs: hashing every value, then a dictionary
/// page as large as the values plus an index per row. Where such a value does repeat, zstd takes
/// the repeat as well. `metrics` files of 3,000 rows came out 9 % smaller and 10 % cheaper to
/// write without them, and no table's files grew (docs/PERFORMANCE.md).
pub fn new_value_per_row(table: Table, field: &Field) -> bool {
    table.def().primary_key == [field.name] || field.ty == FieldType::Timestamp || PER_ROW_COLUMNS.contains(&field.name)
}

/// Writes one Parquet file of one table to `W`.
pub struct ParquetFileWriter<W: Write + Send> {
    table: Table,
    inner: ArrowWriter<W>,
    rows: u64,
}

impl<W: Write + Send> ParquetFileWriter<W> {
    /// Starts a file of `table` on `sink`.
    pub fn new(table: Table, sink: W, options: &FileOptions) -> Result<Self, WriteError> {
        let setup = Setup::of(table, options)?;
        let writer_options = ArrowWriterOptions::new()
            .with_properties(setup.properties.clone())
            .with_parquet_schema(setup.schema.clone())
            .with_skip_arrow_metadata(true);
        let inner = ArrowWriter::try_new_with_options(sink, arrow_schema(table), writer_options)?;
        Ok(Self { table, inner, rows: 0 })
    }

    /// Appends a batch (it must have the table's contract schema).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        if batch.schema() != arrow_schema(self.table) {
            return Err(WriteError::SchemaMismatch { table: self.table });
        }
        self.inner.write(batch)?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Ends the open row group here (the next batch starts a new one), so a row group can hold
    /// one group of rows (the archive's: one workspace).
    pub fn end_row_group(&mut self) -> Result<(), WriteError> {
        Ok(self.inner.flush()?)
    }

    /// Adds a key-value pair to the footer's metadata.
    pub fn append_metadata(&mut self, key: &str, value: String) {
        self.inner.append_key_value_metadata(KeyValue::new(key.to_owned(), value));
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes already written to the output plus the estimated size of the open row group.
    pub fn estimated_size(&self) -> usize {
        self.inner.bytes_written() + self.inner.in_progress_size()
    }

    /// Writes the footer and returns the output.
    pub fn finish(self) -> Result<W, WriteError> {
        Ok(self.inner.into_inner()?)
    }
}
