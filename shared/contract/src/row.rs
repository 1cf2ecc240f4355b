//! A decoded row: one typed value per contract column, borrowing strings from the input where it can.

use std::borrow::Cow;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::table::Table;

/// Earliest timestamp accepted: 0000-01-01T00:00:00Z in epoch milliseconds.
pub const MIN_TIMESTAMP_MS: i64 = -62_167_219_200_000;
/// Latest timestamp accepted: 9999-12-31T23:59:59.999Z in epoch milliseconds.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// One cell of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// SQL NULL (only in nullable columns).
    Null,
    /// An `INTEGER`.
    Int(i64),
    /// A `STRING`.
    Str(Cow<'a, str>),
    /// A `BOOLEAN`.
    Bool(bool),
    /// A `TIMESTAMP` in epoch milliseconds, UTC.
    TimestampMs(i64),
    /// A `LIST` of strings.
    List(Vec<Cow<'a, str>>),
}

/// A validated row of one table: values in the contract's column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row<'a> {
    table: Table,
    values: Vec<Value<'a>>,
    workspace_id: i64,
}

impl<'a> Row<'a> {
    /// Validates decoded slots (`None` = absent) against the contract and builds the row.
    ///
    /// Absent nullable fields become NULL; absent or null required fields are errors;
    /// `workspace_id` must be positive.
    pub fn from_slots(table: Table, slots: Vec<Option<Value<'a>>>) -> Result<Self, DecodeError> {
        let err = |kind| DecodeError { table, kind };
        let def = table.def();
        debug_assert_eq!(slots.len(), def.fields.len());
        let mut workspace_id = 0;
        // Checked first, then converted in place (a plain loop and an infallible map: the
        // fallible collect's machinery cost more than the checks).
        for (i, (slot, field)) in slots.iter().zip(def.fields).enumerate() {
            match slot {
                None | Some(Value::Null) if !field.nullable => {
                    let name = field.name;
                    let kind = if slot.is_none() {
                        DecodeErrorKind::MissingField(name)
                    } else {
                        DecodeErrorKind::NullField(name)
                    };
                    return Err(err(kind));
                }
                Some(Value::TimestampMs(ms)) => {
                    check_timestamp(*ms)
                        .map_err(|reason| err(DecodeErrorKind::InvalidValue { field: field.name, reason }))?;
                }
                Some(Value::Int(id)) if i == def.workspace_column => {
                    if *id <= 0 {
                        return Err(err(DecodeErrorKind::InvalidWorkspaceId(*id)));
                    }
                    workspace_id = *id;
                }
                _ => {}
            }
        }
        // Collected in place: the values reuse the slots' allocation.
        let values = slots.into_iter().map(|slot| slot.unwrap_or(Value::Null)).collect();
        Ok(Self { table, values, workspace_id })
    }

    /// The row's table.
    pub fn table(&self) -> Table {
        self.table
    }

    /// The row's workspace id (always positive).
    pub fn workspace_id(&self) -> i64 {
        self.workspace_id
    }

    /// The values, in the contract's column order.
    pub fn values(&self) -> &[Value<'a>] {
        &self.values
    }

    /// The value of the column called `name`.
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        self.table.def().index_of(name).map(|i| &self.values[i])
    }
}

/// Checks that a timestamp lies in years 0000–9999, the range every warehouse can load.
pub fn check_timestamp(ms: i64) -> Result<i64, String> {
    if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(format!("timestamp {ms} ms is outside years 0000-9999"))
    }
}
