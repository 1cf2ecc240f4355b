//! The archive's gap before a cut: whether the handoff partition holds any record between the
//! archive's end and the cut record.
//!
//! The archive lists batches that hold files. A batch with no file (only cut records, or
//! transaction markers) writes no object, so the listing can end just before the cut while
//! every file before it is archived: ingest's transaction markers take offsets too, and so do
//! earlier cut records. Reading the partition (`read_committed`) from the archive's end tells:
//! if the first record returned that is not a cut record is the cut itself (or after it),
//! nothing before the cut is missing from the archive.
//!
//! The archive's end and the cut are positions ([`Generation`]): an end in an earlier
//! generation's topic means this topic is read from its start.

use std::time::Duration;

use dwsync_config::KafkaConfig;
use dwsync_handoff::{Generation, Located};
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
    /// A record before the cut, not archived yet (its position).
    Record(i64),
    /// Nothing was read in time.
    Unknown,
}

/// The handoff topic as the backfill reads it: where, and its generation.
#[derive(Debug, Clone)]
pub struct Handoff {
    /// The Kafka cluster.
    pub kafka: KafkaConfig,
    /// The topic's name.
    pub topic: String,
    /// Its generation (read at start).
    pub generation: Generation,
}

impl Handoff {
    /// Reads `partition` from position `from` (the archive's end) and says whether a record
    /// comes before the cut at position `cut`. A cut outside this generation's topic cannot be
    /// read: [`Gap::Unknown`].
    pub async fn between(&self, partition: i32, from: i64, cut: i64) -> Result<Gap, String> {
        let Located::Here(cut_offset) = self.generation.locate(cut) else { return Ok(Gap::Unknown) };
        let from = self.generation.offset_from(from).unwrap_or(cut_offset).min(cut_offset);
        let gap = between(&self.kafka, &self.topic, partition, from, cut_offset).await?;
        Ok(match gap {
            Gap::Record(offset) => Gap::Record(self.generation.start() + offset),
            other => other,
        })
    }
}

/// Reads `topic`'s `partition` from offset `from` (the archive's end) and says whether a record
/// comes before offset `cut`.
async fn between(kafka: &KafkaConfig, topic: &str, partition: i32, from: i64, cut: i64) -> Result<Gap, String> {
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
