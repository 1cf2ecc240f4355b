//! The `dwsync-loadgen` binary against the real broker (`dev/kafka start`): every message
//! arrives once, keyed by its workspace, with its content type; the ids file lists exactly the
//! good records.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use dwsync_contract::{Encoding, Table, Value, decode};
use dwsync_loadgen::id_column;
use dwsync_tests::{kafka_bootstrap, kafka_config, unique};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

const TABLES: [Table; 3] = [Table::Metrics, Table::People, Table::Campaigns];
const RECORDS: usize = 300;
const BAD_EVERY: usize = 10;

#[test]
fn produces_every_record_once_keyed_by_workspace() {
    let prefix = format!("{}.", unique("loadgen"));
    let ids_path = std::env::temp_dir().join(format!("{}.csv", unique("loadgen-ids")));
    let tables = TABLES.map(Table::name).join(",");
    let output = Command::new(env!("CARGO_BIN_EXE_dwsync-loadgen"))
        .args(["--bootstrap", &kafka_bootstrap(), "--topic-prefix", &prefix, "--tables", &tables])
        .args(["--workspaces", "3", "--records", &RECORDS.to_string(), "--encoding", "mixed"])
        .args(["--bad-every", &BAD_EVERY.to_string(), "--partitions", "2", "--ids-out"])
        .arg(&ids_path)
        .output()
        .expect("run dwsync-loadgen");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "dwsync-loadgen failed (is Kafka up? `dev/kafka start`): {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("records/s"), "{stdout}");

    let listed: Vec<(String, i64, String)> = std::fs::read_to_string(&ids_path)
        .expect("ids file")
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, ',');
            let mut next = || parts.next().expect("three columns").to_owned();
            (next(), next().parse().expect("workspace id"), next())
        })
        .collect();
    let _ = std::fs::remove_file(&ids_path);
    let good_per_table = RECORDS - RECORDS / BAD_EVERY;
    assert_eq!(listed.len(), TABLES.len() * good_per_table);
    let listed_set: HashSet<_> = listed.iter().cloned().collect();
    assert_eq!(listed_set.len(), listed.len(), "ids are unique");

    let consumer: BaseConsumer = kafka_config()
        .set("group.id", unique("loadgen-check"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let topics: Vec<String> = TABLES.iter().map(|t| format!("{prefix}{}", t.name())).collect();
    for topic in &topics {
        let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
        assert_eq!(meta.topics()[0].partitions().len(), 2, "{topic} created with --partitions 2");
    }
    consumer.subscribe(&topics.iter().map(String::as_str).collect::<Vec<_>>()).expect("subscribe");

    let expected = TABLES.len() * RECORDS;
    let (mut good, mut bad) = (Vec::new(), 0);
    let mut per_workspace: HashMap<i64, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while good.len() + bad < expected && Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else { continue };
        let msg = msg.expect("consume");
        let table: Table = msg.topic().strip_prefix(&prefix).expect("prefix").parse().expect("table");
        let key = std::str::from_utf8(msg.key().expect("key")).expect("utf-8 key");
        let workspace_id: i64 = key.parse().expect("decimal workspace id");
        *per_workspace.entry(workspace_id).or_default() += 1;
        let content_type = msg
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "content-type"))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
            .expect("content-type header");
        let encoding = Encoding::from_content_type(content_type).expect("known content type");
        match decode(table, encoding, msg.payload().unwrap_or_default()) {
            Ok(row) => {
                assert_eq!(row.workspace_id(), workspace_id, "keyed by the record's workspace");
                let id = match row.get(id_column(table)).expect("id column") {
                    Value::Str(s) => s.to_string(),
                    Value::Int(i) => i.to_string(),
                    other => panic!("id {other:?}"),
                };
                good.push((table.name().to_owned(), workspace_id, id));
            }
            Err(_) => bad += 1,
        }
    }
    assert_eq!(bad, TABLES.len() * (RECORDS / BAD_EVERY), "malformed messages");
    assert_eq!(good.len(), listed.len(), "every good record once");
    assert_eq!(good.into_iter().collect::<HashSet<_>>(), listed_set);
    assert_eq!(per_workspace.len(), 3);
    assert!(per_workspace[&1001] > per_workspace[&1003], "skewed: {per_workspace:?}");
}

#[test]
fn an_unknown_table_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_dwsync-loadgen"))
        .args(["--tables", "metrics,nope"])
        .output()
        .expect("run dwsync-loadgen");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown table"));
}
