//! The fold: what a table's baseline holds, from the workspace's rows of that table in archive
//! order, a `now`, and what the history says about deleted or suppressed people and deleted
//! objects ([`Context`]). Pure and in memory: no S3, no clock.
//!
//! Per table ([`rule`]):
//!
//! | table | baseline |
//! |---|---|
//! | deliveries, delivery_content, outputs, subjects | latest row per primary key, whole history, anonymized |
//! | metrics | every row, anonymized |
//! | events, inbound | rows with `timestamp` ≥ `now` − 30 days, anonymized |
//! | people | latest row per `internal_customer_id`, unless it says deleted or suppressed |
//! | attributes | latest row per (`internal_customer_id`, `attribute_name`), erased people left out |
//! | objects | latest row per `internal_object_id`, unless `deleted` |
//! | object_types | latest row per `object_type_id`, unless `deleted` |
//! | object_attributes | latest row per (`internal_object_id`, `attribute_name`), deleted objects left out |
//! | campaigns, broadcasts | latest row per `campaign_id`, `broadcast_id` |
//! | actions | latest row per `action_id` (the contract has no primary key) |
//!
//! "Latest" is last in archive order (the order the records were handed off, batch offsets then
//! file offsets then rows): a later row always replaces an earlier one, so there are no ties.
//! Output rows keep their archive order.

mod context;
mod keys;
mod latest;

use std::collections::HashSet;

use arrow::compute::filter_record_batch;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::ArrowError;
use dwsync_contract::{Table, arrow_schema};

pub use context::Context;

use crate::anonymize::anonymize;
use latest::Latest;

/// How long events and inbound messages are kept in a baseline: 30 days, in milliseconds.
pub const RECENT_MS: i64 = 30 * 24 * 60 * 60 * 1_000;

/// Which rows a table's baseline keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Every row.
    All,
    /// Rows whose `timestamp` is at or after `now` − [`RECENT_MS`].
    Recent,
    /// The latest row per key (these columns), then [`LeaveOut`] applied.
    Latest(&'static [&'static str], LeaveOut),
}

/// Which latest rows are left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveOut {
    /// None.
    Nothing,
    /// Rows of people deleted or suppressed (by `internal_customer_id`).
    ErasedPeople,
    /// Rows whose `deleted` is true.
    Deleted,
    /// Rows of objects deleted (by `internal_object_id`).
    DeletedObjects,
}

/// The rule of `table`'s baseline.
pub fn rule(table: Table) -> Rule {
    match table {
        Table::Deliveries | Table::DeliveryContent | Table::Outputs | Table::Subjects => {
            Rule::Latest(table.def().primary_key, LeaveOut::Nothing)
        }
        Table::Metrics => Rule::All,
        Table::Events | Table::Inbound => Rule::Recent,
        Table::People => Rule::Latest(&["internal_customer_id"], LeaveOut::ErasedPeople),
        Table::Attributes => Rule::Latest(&["internal_customer_id", "attribute_name"], LeaveOut::ErasedPeople),
        Table::Objects => Rule::Latest(&["internal_object_id"], LeaveOut::Deleted),
        Table::ObjectTypes => Rule::Latest(&["object_type_id"], LeaveOut::Deleted),
        Table::ObjectAttributes => Rule::Latest(&["internal_object_id", "attribute_name"], LeaveOut::DeletedObjects),
        Table::Campaigns => Rule::Latest(&["campaign_id"], LeaveOut::Nothing),
        Table::Broadcasts => Rule::Latest(&["broadcast_id"], LeaveOut::Nothing),
        Table::Actions => Rule::Latest(&["action_id"], LeaveOut::Nothing),
    }
}

/// Why a fold failed.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    /// A batch given is not the table's exact v5 schema.
    #[error("rows given for {table} do not have its v5 schema")]
    Schema {
        /// The table.
        table: &'static str,
    },
    /// An Arrow kernel failed.
    #[error("folding {table}: {error}")]
    Arrow {
        /// The table.
        table: &'static str,
        /// Arrow's error.
        error: ArrowError,
    },
}

/// `table`'s baseline from its `history` (the workspace's rows in archive order, exact v5
/// schema), per [`rule`], anonymized where [`crate::anonymize::rules`] says.
pub fn fold(table: Table, history: Vec<RecordBatch>, context: &Context) -> Result<Vec<RecordBatch>, FoldError> {
    let arrow = |error| FoldError::Arrow { table: table.name(), error };
    let schema = arrow_schema(table);
    if history.iter().any(|b| b.schema().fields() != schema.fields()) {
        return Err(FoldError::Schema { table: table.name() });
    }
    let kept = match rule(table) {
        Rule::All => history,
        Rule::Recent => {
            let cutoff = context.now_ms.saturating_sub(RECENT_MS);
            let index = schema.index_of("timestamp").map_err(arrow)?;
            keep(history, |batch| {
                batch
                    .column(index)
                    .as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .map(|t| t.is_some_and(|t| t >= cutoff))
                    .collect()
            })
            .map_err(arrow)?
        }
        Rule::Latest(key, drop) => {
            let mut latest = Latest::new(schema.clone(), key).map_err(arrow)?;
            for batch in history {
                latest.push(batch).map_err(arrow)?;
            }
            let rows = latest.finish().map_err(arrow)?;
            match drop {
                LeaveOut::Nothing => rows,
                LeaveOut::ErasedPeople => {
                    keep(rows, |b| not_in(b, "internal_customer_id", &context.erased.people)).map_err(arrow)?
                }
                LeaveOut::DeletedObjects => {
                    keep(rows, |b| not_in(b, "internal_object_id", &context.deleted_objects)).map_err(arrow)?
                }
                LeaveOut::Deleted => keep(rows, |b| match b.column_by_name("deleted") {
                    Some(deleted) => deleted.as_boolean().iter().map(|d| d != Some(true)).collect(),
                    None => vec![true; b.num_rows()],
                })
                .map_err(arrow)?,
            }
        }
    };
    if context.erased.is_empty() {
        return Ok(kept);
    }
    kept.iter().map(|batch| anonymize(table, batch, &context.erased)).collect::<Result<_, _>>().map_err(arrow)
}

/// The rows of `batches` for which `keep` says true; empty batches dropped.
fn keep(batches: Vec<RecordBatch>, keep: impl Fn(&RecordBatch) -> Vec<bool>) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let filtered = filter_record_batch(&batch, &BooleanArray::from(keep(&batch)))?;
        if filtered.num_rows() > 0 {
            out.push(filtered);
        }
    }
    Ok(out)
}

/// Whether each row's text `column` is outside `set` (true where the column is absent or null).
fn not_in(batch: &RecordBatch, column: &str, set: &HashSet<String>) -> Vec<bool> {
    match batch.column_by_name(column) {
        Some(values) => values.as_string::<i32>().iter().map(|v| !v.is_some_and(|v| set.contains(v))).collect(),
        None => vec![true; batch.num_rows()],
    }
}

#[cfg(test)]
mod tests;
