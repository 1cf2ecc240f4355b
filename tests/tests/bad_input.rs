//! Bad input, end to end on the real broker and the real S3 server: a campaign of malformed
//! records (JSON and protobuf) between valid records of several workspaces, with valid records
//! of 2 MB and 9 MB on topics that allow 10 MB. Every bad record must be in the dead-letter
//! topic exactly once with its class and reason (cut to fit, with its size and SHA-256, when too
//! large for it), every valid record — the large ones included — exported exactly once, the
//! ingest loop never restarted, and its group's committed offsets at the end of every source
//! partition (no lag) afterwards.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use dwsync_contract::{Encoding, Table};
use dwsync_handoff::dead_letter as header;
use dwsync_loadgen::{Generator, encode_protobuf};
use dwsync_tests::read_committed_config;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

const WORKSPACES: [i64; 3] = [3101, 3102, 3103];
/// Read as JSON (`encoding_of`).
const JSON_TABLE: Table = Table::Metrics;
/// Read as protobuf (`encoding_of`).
const PROTOBUF_TABLE: Table = Table::DeliveryContent;
const MB: usize = 1_000_000;

/// A malformed record and the dead-letter classes it may get (several where the contract's
/// checks could reasonably meet either problem first).
struct Bad {
    what: &'static str,
    table: Table,
    payload: Option<Vec<u8>>,
    classes: &'static [&'static str],
}

fn bad(what: &'static str, table: Table, payload: Vec<u8>, classes: &'static [&'static str]) -> Bad {
    Bad { what, table, payload: Some(payload), classes }
}

/// Deterministic noise.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn with(fields: &Map<String, Value>, name: &str, value: Value) -> Vec<u8> {
    let mut fields = fields.clone();
    let _ = fields.insert(name.to_owned(), value);
    serde_json::to_vec(&fields).unwrap()
}

fn json_campaign(generator: &mut Generator) -> Vec<Bad> {
    let ws = WORKSPACES[0];
    let valid = generator.record(JSON_TABLE, ws, 900);
    let f = &valid.fields;
    let t = JSON_TABLE;
    let mut dup = valid.json.clone();
    let _ = dup.pop();
    dup.extend_from_slice(br#","delivery_id":"again"}"#);
    let mut invalid_utf8 = with(f, "user_agent", json!("agent"));
    let at = invalid_utf8.windows(5).position(|w| w == b"agent").unwrap();
    invalid_utf8[at + 1] = 0xff;
    invalid_utf8[at + 2] = 0xfe;
    let mut deep = format!("{{\"workspace_id\":{ws},\"user_agent\":").into_bytes();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.push(b'}');
    let mut big_broken = br#"{"workspace_id":3101,"user_agent":""#.to_vec();
    big_broken.extend(std::iter::repeat_n(b'a', 9 * MB));
    vec![
        bad("random bytes", t, noise(300, 1), &["not_json"]),
        bad("truncated JSON", t, valid.json[..valid.json.len() / 2].to_vec(), &["not_json"]),
        bad("wrong type", t, with(f, "seq_num", json!("twelve")), &["wrong_type"]),
        bad("wrong type (object)", t, with(f, "proxied", json!({"a": 1})), &["wrong_type"]),
        bad("null in a required field", t, with(f, "delivery_id", Value::Null), &["null_field"]),
        bad(
            "missing required field",
            t,
            {
                let mut m = f.clone();
                let _ = m.remove("metric");
                serde_json::to_vec(&m).unwrap()
            },
            &["missing_field"],
        ),
        bad("workspace id 0", t, with(f, "workspace_id", json!(0)), &["invalid_workspace_id"]),
        bad("negative workspace id", t, with(f, "workspace_id", json!(-5)), &["invalid_workspace_id"]),
        bad("string workspace id", t, with(f, "workspace_id", json!("3101")), &["wrong_type", "invalid_workspace_id"]),
        bad("impossible date", t, with(f, "created_at", json!("2026-02-30T10:00:00Z")), &["invalid_value"]),
        bad("impossible month", t, with(f, "created_at", json!("2026-13-01T10:00:00Z")), &["invalid_value"]),
        bad("timestamp beyond i64", t, with(f, "created_at", json!(1e30)), &["wrong_type", "invalid_value"]),
        bad("array", t, b"[1,2,3]".to_vec(), &["not_an_object"]),
        bad("string", t, b"\"metrics\"".to_vec(), &["not_an_object"]),
        bad("number", t, b"42".to_vec(), &["not_an_object"]),
        bad("null", t, b"null".to_vec(), &["not_an_object"]),
        bad("duplicate key", t, dup, &["duplicate_field"]),
        bad("invalid UTF-8", t, invalid_utf8, &["not_json", "invalid_value"]),
        bad("100,000-deep nesting", t, deep, &["not_json", "wrong_type"]),
        bad("empty value", t, Vec::new(), &["not_json"]),
        Bad { what: "no value", table: t, payload: None, classes: &["empty_message"] },
        bad("2 MB of noise", t, noise(2 * MB, 2), &["not_json"]),
        bad("9 MB unterminated string", t, big_broken, &["not_json"]),
    ]
}

fn protobuf_campaign(generator: &mut Generator) -> Vec<Bad> {
    let valid = generator.record(PROTOBUF_TABLE, WORKSPACES[1], 900);
    let t = PROTOBUF_TABLE;
    // Field 2 is workspace_id (an int64, wire type 0) sent as length-delimited (wire type 2).
    let mut wrong_wire = valid.protobuf.clone();
    wrong_wire.extend_from_slice(&[(2 << 3) | 2, 1, b'x']);
    let mut noise_9mb = vec![0x0a, 0xff, 0xff, 0xff, 0x7f];
    noise_9mb.extend(noise(9 * MB, 3));
    vec![
        bad("truncated message", t, valid.protobuf[..valid.protobuf.len() - 3].to_vec(), &["not_protobuf"]),
        bad("wrong wire type", t, wrong_wire, &["not_protobuf", "wrong_type"]),
        bad("random bytes", t, noise(300, 4), &["not_protobuf", "missing_field", "wrong_type", "invalid_value"]),
        bad("empty message", t, Vec::new(), &["missing_field", "invalid_workspace_id"]),
        bad("9 MB declared length past the end", t, noise_9mb, &["not_protobuf"]),
    ]
}

/// Valid records of `table` for workspace `ws` with `field` set to a string of `size` bytes,
/// plus one with an unknown protobuf field; registered as produced.
fn large_valid(
    generator: &mut Generator,
    table: Table,
    field: &str,
    sizes: &[usize],
    n0: u64,
) -> Vec<(i64, u64, Vec<u8>)> {
    let ws = WORKSPACES[2];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let n = n0 + i as u64;
            let mut fields = generator.record(table, ws, n).fields;
            let text: String =
                "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".chars().cycle().take(size).collect();
            let _ = fields.insert(field.to_owned(), Value::String(text));
            let bytes = match encoding_of(table) {
                Encoding::Json => serde_json::to_vec(&fields).unwrap(),
                Encoding::Protobuf => encode_protobuf(table, &fields).unwrap(),
            };
            (ws, n, bytes)
        })
        .collect()
}

fn big_producer() -> FutureProducer {
    dwsync_tests::kafka_config()
        .set("enable.idempotence", "true")
        .set("message.max.bytes", "10485760")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Where a produced record landed.
type Place = (String, i32, i64);

async fn send(producer: &FutureProducer, topic: &str, key: &str, payload: Option<&[u8]>) -> Place {
    let mut record = FutureRecord::<str, [u8]>::to(topic).key(key);
    if let Some(p) = payload {
        record = record.payload(p);
    }
    let delivery = producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
    (topic.to_owned(), delivery.partition, delivery.offset)
}

/// One record of the dead-letter topic.
struct Letter {
    headers: BTreeMap<String, Vec<u8>>,
    payload: Option<Vec<u8>>,
}

impl Letter {
    fn get(&self, name: &str) -> String {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
    }
}

/// Reads the dead-letter topic until it holds `want` records (and a little longer, to catch a
/// duplicate), or a deadline.
fn read_dead_letters(topic: &str, want: usize) -> Vec<Letter> {
    let consumer: BaseConsumer = read_committed_config().set("fetch.message.max.bytes", "10485760").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut settle: Option<Instant> = None;
    while Instant::now() < deadline && settle.is_none_or(|s| Instant::now() < s) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let headers = m
                .headers()
                .map(|hs| hs.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
                .unwrap_or_default();
            letters.push(Letter { headers, payload: m.payload().map(<[u8]>::to_vec) });
        }
        if letters.len() >= want && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_secs(3));
        }
    }
    letters
}

/// The ingest group's committed offsets against the end of every source partition.
fn lag(group: &str, topics: &[String]) -> i64 {
    let consumer: BaseConsumer = dwsync_tests::kafka_config().set("group.id", group).create().unwrap();
    let mut total = 0;
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition(topic, p.id());
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        for e in committed.elements() {
            let (low, high) = consumer.fetch_watermarks(topic, e.partition(), Duration::from_secs(10)).unwrap();
            let at = match e.offset() {
                Offset::Offset(o) => o,
                _ => low,
            };
            total += high - at;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_record_is_dead_lettered_once_and_every_valid_one_exported_once() {
    let tables = [JSON_TABLE, PROTOBUF_TABLE];
    assert_eq!((encoding_of(JSON_TABLE), encoding_of(PROTOBUF_TABLE)), (Encoding::Json, Encoding::Protobuf));
    let stack = Stack::new(&WORKSPACES, &tables).await;
    // The lag sampled every second, so the test can read it return to 0.
    let mut ingest = stack.ingest_with("ingest", &[("DWSYNC_INGEST__LAG_INTERVAL_MS", "1000".into())]);
    let mut uploader = stack.uploader("uploader");
    let producer = big_producer();
    let mut generator = Generator::new(41);
    let mut produced = Produced::default();
    // Valid records first, then the campaign and the large valid records, then valid records again.
    produce(&stack, &producer, &mut generator, (&WORKSPACES, &tables), 0..20, &mut produced).await;
    let mut campaign = json_campaign(&mut generator);
    campaign.extend(protobuf_campaign(&mut generator));
    let mut bad_places: BTreeMap<Place, (usize, Option<Vec<u8>>)> = BTreeMap::new();
    for (i, b) in campaign.iter().enumerate() {
        let topic = format!("{}{}", stack.prefix, b.table.name());
        let place = send(&producer, &topic, &WORKSPACES[0].to_string(), b.payload.as_deref()).await;
        let _ = bad_places.insert(place, (i, b.payload.clone()));
    }
    let mut large = Vec::new();
    for (table, field, n0) in [(JSON_TABLE, "user_agent", 20), (PROTOBUF_TABLE, "body", 20)] {
        for (ws, n, bytes) in large_valid(&mut generator, table, field, &[2 * MB, 9 * MB], n0) {
            large.push((table, ws, n, bytes));
        }
    }
    // A protobuf record with a field the contract does not know: forward compatible, exported.
    let mut unknown = generator.record(PROTOBUF_TABLE, WORKSPACES[2], 22);
    // Field 99 as a varint: key 99 << 3 = 792 = varint 0x98 0x06, then the value 1.
    unknown.protobuf.extend_from_slice(&[0x98, 0x06, 0x01]);
    large.push((PROTOBUF_TABLE, WORKSPACES[2], 22, unknown.protobuf.clone()));
    for (table, ws, n, bytes) in large {
        let topic = format!("{}{}", stack.prefix, table.name());
        let _ = send(&producer, &topic, &ws.to_string(), Some(&bytes)).await;
        let id = dwsync_contract::decode(table, encoding_of(table), &bytes)
            .map(|row| {
                let column = dwsync_loadgen::id_column(table);
                match row.get(column) {
                    Some(dwsync_contract::Value::Str(s)) => s.to_string(),
                    other => panic!("id {other:?}"),
                }
            })
            .unwrap();
        let _ = produced
            .records
            .entry((ws, table))
            .or_default()
            .insert(id, Sent { n, bytes, encoding: encoding_of(table) });
    }
    produce(&stack, &producer, &mut generator, (&WORKSPACES, &tables), 30..50, &mut produced).await;

    verify(&stack, &produced, Duration::from_secs(150), &mut [&mut ingest, &mut uploader]).await;

    // Every bad record in the dead-letter topic exactly once, with its class and reason.
    let letters = read_dead_letters(&stack.dead_letter_topic, campaign.len());
    let mut seen: BTreeSet<Place> = BTreeSet::new();
    let mut truncated = 0;
    for letter in &letters {
        let place = (
            letter.get(header::TOPIC),
            letter.get(header::PARTITION).parse().unwrap(),
            letter.get(header::OFFSET).parse().unwrap(),
        );
        assert!(seen.insert(place.clone()), "dead-lettered twice: {place:?}");
        let (i, original) = bad_places.get(&place).unwrap_or_else(|| {
            panic!("a dead letter of a record not sent as bad: {place:?} ({})", letter.get(header::ERROR_REASON))
        });
        let b = &campaign[*i];
        let class = letter.get(header::ERROR_CLASS);
        assert!(
            b.classes.contains(&class.as_str()),
            "{}: class {class} ({}), expected one of {:?}",
            b.what,
            letter.get(header::ERROR_REASON),
            b.classes
        );
        assert!(!letter.get(header::ERROR_REASON).is_empty(), "{}: a reason", b.what);
        assert_eq!(letter.get(header::TABLE), b.table.name(), "{}", b.what);
        if letter.get(header::VALUE_TRUNCATED) == "true" {
            truncated += 1;
            let original = original.as_ref().unwrap();
            let prefix = letter.payload.as_ref().unwrap();
            assert!(prefix.len() < original.len() && original.starts_with(prefix), "{}: a prefix of the value", b.what);
            assert!(prefix.len() >= 512 << 10, "{}: a useful prefix ({} bytes)", b.what, prefix.len());
            assert_eq!(letter.get(header::VALUE_SIZE), original.len().to_string(), "{}", b.what);
            assert_eq!(letter.get(header::VALUE_SHA256), hex::encode(Sha256::digest(original)), "{}", b.what);
        } else {
            assert_eq!(&letter.payload, original, "{}: the whole value", b.what);
        }
    }
    let missing: Vec<&str> =
        bad_places.iter().filter(|(p, _)| !seen.contains(*p)).map(|(_, (i, _))| campaign[*i].what).collect();
    assert!(missing.is_empty(), "bad records not dead-lettered: {missing:?}");
    assert_eq!(truncated, 3, "the 2 MB and 9 MB bad records are cut to fit the dead-letter topic");

    // The loop never restarted, and nothing is left behind.
    let log = ingest.log_tail(usize::MAX);
    assert!(
        !log.contains("Ingest loop failed") && !log.contains("could not start"),
        "the loop restarted:\n{}",
        ingest.log_tail(40)
    );
    let config = std::fs::read_to_string(&stack.ingest_config).unwrap();
    let group = config.lines().find_map(|l| l.strip_prefix("group_id = \"")).unwrap().trim_end_matches('"').to_owned();
    let topics: Vec<String> = tables.iter().map(|t| format!("{}{}", stack.prefix, t.name())).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut left = lag(&group, &topics);
    while left > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        left = lag(&group, &topics);
    }
    assert_eq!(left, 0, "records left between the committed offsets and the ends of the source topics");
    // What monitoring sees: the lag back to 0, no restart, each dead letter counted once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut gauge = metric(&ingest, "dwsync_ingest_consumer_lag_records", "").await;
    while gauge != Some(0.0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        gauge = metric(&ingest, "dwsync_ingest_consumer_lag_records", "").await;
    }
    assert_eq!(gauge, Some(0.0), "dwsync_ingest_consumer_lag_records");
    assert_eq!(metric(&ingest, "dwsync_ingest_loop_restarts_total", "").await, None, "no restart counted");
    let counted = metric(&ingest, "dwsync_ingest_records_dead_lettered_total", "").await;
    assert_eq!(counted, Some(campaign.len() as f64), "dead letters counted once each");
    ingest.stop();
    uploader.stop();
}
