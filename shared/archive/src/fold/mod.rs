//! The fold: what a table's baseline holds, from the workspace's rows of that table in archive
//! order, a `now`, and what the history says about deleted or suppressed people and deleted
//! objects ([`Context`]). Pure: no S3, no clock. Streaming ([`Folder`]): metrics, events and
//! inbound come out as they go in; the latest-per-key tables at the end, spilling to local disk
//! past a memory budget ([`spill`]) with the same rows out whatever the budget.
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
pub mod spill;

use std::collections::HashSet;

use arrow::compute::filter_record_batch;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::ArrowError;
use dwsync_contract::{Table, arrow_schema};

pub use context::{Context, Erasing, Flagged};
pub use spill::{Spill, SpillCounter, SpillError};

use crate::anonymize::anonymize;
use spill::{SpillLatest, Winners};

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
    /// Spilling to local disk failed.
    #[error("folding {table}: {error}")]
    Spill {
        /// The table.
        table: &'static str,
        /// What failed.
        error: SpillError,
    },
}

impl FoldError {
    fn spill(table: Table, error: SpillError) -> Self {
        match error {
            SpillError::Arrow(error) => Self::Arrow { table: table.name(), error },
            error => Self::Spill { table: table.name(), error },
        }
    }
}

/// `table`'s baseline from its `history` (the workspace's rows in archive order, exact v5
/// schema), per [`rule`], anonymized where [`crate::anonymize::rules`] says. In memory: a
/// [`Folder`] without a spill directory.
pub fn fold(table: Table, history: Vec<RecordBatch>, context: &Context) -> Result<Vec<RecordBatch>, FoldError> {
    let mut folder = Folder::new(table, context, None)?;
    let mut out = Vec::new();
    for batch in history {
        out.extend(folder.push(batch)?);
    }
    for batch in folder.finish()? {
        out.push(batch?);
    }
    Ok(out)
}

/// One table's fold, streaming: rows pushed in archive order, the baseline's rows out as soon
/// as they are known — at once for metrics, events and inbound (filtered and anonymized), at
/// [`finish`](Self::finish) for the latest-per-key tables, whose fold holds at most the spill
/// budget in memory ([`Spill`]) and writes the rest to local disk.
///
/// The rows out, and their batches, are the same whatever the budget: a function of the rows in.
#[derive(Debug)]
pub struct Folder<'a> {
    table: Table,
    context: &'a Context,
    schema: arrow_schema::SchemaRef,
    latest: Option<(SpillLatest, LeaveOut)>,
}

impl<'a> Folder<'a> {
    /// A fold of `table`'s rows with `context`; latest-per-key tables spill per `spill` (in
    /// memory only without it).
    pub fn new(table: Table, context: &'a Context, spill: Option<&Spill>) -> Result<Self, FoldError> {
        let schema = arrow_schema(table);
        let latest = match rule(table) {
            Rule::Latest(key, leave_out) => Some((
                SpillLatest::new(schema.clone(), key, spill.cloned()).map_err(|e| FoldError::spill(table, e))?,
                leave_out,
            )),
            Rule::All | Rule::Recent => None,
        };
        Ok(Self { table, context, schema, latest })
    }

    /// Adds the next rows in archive order; returns the baseline rows they make now (none for
    /// a latest-per-key table).
    pub fn push(&mut self, batch: RecordBatch) -> Result<Vec<RecordBatch>, FoldError> {
        let table = self.table;
        if batch.schema().fields() != self.schema.fields() {
            return Err(FoldError::Schema { table: table.name() });
        }
        let arrow = |error| FoldError::Arrow { table: table.name(), error };
        if let Some((latest, _)) = &mut self.latest {
            latest.push(batch).map_err(|e| FoldError::spill(table, e))?;
            return Ok(Vec::new());
        }
        let kept = match rule(table) {
            Rule::Recent => {
                let cutoff = self.context.now_ms.saturating_sub(RECENT_MS);
                let index = self.schema.index_of("timestamp").map_err(arrow)?;
                keep(vec![batch], |batch| {
                    batch
                        .column(index)
                        .as_primitive::<TimestampMillisecondType>()
                        .iter()
                        .map(|t| t.is_some_and(|t| t >= cutoff))
                        .collect()
                })
                .map_err(arrow)?
            }
            _ => vec![batch],
        };
        kept.iter().map(|b| self.anonymized(b)).collect()
    }

    /// The rest of the baseline: a latest-per-key table's latest rows in archive order (those
    /// left out by its rule dropped), anonymized; nothing for the other tables.
    pub fn finish(self) -> Result<Rest<'a>, FoldError> {
        let table = self.table;
        let winners = match self.latest {
            Some((latest, leave_out)) => Some((latest.finish().map_err(|e| FoldError::spill(table, e))?, leave_out)),
            None => None,
        };
        Ok(Rest { table, context: self.context, winners })
    }

    fn anonymized(&self, batch: &RecordBatch) -> Result<RecordBatch, FoldError> {
        if self.context.erased.is_empty() {
            return Ok(batch.clone());
        }
        anonymize(self.table, batch, &self.context.erased)
            .map_err(|error| FoldError::Arrow { table: self.table.name(), error })
    }
}

/// The rows of a [`Folder`] known only at its end, batch by batch ([`Folder::finish`]).
#[derive(Debug)]
pub struct Rest<'a> {
    table: Table,
    context: &'a Context,
    winners: Option<(Winners, LeaveOut)>,
}

impl Iterator for Rest<'_> {
    type Item = Result<RecordBatch, FoldError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (table, context) = (self.table, self.context);
        let arrow = |error| FoldError::Arrow { table: table.name(), error };
        let (winners, leave_out) = self.winners.as_mut()?;
        loop {
            let batch = match winners.next()? {
                Ok(batch) => batch,
                Err(e) => return Some(Err(FoldError::spill(table, e))),
            };
            let kept = match leave_out {
                LeaveOut::Nothing => Ok(vec![batch]),
                LeaveOut::ErasedPeople => {
                    keep(vec![batch], |b| not_in(b, "internal_customer_id", &context.erased.people))
                }
                LeaveOut::DeletedObjects => {
                    keep(vec![batch], |b| not_in(b, "internal_object_id", &context.deleted_objects))
                }
                LeaveOut::Deleted => keep(vec![batch], |b| match b.column_by_name("deleted") {
                    Some(deleted) => deleted.as_boolean().iter().map(|d| d != Some(true)).collect(),
                    None => vec![true; b.num_rows()],
                }),
            };
            match kept {
                Err(error) => return Some(Err(arrow(error))),
                Ok(kept) => {
                    let Some(batch) = kept.into_iter().next() else { continue };
                    if context.erased.is_empty() {
                        return Some(Ok(batch));
                    }
                    return Some(anonymize(table, &batch, &context.erased).map_err(arrow));
                }
            }
        }
    }
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
