//! A row's key as bytes: each key column's value, typed and length-prefixed, so distinct key
//! tuples never share bytes.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{ArrowError, DataType};

/// The key columns of a table's batches.
#[derive(Debug, Clone)]
pub(crate) struct KeyColumns(Vec<usize>);

impl KeyColumns {
    /// The columns `names` of `schema`'s batches (text or integer columns).
    pub(crate) fn new(schema: &arrow_schema::Schema, names: &[&str]) -> Result<Self, ArrowError> {
        let columns = names.iter().map(|name| schema.index_of(name)).collect::<Result<Vec<_>, _>>()?;
        for index in &columns {
            let field = schema.field(*index);
            if !matches!(field.data_type(), DataType::Utf8 | DataType::Int64) {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "key column {} is not text or integer",
                    field.name()
                )));
            }
        }
        Ok(Self(columns))
    }

    /// The key of every row of `batch`.
    pub(crate) fn keys(&self, batch: &RecordBatch) -> Vec<Box<[u8]>> {
        let mut keys: Vec<Vec<u8>> = vec![Vec::new(); batch.num_rows()];
        for index in &self.0 {
            let column = batch.column(*index);
            match column.data_type() {
                DataType::Int64 => {
                    for (key, value) in keys.iter_mut().zip(column.as_primitive::<Int64Type>().iter()) {
                        match value {
                            Some(v) => {
                                key.push(1);
                                key.extend_from_slice(&v.to_le_bytes());
                            }
                            None => key.push(0),
                        }
                    }
                }
                _ => {
                    for (key, value) in keys.iter_mut().zip(column.as_string::<i32>().iter()) {
                        match value {
                            Some(v) => {
                                key.push(1);
                                key.extend_from_slice(&(v.len() as u64).to_le_bytes());
                                key.extend_from_slice(v.as_bytes());
                            }
                            None => key.push(0),
                        }
                    }
                }
            }
        }
        keys.into_iter().map(Vec::into_boxed_slice).collect()
    }
}
