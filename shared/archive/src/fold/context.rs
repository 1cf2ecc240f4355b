//! What the history says beyond one table: who is erased (people deleted or suppressed) with
//! their deliveries and subjects, which objects are deleted, and the `now` of the baseline.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::Array;
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_schema::SchemaRef;
use dwsync_contract::{Table, arrow_schema};

use super::FoldError;
use super::spill::{Spill, SpillLatest};
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
    /// deliveries, subjects and objects, in memory ([`Flagged`] and [`Erasing`] stream them):
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
        let mut erased = Flagged::people(None)?;
        for batch in people {
            erased.push(batch)?;
        }
        let people = erased.finish()?;
        let mut theirs = Erasing::new(people);
        for batch in deliveries {
            theirs.push(Table::Deliveries, batch)?;
        }
        for batch in subjects {
            theirs.push(Table::Subjects, batch)?;
        }
        let mut deleted = Flagged::objects(None)?;
        for batch in objects {
            deleted.push(batch)?;
        }
        Ok(Self { now_ms, erased: theirs.finish(), deleted_objects: deleted.finish()? })
    }
}

/// The ids whose latest row (by id) has one of some boolean flags true, streaming: only the id
/// and flag columns of each row are kept, folded within the spill budget ([`Spill`]); what it
/// returns (the flagged ids) stays in memory.
#[derive(Debug)]
pub struct Flagged {
    table: Table,
    /// The id and flag columns' places in the table's rows.
    columns: Vec<usize>,
    schema: SchemaRef,
    latest: SpillLatest,
}

impl Flagged {
    /// Erased people: `internal_customer_id`s whose latest people row is deleted or suppressed.
    pub fn people(spill: Option<&Spill>) -> Result<Self, FoldError> {
        Self::new(Table::People, "internal_customer_id", &["deleted", "suppressed"], spill)
    }

    /// Deleted objects: `internal_object_id`s whose latest objects row is deleted.
    pub fn objects(spill: Option<&Spill>) -> Result<Self, FoldError> {
        Self::new(Table::Objects, "internal_object_id", &["deleted"], spill)
    }

    fn new(table: Table, id: &str, flags: &[&str], spill: Option<&Spill>) -> Result<Self, FoldError> {
        let full = arrow_schema(table);
        let arrow = |error| FoldError::Arrow { table: table.name(), error };
        let columns: Vec<usize> = std::iter::once(id)
            .chain(flags.iter().copied())
            .map(|c| full.index_of(c))
            .collect::<Result<_, _>>()
            .map_err(arrow)?;
        let schema = Arc::new(full.project(&columns).map_err(arrow)?);
        let latest = SpillLatest::new(schema.clone(), &[id], spill.cloned()).map_err(|e| FoldError::spill(table, e))?;
        Ok(Self { table, columns, schema, latest })
    }

    /// Adds the table's next rows in archive order.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), FoldError> {
        let table = self.table;
        check(table, batch)?;
        let columns = self.columns.iter().map(|c| batch.column(*c).clone()).collect();
        let projected = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|error| FoldError::Arrow { table: table.name(), error })?;
        self.latest.push(projected).map_err(|e| FoldError::spill(table, e))
    }

    /// The flagged ids.
    pub fn finish(self) -> Result<HashSet<String>, FoldError> {
        let table = self.table;
        let mut set = HashSet::new();
        for batch in self.latest.finish().map_err(|e| FoldError::spill(table, e))? {
            let batch = batch.map_err(|e| FoldError::spill(table, e))?;
            let ids = batch.column(0).as_string::<i32>();
            let flags: Vec<_> = batch.columns()[1..].iter().map(|c| c.as_boolean().clone()).collect();
            for (row, id) in ids.iter().enumerate() {
                if let Some(id) = id
                    && flags.iter().any(|f| f.is_valid(row) && f.value(row))
                {
                    set.insert(id.to_owned());
                }
            }
        }
        Ok(set)
    }
}

/// The erased people's deliveries and subjects, streaming: every `delivery_id` of a deliveries
/// row and every `subject_name` of a subjects row naming an erased person.
#[derive(Debug, Clone, Default)]
pub struct Erasing {
    erased: Erased,
}

impl Erasing {
    /// Collects the deliveries and subjects of `people` (the erased `internal_customer_id`s).
    pub fn new(people: HashSet<String>) -> Self {
        Self { erased: Erased { people, ..Erased::default() } }
    }

    /// Whether anyone is erased (else deliveries and subjects need not be read).
    pub fn anyone(&self) -> bool {
        !self.erased.people.is_empty()
    }

    /// Adds rows of `table` (deliveries or subjects; other tables are ignored).
    pub fn push(&mut self, table: Table, batch: &RecordBatch) -> Result<(), FoldError> {
        let (id, set) = match table {
            Table::Deliveries => ("delivery_id", &mut self.erased.deliveries),
            Table::Subjects => ("subject_name", &mut self.erased.subjects),
            _ => return Ok(()),
        };
        check(table, batch)?;
        let (Some(person), Some(ids)) = (batch.column_by_name("internal_customer_id"), batch.column_by_name(id)) else {
            return Ok(());
        };
        for (person, id) in person.as_string::<i32>().iter().zip(ids.as_string::<i32>().iter()) {
            if let (Some(person), Some(id)) = (person, id)
                && self.erased.people.contains(person)
            {
                set.insert(id.to_owned());
            }
        }
        Ok(())
    }

    /// The erased people with their deliveries and subjects.
    pub fn finish(self) -> Erased {
        self.erased
    }
}

fn check(table: Table, batch: &RecordBatch) -> Result<(), FoldError> {
    if batch.schema().fields() != arrow_schema(table).fields() {
        return Err(FoldError::Schema { table: table.name() });
    }
    Ok(())
}
