//! One workspace's rows of one archive object: the footer (one ranged GET of the object's last
//! 64 KiB, a second when the metadata is longer) and that workspace's row group (one ranged GET
//! over its column chunks, none when the first GET held them). No other row group's bytes are
//! fetched, except those the first GET held.

use std::sync::Arc;

use arrow::compute::kernels::aggregate::{max, min};
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use bytes::Bytes;
use dwsync_contract::{Table, arrow_schema};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};

use super::ReadError;
use super::ranged::{RangedObject, RowGroupBytes};
use crate::footer::{Provenance, SourceFile, WorkspaceRows};
use crate::key::ObjectKey;

/// Rows per decoded batch.
const BATCH_ROWS: usize = 8_192;

/// Parquet's trailer: metadata length (4 bytes) and `PAR1`.
const TAIL: u64 = 8;

/// Bytes fetched from an object's end to read its footer in one request: footers are about
/// 2 KiB per row group and 40 bytes per workspace, so this holds those of objects with up to
/// about 1,000 workspaces and a few row groups, and the whole of an object under 64 KiB.
const FOOTER_GUESS: u64 = 64 * 1_024;

/// One workspace's rows in one object.
#[derive(Debug, Clone)]
pub(crate) struct Slice {
    /// The handed-off files they came from, in offset order.
    pub(crate) files: Vec<SourceFile>,
    /// The rows, with the table's exact v5 schema, in offset order.
    pub(crate) batches: Vec<RecordBatch>,
}

/// One object's footer as a reader of one workspace needs it: checked, with the workspace's entry
/// and, when the footer's GET held them, its rows' bytes. What a [`FooterMemo`](super::memo) keeps.
pub(crate) struct WorkspaceFooter {
    metadata: Arc<ParquetMetaData>,
    arrow: ArrowReaderMetadata,
    /// The workspace's entry, if the object holds it.
    entry: Option<WorkspaceRows>,
    /// The bytes of the workspace's row group (offset in the object, bytes), when fetched with
    /// the footer.
    row_group_bytes: Option<(u64, Bytes)>,
}

impl WorkspaceFooter {
    /// The handed-off files of the workspace the object holds, `None` when it holds none.
    pub(crate) fn files(&self) -> Option<&[SourceFile]> {
        self.entry.as_ref().map(|e| e.files.as_slice())
    }

    /// Memory held: the row group's bytes and an estimate of the metadata's.
    pub(crate) fn memory_bytes(&self) -> u64 {
        let bytes = self.row_group_bytes.as_ref().map_or(0, |(_, b)| b.len() as u64);
        bytes + self.metadata.memory_size() as u64
    }
}

/// Reads `object`'s footer (named `expected` by its key) for `workspace_id`.
pub(crate) async fn workspace_footer(
    object: &RangedObject<'_>,
    expected: ObjectKey,
    workspace_id: i64,
) -> Result<WorkspaceFooter, ReadError> {
    let Footer { metadata, arrow, provenance, last } = checked_footer(object, expected).await?;
    let entry = provenance.workspaces.into_iter().find(|w| w.workspace_id == workspace_id);
    let row_group_bytes = entry
        .as_ref()
        .and_then(|e| e.row_group)
        .filter(|&group| group < metadata.num_row_groups())
        .and_then(|group| row_group_range(&metadata, group))
        .and_then(|(start, end)| last.range(start, end).map(|bytes| (start, bytes)));
    Ok(WorkspaceFooter { metadata, arrow, entry, row_group_bytes })
}

/// The object's footer, checked against its key (`expected`) and the table's v5 schema.
struct Footer {
    metadata: Arc<ParquetMetaData>,
    arrow: ArrowReaderMetadata,
    provenance: Provenance,
    /// The object's last bytes, fetched with the footer.
    last: FetchedEnd,
}

/// The last bytes of an object, as fetched to read its footer.
struct FetchedEnd {
    /// Where they start in the object.
    offset: u64,
    bytes: Bytes,
}

impl FetchedEnd {
    /// `[start, end)` of the object, if these bytes hold it.
    fn range(&self, start: u64, end: u64) -> Option<Bytes> {
        let from = usize::try_from(start.checked_sub(self.offset)?).ok()?;
        let to = usize::try_from(end.checked_sub(self.offset)?).ok()?;
        (from <= to && to <= self.bytes.len()).then(|| self.bytes.slice(from..to))
    }
}

async fn checked_footer(object: &RangedObject<'_>, expected: ObjectKey) -> Result<Footer, ReadError> {
    let key = object.key;
    let (metadata, last) = footer(object).await?;
    let provenance = match Provenance::from_footer(metadata.file_metadata().key_value_metadata()) {
        None => return Err(ReadError::unreadable(key, "no dwsync.archive footer metadata")),
        Some(Err(e)) => return Err(ReadError::unreadable(key, format!("invalid dwsync.archive footer: {e}"))),
        Some(Ok(provenance)) => provenance,
    };
    let (range, part) = (expected.range, expected.part);
    let names = (provenance.partition, provenance.start_offset, provenance.end_offset);
    if names != (range.partition, range.start, range.end)
        || provenance.table != part.table.name()
        || provenance.kind != part.kind_name()
    {
        return Err(ReadError::unreadable(
            key,
            format!(
                "its footer names partition {} offsets {}..{} part {}/{}, not its key's",
                provenance.partition, provenance.start_offset, provenance.end_offset, provenance.table, provenance.kind
            ),
        ));
    }
    let metadata = Arc::new(metadata);
    let arrow = ArrowReaderMetadata::try_new(Arc::clone(&metadata), ArrowReaderOptions::new())
        .map_err(|e| ReadError::unreadable(key, e))?;
    check_schema(key, part.table, &arrow)?;
    Ok(Footer { metadata, arrow, provenance, last })
}

/// One workspace's rows in one object, decoded as they are asked for: the row group's bytes
/// are fetched (compressed), each batch of [`BATCH_ROWS`] rows decoded on its turn and checked
/// (the workspace's only, the v5 schema); at the end, that the rows are as many as the footer
/// says.
pub(crate) struct LazySlice {
    /// The handed-off files they came from, in offset order.
    pub(crate) files: Vec<SourceFile>,
    key: String,
    table: Table,
    workspace_id: i64,
    row_group: usize,
    expected_rows: u64,
    rows: u64,
    reader: Option<parquet::arrow::arrow_reader::ParquetRecordBatchReader>,
}

impl std::fmt::Debug for LazySlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazySlice").field("key", &self.key).field("rows", &self.rows).finish()
    }
}

impl LazySlice {
    /// The object's key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The workspace's rows in the object, as its footer says.
    pub(crate) fn expected_rows(&self) -> u64 {
        self.expected_rows
    }

    /// The next batch of rows; `None` at the end (after checking the row count).
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>, ReadError> {
        let key = self.key.as_str();
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        let Some(batch) = reader.next() else {
            self.reader = None;
            if self.rows != self.expected_rows {
                return Err(ReadError::unreadable(
                    key,
                    format!(
                        "row group {} gave {} of the workspace's rows, its footer says {}",
                        self.row_group, self.rows, self.expected_rows
                    ),
                ));
            }
            return Ok(None);
        };
        let batch = batch.map_err(|e| ReadError::unreadable(key, e))?;
        let table = self.table;
        let batch = RecordBatch::try_new(arrow_schema(table), batch.columns().to_vec())
            .map_err(|e| ReadError::Schema { key: key.to_owned(), table: table.name(), reason: e.to_string() })?;
        let workspaces = batch.column(table.def().workspace_column).as_primitive::<Int64Type>();
        if min(workspaces) != Some(self.workspace_id) || max(workspaces) != Some(self.workspace_id) {
            return Err(ReadError::unreadable(
                key,
                format!("row group {} holds rows of other workspaces", self.row_group),
            ));
        }
        self.rows += batch.num_rows() as u64;
        Ok(Some(batch))
    }

    /// Every row, decoded now.
    pub(crate) fn collect(mut self) -> Result<Slice, ReadError> {
        let mut batches = Vec::new();
        while let Some(batch) = self.next_batch()? {
            batches.push(batch);
        }
        Ok(Slice { files: self.files, batches })
    }
}

/// Opens `workspace_id`'s rows of `object` (of table `table`) from its `footer`: its row
/// group's bytes fetched (unless the footer's GET held them), nothing decoded yet; `None` when
/// the object holds none of them.
pub(crate) async fn open_workspace(
    object: &RangedObject<'_>,
    table: Table,
    footer: &WorkspaceFooter,
    workspace_id: i64,
) -> Result<Option<LazySlice>, ReadError> {
    let key = object.key;
    let WorkspaceFooter { metadata, arrow, entry, row_group_bytes } = footer;
    let Some(entry) = entry else { return Ok(None) };
    let mut slice = LazySlice {
        files: entry.files.clone(),
        key: key.to_owned(),
        table,
        workspace_id,
        row_group: entry.row_group.unwrap_or_default(),
        expected_rows: entry.rows,
        rows: 0,
        reader: None,
    };
    let Some(row_group) = entry.row_group else {
        // No rows of the workspace (files without rows): nothing to decode, nothing to count.
        slice.expected_rows = 0;
        return Ok(Some(slice));
    };
    if row_group >= metadata.num_row_groups() {
        return Err(ReadError::unreadable(
            key,
            format!("its footer names row group {row_group}, it has {}", metadata.num_row_groups()),
        ));
    }
    let selection = workspace_rows(metadata, row_group, entry.first_row, entry.rows).ok_or_else(|| {
        let (first, rows) = (entry.first_row, entry.rows);
        ReadError::unreadable(
            key,
            format!("its footer places {rows} rows from row {first} of row group {row_group}, which is shorter"),
        )
    })?;
    let (start, end) = row_group_range(metadata, row_group)
        .ok_or_else(|| ReadError::unreadable(key, format!("row group {row_group} has no valid byte range")))?;
    let bytes = match row_group_bytes {
        Some((offset, bytes)) if *offset == start => bytes.clone(),
        _ => object.get(start, end).await?,
    };
    let bytes = RowGroupBytes { offset: start, bytes, len: object.size };
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, arrow.clone())
        .with_row_groups(vec![row_group])
        .with_row_selection(selection)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| ReadError::unreadable(key, e))?;
    slice.reader = Some(reader);
    Ok(Some(slice))
}

/// The object's Parquet metadata, from its tail: one ranged GET of its last
/// [`FOOTER_GUESS`] bytes, and a second for the rest of the metadata when it is longer.
async fn footer(object: &RangedObject<'_>) -> Result<(ParquetMetaData, FetchedEnd), ReadError> {
    let key = object.key;
    // `PAR1`, at least one byte, the trailer.
    if object.size < TAIL + 4 {
        return Err(ReadError::unreadable(key, format!("{} bytes is too small for Parquet", object.size)));
    }
    let guessed = object.size.min(FOOTER_GUESS);
    let last = object.get(object.size - guessed, object.size).await?;
    let trailer = &last[last.len() - TAIL as usize..];
    let tail = FooterTail::try_from(trailer).map_err(|e| ReadError::unreadable(key, e))?;
    if tail.is_encrypted_footer() {
        return Err(ReadError::unreadable(key, "an encrypted footer"));
    }
    let length = tail.metadata_length() as u64;
    if length == 0 || length + TAIL + 4 > object.size {
        return Err(ReadError::unreadable(key, format!("metadata of {length} bytes in {} bytes", object.size)));
    }
    let in_last = guessed - TAIL;
    let bytes = if length <= in_last {
        last.slice((in_last - length) as usize..in_last as usize)
    } else {
        let end = object.size - guessed;
        let mut whole = Vec::with_capacity(length as usize);
        whole.extend_from_slice(&object.get(end - (length - in_last), end).await?);
        whole.extend_from_slice(&last[..in_last as usize]);
        Bytes::from(whole)
    };
    let metadata = ParquetMetaDataReader::decode_metadata(&bytes).map_err(|e| ReadError::unreadable(key, e))?;
    Ok((metadata, FetchedEnd { offset: object.size - guessed, bytes: last }))
}

/// The selection of a workspace's `rows` from `first_row` in `row_group`, which other
/// workspaces' rows may share; `None` when the row group is shorter than that.
pub(crate) fn workspace_rows(
    metadata: &ParquetMetaData,
    row_group: usize,
    first_row: u64,
    rows: u64,
) -> Option<RowSelection> {
    let group_rows = u64::try_from(metadata.row_group(row_group).num_rows()).ok()?;
    let after = group_rows.checked_sub(first_row.checked_add(rows)?)?;
    let selectors = [(first_row, false), (rows, true), (after, false)]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, select)| {
            let n = usize::try_from(n).ok()?;
            Some(if select { RowSelector::select(n) } else { RowSelector::skip(n) })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(RowSelection::from(selectors))
}

/// `[start, end)` of the column chunks of `row_group` (contiguous in files the writer makes).
fn row_group_range(metadata: &ParquetMetaData, row_group: usize) -> Option<(u64, u64)> {
    let (mut start, mut end) = (u64::MAX, 0u64);
    for column in metadata.row_group(row_group).columns() {
        let (offset, length) = column.byte_range();
        start = start.min(offset);
        end = end.max(offset.checked_add(length)?);
    }
    (start < end).then_some((start, end))
}

/// Checks the object's columns are `table`'s v5 columns: names, types, nullability, order.
fn check_schema(key: &str, table: Table, arrow: &ArrowReaderMetadata) -> Result<(), ReadError> {
    let want = arrow_schema(table);
    let got = arrow.schema();
    let error = |reason: String| ReadError::Schema { key: key.to_owned(), table: table.name(), reason };
    if got.fields().len() != want.fields().len() {
        return Err(error(format!("{} columns, the table has {}", got.fields().len(), want.fields().len())));
    }
    for (got, want) in got.fields().iter().zip(want.fields()) {
        if got.name() != want.name()
            || !got.data_type().equals_datatype(want.data_type())
            || got.is_nullable() != want.is_nullable()
        {
            return Err(error(format!(
                "column {} {} (nullable {}) where the contract has {} {} (nullable {})",
                got.name(),
                got.data_type(),
                got.is_nullable(),
                want.name(),
                want.data_type(),
                want.is_nullable()
            )));
        }
    }
    Ok(())
}
