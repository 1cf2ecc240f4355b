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
    /// An empty column. Builders start empty and grow with their rows: Arrow's default
    /// (1,024 rows per column) cost ~100 KB per window before the first row, 4 GiB with
    /// 40,000 small windows open (docs/PERFORMANCE.md).
    fn new(ty: FieldType) -> Self {
        match ty {
            FieldType::Int64 => Self::Int(Int64Builder::with_capacity(0)),
            FieldType::Utf8 => Self::Str(StringBuilder::with_capacity(0, 0)),
            FieldType::Boolean => Self::Bool(BooleanBuilder::with_capacity(0)),
            FieldType::Timestamp => Self::Ts(TimestampMillisecondBuilder::with_capacity(0).with_timezone(TIMEZONE)),
            FieldType::ListUtf8 => Self::List(
                ListBuilder::with_capacity(StringBuilder::with_capacity(0, 0), 0).with_field(list_item_field()),
            ),
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
/// not a column builder per field.
pub struct BatchBuilder {
    table: Table,
    /// The rows while there are at most [`COMPACT_ROWS`]; empty once `columns` hold them.
    compact: CompactRows,
    /// One builder per field, once built (empty before).
    columns: Vec<Column>,
    rows: usize,
    bytes: usize,
}

impl BatchBuilder {
    /// An empty builder for `table`.
    pub fn new(table: Table) -> Self {
        Self { table, compact: CompactRows::default(), columns: Vec::new(), rows: 0, bytes: 0 }
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
        self.bytes += row.values().iter().map(payload).sum::<usize>();
        self.rows += 1;
        if self.columns.is_empty() {
            self.compact.push(row.values());
            if self.rows > COMPACT_ROWS {
                self.build_columns();
            }
        } else {
            for (column, value) in self.columns.iter_mut().zip(row.values()) {
                column.append(value);
            }
        }
    }

    /// Moves the compact rows into Arrow column builders.
    fn build_columns(&mut self) {
        let fields = self.table.def().fields;
        let mut columns: Vec<Column> = fields.iter().map(|f| Column::new(f.ty)).collect();
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
        BUILDER_OVERHEAD
            + self.compact.capacity()
            + self.columns.iter().map(|c| c.footprint(self.rows) + COLUMN_OVERHEAD).sum::<usize>()
    }

    /// Emits the buffered rows as a batch with the table's contract schema and resets the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        if self.columns.is_empty() {
            self.build_columns();
        }
        let arrays = self.columns.drain(..).map(|mut c| c.finish()).collect();
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(arrow_schema(self.table), arrays)
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
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 10_000);
        assert_eq!(b.footprint(), empty, "finish hands the buffers over");
    }

    /// Builds a batch straight into columns (no compact stage), for comparison.
    fn columnar(table: Table, rows: &[Row<'_>]) -> RecordBatch {
        let mut b = BatchBuilder::new(table);
        b.build_columns();
        for row in rows {
            b.append(row);
        }
        b.finish().unwrap()
    }

    #[test]
    fn compact_rows_build_the_same_batch_as_columns_on_both_sides_of_the_threshold() {
        let json = |i: usize| {
            let topics = match i % 3 {
                0 => "null".to_owned(),
                1 => "[]".to_owned(),
                _ => format!(r#"["t{i}", "ü{}", ""]"#, i * 7),
            };
            format!(
                r#"{{"workspace_id": {}, "campaign_id": {i}, "name": "c\"{i}\" é", "created_at": {}, "updated_at": "2026-11-29T01:02:03.{:03}Z", "version": {}, "topic_names": {topics}}}"#,
                i + 1,
                1_700_000_000_000u64 + i as u64,
                i % 1000,
                -(i as i64)
            )
        };
        let inputs: Vec<String> = (0..400).map(json).collect();
        let rows: Vec<Row<'_>> = inputs.iter().map(|j| decode_json(Table::Campaigns, j.as_bytes()).unwrap()).collect();
        for n in [1, 5, COMPACT_ROWS, COMPACT_ROWS + 1, COMPACT_ROWS + 7, 400] {
            let mut b = BatchBuilder::new(Table::Campaigns);
            for row in &rows[..n] {
                b.append(row);
            }
            assert_eq!(b.len(), n);
            let expected = columnar(Table::Campaigns, &rows[..n]);
            assert_eq!(b.finish().unwrap(), expected, "{n} rows");
            // The builder is reusable after finish.
            b.append(&rows[0]);
            assert_eq!(b.finish().unwrap(), columnar(Table::Campaigns, &rows[..1]));
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
