//! Schema Registry framing: the prefix Confluent's serializers put before a value.
//!
//! The wire format (Confluent's documentation, "Wire format"): byte 0 is the magic byte `0`,
//! bytes 1–4 the schema id as a big-endian 32-bit integer, then, for protobuf only, the message
//! indexes — a zig-zag varint count followed by that many zig-zag varint indexes, the path of the
//! message type within its `.proto` file; the single byte `0` (a count of 0) stands for `[0]`,
//! the first message. The encoded message follows. JSON Schema values carry no indexes.
//!
//! A value is decoded with the v5 contract after its framing is removed: the schema id and the
//! indexes only say which registered schema the producer used (the id can be checked against an
//! allow-list), never how to decode.

use std::fmt;

/// How a topic's values are framed (`framing` per source topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// Plain values: the encoded message alone.
    #[default]
    None,
    /// Every value framed by a Schema Registry serializer; one without the framing is refused.
    SchemaRegistry,
    /// Framed when the value starts with the magic byte `0`, plain otherwise (neither a JSON
    /// value nor a protobuf message can start with a zero byte).
    Detect,
}

/// The magic byte of a framed value.
pub const MAGIC: u8 = 0;

/// The most message indexes accepted (nesting depth of the message type in its file).
const MAX_INDEXES: u64 = 64;

/// A framed value, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed<'a> {
    /// The schema id the producer registered.
    pub schema_id: u32,
    /// The message indexes (protobuf only; `[0]` for the first message).
    pub indexes: Vec<u64>,
    /// The encoded message.
    pub payload: &'a [u8],
}

/// Why a value's framing cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Fewer than the 5 bytes of magic byte and schema id.
    #[error("{0} bytes: too short for Schema Registry framing (magic byte and 4-byte schema id)")]
    TooShort(usize),
    /// The first byte is not the magic byte.
    #[error("magic byte {0:#04x}, expected 0x00 (Schema Registry framing)")]
    Magic(u8),
    /// The message indexes of a protobuf value are cut or malformed.
    #[error("schema id {schema_id}: bad protobuf message indexes: {reason}")]
    Indexes {
        /// The schema id read before them.
        schema_id: u32,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Which serializer framed the value: protobuf adds message indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serializer {
    /// Confluent's protobuf serializer.
    Protobuf,
    /// Confluent's JSON Schema serializer.
    Json,
}

/// Splits a value framed by `serializer`.
pub fn unframe(value: &[u8], serializer: Serializer) -> Result<Framed<'_>, FramingError> {
    let [magic, a, b, c, d, rest @ ..] = value else { return Err(FramingError::TooShort(value.len())) };
    if *magic != MAGIC {
        return Err(FramingError::Magic(*magic));
    }
    let schema_id = u32::from_be_bytes([*a, *b, *c, *d]);
    let (indexes, payload) = match serializer {
        Serializer::Json => (Vec::new(), rest),
        Serializer::Protobuf => {
            let bad = |reason| FramingError::Indexes { schema_id, reason };
            let (count, mut rest) = zigzag(rest).ok_or(bad("the count is cut or not a varint"))?;
            if count == 0 {
                (vec![0], rest)
            } else {
                let count = u64::try_from(count).map_err(|_| bad("negative count"))?;
                if count > MAX_INDEXES {
                    return Err(bad("more than 64 indexes"));
                }
                let mut indexes = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let (index, after) = zigzag(rest).ok_or(bad("an index is cut or not a varint"))?;
                    indexes.push(u64::try_from(index).map_err(|_| bad("negative index"))?);
                    rest = after;
                }
                (indexes, rest)
            }
        }
    };
    Ok(Framed { schema_id, indexes, payload })
}

/// `payload` framed as Confluent's serializers frame it: with `indexes` for protobuf (`[0]`
/// written as the single byte `0`), `None` for JSON Schema. For producers and tests.
pub fn frame(schema_id: u32, indexes: Option<&[i64]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![MAGIC];
    out.extend(schema_id.to_be_bytes());
    match indexes {
        None => {}
        Some([0]) => out.push(0),
        Some(list) => {
            out.extend(zigzag_bytes(list.len() as i64));
            for index in list {
                out.extend(zigzag_bytes(*index));
            }
        }
    }
    out.extend_from_slice(payload);
    out
}

/// `n` as a zig-zag varint.
fn zigzag_bytes(n: i64) -> Vec<u8> {
    let mut v = ((n << 1) ^ (n >> 63)) as u64;
    let mut out = Vec::with_capacity(2);
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Whether `value` looks framed ([`Framing::Detect`]): its first byte is the magic byte.
pub fn looks_framed(value: &[u8]) -> bool {
    value.first() == Some(&MAGIC)
}

/// A zig-zag varint (protobuf `sint64`) at the start of `bytes`, and the bytes after it.
fn zigzag(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let decoded = (value >> 1) as i64 ^ -((value & 1) as i64);
            return Some((decoded, &bytes[i + 1..]));
        }
    }
    None
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::SchemaRegistry => "schema-registry",
            Self::Detect => "detect",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(schema_id: u32, indexes: Option<&[i64]>, payload: &[u8]) -> Vec<u8> {
        frame(schema_id, indexes, payload)
    }

    #[test]
    fn the_first_message_is_one_zero_byte() {
        let value = framed(42, Some(&[0]), b"\x08\x01");
        assert_eq!(value, [0, 0, 0, 0, 42, 0, 8, 1]);
        let split = unframe(&value, Serializer::Protobuf).expect("framed");
        assert_eq!(split, Framed { schema_id: 42, indexes: vec![0], payload: b"\x08\x01" });
    }

    #[test]
    fn frames_are_the_documented_bytes() {
        // Magic byte, schema id big-endian, count 2 (zig-zag: 4), indexes 2 and 1 (4, 2).
        assert_eq!(frame(0x0102_0304, Some(&[2, 1]), b"m"), [0, 1, 2, 3, 4, 4, 4, 2, b'm']);
        assert_eq!(frame(300, Some(&[0]), b""), [0, 0, 0, 1, 44, 0]);
        assert_eq!(frame(5, None, b"{}"), [0, 0, 0, 0, 5, b'{', b'}']);
        assert_eq!(zigzag_bytes(-1), [1]);
        assert_eq!(zigzag_bytes(64), [0x80, 0x01]);
    }

    #[test]
    fn nested_message_indexes_and_large_schema_ids_are_read() {
        let value = framed(0x0102_0304, Some(&[2, 1, 70]), b"rest");
        let split = unframe(&value, Serializer::Protobuf).expect("framed");
        assert_eq!((split.schema_id, split.indexes, split.payload), (0x0102_0304, vec![2, 1, 70], &b"rest"[..]));
    }

    #[test]
    fn json_schema_values_have_no_indexes() {
        let value = framed(7, None, br#"{"a":1}"#);
        let split = unframe(&value, Serializer::Json).expect("framed");
        assert_eq!((split.schema_id, split.indexes.len(), split.payload), (7, 0, &br#"{"a":1}"#[..]));
    }

    #[test]
    fn broken_framing_is_refused_with_its_reason() {
        assert_eq!(unframe(&[0, 0, 1], Serializer::Json), Err(FramingError::TooShort(3)));
        assert_eq!(unframe(b"{\"workspace_id\":1}", Serializer::Json), Err(FramingError::Magic(b'{')));
        let cut = [0, 0, 0, 0, 9, 0x80];
        assert!(matches!(unframe(&cut, Serializer::Protobuf), Err(FramingError::Indexes { schema_id: 9, .. })));
        let negative = framed(9, Some(&[-1, 2]), b"");
        assert!(matches!(unframe(&negative, Serializer::Protobuf), Err(FramingError::Indexes { schema_id: 9, .. })));
        let many = framed(9, Some(&[1; 65]), b"");
        assert!(matches!(unframe(&many, Serializer::Protobuf), Err(FramingError::Indexes { .. })));
        let count_past_end = [0, 0, 0, 0, 9, 4, 2];
        assert!(matches!(unframe(&count_past_end, Serializer::Protobuf), Err(FramingError::Indexes { .. })));
    }

    #[test]
    fn detection_looks_at_the_magic_byte() {
        assert!(looks_framed(&framed(1, None, b"{}")));
        assert!(!looks_framed(b"{}") && !looks_framed(b"\x08\x01") && !looks_framed(b""));
    }
}
