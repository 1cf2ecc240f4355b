//! What the history says beyond one table: who is erased (people deleted or suppressed) with
//! their deliveries and subjects, which objects are deleted, and the `now` of the baseline.

use std::collections::HashSet;

use arrow_array::Array;
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use dwsync_contract::{Table, arrow_schema};

use super::FoldError;
use super::latest::Latest;
use crate::anonymize::Erased;

/// The facts a fold needs from other tables' histories.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The baseline's time, epoch milliseconds (events and inbound keep 30 days before it).
    pub now_ms: i64,
    /// People deleted or suppressed, and their deliveries and subjects.
    pub erased: Erased,
    /// `internal_object_id`s whose latest objects row says `deleted`.
    pub deleted_objects: HashSet<String>,
}

impl Context {
    /// The context at `now_ms` from the workspace's histories (rows in archive order) of people,
    /// deliveries, subjects and objects:
    ///
    /// - erased people: the latest people row per `internal_customer_id` has `deleted` or
    ///   `suppressed` true (a person deleted then re-created with a later row is not erased);
    /// - their deliveries: every `delivery_id` of a deliveries row naming such a person;
    /// - their subjects: every `subject_name` of a subjects row naming such a person;
    /// - deleted objects: the latest objects row per `internal_object_id` has `deleted` true.
    pub fn derive(
        now_ms: i64,
        people: &[RecordBatch],
        deliveries: &[RecordBatch],
        subjects: &[RecordBatch],
        objects: &[RecordBatch],
    ) -> Result<Self, FoldError> {
        let people_erased = flagged(Table::People, "internal_customer_id", &["deleted", "suppressed"], people)?;
        let theirs = |table: Table, id: &str, rows: &[RecordBatch]| -> Result<HashSet<String>, FoldError> {
            check(table, rows)?;
            let mut set = HashSet::new();
            for batch in rows {
                let (Some(person), Some(ids)) =
                    (batch.column_by_name("internal_customer_id"), batch.column_by_name(id))
                else {
                    continue;
                };
                for (person, id) in person.as_string::<i32>().iter().zip(ids.as_string::<i32>().iter()) {
                    if let (Some(person), Some(id)) = (person, id)
                        && people_erased.contains(person)
                    {
                        set.insert(id.to_owned());
                    }
                }
            }
            Ok(set)
        };
        let deliveries = theirs(Table::Deliveries, "delivery_id", deliveries)?;
        let subjects = theirs(Table::Subjects, "subject_name", subjects)?;
        let deleted_objects = flagged(Table::Objects, "internal_object_id", &["deleted"], objects)?;
        Ok(Self { now_ms, erased: Erased { people: people_erased, deliveries, subjects }, deleted_objects })
    }
}

fn check(table: Table, rows: &[RecordBatch]) -> Result<(), FoldError> {
    let schema = arrow_schema(table);
    if rows.iter().any(|b| b.schema().fields() != schema.fields()) {
        return Err(FoldError::Schema { table: table.name() });
    }
    Ok(())
}

/// The `id`s whose latest row (by `id`) has one of the boolean `flags` true.
fn flagged(table: Table, id: &str, flags: &[&str], rows: &[RecordBatch]) -> Result<HashSet<String>, FoldError> {
    check(table, rows)?;
    let arrow = |error| FoldError::Arrow { table: table.name(), error };
    let mut latest = Latest::new(arrow_schema(table), &[id]).map_err(arrow)?;
    for batch in rows {
        latest.push(batch.clone()).map_err(arrow)?;
    }
    let mut set = HashSet::new();
    for batch in latest.finish().map_err(arrow)? {
        let Some(ids) = batch.column_by_name(id) else { continue };
        let flags: Vec<_> =
            flags.iter().filter_map(|f| batch.column_by_name(f)).map(|c| c.as_boolean().clone()).collect();
        for (row, id) in ids.as_string::<i32>().iter().enumerate() {
            if let Some(id) = id
                && flags.iter().any(|f| f.is_valid(row) && f.value(row))
            {
                set.insert(id.to_owned());
            }
        }
    }
    Ok(set)
}
