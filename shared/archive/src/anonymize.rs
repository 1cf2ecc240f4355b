//! Anonymization of deleted or suppressed people's rows in the history a baseline carries: the
//! rows stay (counts add up), the columns that identify the person become null, or a fixed
//! placeholder where the column is required. The rules per table are [`rules`]; `docs/CONTRACT.md`
//! lists them.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::buffer::OffsetBuffer;
use arrow::compute::kernels::zip::zip;
use arrow::compute::nullif;
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, BooleanArray, ListArray, RecordBatch, Scalar, StringArray};
use arrow_schema::ArrowError;
use dwsync_contract::{Table, list_item_field};

/// The placeholder of a required text column that identifies a person.
pub const PLACEHOLDER: &str = "[anonymized]";

/// The placeholder of a required JSON text column (events' `data`): an empty object, still JSON.
pub const EMPTY_JSON: &str = "{}";

/// What an identifying column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Null (nullable columns only).
    Null,
    /// A fixed text (required text columns).
    Text(&'static str),
    /// An empty list (required list columns).
    EmptyList,
}

/// Which rows of a table belong to an erased person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// `internal_customer_id` names an erased person.
    Person,
    /// `delivery_id` names a delivery to an erased person.
    Delivery,
    /// `delivery_id` names a delivery, or `subject_name` a subject, of an erased person.
    DeliveryOrSubject,
}

/// The rule of one table: which rows, and what each identifying column becomes. `None` for
/// tables that carry no person's data (campaigns, broadcasts, actions, objects …) or that leave
/// erased people out altogether (people).
pub fn rules(table: Table) -> Option<(Match, &'static [(&'static str, Replace)])> {
    use Replace::{EmptyList, Null, Text};
    Some(match table {
        Table::Deliveries => (Match::Person, &[("internal_customer_id", Null)]),
        Table::DeliveryContent => (
            Match::Delivery,
            &[
                ("bcc", Null),
                ("recipient", Text(PLACEHOLDER)),
                ("subject", Null),
                ("body", Text(PLACEHOLDER)),
                ("body_amp", Null),
                ("body_plain", Null),
                ("preheader", Null),
                ("url", Null),
                ("headers", Null),
            ],
        ),
        Table::Metrics => (
            Match::Delivery,
            &[("reason", Null), ("link_url", Null), ("user_agent", Null), ("inbox_domain", Null), ("mx_host", Null)],
        ),
        Table::Outputs => (Match::DeliveryOrSubject, &[("explanation", Text(PLACEHOLDER))]),
        Table::Subjects => (Match::Person, &[("internal_customer_id", Null)]),
        Table::Events => (
            Match::Person,
            &[("internal_customer_id", Text(PLACEHOLDER)), ("data", Text(EMPTY_JSON)), ("source_uas", EmptyList)],
        ),
        Table::Inbound => (
            Match::Person,
            &[
                ("internal_customer_id", Text(PLACEHOLDER)),
                ("from", Text(PLACEHOLDER)),
                ("to", Text(PLACEHOLDER)),
                ("body", Text(PLACEHOLDER)),
                ("keyword", Null),
            ],
        ),
        Table::Attributes => {
            (Match::Person, &[("internal_customer_id", Text(PLACEHOLDER)), ("attribute_value", Text(PLACEHOLDER))])
        }
        _ => return None,
    })
}

/// The people whose rows are anonymized, and the deliveries and subjects that are theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// `internal_customer_id`s of people deleted or suppressed.
    pub people: HashSet<String>,
    /// `delivery_id`s of deliveries to them.
    pub deliveries: HashSet<String>,
    /// `subject_name`s of their subjects.
    pub subjects: HashSet<String>,
}

impl Erased {
    /// Whether no one is erased.
    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }
}

/// Which rows of `batch` (`table`'s) belong to an erased person; `None` when none do.
fn matching(batch: &RecordBatch, table: Table, how: Match, erased: &Erased) -> Option<BooleanArray> {
    let in_set = |column: &str, set: &HashSet<String>| -> Vec<bool> {
        match batch.column_by_name(column) {
            Some(column) => column.as_string::<i32>().iter().map(|v| v.is_some_and(|v| set.contains(v))).collect(),
            None => vec![false; batch.num_rows()],
        }
    };
    let hits = match how {
        Match::Person => in_set("internal_customer_id", &erased.people),
        Match::Delivery => in_set("delivery_id", &erased.deliveries),
        Match::DeliveryOrSubject => {
            let subjects = in_set("subject_name", &erased.subjects);
            in_set("delivery_id", &erased.deliveries).into_iter().zip(subjects).map(|(a, b)| a || b).collect()
        }
    };
    debug_assert!(table.def().fields.len() == batch.num_columns());
    hits.contains(&true).then(|| BooleanArray::from(hits))
}

/// `batch` (rows of `table` with its exact v5 schema) with the rows of erased people
/// anonymized per [`rules`]; the same schema and rows out. Unchanged for tables without rules.
pub fn anonymize(table: Table, batch: &RecordBatch, erased: &Erased) -> Result<RecordBatch, ArrowError> {
    let Some((how, columns)) = rules(table) else { return Ok(batch.clone()) };
    let Some(mask) = matching(batch, table, how, erased) else { return Ok(batch.clone()) };
    let schema = batch.schema();
    let mut out = batch.columns().to_vec();
    for (name, replace) in columns {
        let index = schema.index_of(name)?;
        out[index] = replaced(&out[index], &mask, *replace)?;
    }
    RecordBatch::try_new(schema, out)
}

fn replaced(column: &ArrayRef, mask: &BooleanArray, replace: Replace) -> Result<ArrayRef, ArrowError> {
    match replace {
        Replace::Null => nullif(column.as_ref(), mask),
        Replace::Text(text) => zip(mask, &StringArray::new_scalar(text), column),
        Replace::EmptyList => {
            let empty = ListArray::try_new(
                list_item_field(),
                OffsetBuffer::new(vec![0i32, 0].into()),
                Arc::new(StringArray::from(Vec::<&str>::new())),
                None,
            )?;
            zip(mask, &Scalar::new(empty), column)
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::DataType;
    use dwsync_contract::{FieldType, arrow_schema};
    use serde_json::json;

    use super::*;
    use crate::testing::{col, rows};

    fn erased() -> Erased {
        let set = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect();
        Erased { people: set(&["p1"]), deliveries: set(&["d1"]), subjects: set(&["s1"]) }
    }

    #[test]
    fn every_rule_fits_its_column() {
        for table in Table::ALL {
            let Some((_, columns)) = rules(*table) else { continue };
            for (name, replace) in columns {
                let field = table.def().fields[table.def().index_of(name).unwrap_or_else(|| panic!("{table}.{name}"))];
                match replace {
                    Replace::Null => assert!(field.nullable, "{table}.{name} is required: it cannot become null"),
                    Replace::Text(_) => assert_eq!(field.ty, FieldType::Utf8, "{table}.{name}"),
                    Replace::EmptyList => assert_eq!(field.ty, FieldType::ListUtf8, "{table}.{name}"),
                }
            }
        }
        let with_rules: Vec<_> = Table::ALL.iter().filter(|t| rules(**t).is_some()).map(|t| t.name()).collect();
        assert_eq!(
            with_rules,
            ["deliveries", "delivery_content", "metrics", "outputs", "subjects", "attributes", "events", "inbound"]
        );
    }

    #[test]
    fn delivery_content_of_erased_people_keeps_its_rows_without_the_person() {
        let content = |id: &str| {
            json!({"delivery_id": id, "recipient": format!("{id}@x"), "bcc": "b@x", "subject": "Hi Ann", "body": "Dear Ann",
                "body_plain": "Dear Ann", "from": "shop@x", "url": "https://hook/?u=1", "headers": "{\"To\":\"a\"}"})
        };
        let batch = rows(Table::DeliveryContent, &[content("d1"), content("d2")]);
        let out = anonymize(Table::DeliveryContent, &batch, &erased()).expect("anonymized");
        assert_eq!(out.schema(), arrow_schema(Table::DeliveryContent), "the exact v5 schema");
        assert_eq!(out.num_rows(), 2);
        let out = [out];
        assert_eq!(col(&out, "delivery_id"), ["d1", "d2"]);
        assert_eq!(col(&out, "recipient"), [PLACEHOLDER, "d2@x"]);
        assert_eq!(col(&out, "body"), [PLACEHOLDER, "Dear Ann"]);
        for nulled in ["bcc", "subject", "body_plain", "url", "headers"] {
            assert_eq!(col(&out, nulled)[0], "-", "{nulled}");
            assert_ne!(col(&out, nulled)[1], "-", "{nulled}");
        }
        assert_eq!(col(&out, "from"), ["shop@x", "shop@x"], "the sender is not the person");
    }

    #[test]
    fn inbound_and_attributes_of_erased_people() {
        let message = |p: &str| json!({"internal_customer_id": p, "from": "+15550001", "to": "+15550002", "body": "STOP", "keyword": "STOP"});
        let out =
            [anonymize(Table::Inbound, &rows(Table::Inbound, &[message("p1"), message("p3")]), &erased()).expect("ok")];
        assert_eq!(out[0].schema(), arrow_schema(Table::Inbound));
        for (name, want) in [
            ("internal_customer_id", [PLACEHOLDER, "p3"]),
            ("from", [PLACEHOLDER, "+15550001"]),
            ("to", [PLACEHOLDER, "+15550002"]),
            ("body", [PLACEHOLDER, "STOP"]),
            ("keyword", ["-", "STOP"]),
        ] {
            assert_eq!(col(&out, name), want, "{name}");
        }
        let attribute =
            |p: &str| json!({"internal_customer_id": p, "attribute_name": "email", "attribute_value": "a@x"});
        let out =
            [anonymize(Table::Attributes, &rows(Table::Attributes, &[attribute("p1"), attribute("p3")]), &erased())
                .expect("ok")];
        assert_eq!(col(&out, "attribute_value"), [PLACEHOLDER, "a@x"]);
        assert_eq!(col(&out, "attribute_name"), ["email", "email"]);
        assert_eq!(out[0].column_by_name("attribute_value").map(|c| c.data_type().clone()), Some(DataType::Utf8));
    }

    #[test]
    fn tables_without_people_pass_through() {
        let batch = rows(Table::Campaigns, &[json!({"campaign_id": 1})]);
        assert_eq!(anonymize(Table::Campaigns, &batch, &erased()).expect("ok"), batch);
    }
}
