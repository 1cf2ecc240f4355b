//! Header names on dead-lettered records: where the record came from and why it failed.
//! ingest writes them; the `dwsync dead-letters replay` command reads them.

/// Source topic.
pub const TOPIC: &str = "dwsync.source.topic";
/// Source partition.
pub const PARTITION: &str = "dwsync.source.partition";
/// Source offset.
pub const OFFSET: &str = "dwsync.source.offset";
/// The table the record was decoded for.
pub const TABLE: &str = "dwsync.table";
/// A stable error class (`missing_field`, `not_json`, ...).
pub const ERROR_CLASS: &str = "dwsync.error.class";
/// A readable reason naming the table and field.
pub const ERROR_REASON: &str = "dwsync.error.reason";
/// The schema id of a value framed by a Schema Registry serializer, when it was read.
pub const SCHEMA_ID: &str = "dwsync.schema.id";
/// The prefix of every header dwsync adds (removed when a record is replayed).
pub const PREFIX: &str = "dwsync.";
/// `true` when the payload is only a prefix of the source record's value (the value did not
/// fit the dead-letter topic); the full value is then identified by [`VALUE_SIZE`] and
/// [`VALUE_SHA256`] and stays in its source topic at [`TOPIC`] / [`PARTITION`] / [`OFFSET`].
pub const VALUE_TRUNCATED: &str = "dwsync.value.truncated";
/// The full value's size in bytes (set when it was cut).
pub const VALUE_SIZE: &str = "dwsync.value.size";
/// The full value's SHA-256, lowercase hex (set when it was cut).
pub const VALUE_SHA256: &str = "dwsync.value.sha256";
/// `true` when the source record's own headers were left out (they did not fit).
pub const HEADERS_DROPPED: &str = "dwsync.headers.dropped";
/// `true` when the dead letter carries no value, key nor original headers: the broker refused
/// the whole dead letter, so only the record's reference was written.
pub const VALUE_OMITTED: &str = "dwsync.value.omitted";
