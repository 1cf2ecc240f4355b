//! Accumulates validated rows of one table into Arrow arrays and emits `RecordBatch`es.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;

use crate::compact::CompactRows;
use crate::row::{Row, Value};
use crate::schema::{TIMEZONE, arrow_schema, list_item_field};
use crate::table::{FieldType, Table};

enum Column {
    Int(Int64Builder),
    Str(StringBuilder),
    Bool(BooleanBuilder),
    Ts(TimestampMillisecondBuilder),
    List(ListBuilder<StringBuilder>),
}

/// Bytes of a heap block as allocated: Arrow rounds buffers up to 64 bytes and at least doubles
/// them when they grow, so a buffer holding `used` bytes has at most the next power of two.
fn allocated(used: usize) -> usize {
    if used == 0 { 0 } else { used.max(64).next_power_of_two() }
}

impl Column {
    /// An empty column with room for `rows` rows, `bytes` bytes of strings and `items` list
    /// items. Sized by what a window holds, never by a fixed default: Arrow's (1,024 rows per
    /// column) cost ~100 KB per window before the first row, 4 GiB with 40,000 small windows
    /// open (docs/PERFORMANCE.md).
    fn with_capacity(ty: FieldType, rows: usize, bytes: usize, items: usize) -> Self {
        match ty {
            FieldType::Int64 => Self::Int(Int64Builder::with_capacity(rows)),
            FieldType::Utf8 => Self::Str(StringBuilder::with_capacity(rows, bytes)),
            FieldType::Boolean => Self::Bool(BooleanBuilder::with_capacity(rows)),
            FieldType::Timestamp => Self::Ts(TimestampMillisecondBuilder::with_capacity(rows).with_timezone(TIMEZONE)),
            FieldType::ListUtf8 => Self::List(
                ListBuilder::with_capacity(StringBuilder::with_capacity(items, bytes), rows)
                    .with_field(list_item_field()),
            ),
        }
    }

    /// String bytes and list items held (what [`Column::with_capacity`] takes).
    fn sizes(&self) -> (usize, usize) {
        match self {
            Self::Str(b) => (b.values_slice().len(), 0),
            Self::List(b) => (b.values_ref().values_slice().len(), b.values_ref().len()),
            _ => (0, 0),
        }
    }

    /// Heap bytes reserved up front by [`Column::with_capacity`].
    fn reserved(ty: FieldType, rows: usize, bytes: usize, items: usize) -> usize {
        let bits = rows.div_ceil(8);
        match ty {
            FieldType::Int64 | FieldType::Timestamp => rows * 8 + bits,
            FieldType::Boolean => 2 * bits,
            FieldType::Utf8 => (rows + 1) * 4 + bytes + bits,
            FieldType::ListUtf8 => (rows + 1) * 4 + (items + 1) * 4 + bytes + bits + items.div_ceil(8),
        }
    }

    /// Estimated heap bytes of the column holding `rows` rows (values, offsets, null bits).
    fn footprint(&self, rows: usize) -> usize {
        let bits = allocated(rows.div_ceil(8));
        match self {
            Self::Int(_) | Self::Ts(_) => allocated(rows * 8) + bits,
            Self::Bool(_) => 2 * bits,
            Self::Str(b) => allocated((rows + 1) * 4) + allocated(b.values_slice().len()) + bits,
            Self::List(b) => {
                let items = b.values_ref();
                allocated((rows + 1) * 4)
                    + allocated((items.len() + 1) * 4)
                    + allocated(items.values_slice().len())
                    + bits
                    + allocated(items.len().div_ceil(8))
            }
        }
    }

    /// Appends one value.
    fn append(&mut self, value: &Value<'_>) {
        match (self, value) {
            (Self::Int(b), Value::Int(v)) => b.append_value(*v),
            (Self::Ts(b), Value::TimestampMs(v)) => b.append_value(*v),
            (Self::Bool(b), Value::Bool(v)) => b.append_value(*v),
            (Self::Str(b), Value::Str(s)) => b.append_value(s),
            (Self::List(b), Value::List(items)) => {
                for s in items {
                    b.values().append_value(s);
                }
                b.append(true);
            }
            (Self::Int(b), _) => b.append_null(),
            (Self::Ts(b), _) => b.append_null(),
            (Self::Bool(b), _) => b.append_null(),
            (Self::Str(b), _) => b.append_null(),
            (Self::List(b), _) => b.append(false),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int(b) => Arc::new(b.finish()),
            Self::Str(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Ts(b) => Arc::new(b.finish()),
            Self::List(b) => Arc::new(b.finish()),
        }
    }
}

/// Fixed heap bytes of a builder besides its columns (its column vector's header, allocator
/// bookkeeping).
const BUILDER_OVERHEAD: usize = 64;
/// Fixed heap bytes of one column besides its buffers: its builder, held in the column vector,
/// plus allocator bookkeeping for up to five buffers.
const COLUMN_OVERHEAD: usize = std::mem::size_of::<Column>() + 5 * 16;

/// Rows a builder keeps compact before it builds columns (above this, Arrow's columns cost less
/// than the compact form's tags and lengths).
pub const COMPACT_ROWS: usize = 128;

/// Compact bytes past which a builder builds columns even under [`COMPACT_ROWS`] rows (wide
/// rows, e.g. `delivery_content` bodies of several KB).
const COMPACT_BYTES: usize = 64 << 10;

/// Most rows of one chunk. A builder's columns are made with room for a chunk's rows and sealed
/// into a batch when full; the chunks double from the rows kept compact up to this size, each
/// sized from the one before, so no buffer grows and copies itself. Growing one set of columns
/// for a whole window instead doubled and copied its buffers into fresh pages up to megabytes
/// (the kernel zeroing those pages was 15 % of ingest's CPU, docs/PERFORMANCE.md).
pub const CHUNK_ROWS: usize = 1024;

/// The payload bytes a value counts for (window byte limits).
fn payload(value: &Value<'_>) -> usize {
    match value {
        Value::Str(s) => s.len() + 4,
        Value::List(items) => items.iter().map(|s| s.len() + 4).sum::<usize>() + 4,
        _ => 8,
    }
}

/// Builds `RecordBatch`es of one table from validated rows.
///
/// Its first [`COMPACT_ROWS`] rows are kept as compact bytes; the Arrow columns are built when
/// there are more, or at [`finish`](Self::finish). So a window of a few rows costs its bytes,
/// not a column builder per field. Past them the rows go into chunks of columns, sealed into a
/// batch each when full (doubling up to [`CHUNK_ROWS`] rows).
pub struct BatchBuilder {
    table: Table,
    /// The rows while there are at most [`COMPACT_ROWS`] (and [`COMPACT_BYTES`]); empty once
    /// `columns` hold them.
    compact: CompactRows,
    /// One builder per field, once built (empty before).
    columns: Vec<Column>,
    /// Rows in `columns` (or in `compact`).
    chunk_rows: usize,
    /// Rows at which `columns` are sealed (what they were made to hold).
    chunk_target: usize,
    /// Heap bytes `columns` reserved when they were made.
    reserved: usize,
    /// Full chunks' columns, in order, and their heap bytes.
    sealed: Vec<Vec<ArrayRef>>,
    sealed_bytes: usize,
    rows: usize,
    bytes: usize,
}

impl BatchBuilder {
    /// An empty builder for `table`.
    pub fn new(table: Table) -> Self {
        Self {
            table,
            compact: CompactRows::default(),
            columns: Vec::new(),
            chunk_rows: 0,
            chunk_target: 0,
            reserved: 0,
            sealed: Vec::new(),
            sealed_bytes: 0,
            rows: 0,
            bytes: 0,
        }
    }

    /// The builder's table.
    pub fn table(&self) -> Table {
        self.table
    }

    /// Appends a row of this builder's table.
    ///
    /// # Panics
    /// If the row belongs to another table (a programming error, not a data error).
    pub fn append(&mut self, row: &Row<'_>) {
        assert_eq!(row.table(), self.table, "row appended to another table's builder");
        self.bytes += row.values().map(payload).sum::<usize>();
        self.rows += 1;
        self.chunk_rows += 1;
        if self.columns.is_empty() {
            self.compact.push(row.values());
            if self.chunk_rows > COMPACT_ROWS || self.compact.bytes() > COMPACT_BYTES {
                let rows = self.chunk_rows;
                self.build_columns((2 * rows).min(CHUNK_ROWS).max(rows));
            }
        } else {
            for (column, value) in self.columns.iter_mut().zip(row.values()) {
                column.append(value);
            }
            if self.chunk_rows >= self.chunk_target {
                self.seal();
            }
        }
    }

    /// Seals the full columns into a batch and starts columns for the next chunk (twice the
    /// rows, up to [`CHUNK_ROWS`]), sized from the sealed one.
    fn seal(&mut self) {
        let rows = self.chunk_rows;
        let sizes: Vec<(usize, usize)> = self.columns.iter().map(Column::sizes).collect();
        let next = self.sized_columns(rows, &sizes, (2 * rows).min(CHUNK_ROWS));
        let arrays: Vec<ArrayRef> =
            std::mem::replace(&mut self.columns, next).into_iter().map(|mut c| c.finish()).collect();
        self.sealed_bytes += arrays.iter().map(|a| a.get_array_memory_size()).sum::<usize>();
        self.sealed.push(arrays);
        self.chunk_rows = 0;
    }

    /// Columns with room for `target` rows, by `sizes` (string bytes, list items per column)
    /// measured over `rows` rows, plus an eighth for rows with longer values; sets the target.
    fn sized_columns(&mut self, rows: usize, sizes: &[(usize, usize)], target: usize) -> Vec<Column> {
        let scale = |n: usize| {
            let n = n * target / rows.max(1);
            n + n / 8
        };
        let mut reserved = 0;
        let columns = self
            .table
            .def()
            .fields
            .iter()
            .zip(sizes)
            .map(|(field, &(bytes, items))| {
                let (bytes, items) = (scale(bytes), scale(items));
                reserved += Column::reserved(field.ty, target, bytes, items);
                Column::with_capacity(field.ty, target, bytes, items)
            })
            .collect();
        self.reserved = reserved;
        self.chunk_target = target;
        columns
    }

    /// Moves the compact rows into Arrow column builders with room for `target` rows.
    fn build_columns(&mut self, target: usize) {
        let fields = self.table.def().fields;
        let sizes = self.compact.sizes(fields.len());
        let mut columns = self.sized_columns(self.chunk_rows, &sizes, target);
        for values in self.compact.rows(fields.len()) {
            for (column, value) in columns.iter_mut().zip(&values) {
                column.append(value);
            }
        }
        self.compact.clear();
        self.columns = columns;
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Approximate payload bytes buffered (for byte-based window limits).
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Estimated heap bytes the builder holds now, growth slack included (for memory budgets).
    pub fn footprint(&self) -> usize {
        let growing = self.columns.iter().map(|c| c.footprint(self.chunk_rows)).sum::<usize>();
        BUILDER_OVERHEAD
            + self.compact.capacity()
            + self.sealed_bytes
            + self.sealed.len() * BUILDER_OVERHEAD
            + growing.max(self.reserved)
            + self.columns.len() * COLUMN_OVERHEAD
    }

    /// Emits the buffered rows as batches with the table's contract schema (one per chunk, at
    /// most [`CHUNK_ROWS`] rows each, in order; one empty batch if there are no rows) and resets
    /// the builder.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>, ArrowError> {
        let mut chunks = std::mem::take(&mut self.sealed);
        if self.chunk_rows > 0 || chunks.is_empty() {
            if self.columns.is_empty() {
                self.build_columns(self.chunk_rows);
            }
            chunks.push(self.columns.drain(..).map(|mut c| c.finish()).collect());
        }
        self.columns.clear();
        self.chunk_rows = 0;
        self.chunk_target = 0;
        self.reserved = 0;
        self.sealed_bytes = 0;
        self.rows = 0;
        self.bytes = 0;
        chunks.into_iter().map(|arrays| RecordBatch::try_new(arrow_schema(self.table), arrays)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_json;

    #[test]
    fn an_empty_builder_is_small_and_the_footprint_follows_the_rows() {
        let mut b = BatchBuilder::new(Table::Attributes);
        let empty = b.footprint();
        assert!(empty < 4096, "an empty builder holds {empty} bytes");
        let json = br#"{"workspace_id": 1, "internal_customer_id": "c1", "attribute_name": "plan", "attribute_value": "gold", "timestamp": 1700000000000}"#;
        let row = decode_json(Table::Attributes, json).unwrap();
        let mut last = empty;
        for _ in 0..10_000 {
            b.append(&row);
            assert!(b.footprint() >= last, "the footprint never shrinks while rows are added");
            last = b.footprint();
        }
        assert!(last > b.buffered_bytes(), "allocated ({last}) covers at least the payload ({})", b.buffered_bytes());
        assert!(last < 4 * b.buffered_bytes() + empty, "within growth slack of the payload");
        let batches = b.finish().unwrap();
        let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 10_000);
        assert!(sizes.iter().all(|&n| n <= CHUNK_ROWS), "{sizes:?}");
        assert_eq!(b.footprint(), empty, "finish hands the buffers over");
    }

    /// Builds one batch straight into columns (no compact stage, no chunks), for comparison.
    fn columnar(table: Table, rows: &[Row<'_>]) -> RecordBatch {
        let fields = table.def().fields;
        let mut columns: Vec<Column> = fields.iter().map(|f| Column::with_capacity(f.ty, 0, 0, 0)).collect();
        for row in rows {
            for (column, value) in columns.iter_mut().zip(row.values()) {
                column.append(value);
            }
        }
        RecordBatch::try_new(arrow_schema(table), columns.iter_mut().map(Column::finish).collect()).unwrap()
    }

    /// A campaign's JSON: strings growing with `i`, NULL / empty / three-item lists in turn.
    fn campaign(i: usize) -> String {
        let topics = match i % 3 {
            0 => "null".to_owned(),
            1 => "[]".to_owned(),
            _ => format!(r#"["t{i}", "ü{}", ""]"#, i * 7),
        };
        format!(
            r#"{{"workspace_id": {}, "campaign_id": {i}, "name": "c\"{i}\" é{}", "created_at": {}, "updated_at": "2026-11-29T01:02:03.{:03}Z", "version": {}, "topic_names": {topics}}}"#,
            i + 1,
            "x".repeat(i / 100),
            1_700_000_000_000u64 + i as u64,
            i % 1000,
            -(i as i64)
        )
    }

    /// Checks that `batches` hold `rows` in order, and returns their sizes.
    fn chunks_of(batches: &[RecordBatch], rows: &[Row<'_>]) -> Vec<usize> {
        let mut at = 0;
        for (i, batch) in batches.iter().enumerate() {
            let n = batch.num_rows();
            assert!(n <= CHUNK_ROWS, "chunk {i}: {n} rows");
            assert_eq!(batch, &columnar(Table::Campaigns, &rows[at..at + n]), "chunk {i} (rows {at}..)");
            at += n;
        }
        assert_eq!(at, rows.len(), "every row, once");
        batches.iter().map(RecordBatch::num_rows).collect()
    }

    #[test]
    fn rows_are_sealed_in_doubling_chunks_that_hold_the_same_values_in_order() {
        let inputs: Vec<String> = (0..2_500).map(campaign).collect();
        let rows: Vec<Row<'_>> = inputs.iter().map(|j| decode_json(Table::Campaigns, j.as_bytes()).unwrap()).collect();
        let mut b = BatchBuilder::new(Table::Campaigns);
        for row in &rows {
            b.append(row);
        }
        assert_eq!(b.len(), rows.len());
        // Later chunks hold longer names than the rows their columns were sized by: they grow.
        let first = 2 * (COMPACT_ROWS + 1);
        let sizes = chunks_of(&b.finish().unwrap(), &rows);
        assert_eq!(sizes, [first, 2 * first, CHUNK_ROWS, 2_500 - 3 * first - CHUNK_ROWS]);
        // A chunk that ends at the last row adds no empty batch; the builder is reusable.
        for row in &rows[..first] {
            b.append(row);
        }
        assert_eq!(chunks_of(&b.finish().unwrap(), &rows[..first]), [first]);
        assert_eq!(chunks_of(&b.finish().unwrap(), &[]), [0]);
    }

    #[test]
    fn wide_rows_leave_the_compact_form_early() {
        let inputs: Vec<String> = (0..1_000).map(|i| campaign(i + 100_000)).collect();
        let rows: Vec<Row<'_>> = inputs.iter().map(|j| decode_json(Table::Campaigns, j.as_bytes()).unwrap()).collect();
        let mut b = BatchBuilder::new(Table::Campaigns);
        for row in &rows {
            b.append(row);
        }
        // 1 KB names: 64 KiB of compact rows before 128 rows, then chunks of twice that.
        let sizes = chunks_of(&b.finish().unwrap(), &rows);
        assert!(sizes[0] < COMPACT_ROWS, "{sizes:?}");
        assert_eq!(sizes[1], 2 * sizes[0], "{sizes:?}");
    }

    #[test]
    fn compact_rows_build_the_same_batch_as_columns_on_both_sides_of_the_threshold() {
        let inputs: Vec<String> = (0..400).map(campaign).collect();
        let rows: Vec<Row<'_>> = inputs.iter().map(|j| decode_json(Table::Campaigns, j.as_bytes()).unwrap()).collect();
        for n in [1, 5, COMPACT_ROWS, COMPACT_ROWS + 1, COMPACT_ROWS + 7, 400] {
            let mut b = BatchBuilder::new(Table::Campaigns);
            for row in &rows[..n] {
                b.append(row);
            }
            assert_eq!(b.len(), n);
            let sizes = chunks_of(&b.finish().unwrap(), &rows[..n]);
            assert_eq!(sizes.len(), if n > 2 * (COMPACT_ROWS + 1) { 2 } else { 1 }, "{n} rows: {sizes:?}");
            // The builder is reusable after finish.
            b.append(&rows[0]);
            assert_eq!(chunks_of(&b.finish().unwrap(), &rows[..1]), [1]);
        }
    }

    #[test]
    fn a_few_rows_cost_their_bytes_not_a_builder_per_column() {
        let json = br#"{"workspace_id": 1, "internal_customer_id": "c1", "attribute_name": "plan", "attribute_value": "gold", "timestamp": 1700000000000}"#;
        let row = decode_json(Table::Attributes, json).unwrap();
        let mut b = BatchBuilder::new(Table::Attributes);
        for _ in 0..5 {
            b.append(&row);
        }
        assert!(b.footprint() < 1024, "5 small rows held in {} bytes", b.footprint());
    }
}
