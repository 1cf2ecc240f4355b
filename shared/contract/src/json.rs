//! JSON input: one JSON object per Kafka message, keys = the spec's field names.
//!
//! Timestamps are RFC 3339 strings (`2026-11-29T01:02:03.456Z`, any offset; precision below a
//! millisecond is truncated) or integer epoch milliseconds. Unknown keys are ignored. The decoder
//! first tries a single-pass scanner for the common case ([`fast`]); when that declines (any
//! syntax error, unusual value or misfit), serde walks the input — without an intermediate
//! `serde_json::Value`, borrowing strings that need no unescaping — and names the problem.

mod fast;

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{DecodeError, DecodeErrorKind};
use crate::row::{Row, Value};
use crate::table::{FieldType, Table, TableDef};

/// Decodes one JSON object into a validated row of `table`.
pub fn decode_json(table: Table, input: &[u8]) -> Result<Row<'_>, DecodeError> {
    match fast::decode(table, input) {
        Some(slots) => Row::from_slots(table, slots),
        None => decode_with_serde(table, input),
    }
}

/// The precise path: decodes with serde and says what is wrong with a record.
fn decode_with_serde(table: Table, input: &[u8]) -> Result<Row<'_>, DecodeError> {
    let err = |kind| DecodeError { table, kind };
    if let Some(found) = non_object(input) {
        // Valid JSON of another type, or not JSON at all (`nonsense` also starts like `null`).
        return Err(err(match serde_json::from_slice::<IgnoredAny>(input) {
            Ok(_) => DecodeErrorKind::NotAnObject(found),
            Err(e) => DecodeErrorKind::NotJson(e.to_string()),
        }));
    }
    let def = table.def();
    let mut slots: Vec<Option<Value<'_>>> = vec![None; def.fields.len()];
    let mut problem = None;
    let mut de = serde_json::Deserializer::from_slice(input);
    let walked =
        de.deserialize_map(RecordVisitor { def, slots: &mut slots, problem: &mut problem }).and_then(|()| de.end());
    if let Some(kind) = problem {
        return Err(err(kind));
    }
    walked.map_err(|e| err(DecodeErrorKind::NotJson(e.to_string())))?;
    Row::from_slots(table, slots)
}

/// Names what the input holds when its first byte is not `{` (None when it is, or when that byte
/// starts no JSON value).
fn non_object(input: &[u8]) -> Option<&'static str> {
    let first = input.iter().find(|b| !b.is_ascii_whitespace())?;
    match first {
        b'{' => None,
        b'[' => Some("an array"),
        b'"' => Some("a string"),
        b't' | b'f' => Some("a boolean"),
        b'n' => Some("null"),
        b'-' | b'0'..=b'9' => Some("a number"),
        _ => None,
    }
}

/// Why a value does not fit its field.
enum Misfit {
    /// It has another JSON type (the string names that type).
    Type(&'static str),
    /// Right type, unusable value.
    Value(String),
}

struct RecordVisitor<'s, 'de> {
    def: &'static TableDef,
    slots: &'s mut [Option<Value<'de>>],
    problem: &'s mut Option<DecodeErrorKind>,
}

impl<'de> Visitor<'de> for RecordVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(StrSeed)? {
            let Some(i) = self.def.index_of(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let field = &self.def.fields[i];
            if self.slots[i].is_some() {
                *self.problem = Some(DecodeErrorKind::DuplicateField(field.name));
                return Err(de::Error::custom("duplicate field"));
            }
            match map.next_value_seed(ValueSeed(field.ty))? {
                Ok(v) => self.slots[i] = Some(v),
                Err(misfit) => {
                    *self.problem = Some(match misfit {
                        Misfit::Type(found) => {
                            DecodeErrorKind::WrongType { field: field.name, expected: field.ty.describe(), found }
                        }
                        Misfit::Value(reason) => DecodeErrorKind::InvalidValue { field: field.name, reason },
                    });
                    return Err(de::Error::custom("field error"));
                }
            }
        }
        Ok(())
    }
}

/// Deserializes a string, borrowing it from the input when it has no escapes.
struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Deserializes one field value of the given type; a misfit is a value, not a serde error.
struct ValueSeed(FieldType);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Result<Value<'de>, Misfit>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ValueVisitor(self.0))
    }
}

struct ValueVisitor(FieldType);

impl ValueVisitor {
    fn int(self, n: i64) -> Result<Value<'static>, Misfit> {
        match self.0 {
            FieldType::Int64 => Ok(Value::Int(n)),
            FieldType::Timestamp => Ok(Value::TimestampMs(n)),
            _ => Err(Misfit::Type("an integer")),
        }
    }

    fn string<'de>(self, s: Cow<'de, str>) -> Result<Value<'de>, Misfit> {
        match self.0 {
            FieldType::Utf8 => Ok(Value::Str(s)),
            FieldType::Timestamp => chrono::DateTime::parse_from_rfc3339(&s)
                .map(|t| Value::TimestampMs(t.timestamp_millis()))
                .map_err(|e| Misfit::Value(format!("{s:?} is not an RFC 3339 timestamp ({e})"))),
            _ => Err(Misfit::Type("a string")),
        }
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Result<Value<'de>, Misfit>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.describe())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(Value::Null))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(match self.0 {
            FieldType::Boolean => Ok(Value::Bool(v)),
            _ => Err(Misfit::Type("a boolean")),
        })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(match i64::try_from(v) {
            Ok(n) => self.int(n),
            Err(_) if matches!(self.0, FieldType::Int64 | FieldType::Timestamp) => {
                Err(Misfit::Value(format!("{v} does not fit in a signed 64-bit integer")))
            }
            Err(_) => Err(Misfit::Type("an integer")),
        })
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(Misfit::Type("a number with a fraction or exponent")))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.string(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.string(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(self.string(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.0 != FieldType::ListUtf8 {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Err(Misfit::Type("an array")));
        }
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(item) = seq.next_element_seed(ValueSeed(FieldType::Utf8))? {
            match item {
                Ok(Value::Str(s)) => items.push(s),
                _ => {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(Err(Misfit::Type("an array with a non-string element")));
                }
            }
        }
        Ok(Ok(Value::List(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err(Misfit::Type("an object")))
    }
}
