//! The archive's gap before a cut: whether the handoff partition holds any record between the
//! archive's end and the cut record.
//!
//! The archive lists batches that hold files. A batch with no file (only cut records, or
//! transaction markers) writes no object, so the listing can end just before the cut while
//! every file before it is archived: ingest's transaction markers take offsets too, and so do
//! earlier cut records. Reading the partition (`read_committed`) from the archive's end tells:
//! if the first record returned that is not a cut record is the cut itself (or after it),
//! nothing before the cut is missing from the archive.

use std::time::Duration;

use dwsync_config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};

/// Longest wait for the first record from the archive's end (the cut record is always there to
/// be read, so this only bounds a broker that does not answer).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// What lies between the archive's end and the cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// No record: the archive covers every file before the cut.
    Empty,
    /// A record before the cut, not archived yet (its offset).
    Record(i64),
    /// Nothing was read in time.
    Unknown,
}

/// Reads `topic`'s `partition` from `from` (the archive's end) and says whether a record comes
/// before `cut`.
pub async fn between(kafka: &KafkaConfig, topic: &str, partition: i32, from: i64, cut: i64) -> Result<Gap, String> {
    let consumer: BaseConsumer = kafka
        .client_config("backfill-gap")
        .set("group.id", "dwsync-backfill-gap")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|e| format!("a Kafka client: {e}"))?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let (_, high) = consumer
            .fetch_watermarks(&topic, partition, READ_TIMEOUT)
            .map_err(|e| format!("the end of {topic}/{partition}: {e}"))?;
        if high <= cut {
            // The cut record is not there (yet): nothing to tell.
            return Ok(Gap::Unknown);
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, partition, Offset::Offset(from))
            .map_err(|e| format!("reading {topic}/{partition}: {e}"))?;
        consumer.assign(&assignment).map_err(|e| format!("reading {topic}/{partition}: {e}"))?;
        let deadline = std::time::Instant::now() + READ_TIMEOUT;
        while std::time::Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(record)) if record.offset() >= cut => return Ok(Gap::Empty),
                // An earlier cut record holds no file: read on.
                Some(Ok(record)) if is_cut(&record) => {}
                Some(Ok(record)) => return Ok(Gap::Record(record.offset())),
                Some(Err(error)) => tracing::debug!(%error, "Reading the handoff partition's gap."),
                None => {}
            }
        }
        Ok(Gap::Unknown)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `record` is a cut record.
fn is_cut(record: &BorrowedMessage<'_>) -> bool {
    record.headers().is_some_and(|h| dwsync_handoff::cut_value(h.iter().map(|h| (h.key, h.value))).is_some())
}
