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
/// The prefix of every header dwsync adds (removed when a record is replayed).
pub const PREFIX: &str = "dwsync.";
