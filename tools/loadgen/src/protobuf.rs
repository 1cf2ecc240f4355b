//! A small protobuf wire encoder driven by the contract: it turns a record's JSON field map into
//! the `dwsync.v5` message of its table (field number `n` = column `n - 1`).
//!
//! Int64 and Boolean are varints, strings length-delimited, timestamps a nested
//! `google.protobuf.Timestamp { seconds = 1, nanos = 2 }`, lists `repeated string`. Nulls are
//! skipped; required scalars equal to the proto3 default are omitted, as protoc-generated code does.

use dwsync_contract::{FieldType, Table};
use serde_json::{Map, Value};

const VARINT: u64 = 0;
const LEN: u64 = 2;

/// A field map that does not fit its table's contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {table}: field `{field}`: expected {expected}")]
pub struct EncodeError {
    /// The table.
    pub table: Table,
    /// The field whose value does not fit.
    pub field: &'static str,
    /// What the contract expects there.
    pub expected: &'static str,
}

/// Encodes `fields` (contract field names → JSON values) as the table's protobuf message.
pub fn encode_protobuf(table: Table, fields: &Map<String, Value>) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(256);
    for (i, field) in table.def().fields.iter().enumerate() {
        let number = i as u64 + 1;
        let value = match fields.get(field.name) {
            None | Some(Value::Null) => continue,
            Some(v) => v,
        };
        let misfit = || EncodeError { table, field: field.name, expected: field.ty.describe() };
        match field.ty {
            FieldType::Int64 => {
                let v = value.as_i64().ok_or_else(misfit)?;
                if v != 0 || field.nullable {
                    key(&mut out, number, VARINT);
                    varint(&mut out, v as u64);
                }
            }
            FieldType::Boolean => {
                let v = value.as_bool().ok_or_else(misfit)?;
                if v || field.nullable {
                    key(&mut out, number, VARINT);
                    varint(&mut out, u64::from(v));
                }
            }
            FieldType::Utf8 => {
                let v = value.as_str().ok_or_else(misfit)?;
                if !v.is_empty() || field.nullable {
                    bytes(&mut out, number, v.as_bytes());
                }
            }
            FieldType::Timestamp => {
                let ms = timestamp_ms(value).ok_or_else(misfit)?;
                bytes(&mut out, number, &timestamp(ms));
            }
            FieldType::ListUtf8 => {
                for item in value.as_array().ok_or_else(misfit)? {
                    bytes(&mut out, number, item.as_str().ok_or_else(misfit)?.as_bytes());
                }
            }
        }
    }
    Ok(out)
}

/// Epoch milliseconds of a JSON timestamp: an integer, or an RFC 3339 string.
pub(crate) fn timestamp_ms(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis()),
        _ => None,
    }
}

/// A `google.protobuf.Timestamp` message for `ms` epoch milliseconds.
fn timestamp(ms: i64) -> Vec<u8> {
    let (seconds, nanos) = (ms.div_euclid(1000), ms.rem_euclid(1000) * 1_000_000);
    let mut out = Vec::with_capacity(16);
    if seconds != 0 {
        key(&mut out, 1, VARINT);
        varint(&mut out, seconds as u64);
    }
    if nanos != 0 {
        key(&mut out, 2, VARINT);
        varint(&mut out, nanos as u64);
    }
    out
}

/// Appends a field key.
pub(crate) fn key(out: &mut Vec<u8>, number: u64, wire_type: u64) {
    varint(out, (number << 3) | wire_type);
}

/// Appends a length-delimited field.
pub(crate) fn bytes(out: &mut Vec<u8>, number: u64, value: &[u8]) {
    key(out, number, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends a base-128 varint.
pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_spec() {
        let enc = |v| {
            let mut out = Vec::new();
            varint(&mut out, v);
            out
        };
        assert_eq!(enc(1), [1]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(-1i64 as u64).len(), 10);
    }

    #[test]
    fn timestamps_split_into_seconds_and_nanos() {
        assert_eq!(timestamp(0), Vec::<u8>::new());
        assert_eq!(timestamp(1_500), [0x08, 0x01, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01]);
        // Before the epoch: nanos stay positive.
        let mut expected = vec![0x08];
        varint(&mut expected, -1i64 as u64);
        expected.extend([0x10, 0x80, 0x84, 0xaf, 0x5f]);
        assert_eq!(timestamp(-800), expected);
    }

    #[test]
    fn a_misfit_names_the_field() {
        let mut fields = Map::new();
        let _ = fields.insert("workspace_id".into(), Value::from("seven"));
        let err = encode_protobuf(Table::People, &fields).unwrap_err();
        assert_eq!(err.field, "workspace_id");
        assert!(err.to_string().contains("table people"), "{err}");
    }
}
