//! Reading a lot partition back: the lot's reader (a plain consumer, assigned a partition only
//! while a blocking read runs), the reads themselves, which drop the stale events queued since
//! the last one and read on through transient errors, and the index of the waiting files built
//! from the records read.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use dwsync_config::KafkaConfig;
use dwsync_contract::Table;
use dwsync_handoff::FileChunk;
use dwsync_proto::Message as _;
use dwsync_sync_config::is_transient;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::{DELIVERED_HEADER, Entry, LotError, METADATA_TIMEOUT, PartitionLot, QueueKey, SEQ_HEADER};

/// Longest wait for the lot topic's records while reading it back.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Most stale events dropped from the reader's queue before a read.
const MAX_STALE: usize = 100_000;

/// One record of the lot topic.
pub(super) struct LotRecord {
    /// Its offset in its lot partition.
    pub(super) offset: i64,
    /// Its [`SEQ_HEADER`]: a parked chunk's file.
    pub(super) seq: Option<u64>,
    /// Its [`DELIVERED_HEADER`]: a marker's written file.
    pub(super) delivered: Option<u64>,
    /// The chunk it holds, if it is a parked chunk.
    pub(super) chunk: Option<FileChunk>,
}

/// The lot's reader.
pub(super) fn new_reader(kafka: &KafkaConfig) -> Result<BaseConsumer, KafkaError> {
    kafka
        .client_config("uploader-lot-reader")
        // Never joins the group (partitions are assigned) nor commits; librdkafka wants an id.
        .set("group.id", "dwsync-uploader-lot-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
}

/// Reads every record of `partition` present now.
pub(super) fn read_all(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    stop: &CancellationToken,
) -> Result<Vec<LotRecord>, LotError> {
    let (low, high) = reader.fetch_watermarks(topic, partition, METADATA_TIMEOUT)?;
    if high <= low {
        return Ok(Vec::new());
    }
    read_range(reader, topic, partition, (low, high - 1), stop)
}

/// Reads the records of `partition` from `first` to `last`, both included (unassigning the
/// partition again however it ends).
pub(super) fn read_range(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    (first, last): (i64, i64),
    stop: &CancellationToken,
) -> Result<Vec<LotRecord>, LotError> {
    // Events queued since the last read are stale: they would fail this read for an outage
    // that may be long over.
    let stale = std::iter::from_fn(|| reader.poll(Duration::ZERO)).take(MAX_STALE).count();
    if stale > 0 {
        tracing::debug!(stale, "Dropped the lot reader's queued events from before this read.");
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(first))?;
    reader.assign(&assignment)?;
    let read = poll_range(reader, partition, (first, last), stop);
    let _ = reader.unassign();
    read
}

/// Polls the assigned `partition` for the records `first..=last`, reading on through
/// transient errors until [`READ_TIMEOUT`].
fn poll_range(
    reader: &BaseConsumer,
    partition: i32,
    (first, last): (i64, i64),
    stop: &CancellationToken,
) -> Result<Vec<LotRecord>, LotError> {
    let mut records = Vec::new();
    let mut next = first;
    let mut transient = 0u64;
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while next <= last {
        if stop.is_cancelled() {
            return Err(LotError::Stopped);
        }
        if std::time::Instant::now() > deadline {
            return Err(LotError::Timeout { partition, offset: next });
        }
        let Some(message) = reader.poll(Duration::from_millis(200)) else { continue };
        let message = match message {
            Ok(message) => message,
            Err(error) if is_transient(&error) => {
                transient += 1;
                if transient == 1 {
                    tracing::warn!(%error, partition, offset = next, "Reading the lot: transient error; reading on.");
                }
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        if message.partition() != partition || message.offset() < next {
            continue;
        }
        next = message.offset() + 1;
        let header = |name: &str| {
            message.headers().and_then(|h| {
                h.iter()
                    .find(|x| x.key == name)
                    .and_then(|x| x.value)
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            })
        };
        let (seq, delivered) = (header(SEQ_HEADER), header(DELIVERED_HEADER));
        let chunk = seq.and(message.payload()).and_then(|p| FileChunk::decode(p).ok());
        records.push(LotRecord { offset: message.offset(), seq, delivered, chunk });
        if message.offset() >= last {
            break;
        }
    }
    Ok(records)
}

/// What the index saw of one parked file.
struct Seen {
    key: QueueKey,
    window_closed_at_ms: i64,
    first: i64,
    last: i64,
    got: u32,
    count: u32,
}

/// The waiting files of a lot partition's records: complete parked files not marked delivered.
pub(super) fn index(records: Vec<LotRecord>) -> PartitionLot {
    let delivered: HashSet<u64> = records.iter().filter_map(|r| r.delivered).collect();
    let mut files: BTreeMap<(u64, String), Seen> = BTreeMap::new();
    for record in records {
        let (Some(seq), Some(chunk)) = (record.seq, record.chunk) else { continue };
        if delivered.contains(&seq) {
            continue;
        }
        let Ok(table) = chunk.table.parse::<Table>() else { continue };
        let file = files.entry((seq, chunk.file_id.clone())).or_insert(Seen {
            key: (chunk.workspace_id, table),
            window_closed_at_ms: chunk.window_closed_at_ms,
            first: record.offset,
            last: record.offset,
            got: 0,
            count: chunk.chunk_count,
        });
        if chunk.chunk_index == file.got {
            file.got += 1;
            file.last = record.offset;
        }
    }
    let mut lot = PartitionLot::default();
    let mut seen = HashSet::new();
    for ((seq, file_id), file) in files {
        // A file whose first chunks expired is gone; a second parking of one file is a repeat.
        if file.got != file.count || !seen.insert(seq) {
            continue;
        }
        let entry =
            Entry { seq, file_id, window_closed_at_ms: file.window_closed_at_ms, first: file.first, last: file.last };
        lot.queues.entry(file.key).or_default().push_back(entry);
    }
    lot
}

#[cfg(test)]
mod tests {
    use dwsync_handoff::{FileKind, FileMeta, split};

    use super::*;

    fn chunks(id: &str, ws: i64, table: Table, len: usize, piece: usize) -> Vec<FileChunk> {
        let meta = FileMeta {
            file_id: id.into(),
            workspace_id: ws,
            table,
            kind: FileKind::Unspecified,
            row_count: 1,
            sources: Vec::new(),
            window_opened_at_ms: 0,
            window_closed_at_ms: 10,
            close_reason: "time".into(),
        };
        split(&meta, &vec![1u8; len], piece)
    }

    fn parked(offset: i64, seq: u64, chunk: FileChunk) -> LotRecord {
        LotRecord { offset, seq: Some(seq), delivered: None, chunk: Some(chunk) }
    }

    #[test]
    fn the_index_keeps_complete_undelivered_files_in_sequence_order() {
        let a = chunks("a", 1, Table::Metrics, 20, 10);
        let b = chunks("b", 1, Table::Metrics, 5, 10);
        let c = chunks("c", 2, Table::People, 5, 10);
        let d = chunks("d", 1, Table::Metrics, 20, 10);
        let records = vec![
            parked(0, 50, b[0].clone()),
            parked(1, 40, a[0].clone()),
            parked(2, 40, a[1].clone()),
            parked(3, 60, c[0].clone()),
            // d lost its first chunk to retention: gone.
            parked(4, 70, d[1].clone()),
            // a parked again after a crash: one entry only.
            parked(5, 40, a[0].clone()),
            parked(6, 40, a[1].clone()),
            LotRecord { offset: 7, seq: None, delivered: Some(60), chunk: None },
        ];
        let lot = index(records);
        let metrics: Vec<(u64, i64, i64)> =
            lot.queues[&(1, Table::Metrics)].iter().map(|e| (e.seq, e.first, e.last)).collect();
        assert_eq!(metrics, vec![(40, 1, 2), (50, 0, 0)], "sequence order, first complete parking");
        assert!(!lot.queues.contains_key(&(2, Table::People)), "delivered");
        assert_eq!(lot.queues.len(), 1);
    }
}
