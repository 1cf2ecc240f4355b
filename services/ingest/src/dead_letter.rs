//! Records that cannot be decoded: kept with their reason, written to the dead-letter topic in
//! the same transaction that commits their source offset (so none is lost or written twice).

use std::collections::BTreeMap;

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};

use crate::window::PartitionKey;

pub use dwsync_handoff::dead_letter as header;

/// A record bound for the dead-letter topic.
pub struct DeadLetter {
    /// Original key.
    pub key: Option<Vec<u8>>,
    /// Original payload.
    pub payload: Option<Vec<u8>>,
    /// Original headers followed by the `dwsync.*` ones.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    /// A dead letter for `msg`, failed with `class` and `reason`.
    pub fn new(msg: &BorrowedMessage<'_>, table: &str, class: &str, reason: &str) -> Self {
        let mut headers: Vec<(String, Vec<u8>)> = msg
            .headers()
            .map(|hs| hs.iter().map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec).unwrap_or_default())).collect())
            .unwrap_or_default();
        headers.extend([
            (header::TOPIC.to_owned(), msg.topic().as_bytes().to_vec()),
            (header::PARTITION.to_owned(), msg.partition().to_string().into_bytes()),
            (header::OFFSET.to_owned(), msg.offset().to_string().into_bytes()),
            (header::TABLE.to_owned(), table.as_bytes().to_vec()),
            (header::ERROR_CLASS.to_owned(), class.as_bytes().to_vec()),
            (header::ERROR_REASON.to_owned(), reason.as_bytes().to_vec()),
        ]);
        Self { key: msg.key().map(<[u8]>::to_vec), payload: msg.payload().map(<[u8]>::to_vec), headers }
    }

    fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + self.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
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
