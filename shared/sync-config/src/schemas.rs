//! The spec's export *schemas*: what a customer turns on or off. Most are one table; two are
//! several: **Campaign Metadata** returns Campaigns and Actions, and enabling **Objects** also
//! exports Object Types. The tables of one schema are always on or off together.

use std::collections::BTreeMap;

use dwsync_contract::Table;

/// The tables of each schema that has more than one, under the schema's API name.
const GROUPS: [(&str, &str, &[Table]); 2] = [
    ("campaign_metadata", "Campaign Metadata", &[Table::Campaigns, Table::Actions]),
    ("objects", "Objects", &[Table::Objects, Table::ObjectTypes]),
];

/// One of the spec's export schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// Its API name (`campaign_metadata`, `objects`, or a table's name).
    pub name: &'static str,
    /// Its name in the spec (`Campaign Metadata`).
    pub title: &'static str,
    /// Its tables.
    pub tables: &'static [Table],
}

/// A name that is neither a schema nor a table alone, or a combination that splits a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A table that is only exported with the rest of its schema.
    #[error(
        "table {table} belongs to the {} schema ({}): turn `{}` on or off",
        .schema.title, table_list(.schema.tables), .schema.name
    )]
    PartOfSchema {
        /// The table named.
        table: String,
        /// Its schema.
        schema: Schema,
    },
    /// Tables of one schema asked on and off at once.
    #[error(
        "the tables of the {} schema ({}) are on or off together: set `{}`, or all of them alike",
        .0.title, table_list(.0.tables), .0.name
    )]
    Split(Schema),
}

/// The schema of `table`.
pub fn of(table: Table) -> Schema {
    GROUPS
        .iter()
        .find(|(_, _, tables)| tables.contains(&table))
        .map_or(Schema { name: table.name(), title: table.name(), tables: single(table) }, |&(name, title, tables)| {
            Schema { name, title, tables }
        })
}

/// The schema of several tables named `name` (`campaign_metadata`, `objects`), if it is one.
pub fn group(name: &str) -> Option<Schema> {
    GROUPS.iter().find(|(n, _, _)| *n == name).map(|&(name, title, tables)| Schema { name, title, tables })
}

/// The schema named `name`: a schema's API name, or a table alone in its schema. `Ok(None)` for
/// a name that is neither; an error for a table that is only part of its schema.
pub fn named(name: &str) -> Result<Option<Schema>, SchemaError> {
    if let Some(schema) = group(name) {
        return Ok(Some(schema));
    }
    match name.parse::<Table>() {
        Ok(table) => {
            let schema = of(table);
            if schema.tables.len() == 1 {
                Ok(Some(schema))
            } else {
                Err(SchemaError::PartOfSchema { table: name.to_owned(), schema })
            }
        }
        Err(_) => Ok(None),
    }
}

/// Checks tables asked on or off together: a schema's tables named must all be named alike.
pub fn check(asked: &BTreeMap<Table, bool>) -> Result<(), SchemaError> {
    for &(name, title, tables) in &GROUPS {
        let named: Vec<Option<bool>> = tables.iter().map(|t| asked.get(t).copied()).collect();
        let first = named[0];
        if named.iter().any(|n| *n != first) {
            return Err(SchemaError::Split(Schema { name, title, tables }));
        }
    }
    Ok(())
}

/// `table` as a one-table slice.
fn single(table: Table) -> &'static [Table] {
    let at = Table::ALL.iter().position(|t| *t == table).unwrap_or_default();
    &Table::ALL[at..=at]
}

fn table_list(tables: &[Table]) -> String {
    tables.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn campaign_metadata_and_objects_are_several_tables_the_rest_one() {
        assert_eq!(named("campaign_metadata").unwrap().unwrap().tables, [Table::Campaigns, Table::Actions]);
        assert_eq!(named("objects").unwrap().unwrap().tables, [Table::Objects, Table::ObjectTypes]);
        assert_eq!(named("metrics").unwrap().unwrap().tables, [Table::Metrics]);
        assert_eq!(named("object_attributes").unwrap().unwrap().tables, [Table::ObjectAttributes]);
        assert_eq!(named("nonsense").unwrap(), None);
        for table in Table::ALL {
            assert!(of(*table).tables.contains(table));
        }
    }

    #[test]
    fn a_table_of_a_larger_schema_names_the_schema() {
        let error = named("actions").unwrap_err();
        assert_eq!(
            error.to_string(),
            "table actions belongs to the Campaign Metadata schema (campaigns, actions): turn `campaign_metadata` on or off"
        );
        assert!(named("object_types").unwrap_err().to_string().contains("turn `objects` on or off"));
        assert!(named("campaigns").is_err());
    }

    #[test]
    fn a_schema_split_in_a_request_is_refused() {
        let asked = |pairs: &[(Table, bool)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        assert!(check(&asked(&[(Table::Campaigns, true), (Table::Actions, true), (Table::Metrics, false)])).is_ok());
        assert!(check(&asked(&[(Table::Metrics, false)])).is_ok());
        let split = check(&asked(&[(Table::Objects, true), (Table::ObjectTypes, false)])).unwrap_err();
        assert!(split.to_string().contains("Objects schema (objects, object_types)"), "{split}");
        assert!(check(&asked(&[(Table::Campaigns, false)])).is_err(), "one of two named");
    }
}
