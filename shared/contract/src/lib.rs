//! The v5 export contract: one definition per table ([`Table`], [`TableDef`]), its Arrow schema,
//! and the JSON and protobuf decoders that turn one Kafka message into a validated [`Row`]
//! (after removing Schema Registry [`framing`] where a topic has it).
//!
//! Type decisions (where the spec is loose): INTEGER → Int64; STRING → Utf8; BOOLEAN → Boolean;
//! TIMESTAMP → Timestamp(Millisecond, "UTC"); LIST / ARRAY of STRINGS → List<Utf8>.

mod batch;
mod compact;
mod error;
pub mod framing;
mod json;
pub mod proto_text;
mod protobuf;
mod rfc3339;
mod row;
mod schema;
mod table;

pub use batch::{BatchBuilder, CHUNK_ROWS, COMPACT_ROWS};
pub use error::{DecodeError, DecodeErrorKind};
pub use framing::Framing;
pub use json::decode_json;
pub use protobuf::decode_protobuf;
pub use row::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, Row, Value, check_timestamp};
pub use schema::{TIMEZONE, arrow_schema, data_type, list_item_field};
pub use table::{Field, FieldType, SCHEMA_VERSION, Table, TableDef, UnknownTable};

/// How a source topic's messages are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// One JSON object per message.
    Json,
    /// One `dwsync.v5` protobuf message per message.
    Protobuf,
}

impl Encoding {
    /// Parses a `content-type` header value (`application/json`, `application/x-protobuf`, ...).
    pub fn from_content_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "json" => Some(Self::Json),
            "application/x-protobuf" | "application/protobuf" | "application/vnd.google.protobuf" | "protobuf" => {
                Some(Self::Protobuf)
            }
            _ => None,
        }
    }
}

/// Decodes one message of `table` in the given encoding.
pub fn decode(table: Table, encoding: Encoding, input: &[u8]) -> Result<Row<'_>, DecodeError> {
    match encoding {
        Encoding::Json => decode_json(table, input),
        Encoding::Protobuf => decode_protobuf(table, input),
    }
}
