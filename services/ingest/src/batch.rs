//! A batch of records: what librdkafka has queued behind the record `recv` returned, decoded on
//! the worker threads into rows and their windows (or dead-letter reasons). Decoding is pure:
//! the loop applies the results in offset order.

use std::collections::HashMap;

use dwsync_contract::framing::{self, Serializer};
use dwsync_contract::{Encoding, Framing, Row, Table, Value, decode};
use dwsync_handoff::FileKind;
use futures_util::StreamExt as _;
use rdkafka::Message;
use rdkafka::consumer::MessageStream;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Headers};

use crate::config::SourceTopic;
use crate::rebalance::RebalanceContext;
use crate::window::WindowKey;

/// Header that overrides a message's encoding.
pub const CONTENT_TYPE: &str = "content-type";
/// Header that routes a people / object / object type record to the new or the changes file.
pub const FILE_KIND: &str = "dwsync-file-kind";
/// Most records decoded as one batch.
const BATCH_RECORDS: usize = 8192;
/// Most payload bytes decoded as one batch (taken off librdkafka's bounded queue at once).
const BATCH_BYTES: usize = 8 << 20;

/// A decoded record: its window and row, or why it is dead-lettered.
pub(crate) type Decoded<'m> = Result<(WindowKey, Row<'m>), Rejection>;

/// Why a record is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    /// A stable error class (`missing_field`, `bad_framing`, ...).
    pub(crate) class: &'static str,
    /// A readable reason naming the table and field.
    pub(crate) reason: String,
    /// The schema id of a framed value, if it was read.
    pub(crate) schema_id: Option<u32>,
}

impl Rejection {
    fn new(class: &'static str, reason: String) -> Self {
        Self { class, reason, schema_id: None }
    }
}

/// What decoding a record needs; shared by the worker threads.
pub(crate) struct Decoder<'a> {
    /// Topic name → index in `topics`.
    pub(crate) topic_index: &'a HashMap<String, usize>,
    /// The source topics.
    pub(crate) topics: &'a [SourceTopic],
    /// Larger records are dead-lettered.
    pub(crate) max_record_bytes: usize,
}

impl Decoder<'_> {
    /// Decodes one record (pure: no state changes); `None` for a topic ingest does not read.
    pub(crate) fn decode<'m>(&self, msg: &'m BorrowedMessage<'_>) -> Option<(usize, Decoded<'m>)> {
        let &topic = self.topic_index.get(msg.topic())?;
        let source = &self.topics[topic];
        let table = source.table;
        // Headers are parsed by librdkafka on each call: read them once.
        let headers = msg.headers();
        let header = |name: &str| headers.as_ref().and_then(|h| header(h, name));
        let encoding = header(CONTENT_TYPE)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(Encoding::from_content_type)
            .unwrap_or(source.encoding);
        let decoded = match msg.payload() {
            None => Err(Rejection::new("empty_message", format!("table {table}: the message has no payload"))),
            Some(payload) if payload.len() > self.max_record_bytes => Err(Rejection::new(
                "oversize_record",
                format!(
                    "table {table}: record of {} bytes exceeds ingest.max_record_bytes = {}",
                    payload.len(),
                    self.max_record_bytes
                ),
            )),
            Some(payload) => unframed(source, encoding, payload).and_then(|(payload, schema_id)| {
                decode(table, encoding, payload).map_err(|e| Rejection {
                    class: e.kind.class(),
                    reason: e.to_string(),
                    schema_id,
                })
            }),
        };
        let decoded = decoded.map(|row| {
            let kind = file_kind(table, &row, header(FILE_KIND));
            (WindowKey { workspace_id: row.workspace_id(), table, kind }, row)
        });
        Some((topic, decoded))
    }
}

/// `payload` without its Schema Registry framing where `source` has it, with the schema id.
fn unframed<'m>(
    source: &SourceTopic,
    encoding: Encoding,
    payload: &'m [u8],
) -> Result<(&'m [u8], Option<u32>), Rejection> {
    let framed = match source.framing {
        Framing::None => false,
        Framing::SchemaRegistry => true,
        Framing::Detect => framing::looks_framed(payload),
    };
    if !framed {
        return Ok((payload, None));
    }
    let table = source.table;
    let serializer = match encoding {
        Encoding::Json => Serializer::Json,
        Encoding::Protobuf => Serializer::Protobuf,
    };
    let split = framing::unframe(payload, serializer)
        .map_err(|e| Rejection::new("bad_framing", format!("table {table}: {e}")))?;
    if !source.schema_ids.is_empty() && !source.schema_ids.contains(&split.schema_id) {
        return Err(Rejection {
            class: "schema_id_not_allowed",
            reason: format!(
                "table {table}: schema id {} is not among the accepted {:?}",
                split.schema_id, source.schema_ids
            ),
            schema_id: Some(split.schema_id),
        });
    }
    Ok((split.payload, Some(split.schema_id)))
}

/// The record the stream returned and those already waiting behind it in librdkafka's queue, up
/// to [`BATCH_RECORDS`] / [`BATCH_BYTES`], without waiting for more.
pub(crate) fn gather<'c>(
    stream: &mut MessageStream<'c, RebalanceContext>,
    first: Result<BorrowedMessage<'c>, KafkaError>,
) -> Vec<BorrowedMessage<'c>> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut next = Some(first);
    while let Some(received) = next.take() {
        match received {
            Ok(msg) => {
                bytes += msg.payload_len();
                batch.push(msg);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Kafka consumer error.");
                break;
            }
        }
        if batch.len() < BATCH_RECORDS && bytes < BATCH_BYTES {
            next = now_or_never(stream.next()).flatten();
        }
    }
    batch
}

/// Polls a future once; its output if it was ready.
fn now_or_never<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(future).poll(&mut cx) {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// The value of header `name` (case-insensitive), if present.
fn header<'m>(headers: &'m BorrowedHeaders, name: &str) -> Option<&'m [u8]> {
    headers.iter().find(|h| h.key.eq_ignore_ascii_case(name))?.value
}

/// Routes people, objects and object types to their new-entity or changes file.
///
/// A `dwsync-file-kind: new|changes` header decides; without it, a person or object whose
/// `created_at` equals its `updated_at` and that is neither deleted nor suppressed is new,
/// anything else is a change; an object type (no `created_at`) is a change.
pub fn file_kind(table: Table, row: &Row<'_>, header: Option<&[u8]>) -> FileKind {
    if !table.def().has_change_files {
        return FileKind::Unspecified;
    }
    match header {
        Some(b"new") => return FileKind::New,
        Some(b"changes" | b"chngs") => return FileKind::Changes,
        _ => {}
    }
    let flag = |name| matches!(row.get(name), Some(Value::Bool(true)));
    let created = row.get("created_at");
    if created.is_some() && created == row.get("updated_at") && !flag("deleted") && !flag("suppressed") {
        FileKind::New
    } else {
        FileKind::Changes
    }
}

#[cfg(test)]
mod tests {
    use dwsync_contract::decode_json;

    use super::*;

    #[test]
    fn new_people_and_objects_go_to_the_new_file_changes_to_chngs() {
        let person = |c: i64, u: i64, deleted: &str| {
            format!(
                r#"{{"workspace_id":1,"customer_id":"a","internal_customer_id":"b","deleted":{deleted},"created_at":{c},"updated_at":{u}}}"#
            )
        };
        let kind = |json: String, header: Option<&[u8]>| {
            let row = decode_json(Table::People, json.as_bytes()).unwrap();
            file_kind(Table::People, &row, header)
        };
        assert_eq!(kind(person(5, 5, "null"), None), FileKind::New);
        assert_eq!(kind(person(5, 9, "false"), None), FileKind::Changes);
        assert_eq!(kind(person(0, 0, "true"), None), FileKind::Changes);
        assert_eq!(kind(person(5, 9, "null"), Some(b"new")), FileKind::New);
        assert_eq!(kind(person(5, 5, "null"), Some(b"changes")), FileKind::Changes);
        let ot = r#"{"workspace_id":1,"object_type_id":1,"name":"Accounts","slug":"accounts","deleted":false,"enabled":true,"updated_at":1}"#;
        let row = decode_json(Table::ObjectTypes, ot.as_bytes()).unwrap();
        assert_eq!(file_kind(Table::ObjectTypes, &row, None), FileKind::Changes);
        let ev = decode_json(Table::Attributes, br#"{"workspace_id":1,"internal_customer_id":"c","attribute_name":"a","attribute_value":"v","timestamp":1}"#).unwrap();
        assert_eq!(file_kind(Table::Attributes, &ev, Some(b"new")), FileKind::Unspecified);
    }
}
