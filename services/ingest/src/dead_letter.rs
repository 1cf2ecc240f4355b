//! Records that cannot be decoded: kept with their reason, written to the dead-letter topic in
//! the same transaction that commits their source offset (so none is lost or written twice).
//!
//! A dead letter always fits its topic ([`DeadLetter::new`] takes the size limit): a value too
//! large for it is cut to a prefix, with its full size and SHA-256 in headers; the whole record
//! stays in its source topic at the offset the headers give.

use std::collections::BTreeMap;

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};
use sha2::{Digest as _, Sha256};

use crate::batch::Rejection;
use crate::window::PartitionKey;

pub use dwsync_handoff::dead_letter as header;

/// Bytes kept for a record's framing in a batch (length, attributes, offsets, header counts).
const FRAMING_BYTES: usize = 1024;
/// Framing bytes of one header (its key and value lengths).
const HEADER_FRAMING_BYTES: usize = 8;
/// The longest `dwsync.error.reason` kept (a reason may quote part of the record).
const MAX_REASON_BYTES: usize = 2048;

/// A record's place in its source topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
}

impl std::fmt::Display for SourceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// A record bound for the dead-letter topic.
pub struct DeadLetter {
    /// Original key (cut to an eighth of the limit if longer).
    pub key: Option<Vec<u8>>,
    /// Original payload, or its prefix when it did not fit.
    pub payload: Option<Vec<u8>>,
    /// Original headers (unless they did not fit) followed by the `dwsync.*` ones.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Where the record came from.
    pub source: SourceRef,
    /// The table it was decoded for.
    pub table: &'static str,
    /// Its error class.
    pub class: &'static str,
    /// Whether its value was cut to fit.
    pub truncated: bool,
}

impl DeadLetter {
    /// A dead letter for `msg`, failed with `class` and `reason`, of at most `limit` bytes as a
    /// Kafka record (key, value and headers with their framing).
    pub(crate) fn new(msg: &BorrowedMessage<'_>, table: &'static str, rejection: &Rejection, limit: usize) -> Self {
        let Rejection { class, reason, schema_id } = rejection;
        let (class, reason, schema_id) = (*class, reason.as_str(), *schema_id);
        let original: Vec<(String, Vec<u8>)> = msg
            .headers()
            .map(|hs| hs.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
            .unwrap_or_default();
        let source = SourceRef { topic: msg.topic().to_owned(), partition: msg.partition(), offset: msg.offset() };
        Self::bounded(
            Parts { key: msg.key(), payload: msg.payload(), original, source, table, class, reason, schema_id },
            limit,
        )
    }

    /// The dead letter of `parts`, cut to `limit` bytes.
    fn bounded(parts: Parts<'_>, limit: usize) -> Self {
        let Parts { key, payload, original, source, table, class, reason, schema_id } = parts;
        let mut headers = Vec::with_capacity(original.len() + 9);
        let original_bytes = headers_size(&original);
        let headers_dropped = original_bytes > limit / 4;
        if !headers_dropped {
            headers.extend(original);
        }
        headers.extend([
            (header::TOPIC.to_owned(), source.topic.as_bytes().to_vec()),
            (header::PARTITION.to_owned(), source.partition.to_string().into_bytes()),
            (header::OFFSET.to_owned(), source.offset.to_string().into_bytes()),
            (header::TABLE.to_owned(), table.as_bytes().to_vec()),
            (header::ERROR_CLASS.to_owned(), class.as_bytes().to_vec()),
            (header::ERROR_REASON.to_owned(), cut_str(reason, MAX_REASON_BYTES).as_bytes().to_vec()),
        ]);
        if let Some(id) = schema_id {
            headers.push((header::SCHEMA_ID.to_owned(), id.to_string().into_bytes()));
        }
        if headers_dropped {
            headers.push((header::HEADERS_DROPPED.to_owned(), b"true".to_vec()));
        }
        let key = key.map(|k| k[..k.len().min(limit / 8)].to_vec());
        let budget = limit.saturating_sub(FRAMING_BYTES + headers_size(&headers) + key.as_ref().map_or(0, Vec::len));
        let truncated = payload.is_some_and(|p| p.len() > budget);
        let payload = payload.map(|p| {
            if truncated {
                let said = [
                    (header::VALUE_TRUNCATED.to_owned(), b"true".to_vec()),
                    (header::VALUE_SIZE.to_owned(), p.len().to_string().into_bytes()),
                    (header::VALUE_SHA256.to_owned(), hex::encode(Sha256::digest(p)).into_bytes()),
                ];
                let prefix = budget.saturating_sub(headers_size(&said));
                headers.extend(said);
                p[..prefix].to_vec()
            } else {
                p.to_vec()
            }
        });
        Self { key, payload, headers, source, table, class, truncated }
    }

    /// Its size as a Kafka record, framing included (at most the limit it was made with).
    pub fn size(&self) -> usize {
        FRAMING_BYTES
            + self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + headers_size(&self.headers)
    }
}

impl DeadLetter {
    /// The record's reference only: the `dwsync.*` headers (source topic, partition, offset,
    /// class, reason, and the value's size and digest if it was cut) with `dwsync.value.omitted`,
    /// no key, value nor original headers.
    pub fn reference(&self) -> Self {
        let mut headers: Vec<(String, Vec<u8>)> =
            self.headers.iter().filter(|(k, _)| k.starts_with(header::PREFIX)).cloned().collect();
        headers.push((header::VALUE_OMITTED.to_owned(), b"true".to_vec()));
        Self {
            key: None,
            payload: None,
            headers,
            source: self.source.clone(),
            table: self.table,
            class: self.class,
            truncated: self.truncated,
        }
    }
}

/// How the loop writes dead letters. After the broker refused a dead letter (its transaction
/// then aborts and is read again), the next try writes only references, and after a refused
/// reference none: the records are logged and counted. A transaction that commits dead letters
/// returns to [`LetterForm::Whole`]. So no dead letter stalls the loop, whatever the broker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LetterForm {
    /// The record, its value cut to fit.
    #[default]
    Whole,
    /// Its reference only ([`DeadLetter::reference`]).
    Reference,
    /// Not written: logged and counted.
    NotWritten,
}

impl LetterForm {
    /// The form to try after the broker refused one of this form.
    pub fn after_refusal(self) -> Self {
        match self {
            Self::Whole => Self::Reference,
            Self::Reference | Self::NotWritten => Self::NotWritten,
        }
    }
}

/// Whether the broker refused a record for what it is (its size, its content, the topic's
/// rules or permissions) — a refusal that a smaller form may get past — rather than for the
/// moment (a purge when the producer bumps its epoch after an aborted transaction, a timeout).
pub fn refused_as_such(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::MessageBatchTooLarge
                | C::InvalidMessage
                | C::InvalidRecord
                | C::PolicyViolation
                | C::TopicAuthorizationFailed
        )
    )
}

/// What a dead letter is made of.
struct Parts<'m> {
    key: Option<&'m [u8]>,
    payload: Option<&'m [u8]>,
    original: Vec<(String, Vec<u8>)>,
    source: SourceRef,
    table: &'static str,
    class: &'static str,
    reason: &'m str,
    schema_id: Option<u32>,
}

fn headers_size(headers: &[(String, Vec<u8>)]) -> usize {
    headers.iter().map(|(k, v)| k.len() + v.len() + HEADER_FRAMING_BYTES).sum()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Dead letters waiting for their partition's next flush, with a byte limit.
#[derive(Default)]
pub struct DeadLetters {
    pending: BTreeMap<PartitionKey, Vec<DeadLetter>>,
    bytes: usize,
}

impl DeadLetters {
    /// Keeps a dead letter of `partition`.
    pub fn push(&mut self, partition: PartitionKey, letter: DeadLetter) {
        self.bytes += letter.size();
        self.pending.entry(partition).or_default().push(letter);
    }

    /// Takes the dead letters of the given partitions.
    pub fn take<'a>(&mut self, partitions: impl IntoIterator<Item = &'a PartitionKey>) -> Vec<DeadLetter> {
        let mut out = Vec::new();
        for p in partitions {
            if let Some(letters) = self.pending.remove(p) {
                self.bytes -= letters.iter().map(DeadLetter::size).sum::<usize>();
                out.extend(letters);
            }
        }
        out
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets everything (after a rebalance: the records are read again).
    pub fn clear(&mut self) {
        self.pending.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(payload: &[u8], original: Vec<(String, Vec<u8>)>, limit: usize) -> DeadLetter {
        let source = SourceRef { topic: "metrics".into(), partition: 3, offset: 42 };
        let parts = Parts {
            key: Some(b"17"),
            payload: Some(payload),
            original,
            source,
            table: "metrics",
            class: "oversize_record",
            reason: "too large",
            schema_id: None,
        };
        DeadLetter::bounded(parts, limit)
    }

    fn get<'l>(l: &'l DeadLetter, name: &str) -> Option<&'l [u8]> {
        l.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }

    #[test]
    fn a_value_that_fits_is_kept_whole_with_its_headers() {
        let l = letter(b"{\"a\":1}", vec![("trace".into(), b"x".to_vec())], 1 << 20);
        assert_eq!(l.payload.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert!(!l.truncated);
        assert_eq!(get(&l, "trace"), Some(&b"x"[..]));
        assert_eq!(get(&l, header::OFFSET), Some(&b"42"[..]));
        assert_eq!(get(&l, header::VALUE_TRUNCATED), None);
    }

    #[test]
    fn a_value_too_large_is_cut_to_fit_with_its_size_and_digest() {
        let value: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let limit = 1 << 20;
        let l = letter(&value, vec![("trace".into(), b"x".to_vec())], limit);
        assert!(l.truncated);
        assert!(l.size() <= limit, "{} > {limit}", l.size());
        let prefix = l.payload.as_deref().expect("payload");
        assert!(prefix.len() > limit / 2, "a useful prefix is kept: {}", prefix.len());
        assert_eq!(prefix, &value[..prefix.len()]);
        assert_eq!(get(&l, header::VALUE_TRUNCATED), Some(&b"true"[..]));
        assert_eq!(get(&l, header::VALUE_SIZE), Some(&b"3000000"[..]));
        assert_eq!(get(&l, header::VALUE_SHA256), Some(hex::encode(Sha256::digest(&value)).as_bytes()));
        assert_eq!(get(&l, header::TOPIC), Some(&b"metrics"[..]));
        assert_eq!(get(&l, header::PARTITION), Some(&b"3"[..]));
        assert_eq!(get(&l, "trace"), Some(&b"x"[..]));
    }

    #[test]
    fn headers_too_large_are_dropped_and_said_so() {
        let huge = vec![("blob".to_owned(), vec![b'h'; 600_000])];
        let l = letter(b"{}", huge, 1 << 20);
        assert!(l.size() <= 1 << 20);
        assert_eq!(get(&l, "blob"), None);
        assert_eq!(get(&l, header::HEADERS_DROPPED), Some(&b"true"[..]));
        assert_eq!(l.payload.as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn a_reference_keeps_where_the_record_is_and_why_without_its_value() {
        let l = letter(b"{\"a\":1}", vec![("trace".into(), b"x".to_vec())], 1 << 20).reference();
        assert_eq!((l.key.as_deref(), l.payload.as_deref()), (None, None));
        assert_eq!(get(&l, "trace"), None);
        assert_eq!(get(&l, header::OFFSET), Some(&b"42"[..]));
        assert_eq!(get(&l, header::ERROR_CLASS), Some(&b"oversize_record"[..]));
        assert_eq!(get(&l, header::VALUE_OMITTED), Some(&b"true"[..]));
        assert!(l.size() < 2048);
    }

    #[test]
    fn a_refusal_degrades_the_form_until_nothing_is_written() {
        let form = LetterForm::default();
        assert_eq!(form, LetterForm::Whole);
        assert_eq!(form.after_refusal(), LetterForm::Reference);
        assert_eq!(form.after_refusal().after_refusal(), LetterForm::NotWritten);
        assert_eq!(LetterForm::NotWritten.after_refusal(), LetterForm::NotWritten);
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let reason = "é".repeat(5000);
        assert!(cut_str(&reason, MAX_REASON_BYTES).len() <= MAX_REASON_BYTES);
        assert_eq!(cut_str(&reason, 3), "é");
        assert_eq!(cut_str("abc", 10), "abc");
    }
}
