//! A handed-off file, decoded back to Arrow batches with its table's exact v5 schema.

use arrow_array::RecordBatch;
use bytes::Bytes;
use dwsync_contract::arrow_schema;
use dwsync_handoff::{CompleteFile, FileMeta};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use dwsync_archive::Part;
use dwsync_archive::write::FileRows;

/// Rows per decoded batch.
const DECODE_BATCH_ROWS: usize = 8_192;

/// A complete handoff file whose rows wait in a batch.
#[derive(Debug, Clone)]
pub struct ArchivedFile {
    /// Its header (workspace, table, kind, file id, window times).
    pub meta: FileMeta,
    /// Offset of its first chunk in the handoff partition.
    pub first_offset: i64,
    /// Its rows, with the table's contract schema.
    pub batches: Vec<RecordBatch>,
    /// Size of the Parquet file it came from.
    pub input_bytes: u64,
}

impl ArchivedFile {
    /// The archive object the file's rows go to.
    pub fn part(&self) -> Part {
        Part::of(self.meta.table, self.meta.kind)
    }

    /// Rows in the file.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Its rows as the archive's object writer takes them.
    pub fn rows_for_archive(&self) -> FileRows<'_> {
        FileRows { workspace_id: self.meta.workspace_id, first_offset: self.first_offset, batches: &self.batches }
    }

    /// Memory held by its decoded batches.
    pub fn memory_bytes(&self) -> u64 {
        self.batches.iter().map(|b| b.get_array_memory_size() as u64).sum()
    }
}

/// A complete file that cannot be archived.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The bytes are not a readable Parquet file.
    #[error("file {file_id}: not readable Parquet: {error}")]
    Parquet {
        /// The file.
        file_id: String,
        /// The reader's error.
        error: parquet::errors::ParquetError,
    },
    /// Its columns are not those of its table's v5 schema.
    #[error("file {file_id}: not the v5 schema of {table}: {error}")]
    Schema {
        /// The file.
        file_id: String,
        /// Its table.
        table: &'static str,
        /// Arrow's complaint.
        error: arrow_schema::ArrowError,
    },
}

/// Decodes `file` (its Parquet bytes) into batches with the contract schema of its table.
pub fn decode(file: CompleteFile) -> Result<ArchivedFile, FileError> {
    let CompleteFile { meta, first_offset, bytes, .. } = file;
    let input_bytes = bytes.len() as u64;
    let parquet = |error| FileError::Parquet { file_id: meta.file_id.clone(), error };
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .map_err(parquet)?
        .with_batch_size(DECODE_BATCH_ROWS)
        .build()
        .map_err(parquet)?;
    let schema = arrow_schema(meta.table);
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| FileError::Parquet { file_id: meta.file_id.clone(), error: e.into() })?;
        // The reader adds the file's key-value metadata to the schema; the columns must be
        // exactly the contract's (types, names, nullability).
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(|error| FileError::Schema { file_id: meta.file_id.clone(), table: meta.table.name(), error })?;
        batches.push(batch);
    }
    Ok(ArchivedFile { meta, first_offset, batches, input_bytes })
}
