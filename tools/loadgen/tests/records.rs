//! The generator against the contract: every record decodes, JSON and protobuf agree, ids are
//! unique, values look real, malformed messages are rejected.

use std::collections::HashSet;

use dwsync_contract::{Encoding, FieldType, Table, Value as Cell, decode, decode_json, decode_protobuf};
use dwsync_loadgen::{Generator, Workspaces, id_column};
use dwsync_proto::Message as _;
use dwsync_proto::v5;
use serde_json::Value;

const WORKSPACES: [i64; 3] = [1001, 1002, 77_777_777_777];

#[test]
fn json_and_protobuf_decode_to_the_same_row() {
    let mut g = Generator::new(42);
    for &table in Table::ALL {
        for ws in WORKSPACES {
            for n in 0..300 {
                let rec = g.record(table, ws, n);
                let from_json = decode_json(table, &rec.json)
                    .unwrap_or_else(|e| panic!("{table} n={n}: {e}\n{}", String::from_utf8_lossy(&rec.json)));
                let from_proto = decode_protobuf(table, &rec.protobuf).unwrap_or_else(|e| panic!("{table} n={n}: {e}"));
                assert_eq!(from_json, from_proto, "{table} ws={ws} n={n}");
                assert_eq!(from_json.workspace_id(), ws);
            }
        }
    }
}

#[test]
fn fields_are_contract_fields_and_required_ones_are_set() {
    let mut g = Generator::new(1);
    for &table in Table::ALL {
        let def = table.def();
        for n in 0..200 {
            let rec = g.record(table, 1001, n);
            for key in rec.fields.keys() {
                assert!(def.index_of(key).is_some(), "{table}: unknown key {key}");
            }
            for f in def.fields.iter().filter(|f| !f.nullable) {
                let v = rec.fields.get(f.name).unwrap_or_else(|| panic!("{table}.{} missing", f.name));
                assert!(!v.is_null(), "{table}.{} null", f.name);
            }
            assert_eq!(serde_json::from_slice::<Value>(&rec.json).ok(), Some(Value::Object(rec.fields.clone())));
        }
    }
}

#[test]
fn ids_are_unique_per_workspace_table_and_n() {
    let mut g = Generator::new(7);
    for &table in Table::ALL {
        let mut seen = HashSet::new();
        for ws in WORKSPACES {
            for n in 0..2_000 {
                let rec = g.record(table, ws, n);
                let row = decode_json(table, &rec.json).expect("decodes");
                let cell = row.get(id_column(table)).expect("id column");
                let as_string = match cell {
                    Cell::Str(s) => s.to_string(),
                    Cell::Int(i) => i.to_string(),
                    other => panic!("{table}: id column holds {other:?}"),
                };
                assert_eq!(rec.id, as_string);
                assert!(!rec.id.is_empty() && !rec.id.contains([',', '\n']), "{table}: {:?}", rec.id);
                // Integer ids (n + 1) repeat across workspaces; string ids never do.
                assert!(seen.insert((ws, rec.id.clone())), "{table}: duplicate id {}", rec.id);
            }
        }
    }
}

#[test]
fn records_are_deterministic_and_depend_on_the_seed() {
    let (mut a, mut b, mut c) = (Generator::new(42), Generator::new(42), Generator::new(43));
    // Order does not matter: b generates in reverse.
    let forward: Vec<_> = (0..50).map(|n| a.record(Table::Metrics, 1001, n)).collect();
    let mut backward: Vec<_> = (0..50).rev().map(|n| b.record(Table::Metrics, 1001, n)).collect();
    backward.reverse();
    assert_eq!(forward, backward);
    assert_ne!(forward[0].id, c.record(Table::Metrics, 1001, 0).id);
    assert_eq!(a.generated(), 50);
}

#[test]
fn nullable_fields_are_null_at_a_realistic_rate() {
    let mut g = Generator::new(5);
    for &table in Table::ALL {
        let def = table.def();
        let (mut nulls, mut cells, mut absent, mut explicit) = (0, 0, 0, 0);
        for n in 0..500 {
            let rec = g.record(table, 1001, n);
            for f in def.fields.iter().filter(|f| f.nullable) {
                cells += 1;
                match rec.fields.get(f.name) {
                    None => (nulls, absent) = (nulls + 1, absent + 1),
                    Some(Value::Null) => (nulls, explicit) = (nulls + 1, explicit + 1),
                    Some(_) => {}
                }
            }
        }
        if cells > 0 {
            let rate = f64::from(nulls) / f64::from(cells);
            assert!((0.05..0.95).contains(&rate), "{table}: null rate {rate}");
            assert!(absent > 0 && explicit > 0, "{table}: NULL both as absent and as null");
        }
    }
}

#[test]
fn values_look_real() {
    let mut g = Generator::new(42);
    let metrics: Vec<_> = (0..2_000).map(|n| g.record(Table::Metrics, 1001, n)).collect();
    let avg = metrics.iter().map(|r| r.json.len()).sum::<usize>() / metrics.len();
    assert!((300..=600).contains(&avg), "metrics JSON average {avg} bytes");
    let names: HashSet<_> = metrics.iter().filter_map(|r| r.fields["metric"].as_str()).collect();
    for m in ["sent", "delivered", "opened", "clicked", "bounced"] {
        assert!(names.contains(m), "metric {m}");
    }
    for r in &metrics {
        let clicked = r.fields["metric"] == "clicked";
        assert_eq!(
            clicked,
            r.fields.get("link_url").is_some_and(|u| u.as_str().is_some_and(|u| u.starts_with("https://")))
        );
    }
    // Timestamps come as epoch milliseconds and as RFC 3339 strings.
    assert!(metrics.iter().any(|r| r.fields["created_at"].is_i64()));
    assert!(metrics.iter().any(|r| r.fields["created_at"].is_string()));

    let bodies: Vec<_> = (0..200)
        .map(|n| g.record(Table::DeliveryContent, 1001, n))
        .filter(|r| r.fields["type"] == "email")
        .map(|r| r.fields["body"].as_str().map(str::len).unwrap_or_default())
        .collect();
    assert!(!bodies.is_empty());
    let avg = bodies.iter().sum::<usize>() / bodies.len();
    assert!(avg > 3_000, "email bodies average {avg} bytes");

    let types: HashSet<_> = (0..500)
        .map(|n| g.record(Table::Deliveries, 1001, n).fields["delivery_type"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(types.len(), 6, "{types:?}");

    let events: Vec<_> = (0..100).map(|n| g.record(Table::Events, 1001, n)).collect();
    assert!(events.iter().any(|r| r.fields["sources"].as_array().is_some_and(|a| a.len() > 1)));
    assert!(events.iter().any(|r| r.fields["sources"].as_array().is_some_and(Vec::is_empty)));
    let campaigns: Vec<_> = (0..100).map(|n| g.record(Table::Campaigns, 1001, n)).collect();
    assert!(campaigns.iter().any(|r| r.fields.get("topic_names").is_some_and(Value::is_array)));
    // Some non-ASCII text somewhere.
    let people: Vec<_> = (0..200).map(|n| g.record(Table::Attributes, 1001, n)).collect();
    assert!(people.iter().any(|r| !r.json.is_ascii()));
}

#[test]
fn prost_reads_the_protobuf_bytes() {
    let mut g = Generator::new(9);
    for n in 0..100 {
        let rec = g.record(Table::Metrics, 1002, n);
        let m = v5::Metric::decode(rec.protobuf.as_slice()).expect("Metric");
        assert_eq!(m.event_id, rec.id);
        assert_eq!(m.workspace_id, 1002);
        assert_eq!(Some(m.metric.as_str()), rec.fields["metric"].as_str());
        assert_eq!(m.reason.as_deref(), rec.fields.get("reason").and_then(Value::as_str));
        assert_eq!(m.link_id, rec.fields.get("link_id").and_then(Value::as_i64));
        assert_eq!(Some(m.proxied), rec.fields["proxied"].as_bool());
        let ts = m.created_at.expect("created_at");
        let row = decode_json(Table::Metrics, &rec.json).expect("json");
        assert_eq!(
            row.get("created_at"),
            Some(&Cell::TimestampMs(ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000))
        );

        let rec = g.record(Table::Campaigns, 1002, n);
        let c = v5::Campaign::decode(rec.protobuf.as_slice()).expect("Campaign");
        assert_eq!(c.campaign_id, n as i64 + 1);
        let topics: Vec<String> = rec
            .fields
            .get("topic_names")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        assert_eq!(c.topic_names, topics);

        let rec = g.record(Table::Events, 1002, n);
        let e = v5::Event::decode(rec.protobuf.as_slice()).expect("Event");
        assert_eq!(e.event_id, rec.id);
        assert_eq!(Some(e.r#type.as_str()), rec.fields["type"].as_str());
        assert_eq!(Some(e.data.as_str()), rec.fields["data"].as_str());
        assert_eq!(e.sources.len(), rec.fields["sources"].as_array().map_or(0, Vec::len));
    }
}

#[test]
fn malformed_messages_are_rejected() {
    let mut g = Generator::new(3);
    for &table in Table::ALL {
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            let mut classes = HashSet::new();
            for n in 0..8 {
                let bytes = g.malformed(table, 1001, n, encoding);
                let err = decode(table, encoding, &bytes).expect_err("malformed must not decode");
                let _ = classes.insert(err.kind.class());
            }
            assert!(classes.len() >= 3, "{table} {encoding:?}: {classes:?}");
        }
    }
}

#[test]
fn workspaces_spread_records_with_skew() {
    let ws = Workspaces::new(3);
    let split = ws.split(1_000);
    assert_eq!(split.iter().map(|(_, c)| c).sum::<u64>(), 1_000);
    assert_eq!(split[0].0, 1001);
    assert!(split[0].1 > 450, "{split:?}");
    let mut g = Generator::new(42);
    let ids: HashSet<_> = ws.schedule(1_000, 42).map(|(w, n)| (w, g.record(Table::Metrics, w, n).id)).collect();
    assert_eq!(ids.len(), 1_000);
}

#[test]
fn every_type_is_generated() {
    // A timestamp before the epoch is never generated, but epoch 0 is (deleted people).
    let mut g = Generator::new(11);
    let zero = (0..2_000).any(|n| {
        let rec = g.record(Table::People, 1001, n);
        decode_json(Table::People, &rec.json).is_ok_and(|r| r.get("created_at") == Some(&Cell::TimestampMs(0)))
    });
    assert!(zero, "deleted or suppressed people carry created_at = 0");
    for &table in Table::ALL {
        for f in table.def().fields {
            if f.ty == FieldType::ListUtf8 {
                let rec = g.record(table, 1001, 1);
                assert!(rec.fields.contains_key(f.name) || f.nullable, "{table}.{}", f.name);
            }
        }
    }
}
