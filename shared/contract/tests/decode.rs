//! Decoding tests: what each input encoding accepts, and one test per error class, checking
//! that every error names the table, the field and the reason.
#![allow(clippy::unwrap_used, missing_docs)]

use dwsync_contract::{DecodeErrorKind, Encoding, Table, Value, decode, decode_json, decode_protobuf};
use dwsync_proto::Message;
use dwsync_proto::v5;

fn json_err(table: Table, input: &str) -> (String, DecodeErrorKind) {
    let e = decode_json(table, input.as_bytes()).unwrap_err();
    (e.to_string(), e.kind)
}

const ATTR: &str = r#"{"workspace_id": 7, "internal_customer_id": "cio_1", "attribute_name": "email", "attribute_value": "a@b.c", "timestamp": 1700000000123}"#;

fn attr_with(key: &str, value: &str) -> String {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(ATTR).unwrap();
    if value == "<absent>" {
        v.remove(key);
    } else {
        v.insert(key.into(), serde_json::from_str(value).unwrap());
    }
    serde_json::to_string(&v).unwrap()
}

#[test]
fn json_accepts_rfc3339_and_epoch_millis_and_ignores_unknown_keys() {
    let row = decode_json(Table::Attributes, ATTR.as_bytes()).unwrap();
    assert_eq!(row.workspace_id(), 7);
    assert_eq!(row.get("timestamp"), Some(&Value::TimestampMs(1_700_000_000_123)));
    let input = attr_with("timestamp", r#""2023-11-14T22:13:20.123456Z""#);
    let row = decode_json(Table::Attributes, input.as_bytes()).unwrap();
    assert_eq!(row.get("timestamp"), Some(&Value::TimestampMs(1_700_000_000_123)), "sub-millisecond truncated");
    let input = attr_with("timestamp", r#""2023-11-14T23:13:20.123+01:00""#);
    let row = decode_json(Table::Attributes, input.as_bytes()).unwrap();
    assert_eq!(row.get("timestamp"), Some(&Value::TimestampMs(1_700_000_000_123)), "offsets normalised to UTC");
    let input = attr_with("extra", r#"{"nested": [1, {"x": null}]}"#);
    let row = decode_json(Table::Attributes, input.as_bytes()).unwrap();
    assert_eq!(row.values().len(), 5);
    let input = attr_with("attribute_value", r#""{\"topics\":{\"topic_7\":false}} \u00e9""#);
    let row = decode_json(Table::Attributes, input.as_bytes()).unwrap();
    assert_eq!(row.get("attribute_value"), Some(&Value::Str(r#"{"topics":{"topic_7":false}} é"#.into())));
}

#[test]
fn json_nullable_fields_may_be_null_or_absent() {
    let input = r#"{"workspace_id": 1, "event_id": "e", "internal_customer_id": "c", "timestamp": 0, "processed_at": 0,
        "channel": "sms", "from": "+1", "to": "+2", "body": "STOP", "keyword": null, "optout": true,
        "messaging_service_sid": "MG", "message_sid": "SM"}"#;
    let row = decode_json(Table::Inbound, input.as_bytes()).unwrap();
    assert_eq!(row.get("keyword"), Some(&Value::Null));
    assert_eq!(row.get("in_reply_to_delivery_id"), Some(&Value::Null));
    assert_eq!(row.get("optout"), Some(&Value::Bool(true)));
}

#[test]
fn json_error_not_json() {
    let (msg, kind) = json_err(Table::Metrics, r#"{"workspace_id": 1,"#);
    assert_eq!(kind.class(), "not_json");
    assert!(msg.starts_with("table metrics: not valid JSON"), "{msg}");
    assert_eq!(json_err(Table::Metrics, "\u{0}garbage").1.class(), "not_json");
    assert_eq!(json_err(Table::Attributes, &format!("{ATTR} trailing")).1.class(), "not_json");
    for garbage in ["nonsense", "tru", "-x", "[1,", "\"open"] {
        assert_eq!(json_err(Table::Metrics, garbage).1.class(), "not_json", "{garbage}");
    }
}

#[test]
fn json_error_not_an_object() {
    for (input, found) in
        [("[1,2]", "an array"), ("\"x\"", "a string"), ("42", "a number"), ("null", "null"), ("true", "a boolean")]
    {
        let (msg, kind) = json_err(Table::Events, input);
        assert_eq!(kind, DecodeErrorKind::NotAnObject(found));
        assert_eq!(msg, format!("table events: expected a JSON object, found {found}"));
    }
}

#[test]
fn json_error_missing_required_field() {
    let (msg, kind) = json_err(Table::Attributes, &attr_with("attribute_name", "<absent>"));
    assert_eq!(kind, DecodeErrorKind::MissingField("attribute_name"));
    assert_eq!(msg, "table attributes: field `attribute_name`: required but missing");
}

#[test]
fn json_error_null_in_required_field() {
    let (msg, kind) = json_err(Table::Attributes, &attr_with("timestamp", "null"));
    assert_eq!(kind.class(), "null_field");
    assert_eq!(msg, "table attributes: field `timestamp`: required but null");
}

#[test]
fn json_error_wrong_type() {
    let cases = [
        ("workspace_id", r#""7""#, "integer", "a string"),
        ("workspace_id", "7.5", "integer", "a number with a fraction or exponent"),
        ("attribute_value", "12", "string", "an integer"),
        ("attribute_value", r#"{"a": 1}"#, "string", "an object"),
        ("attribute_value", "[\"a\"]", "string", "an array"),
        ("timestamp", "true", "timestamp (RFC 3339 string or integer epoch milliseconds)", "a boolean"),
    ];
    for (field, value, expected, found) in cases {
        let (msg, kind) = json_err(Table::Attributes, &attr_with(field, value));
        assert_eq!(kind, DecodeErrorKind::WrongType { field, expected, found }, "{field}={value}");
        assert_eq!(msg, format!("table attributes: field `{field}`: expected {expected}, found {found}"));
    }
    let event = r#"{"workspace_id": 1, "event_id": "e", "internal_customer_id": "c", "name": "n", "type": "event",
        "data": "{}", "timestamp": 0, "processed_at": 0, "sources": ["web", 3, "x"], "source_uas": []}"#;
    let e = decode_json(Table::Events, event.as_bytes()).unwrap_err();
    assert_eq!(e.kind.field(), Some("sources"));
    assert_eq!(e.kind.class(), "wrong_type");
}

#[test]
fn json_error_invalid_value() {
    let (msg, kind) = json_err(Table::Attributes, &attr_with("workspace_id", "9223372036854775808"));
    assert_eq!(kind.class(), "invalid_value");
    assert!(msg.contains("field `workspace_id`") && msg.contains("does not fit in a signed 64-bit integer"), "{msg}");
    let (msg, _) = json_err(Table::Attributes, &attr_with("timestamp", r#""yesterday""#));
    assert!(msg.contains("field `timestamp`: \"yesterday\" is not an RFC 3339 timestamp"), "{msg}");
    let (msg, kind) = json_err(Table::Attributes, &attr_with("timestamp", "253402300800000"));
    assert_eq!(kind.class(), "invalid_value");
    assert!(msg.contains("outside years 0000-9999"), "{msg}");
}

#[test]
fn json_error_duplicate_field() {
    let input = ATTR.replace(r#""attribute_name": "email""#, r#""attribute_name": "email", "attribute_name": "phone""#);
    let (msg, kind) = json_err(Table::Attributes, &input);
    assert_eq!(kind, DecodeErrorKind::DuplicateField("attribute_name"));
    assert_eq!(msg, "table attributes: field `attribute_name`: appears more than once");
}

#[test]
fn json_error_invalid_workspace_id() {
    for id in ["0", "-5"] {
        let (msg, kind) = json_err(Table::Attributes, &attr_with("workspace_id", id));
        assert_eq!(kind.class(), "invalid_workspace_id");
        assert_eq!(msg, format!("table attributes: field `workspace_id`: must be a positive integer, found {id}"));
    }
}

fn ts(ms: i64) -> Option<dwsync_proto::Timestamp> {
    Some(dwsync_proto::Timestamp { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 })
}

#[test]
fn protobuf_and_json_decode_to_the_same_rows() {
    let delivery = v5::Delivery {
        workspace_id: 42,
        delivery_id: "dlv_ü".into(),
        internal_customer_id: Some("cio_1".into()),
        subject_id: None,
        event_id: Some(String::new()),
        delivery_type: "email".into(),
        campaign_id: Some(i64::MIN),
        action_id: None,
        newsletter_id: Some(i64::MAX),
        content_id: Some(0),
        trigger_id: None,
        created_at: ts(-1),
        transactional_message_id: None,
        seq_num: 9,
    };
    let json = r#"{"workspace_id": 42, "delivery_id": "dlv_ü", "internal_customer_id": "cio_1", "event_id": "",
        "delivery_type": "email", "campaign_id": -9223372036854775808, "newsletter_id": 9223372036854775807,
        "content_id": 0, "created_at": "1969-12-31T23:59:59.999Z", "seq_num": 9}"#;
    let bytes = delivery.encode_to_vec();
    assert_eq!(
        decode_protobuf(Table::Deliveries, &bytes).unwrap(),
        decode_json(Table::Deliveries, json.as_bytes()).unwrap()
    );

    let event = v5::Event {
        workspace_id: 3,
        event_id: "evt".into(),
        internal_customer_id: "cio".into(),
        name: "purchase".into(),
        r#type: "event".into(),
        data: "{\"price\": 3}".into(),
        timestamp: ts(1_700_000_000_000),
        processed_at: ts(1_700_000_000_500),
        sources: vec!["Customer.io Data Pipelines via JavaScript".into(), String::new()],
        source_uas: vec![],
    };
    let json = r#"{"workspace_id": 3, "event_id": "evt", "internal_customer_id": "cio", "name": "purchase", "type": "event",
        "data": "{\"price\": 3}", "timestamp": 1700000000000, "processed_at": 1700000000500,
        "sources": ["Customer.io Data Pipelines via JavaScript", ""], "source_uas": []}"#;
    let bytes = event.encode_to_vec();
    assert_eq!(
        decode(Table::Events, Encoding::Protobuf, &bytes).unwrap(),
        decode(Table::Events, Encoding::Json, json.as_bytes()).unwrap()
    );
}

#[test]
fn protobuf_defaults_and_nulls() {
    // Required scalars absent = proto3 defaults; an empty nullable list is NULL.
    let campaign = v5::Campaign { workspace_id: 5, created_at: ts(1), updated_at: ts(2), ..Default::default() };
    let bytes = campaign.encode_to_vec();
    let row = decode_protobuf(Table::Campaigns, &bytes).unwrap();
    assert_eq!(row.get("name"), Some(&Value::Str("".into())));
    assert_eq!(row.get("version"), Some(&Value::Int(0)));
    assert_eq!(row.get("topic_names"), Some(&Value::Null));
    let object_type = v5::ObjectType { workspace_id: 5, updated_at: ts(3), ..Default::default() };
    let bytes = object_type.encode_to_vec();
    let row = decode_protobuf(Table::ObjectTypes, &bytes).unwrap();
    assert_eq!(row.get("deleted"), Some(&Value::Bool(false)));
}

#[test]
fn protobuf_error_classes() {
    let good = v5::Attribute {
        workspace_id: 1,
        internal_customer_id: "c".into(),
        attribute_name: "n".into(),
        attribute_value: "v".into(),
        timestamp: ts(5),
    };
    let bytes = good.encode_to_vec();
    assert!(decode_protobuf(Table::Attributes, &bytes).is_ok());

    let truncated = decode_protobuf(Table::Attributes, &bytes[..bytes.len() - 2]).unwrap_err();
    assert_eq!(truncated.kind.class(), "not_protobuf");
    assert!(truncated.to_string().starts_with("table attributes: not a valid protobuf message"), "{truncated}");

    let missing = v5::Attribute { timestamp: None, ..good.clone() };
    let e = decode_protobuf(Table::Attributes, &missing.encode_to_vec()).unwrap_err();
    assert_eq!(e.to_string(), "table attributes: field `timestamp`: required but missing");

    let no_workspace = v5::Attribute { workspace_id: 0, ..good.clone() };
    assert_eq!(
        decode_protobuf(Table::Attributes, &no_workspace.encode_to_vec()).unwrap_err().kind.class(),
        "invalid_workspace_id"
    );

    // Field 2 (internal_customer_id, a string) sent as a varint.
    let e = decode_protobuf(Table::Attributes, &[0x08, 0x01, 0x10, 0x05]).unwrap_err();
    assert_eq!(e.to_string(), "table attributes: field `internal_customer_id`: expected string, found a varint");

    // Field 3 with invalid UTF-8.
    let e = decode_protobuf(Table::Attributes, &[0x08, 0x01, 0x1a, 0x02, 0xff, 0xfe]).unwrap_err();
    assert_eq!(e.kind.class(), "invalid_value");
    assert_eq!(e.kind.field(), Some("attribute_name"));

    // A JSON record sent to a protobuf topic is refused, not misread.
    assert!(decode_protobuf(Table::Attributes, ATTR.as_bytes()).is_err());
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A deterministic xorshift stream of inputs; cargo-fuzz targets cover this more deeply.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds: Vec<Vec<u8>> = vec![ATTR.as_bytes().to_vec(), v5::Event::default().encode_to_vec()];
    for &table in Table::ALL {
        for i in 0..2_000 {
            let mut input = seeds[i % 2].clone();
            let len = (next() % 64) as usize;
            if i % 3 == 0 {
                input = (0..len).map(|_| next() as u8).collect();
            } else {
                for _ in 0..(1 + len % 4) {
                    if input.is_empty() {
                        break;
                    }
                    let at = (next() as usize) % input.len();
                    input[at] = next() as u8;
                }
            }
            let _ = decode_json(table, &input);
            let _ = decode_protobuf(table, &input);
        }
    }
}
