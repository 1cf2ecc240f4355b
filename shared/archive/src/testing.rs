//! Test rows: valid generated records of a table with some fields set.

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::DataType;
use dwsync_contract::{BatchBuilder, Encoding, Table, arrow_schema, decode};
use dwsync_loadgen::Generator;
use serde_json::Value;

/// The workspace of test rows.
pub(crate) const WORKSPACE: i64 = 7;

/// One batch of `table`: per entry of `fields`, a generated record (workspace [`WORKSPACE`])
/// with those fields set.
pub(crate) fn rows(table: Table, fields: &[Value]) -> RecordBatch {
    let mut generator = Generator::new(11);
    let mut builder = BatchBuilder::new(table);
    for (n, set) in fields.iter().enumerate() {
        let record = generator.record(table, WORKSPACE, n as u64);
        let mut json: Value = serde_json::from_slice(record.encoded(Encoding::Json)).expect("generated JSON");
        for (key, value) in set.as_object().expect("an object of fields") {
            json[key] = value.clone();
        }
        let bytes = serde_json::to_vec(&json).expect("JSON");
        builder.append(&decode(table, Encoding::Json, &bytes).expect("a valid record"));
    }
    let batches = builder.finish().expect("batches");
    arrow::compute::concat_batches(&arrow_schema(table), &batches).expect("one batch")
}

/// Column `name` of `batches` as text per row (`None` for null; integers in decimal).
pub(crate) fn texts(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for batch in batches {
        let column = batch.column_by_name(name).expect("column");
        match column.data_type() {
            DataType::Int64 => out.extend(column.as_primitive::<Int64Type>().iter().map(|v| v.map(|v| v.to_string()))),
            _ => out.extend(column.as_string::<i32>().iter().map(|v| v.map(str::to_owned))),
        }
    }
    out
}

/// Column `name` as text, nulls as `-`.
pub(crate) fn col(batches: &[RecordBatch], name: &str) -> Vec<String> {
    texts(batches, name).into_iter().map(|v| v.unwrap_or_else(|| "-".to_owned())).collect()
}
