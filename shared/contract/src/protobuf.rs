//! Protobuf input: the `dwsync.v5` messages of `proto/dwsync/v5/tables.proto`.
//!
//! The decoder reads the wire format directly, driven by the contract: field number `n` is the
//! table's column `n - 1` (the `.proto` file is rendered from the same contract, see
//! [`crate::proto_text`]). Required scalars follow proto3 (absent = default value); nullable
//! scalars are `optional` (absent = NULL); timestamps are `google.protobuf.Timestamp` (absent
//! required timestamp = error); a nullable list that is empty is NULL. Unknown fields are skipped.

use std::borrow::Cow;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::row::{Row, Value};
use crate::table::{FieldType, Table};

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Decodes one protobuf message into a validated row of `table`.
pub fn decode_protobuf(table: Table, input: &[u8]) -> Result<Row<'_>, DecodeError> {
    let err = |kind| DecodeError { table, kind };
    let def = table.def();
    let mut slots: Vec<Option<Value<'_>>> = vec![None; def.fields.len()];
    let mut wire = Wire(input);
    while !wire.is_empty() {
        let (number, wire_type) = wire.key().map_err(|e| err(DecodeErrorKind::NotProtobuf(e)))?;
        let column = usize::try_from(number).ok().and_then(|n| n.checked_sub(1)).filter(|&i| i < def.fields.len());
        let Some(i) = column else {
            wire.skip(wire_type).map_err(|e| err(DecodeErrorKind::NotProtobuf(e)))?;
            continue;
        };
        let field = &def.fields[i];
        let expected_wire = match field.ty {
            FieldType::Int64 | FieldType::Boolean => VARINT,
            FieldType::Utf8 | FieldType::Timestamp | FieldType::ListUtf8 => LEN,
        };
        if wire_type != expected_wire {
            return Err(err(DecodeErrorKind::WrongType {
                field: field.name,
                expected: field.ty.describe(),
                found: wire_type_name(wire_type),
            }));
        }
        let malformed = |e: String| err(DecodeErrorKind::NotProtobuf(format!("field `{}`: {e}", field.name)));
        let bad_utf8 =
            || err(DecodeErrorKind::InvalidValue { field: field.name, reason: "string is not valid UTF-8".into() });
        match field.ty {
            // proto3 int64: two's complement in a varint.
            FieldType::Int64 => slots[i] = Some(Value::Int(wire.varint().map_err(malformed)? as i64)),
            FieldType::Boolean => slots[i] = Some(Value::Bool(wire.varint().map_err(malformed)? != 0)),
            FieldType::Utf8 => {
                let s = std::str::from_utf8(wire.bytes().map_err(malformed)?).map_err(|_| bad_utf8())?;
                slots[i] = Some(Value::Str(Cow::Borrowed(s)));
            }
            FieldType::Timestamp => {
                let ms = timestamp_ms(wire.bytes().map_err(malformed)?)
                    .map_err(|reason| err(DecodeErrorKind::InvalidValue { field: field.name, reason }))?;
                slots[i] = Some(Value::TimestampMs(ms));
            }
            FieldType::ListUtf8 => {
                let s = std::str::from_utf8(wire.bytes().map_err(malformed)?).map_err(|_| bad_utf8())?;
                match &mut slots[i] {
                    Some(Value::List(items)) => items.push(Cow::Borrowed(s)),
                    slot => *slot = Some(Value::List(vec![Cow::Borrowed(s)])),
                }
            }
        }
    }
    for (field, slot) in def.fields.iter().zip(slots.iter_mut()) {
        if slot.is_some() || field.ty == FieldType::Timestamp {
            continue;
        }
        *slot = match (field.nullable, field.ty) {
            (true, _) => Some(Value::Null),
            (false, FieldType::Int64) => Some(Value::Int(0)),
            (false, FieldType::Utf8) => Some(Value::Str(Cow::Borrowed(""))),
            (false, FieldType::Boolean) => Some(Value::Bool(false)),
            (false, _) => Some(Value::List(Vec::new())),
        };
    }
    Row::from_slots(table, slots)
}

/// Converts an encoded `google.protobuf.Timestamp` to epoch milliseconds.
fn timestamp_ms(buf: &[u8]) -> Result<i64, String> {
    let (mut seconds, mut nanos) = (0i64, 0i64);
    let mut wire = Wire(buf);
    while !wire.is_empty() {
        match wire.key()? {
            (1, VARINT) => seconds = wire.varint()? as i64,
            // int32 nanos: sign-extended in a varint.
            (2, VARINT) => nanos = i64::from(wire.varint()? as i32),
            (_, t) => wire.skip(t)?,
        }
    }
    if !(0..1_000_000_000).contains(&nanos) {
        return Err(format!("timestamp nanos {nanos} outside 0..999999999"));
    }
    let ms = seconds.checked_mul(1000).and_then(|s| s.checked_add(nanos / 1_000_000));
    ms.ok_or_else(|| format!("timestamp seconds {seconds} out of range"))
}

fn wire_type_name(t: u8) -> &'static str {
    match t {
        VARINT => "a varint",
        FIXED64 => "a 64-bit fixed value",
        LEN => "a length-delimited value",
        FIXED32 => "a 32-bit fixed value",
        _ => "an unsupported wire type",
    }
}

/// A cursor over protobuf wire-format bytes.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.0.len() < 10 { "truncated varint".into() } else { "varint longer than 10 bytes".into() })
    }

    fn key(&mut self) -> Result<(u64, u8), String> {
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(format!("invalid field number {number}"));
        }
        Ok((number, (key & 7) as u8))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err(format!("length {n} runs past the end of the message"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()?;
        self.take(usize::try_from(n).map_err(|_| format!("length {n} too large"))?)
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), String> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            t => Err(format!("unsupported wire type {t}")),
        }
    }
}
