//! Arrow schemas derived from the contract: the only place types map to Arrow.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field as ArrowField, FieldRef, Schema, SchemaRef, TimeUnit};

use crate::table::{FieldType, Table};

/// The time zone of every timestamp column.
pub const TIMEZONE: &str = "UTC";

/// The Arrow field of a list column's elements (non-null strings).
pub fn list_item_field() -> FieldRef {
    Arc::new(ArrowField::new("item", DataType::Utf8, false))
}

/// The Arrow type of a contract type.
pub fn data_type(ty: FieldType) -> DataType {
    match ty {
        FieldType::Int64 => DataType::Int64,
        FieldType::Utf8 => DataType::Utf8,
        FieldType::Boolean => DataType::Boolean,
        FieldType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some(TIMEZONE.into())),
        FieldType::ListUtf8 => DataType::List(list_item_field()),
    }
}

/// The Arrow schema of a table (built once, then shared).
pub fn arrow_schema(table: Table) -> SchemaRef {
    static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        Table::ALL
            .iter()
            .map(|t| {
                let fields = t.def().fields.iter().map(|f| ArrowField::new(f.name, data_type(f.ty), f.nullable));
                Arc::new(Schema::new(fields.collect::<Vec<_>>()))
            })
            .collect()
    });
    let index = Table::ALL.iter().position(|t| *t == table).unwrap_or_default();
    Arc::clone(&all[index])
}
