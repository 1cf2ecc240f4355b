//! Accumulates validated rows of one table into Arrow arrays and emits `RecordBatch`es.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;

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

impl Column {
    fn new(ty: FieldType) -> Self {
        match ty {
            FieldType::Int64 => Self::Int(Int64Builder::new()),
            FieldType::Utf8 => Self::Str(StringBuilder::new()),
            FieldType::Boolean => Self::Bool(BooleanBuilder::new()),
            FieldType::Timestamp => Self::Ts(TimestampMillisecondBuilder::new().with_timezone(TIMEZONE)),
            FieldType::ListUtf8 => Self::List(ListBuilder::new(StringBuilder::new()).with_field(list_item_field())),
        }
    }

    /// Appends one value; returns the bytes of payload it added (an estimate for window limits).
    fn append(&mut self, value: &Value<'_>) -> usize {
        match (self, value) {
            (Self::Int(b), Value::Int(v)) => b.append_value(*v),
            (Self::Ts(b), Value::TimestampMs(v)) => b.append_value(*v),
            (Self::Bool(b), Value::Bool(v)) => b.append_value(*v),
            (Self::Str(b), Value::Str(s)) => {
                b.append_value(s);
                return s.len() + 4;
            }
            (Self::List(b), Value::List(items)) => {
                for s in items {
                    b.values().append_value(s);
                }
                b.append(true);
                return items.iter().map(|s| s.len() + 4).sum::<usize>() + 4;
            }
            (Self::Int(b), _) => b.append_null(),
            (Self::Ts(b), _) => b.append_null(),
            (Self::Bool(b), _) => b.append_null(),
            (Self::Str(b), _) => b.append_null(),
            (Self::List(b), _) => b.append(false),
        }
        8
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

/// Builds `RecordBatch`es of one table from validated rows.
pub struct BatchBuilder {
    table: Table,
    columns: Vec<Column>,
    rows: usize,
    bytes: usize,
}

impl BatchBuilder {
    /// An empty builder for `table`.
    pub fn new(table: Table) -> Self {
        let columns = table.def().fields.iter().map(|f| Column::new(f.ty)).collect();
        Self { table, columns, rows: 0, bytes: 0 }
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
        for (column, value) in self.columns.iter_mut().zip(row.values()) {
            self.bytes += column.append(value);
        }
        self.rows += 1;
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

    /// Emits the buffered rows as a batch with the table's contract schema and resets the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let arrays = self.columns.iter_mut().map(Column::finish).collect();
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(arrow_schema(self.table), arrays)
    }
}
