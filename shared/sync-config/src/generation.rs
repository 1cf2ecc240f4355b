//! Where the handoff topic's [`Generation`] is kept: a compacted topic of its own named after
//! the handoff topic (`<handoff topic>.generation`, e.g. `dwsync.handoff.generation`), one JSON
//! record per advance. Every service that turns handoff offsets into positions (control's cuts,
//! the uploader's `seq`, the archiver's batches, the backfill) reads it at start; an operator
//! advances it with `dwsync handoff advance` when the handoff topic is replaced
//! (docs/DEPLOY.md). No record, or no topic: generation 0, whose positions are the offsets.

use std::time::Duration;

use dwsync_config::KafkaConfig;
use dwsync_handoff::Generation;
use dwsync_retry::Backoff;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::StoreConfig;

/// The record key of every generation record.
const KEY: &str = "generation";

/// Longest wait for one read or write.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The name of the topic keeping `handoff_topic`'s generation.
pub fn topic_for(handoff_topic: &str) -> String {
    format!("{handoff_topic}.generation")
}

/// One advance, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationRecord {
    /// The generation from then on.
    pub generation: u32,
    /// When it was advanced (Unix ms).
    pub advanced_at_ms: i64,
}

/// Why the generation could not be read or advanced.
#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    /// Kafka refused or failed a request.
    #[error("the handoff generation topic {topic}: {error}")]
    Kafka {
        /// The generation topic.
        topic: String,
        /// What failed.
        error: String,
    },
    /// A record that is not a generation record.
    #[error("the record at offset {offset} of {topic} is not a handoff generation record: {error}")]
    Corrupt {
        /// The generation topic.
        topic: String,
        /// Its offset.
        offset: i64,
        /// Why it was refused.
        error: String,
    },
    /// The topic could not be read to its end in time.
    #[error("the handoff generation topic {topic} was not read to its end within {TIMEOUT:?}")]
    Timeout {
        /// The generation topic.
        topic: String,
    },
    /// A generation past the highest ([`dwsync_handoff::generation::MAX`]).
    #[error("generation {to} is past the highest, {}", dwsync_handoff::generation::MAX)]
    TooHigh {
        /// The one asked for.
        to: u32,
    },
    /// An advance that would not move the generation forward.
    #[error("generation {to} is not after the current generation {current}: generations only move forward")]
    NotAhead {
        /// The current generation.
        current: u32,
        /// The one asked for.
        to: u32,
    },
}

impl GenerationError {
    fn kafka(topic: &str, error: impl std::fmt::Display) -> Self {
        Self::Kafka { topic: topic.to_owned(), error: error.to_string() }
    }
}

/// The generation of `handoff_topic`: the highest stored, 0 when none is.
pub async fn current(kafka: &KafkaConfig, handoff_topic: &str) -> Result<Generation, GenerationError> {
    let topic = topic_for(handoff_topic);
    let consumer: BaseConsumer = kafka
        .client_config("handoff-generation")
        // Assigned, never subscribed, nothing committed: the group only names the reader.
        .set("group.id", "dwsync-handoff-generation")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .map_err(|e| GenerationError::kafka(&topic, e))?;
    let timeout = kafka.metadata_timeout().max(TIMEOUT);
    tokio::task::spawn_blocking(move || read_highest(&consumer, &topic, timeout))
        .await
        .map_err(|e| GenerationError::kafka(handoff_topic, e))?
}

/// [`current`], retried with backoff while it fails (a broker restarting at the service's
/// start); `None` once `shutdown` is cancelled.
pub async fn current_until_shutdown(
    kafka: &KafkaConfig,
    handoff_topic: &str,
    shutdown: &CancellationToken,
) -> Option<Generation> {
    let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let log = |error: &GenerationError, attempt: u32, delay: Duration| {
        tracing::warn!(%error, attempt = attempt + 1, retry_in_ms = delay.as_millis() as u64, "Reading the handoff generation failed; retrying.");
    };
    let generation =
        dwsync_retry::retry_until_shutdown(&backoff, shutdown, log, || current(kafka, handoff_topic)).await?;
    tracing::info!(generation = generation.get(), handoff_topic, "Handoff generation read.");
    Some(generation)
}

/// Advances `handoff_topic`'s generation to `to` (default: the next one) and answers the
/// generations before and after. Creates the generation topic when missing.
pub async fn advance(
    kafka: &KafkaConfig,
    handoff_topic: &str,
    to: Option<u32>,
    now_ms: i64,
) -> Result<(Generation, Generation), GenerationError> {
    let topic = topic_for(handoff_topic);
    ensure_topic(kafka, &topic).await?;
    let before = current(kafka, handoff_topic).await?;
    let wanted = to.unwrap_or(before.get().saturating_add(1));
    let after = Generation::new(wanted).ok_or(GenerationError::TooHigh { to: wanted })?;
    if after <= before {
        return Err(GenerationError::NotAhead { current: before.get(), to: after.get() });
    }
    let producer: FutureProducer = kafka
        .client_config("handoff-generation")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", TIMEOUT.as_millis().to_string())
        .create()
        .map_err(|e| GenerationError::kafka(&topic, e))?;
    let value = serde_json::to_vec(&GenerationRecord { generation: after.get(), advanced_at_ms: now_ms })
        .map_err(|e| GenerationError::kafka(&topic, e))?;
    producer
        .send(FutureRecord::<str, [u8]>::to(&topic).key(KEY).payload(&value), TIMEOUT)
        .await
        .map_err(|(e, _)| GenerationError::kafka(&topic, e))?;
    tracing::info!(from = before.get(), to = after.get(), %topic, "Handoff generation advanced.");
    Ok((before, after))
}

/// Reads partition 0 of `topic` to its end: the highest generation recorded.
fn read_highest(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<Generation, GenerationError> {
    let (low, high) = match consumer.fetch_watermarks(topic, 0, timeout) {
        Ok(marks) => marks,
        Err(e) if is_unknown_topic(&e) => return Ok(Generation::default()),
        Err(e) => return Err(GenerationError::kafka(topic, e)),
    };
    if high <= low {
        return Ok(Generation::default());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Offset(low)).map_err(|e| GenerationError::kafka(topic, e))?;
    consumer.assign(&assignment).map_err(|e| GenerationError::kafka(topic, e))?;
    let deadline = std::time::Instant::now() + timeout;
    let mut highest = Generation::default();
    while std::time::Instant::now() < deadline {
        let Some(polled) = consumer.poll(Duration::from_millis(200)) else { continue };
        let record = polled.map_err(|e| GenerationError::kafka(topic, e))?;
        let offset = record.offset();
        if let Some(payload) = record.payload() {
            let stored: GenerationRecord = serde_json::from_slice(payload).map_err(|e| GenerationError::Corrupt {
                topic: topic.to_owned(),
                offset,
                error: e.to_string(),
            })?;
            let stored = Generation::new(stored.generation).ok_or_else(|| GenerationError::Corrupt {
                topic: topic.to_owned(),
                offset,
                error: format!(
                    "generation {} is past the highest, {}",
                    stored.generation,
                    dwsync_handoff::generation::MAX
                ),
            })?;
            highest = highest.max(stored);
        }
        if offset + 1 >= high {
            return Ok(highest);
        }
    }
    Err(GenerationError::Timeout { topic: topic.to_owned() })
}

/// Whether `error` says the topic does not exist.
fn is_unknown_topic(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
        )
    )
}

/// Creates the compacted, single-partition generation topic unless it exists (replication: the
/// broker's default), as the stores create theirs.
async fn ensure_topic(kafka: &KafkaConfig, topic: &str) -> Result<(), GenerationError> {
    let store = StoreConfig {
        topic: topic.to_owned(),
        partitions: 1,
        replication_factor: -1,
        timeout_ms: TIMEOUT.as_millis() as u64,
        ..StoreConfig::default()
    };
    crate::store::ensure_topic(kafka, &store).await.map_err(|e| GenerationError::kafka(topic, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_and_strict() {
        let record = GenerationRecord { generation: 3, advanced_at_ms: 1_700_000_000_000 };
        let bytes = serde_json::to_vec(&record).expect("encodes");
        assert_eq!(serde_json::from_slice::<GenerationRecord>(&bytes).expect("decodes"), record);
        assert!(serde_json::from_slice::<GenerationRecord>(br#"{"generation":1,"advanced_at_ms":0,"x":1}"#).is_err());
        assert_eq!(topic_for("dwsync.handoff"), "dwsync.handoff.generation");
    }
}
