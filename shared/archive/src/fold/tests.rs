use arrow::compute::concat_batches;
use serde_json::json;

use super::latest::Latest;
use super::*;
use crate::anonymize::{Erased, PLACEHOLDER};
use crate::testing::{col, rows, texts};

const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;

fn set(ids: &[&str]) -> std::collections::HashSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn context() -> Context {
    Context { now_ms: NOW, ..Context::default() }
}

fn count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[test]
fn latest_row_per_primary_key_over_the_whole_history() {
    // Keys a, b, a, c, b over two batches: the winners are a@2, c@3, b@4, in that order, each
    // the whole row as it was given.
    for (table, key, text) in [
        (Table::Deliveries, "delivery_id", "delivery_type"),
        (Table::DeliveryContent, "delivery_id", "subject"),
        (Table::Outputs, "output_id", "explanation"),
        (Table::Subjects, "subject_name", "campaign_type"),
    ] {
        let ids = ["a", "b", "a", "c", "b"];
        let all: Vec<_> = ids.iter().enumerate().map(|(n, id)| json!({ key: id, text: format!("v{n}") })).collect();
        let history = vec![rows(table, &all[..2]), rows(table, &all[2..])];
        let whole = concat_batches(&arrow_schema(table), &history).expect("concat");
        let out = fold(table, history, &context()).expect("folds");
        assert_eq!(col(&out, key), ["a", "c", "b"], "{table}");
        assert_eq!(col(&out, text), ["v2", "v3", "v4"], "{table}");
        let want =
            arrow::compute::take_record_batch(&whole, &arrow_array::UInt32Array::from(vec![2, 3, 4])).expect("take");
        assert_eq!(concat_batches(&arrow_schema(table), &out).expect("concat"), want, "{table}: whole rows, v5 schema");
    }
}

#[test]
fn metrics_keep_every_row() {
    let all: Vec<_> = ["e1", "e1", "e2", "e3"].iter().map(|id| json!({"event_id": id})).collect();
    let out = fold(Table::Metrics, vec![rows(Table::Metrics, &all[..1]), rows(Table::Metrics, &all[1..])], &context())
        .expect("folds");
    assert_eq!(col(&out, "event_id"), ["e1", "e1", "e2", "e3"]);
}

#[test]
fn events_and_inbound_keep_thirty_days_before_now() {
    let times = [NOW - 31 * DAY, NOW - 30 * DAY - 1, NOW - 30 * DAY, NOW - DAY, NOW + 3_600_000];
    for table in [Table::Events, Table::Inbound] {
        let all: Vec<_> =
            times.iter().enumerate().map(|(n, t)| json!({"event_id": format!("e{n}"), "timestamp": t})).collect();
        let out = fold(table, vec![rows(table, &all)], &context()).expect("folds");
        // The cutoff itself is in; a timestamp after `now` (clock skew) is kept.
        assert_eq!(col(&out, "event_id"), ["e2", "e3", "e4"], "{table}");
    }
}

fn person(id: &str, deleted: Option<bool>, suppressed: Option<bool>, email: &str) -> serde_json::Value {
    json!({"internal_customer_id": id, "customer_id": format!("c-{id}"), "deleted": deleted, "suppressed": suppressed, "email_addr": email})
}

fn people_history() -> Vec<RecordBatch> {
    vec![
        rows(
            Table::People,
            &[
                person("p1", None, None, "p1@x"),
                person("p2", Some(false), Some(false), "p2@x"),
                person("p3", None, None, "p3@x"),
                person("p4", None, None, "p4@x"),
            ],
        ),
        rows(
            Table::People,
            &[
                person("p1", Some(true), None, ""),
                person("p2", None, Some(true), ""),
                person("p3", None, None, "p3@new"),
                person("p4", Some(true), None, ""),
                // p4 comes back after its deletion: its latest row is not deleted.
                person("p4", Some(false), Some(false), "p4@back"),
            ],
        ),
    ]
}

#[test]
fn people_are_the_latest_rows_without_the_deleted_or_suppressed() {
    let history = people_history();
    let context = Context::derive(NOW, &history, &[], &[], &[]).expect("context");
    assert_eq!(context.erased.people, set(&["p1", "p2"]));
    let out = fold(Table::People, history, &context).expect("folds");
    assert_eq!(col(&out, "internal_customer_id"), ["p3", "p4"]);
    assert_eq!(col(&out, "email_addr"), ["p3@new", "p4@back"]);
    assert_eq!(col(&out, "customer_id"), ["c-p3", "c-p4"], "people rows are not anonymized");
}

#[test]
fn attributes_are_the_latest_value_per_person_and_name_without_erased_people() {
    let attribute = |p: &str, name: &str, value: &str| json!({"internal_customer_id": p, "attribute_name": name, "attribute_value": value});
    let history = vec![rows(
        Table::Attributes,
        &[
            attribute("p3", "email", "old@x"),
            attribute("p1", "email", "gone@x"),
            attribute("p3", "name", "Ann"),
            attribute("p3", "email", "new@x"),
            attribute("p2", "plan", "pro"),
        ],
    )];
    let context = Context::derive(NOW, &people_history(), &[], &[], &[]).expect("context");
    let out = fold(Table::Attributes, history, &context).expect("folds");
    assert_eq!(col(&out, "attribute_name"), ["name", "email"]);
    assert_eq!(col(&out, "attribute_value"), ["Ann", "new@x"]);
    assert_eq!(col(&out, "internal_customer_id"), ["p3", "p3"]);
}

#[test]
fn objects_types_and_object_attributes_leave_the_deleted_out() {
    let object = |id: &str, deleted: Option<bool>| json!({"internal_object_id": id, "object_id": format!("o-{id}"), "deleted": deleted});
    let objects = vec![rows(
        Table::Objects,
        &[
            object("o1", None),
            object("o2", Some(false)),
            object("o3", None),
            object("o1", Some(true)),
            object("o3", None),
        ],
    )];
    let context = Context::derive(NOW, &[], &[], &[], &objects).expect("context");
    assert_eq!(context.deleted_objects, set(&["o1"]));
    assert_eq!(col(&fold(Table::Objects, objects, &context).expect("folds"), "internal_object_id"), ["o2", "o3"]);

    let kind = |id: i64, deleted: bool, name: &str| json!({"object_type_id": id, "deleted": deleted, "name": name});
    let types = vec![rows(
        Table::ObjectTypes,
        &[kind(1, false, "a"), kind(2, false, "b"), kind(1, true, "a"), kind(2, false, "B")],
    )];
    let out = fold(Table::ObjectTypes, types, &context).expect("folds");
    assert_eq!((col(&out, "object_type_id"), col(&out, "name")), (vec!["2".to_owned()], vec!["B".to_owned()]));

    let attribute = |o: &str, name: &str, value: &str| json!({"internal_object_id": o, "attribute_name": name, "attribute_value": value});
    let history = vec![rows(
        Table::ObjectAttributes,
        &[
            attribute("o1", "size", "1"),
            attribute("o2", "size", "2"),
            attribute("o2", "tier", "gold"),
            attribute("o2", "size", "3"),
        ],
    )];
    let out = fold(Table::ObjectAttributes, history, &context).expect("folds");
    assert_eq!(col(&out, "attribute_name"), ["tier", "size"]);
    assert_eq!(col(&out, "attribute_value"), ["gold", "3"]);
}

#[test]
fn campaigns_broadcasts_and_actions_are_the_current_row_per_id() {
    for (table, id) in
        [(Table::Campaigns, "campaign_id"), (Table::Broadcasts, "broadcast_id"), (Table::Actions, "action_id")]
    {
        let all: Vec<_> = [(1, "a"), (2, "b"), (1, "a2"), (3, "c"), (1, "a3")]
            .iter()
            .map(|(n, name)| json!({ id: n, "name": name }))
            .collect();
        let out = fold(table, vec![rows(table, &all)], &context()).expect("folds");
        assert_eq!(
            (col(&out, id), col(&out, "name")),
            (vec!["2".into(), "3".into(), "1".into()], vec!["b".into(), "c".into(), "a3".into()]),
            "{table}"
        );
    }
    // Actions are keyed by `action_id` alone: the same id under two campaigns is one action.
    let both = [
        json!({"campaign_id": 1, "action_id": 5, "name": "x"}),
        json!({"campaign_id": 2, "action_id": 5, "name": "y"}),
    ];
    let out = fold(Table::Actions, vec![rows(Table::Actions, &both)], &context()).expect("folds");
    assert_eq!(col(&out, "name"), ["y"]);
}

#[test]
fn history_of_erased_people_is_kept_and_anonymized() {
    let deliveries = vec![rows(
        Table::Deliveries,
        &[
            json!({"delivery_id": "d1", "internal_customer_id": "p1"}),
            json!({"delivery_id": "d2", "internal_customer_id": "p3"}),
            json!({"delivery_id": "d3", "internal_customer_id": "p2"}),
        ],
    )];
    let subjects = vec![rows(
        Table::Subjects,
        &[
            json!({"subject_name": "s1", "internal_customer_id": "p1"}),
            json!({"subject_name": "s3", "internal_customer_id": "p3"}),
        ],
    )];
    let context = Context::derive(NOW, &people_history(), &deliveries, &subjects, &[]).expect("context");
    assert_eq!(context.erased.deliveries, set(&["d1", "d3"]));
    assert_eq!(context.erased.subjects, set(&["s1"]));

    let out = fold(Table::Deliveries, deliveries, &context).expect("folds");
    assert_eq!(col(&out, "delivery_id"), ["d1", "d2", "d3"], "rows kept");
    assert_eq!(col(&out, "internal_customer_id"), ["-", "p3", "-"]);

    let metrics = vec![rows(
        Table::Metrics,
        &[
            json!({"delivery_id": "d1", "reason": "550 <p1@x> unknown", "user_agent": "UA", "link_url": "https://x/?e=p1@x"}),
            json!({"delivery_id": "d2", "reason": "ok", "user_agent": "UA2", "link_url": "https://y"}),
        ],
    )];
    let out = fold(Table::Metrics, metrics, &context).expect("folds");
    assert_eq!(col(&out, "reason"), ["-", "ok"]);
    assert_eq!(col(&out, "user_agent"), ["-", "UA2"]);
    assert_eq!(col(&out, "link_url"), ["-", "https://y"]);

    let out = fold(Table::Subjects, subjects, &context).expect("folds");
    assert_eq!(col(&out, "internal_customer_id"), ["-", "p3"]);

    let outputs = vec![rows(
        Table::Outputs,
        &[
            json!({"output_id": "o1", "delivery_id": "d1", "subject_name": "s9", "explanation": "sent to p1@x"}),
            json!({"output_id": "o2", "delivery_id": null, "subject_name": "s1", "explanation": "waited for p1"}),
            json!({"output_id": "o3", "delivery_id": "d2", "subject_name": "s3", "explanation": "sent"}),
        ],
    )];
    let out = fold(Table::Outputs, outputs, &context).expect("folds");
    assert_eq!(col(&out, "explanation"), [PLACEHOLDER, PLACEHOLDER, "sent"]);

    let events = vec![rows(
        Table::Events,
        &[
            json!({"event_id": "e1", "internal_customer_id": "p2", "data": "{\"email\":\"p2@x\"}", "timestamp": NOW - DAY, "source_uas": ["Mozilla"]}),
            json!({"event_id": "e2", "internal_customer_id": "p3", "data": "{\"a\":1}", "timestamp": NOW - DAY, "source_uas": ["UA"]}),
        ],
    )];
    let out = fold(Table::Events, events, &context).expect("folds");
    assert_eq!(col(&out, "internal_customer_id"), [PLACEHOLDER, "p3"]);
    assert_eq!(col(&out, "data"), ["{}", "{\"a\":1}"]);
    let uas = out[0].column_by_name("source_uas").expect("column").as_list::<i32>().clone();
    assert_eq!((uas.value_length(0), uas.value_length(1)), (0, 1), "the erased person's user agents: an empty list");
    assert_eq!(texts(&out, "event_id").len(), 2);
}

#[test]
fn no_erased_people_leaves_rows_unchanged() {
    let all = [json!({"delivery_id": "d1", "internal_customer_id": "p1"})];
    let history = vec![rows(Table::Deliveries, &all)];
    let context = Context { erased: Erased::default(), ..context() };
    assert_eq!(fold(Table::Deliveries, history.clone(), &context).expect("folds"), history);
}

#[test]
fn a_batch_of_another_schema_is_refused() {
    let err = fold(Table::Deliveries, vec![rows(Table::Metrics, &[json!({})])], &context()).expect_err("wrong schema");
    assert!(matches!(err, FoldError::Schema { table: "deliveries" }), "{err}");
}

#[test]
fn compaction_keeps_only_live_rows_and_the_latest_values() {
    let mut latest = Latest::new(arrow_schema(Table::Campaigns), &["campaign_id"]).expect("latest");
    // 40 batches of 2,000 rows over 10 keys: compaction runs once 65,536 rows are held.
    let mut last_version = [0i64; 10];
    for b in 0..40i64 {
        let all: Vec<_> = (0..2_000i64)
            .map(|r| {
                let (id, version) = (r % 10, b * 2_000 + r);
                last_version[id as usize] = version;
                json!({"campaign_id": id, "version": version})
            })
            .collect();
        latest.push(rows(Table::Campaigns, &all)).expect("push");
        assert!(latest.held_rows() <= 65_536 + 2_000, "bounded by compaction: {}", latest.held_rows());
    }
    assert_eq!(latest.len(), 10);
    let out = latest.finish().expect("finish");
    assert_eq!(count(&out), 10);
    let mut got: Vec<(String, String)> = col(&out, "campaign_id").into_iter().zip(col(&out, "version")).collect();
    got.sort_by_key(|(id, _)| id.parse::<i64>().unwrap_or_default());
    let want: Vec<(String, String)> =
        last_version.iter().enumerate().map(|(id, v)| (id.to_string(), v.to_string())).collect();
    assert_eq!(got, want);
}

/// `batches` rows of attribute changes, 1,000 rows each, over 700 people × 3 names, with erased
/// people among them.
fn attribute_changes(batches: usize) -> Vec<RecordBatch> {
    (0..batches)
        .map(|b| {
            let all: Vec<_> = (0..1_000)
                .map(|r| {
                    let n = b * 1_000 + r;
                    json!({
                        "internal_customer_id": format!("p{}", n % 700),
                        "attribute_name": format!("name{}", (n / 700) % 3),
                        "attribute_value": format!("v{n}"),
                    })
                })
                .collect();
            rows(Table::Attributes, &all)
        })
        .collect()
}

fn spill_to(dir: &std::path::Path, budget_bytes: usize) -> Spill {
    Spill { dir: dir.to_owned(), budget_bytes, counter: SpillCounter::default() }
}

fn folded_with(table: Table, history: &[RecordBatch], context: &Context, spill: Option<&Spill>) -> Vec<RecordBatch> {
    let mut folder = Folder::new(table, context, spill).expect("folder");
    let mut out = Vec::new();
    for batch in history {
        out.extend(folder.push(batch.clone()).expect("push"));
    }
    out.extend(folder.finish().expect("finish").map(|b| b.expect("batch")));
    out
}

#[test]
fn a_spilled_fold_gives_the_in_memory_fold_rows_in_the_same_order_and_batches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let history = attribute_changes(12);
    let mut context = context();
    context.erased.people = set(&["p1", "p8", "p15"]);
    let in_memory = fold(Table::Attributes, history.clone(), &context).expect("folds");
    assert_eq!(count(&in_memory), 2_100 - 9, "700 people × 3 names, 3 erased people left out");
    // The values a user would check: each (person, name)'s last value in archive order.
    let mut last = std::collections::HashMap::new();
    for n in 0..12_000usize {
        last.insert((format!("p{}", n % 700), format!("name{}", (n / 700) % 3)), format!("v{n}"));
    }
    let got: Vec<_> = col(&in_memory, "internal_customer_id")
        .into_iter()
        .zip(col(&in_memory, "attribute_name"))
        .zip(col(&in_memory, "attribute_value"))
        .collect();
    for ((person, name), value) in &got {
        assert_eq!(last.get(&(person.clone(), name.clone())), Some(value), "{person} {name}");
    }
    // 16 KiB: every partition split again (two levels); 64 KiB: one level; 256 KiB: some
    // pushes in memory first. Same rows, same order, same batches, and no spill file left.
    // The counter says each fold spilled, and the bytes it wrote (more with two levels).
    let mut written = Vec::new();
    for budget in [16 << 10, 64 << 10, 256 << 10] {
        let spill = spill_to(dir.path(), budget);
        let spilled = folded_with(Table::Attributes, &history, &context, Some(&spill));
        assert_eq!(spilled, in_memory, "budget {budget}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0, "spill files deleted");
        assert_eq!(spill.counter.folds(), 1, "budget {budget}: one fold spilled");
        assert!(spill.counter.bytes() > 0, "budget {budget}: spill files written");
        written.push(spill.counter.bytes());
    }
    assert!(written[0] > written[1], "two levels write more than one: {written:?}");
    // Within its budget a fold spills nothing: at 1 MiB compaction keeps the live rows under it.
    let roomy = spill_to(dir.path(), 1 << 20);
    assert_eq!(folded_with(Table::Attributes, &history, &context, Some(&roomy)), in_memory);
    assert_eq!((roomy.counter.folds(), roomy.counter.bytes()), (0, 0));
}

#[test]
fn a_spilled_fold_is_the_same_on_every_run_and_keeps_the_table_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spill = spill_to(dir.path(), 4 << 10);
    let history = people_history();
    let context = Context::derive(NOW, &history, &[], &[], &[]).expect("context");
    let first = folded_with(Table::People, &history, &context, Some(&spill));
    assert_eq!(col(&first, "internal_customer_id"), ["p3", "p4"]);
    assert_eq!(col(&first, "email_addr"), ["p3@new", "p4@back"]);
    assert_eq!(folded_with(Table::People, &history, &context, Some(&spill)), first);
    // The erased people found by a spilled fold of the id and flags only.
    let mut erased = Flagged::people(Some(&spill)).expect("flagged");
    for batch in &history {
        erased.push(batch).expect("push");
    }
    assert_eq!(erased.finish().expect("finish"), set(&["p1", "p2"]));
    // Metrics stream through as pushed, anonymized: nothing held for the end.
    let mut folder = Folder::new(Table::Metrics, &context, Some(&spill)).expect("folder");
    let out = folder.push(rows(Table::Metrics, &[json!({"event_id": "e1"})])).expect("push");
    assert_eq!(col(&out, "event_id"), ["e1"]);
    assert_eq!(folder.finish().expect("finish").count(), 0);
}
