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
    /// The decoded slots as they are, `None` = NULL (a `Some(Value::Null)` is made `None`): no
    /// second pass turns them into values.
    values: Vec<Option<Value<'a>>>,
    workspace_id: i64,
}

/// What a NULL slot reads as.
static NULL: Value<'static> = Value::Null;

impl<'a> Row<'a> {
    /// Validates decoded slots (`None` = absent) against the contract and builds the row.
    ///
    /// Absent nullable fields become NULL; absent or null required fields are errors;
    /// `workspace_id` must be positive.
    pub fn from_slots(table: Table, mut slots: Vec<Option<Value<'a>>>) -> Result<Self, DecodeError> {
        let err = |kind| DecodeError { table, kind };
        let def = table.def();
        debug_assert_eq!(slots.len(), def.fields.len());
        let mut workspace_id = 0;
        // Checked and kept as they are: one NULL form (`None`), no conversion pass.
        for (i, (slot, field)) in slots.iter_mut().zip(def.fields).enumerate() {
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
                Some(Value::Null) => *slot = None,
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
        Ok(Self { table, values: slots, workspace_id })
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
    pub fn values(&self) -> impl ExactSizeIterator<Item = &Value<'a>> + Clone + '_ {
        self.values.iter().map(|slot| slot.as_ref().unwrap_or(&NULL))
    }

    /// The value of the column called `name`.
    pub fn get(&self, name: &str) -> Option<&Value<'a>> {
        self.table.def().index_of(name).map(|i| self.values[i].as_ref().unwrap_or(&NULL))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(link_url: Option<Value<'static>>) -> Row<'static> {
        let def = Table::Metrics.def();
        let mut slots: Vec<Option<Value<'static>>> = vec![None; def.fields.len()];
        let mut set = |name, value| slots[def.index_of(name).unwrap()] = Some(value);
        set("event_id", Value::Str("e1".into()));
        set("workspace_id", Value::Int(7));
        set("delivery_id", Value::Str("d1".into()));
        set("metric", Value::Str("opened".into()));
        set("created_at", Value::TimestampMs(1_700_000_000_000));
        set("seq_num", Value::Int(1));
        for flag in ["proxied", "prefetched", "machine"] {
            set(flag, Value::Bool(false));
        }
        if let Some(value) = link_url {
            set("link_url", value);
        }
        Row::from_slots(Table::Metrics, slots).unwrap()
    }

    #[test]
    fn an_explicit_null_and_an_absent_nullable_field_are_the_same_null() {
        let (absent, null) = (metric(None), metric(Some(Value::Null)));
        assert_eq!(absent, null);
        assert_eq!(null.get("link_url"), Some(&Value::Null));
        assert_eq!(null.get("no_such_column"), None);
        let values: Vec<&Value<'_>> = null.values().collect();
        assert_eq!(values.len(), Table::Metrics.def().fields.len());
        assert_eq!(values[Table::Metrics.def().index_of("link_url").unwrap()], &Value::Null);
        assert_eq!(values[Table::Metrics.def().index_of("metric").unwrap()], &Value::Str("opened".into()));
        let with_url = metric(Some(Value::Str("https://x".into())));
        assert_ne!(with_url, absent);
        assert_eq!(with_url.get("link_url"), Some(&Value::Str("https://x".into())));
        assert_eq!(with_url.workspace_id(), 7);
    }
}
