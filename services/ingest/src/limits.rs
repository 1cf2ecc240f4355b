//! Record size limits, read from the topics at start so that no record can stall the loop.
//!
//! Kafka refuses a record larger than its topic's `max.message.bytes`. ingest writes two kinds
//! of records — handoff chunks and dead letters — and reads source records of any size their
//! topics accept. [`check`] reads the topics' limits and derives:
//! - the largest source value ingest decodes (`ingest.max_record_bytes`, by default derived from
//!   the source topics), larger ones being dead-lettered as `oversize_record`;
//! - the largest dead letter: what the dead-letter topic and the producer accept, values cut
//!   to fit ([`crate::dead_letter`]);
//! - the consumer's `receive.message.max.bytes`, above the largest source record batch;
//!
//! and refuses to start when a handoff chunk could exceed the handoff topic's limit (the
//! transaction would fail on every try).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;

use crate::config::{Config, SourceTopic};

/// The lowest default for the largest source value decoded: records up to this size are
/// exported even when their topic's `max.message.bytes` is smaller (compressed batches can hold
/// larger values than the batch limit).
pub const MIN_DERIVED_RECORD_BYTES: usize = 16 << 20;
/// Bytes a handoff chunk carries besides its data (file id, sources, checksum).
pub const CHUNK_HEADER_BYTES: usize = 64 << 10;
/// The handoff producer's `message.max.bytes` beyond `ingest.chunk_bytes`.
pub const PRODUCER_SLACK_BYTES: usize = 256 << 10;
/// The least `message.max.bytes` of the handoff producer: Kafka's default `message.max.bytes`,
/// so a dead letter as large as a default topic accepts is written whole.
pub const MIN_PRODUCER_MESSAGE_BYTES: usize = 1_048_588;
/// The smallest dead-letter record that still carries a useful prefix of the value.
pub const MIN_DEAD_LETTER_BYTES: usize = 64 << 10;
/// librdkafka's default `receive.message.max.bytes`.
const DEFAULT_RECEIVE_BYTES: usize = 100_000_000;
/// librdkafka wants `receive.message.max.bytes` this far above `fetch.max.bytes`.
const RECEIVE_SLACK_BYTES: usize = 1 << 20;

/// The limits ingest runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Larger source values are dead-lettered (`oversize_record`).
    pub max_record_bytes: usize,
    /// The largest dead letter, as a Kafka record.
    pub dead_letter_bytes: usize,
    /// The handoff producer's `message.max.bytes`.
    pub producer_message_bytes: usize,
    /// The source consumer's `receive.message.max.bytes`.
    pub receive_message_bytes: usize,
}

/// Why the limits cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// The topics' configurations could not be read (retried).
    #[error("reading the topics' max.message.bytes: {0}")]
    Kafka(#[from] KafkaError),
    /// A setting would make records fail on every try (ingest does not start).
    #[error("{0}")]
    Mismatch(String),
}

/// `max.message.bytes` of the topics ingest reads and writes (the broker's `message.max.bytes`
/// for a source topic that does not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSizes {
    /// Per source topic.
    pub sources: BTreeMap<String, usize>,
    /// The handoff topic's.
    pub handoff: usize,
    /// The dead-letter topic's.
    pub dead_letter: usize,
}

/// Reads the topics' limits and derives ingest's (see the module's documentation).
pub async fn check(cfg: &Config, topics: &[SourceTopic]) -> Result<Limits, LimitsError> {
    let sizes = read_sizes(cfg, topics).await?;
    let limits = derive(cfg, &sizes)?;
    for (topic, &size) in &sizes.sources {
        if size > limits.max_record_bytes {
            tracing::warn!(
                topic,
                max_message_bytes = size,
                max_record_bytes = limits.max_record_bytes,
                "A source topic accepts records larger than ingest.max_record_bytes: those are dead-lettered (oversize_record)."
            );
        }
    }
    tracing::info!(?limits, "Record size limits.");
    Ok(limits)
}

/// The limits for the topics' `sizes`, or the setting that cannot work.
pub fn derive(cfg: &Config, sizes: &TopicSizes) -> Result<Limits, LimitsError> {
    let ingest = &cfg.ingest;
    let chunk_message = ingest.chunk_bytes + CHUNK_HEADER_BYTES;
    if chunk_message > sizes.handoff {
        return Err(LimitsError::Mismatch(format!(
            "ingest.chunk_bytes = {}: a handoff chunk (up to {chunk_message} bytes with its header) exceeds \
             max.message.bytes = {} of topic {}; lower ingest.chunk_bytes to at most {} or raise the topic's max.message.bytes",
            ingest.chunk_bytes,
            sizes.handoff,
            ingest.handoff_topic,
            sizes.handoff.saturating_sub(CHUNK_HEADER_BYTES),
        )));
    }
    let producer_message_bytes = (ingest.chunk_bytes + PRODUCER_SLACK_BYTES).max(MIN_PRODUCER_MESSAGE_BYTES);
    let dead_letter_bytes = sizes.dead_letter.min(producer_message_bytes);
    if dead_letter_bytes < MIN_DEAD_LETTER_BYTES {
        return Err(LimitsError::Mismatch(format!(
            "max.message.bytes = {} of topic {} (ingest.dead_letter_topic) is below {MIN_DEAD_LETTER_BYTES}: \
             dead letters could not carry their reason and a prefix of the record; raise it",
            sizes.dead_letter, ingest.dead_letter_topic,
        )));
    }
    let largest_source = sizes.sources.values().copied().max().unwrap_or(0);
    let max_record_bytes = match ingest.max_record_bytes {
        0 => largest_source.max(MIN_DERIVED_RECORD_BYTES),
        set => set,
    };
    let fetch_max = (ingest.fetch_max_kbytes as usize) << 10;
    let receive_message_bytes =
        DEFAULT_RECEIVE_BYTES.max(largest_source + RECEIVE_SLACK_BYTES).max(fetch_max + RECEIVE_SLACK_BYTES);
    Ok(Limits { max_record_bytes, dead_letter_bytes, producer_message_bytes, receive_message_bytes })
}

/// Reads `max.message.bytes` of every topic (one DescribeConfigs request, plus one for the
/// broker's default if a source topic does not exist yet).
async fn read_sizes(cfg: &Config, topics: &[SourceTopic]) -> Result<TopicSizes, LimitsError> {
    let admin: AdminClient<DefaultClientContext> = cfg.kafka.client_config("ingest-limits").create()?;
    let timeout = Duration::from_millis(cfg.kafka.metadata_timeout_ms).max(Duration::from_secs(5));
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let names: Vec<&str> = topics
        .iter()
        .map(|t| t.topic.as_str())
        .chain([cfg.ingest.handoff_topic.as_str(), cfg.ingest.dead_letter_topic.as_str()])
        .collect();
    let specifiers: Vec<ResourceSpecifier<'_>> = names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for (name, result) in names.iter().zip(admin.describe_configs(&specifiers, &options).await?) {
        // A topic that does not exist yet is created with the broker's default.
        if let Ok(resource) = result
            && let Some(size) = resource.get("max.message.bytes").and_then(|e| e.value.as_deref()).and_then(parse)
        {
            let _ = found.insert((*name).to_owned(), size);
        }
    }
    let missing = names.iter().any(|n| !found.contains_key(*n));
    let broker_default = if missing { broker_message_bytes(&admin, timeout, &options).await? } else { 0 };
    let size = |name: &str| found.get(name).copied().unwrap_or(broker_default);
    Ok(TopicSizes {
        sources: topics.iter().map(|t| (t.topic.clone(), size(&t.topic))).collect(),
        handoff: size(&cfg.ingest.handoff_topic),
        dead_letter: size(&cfg.ingest.dead_letter_topic),
    })
}

/// The broker's `message.max.bytes` (the default of new topics).
async fn broker_message_bytes(
    admin: &AdminClient<DefaultClientContext>,
    timeout: Duration,
    options: &AdminOptions,
) -> Result<usize, LimitsError> {
    let client = admin.inner();
    let metadata = crate::blocking::block_in_place(|| client.fetch_metadata(None, timeout))?;
    let broker = metadata
        .brokers()
        .first()
        .map(|b| b.id())
        .ok_or(KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::BrokerNotAvailable))?;
    let results = admin.describe_configs(&[ResourceSpecifier::Broker(broker)], options).await?;
    results
        .into_iter()
        .flatten()
        .find_map(|r| r.get("message.max.bytes").and_then(|e| e.value.as_deref()).and_then(parse))
        .ok_or_else(|| LimitsError::Mismatch(format!("broker {broker} did not report message.max.bytes")))
}

fn parse(value: &str) -> Option<usize> {
    value.trim().parse().ok()
}

/// Sets the source consumer's receive limit (librdkafka refuses larger responses, which would
/// stall the partition holding such a record).
pub fn apply_to_consumer(limits: &Limits, config: &mut ClientConfig) {
    let _ = config.set("receive.message.max.bytes", limits.receive_message_bytes.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(source: usize, handoff: usize, dead_letter: usize) -> TopicSizes {
        TopicSizes { sources: [("dwsync.source.metrics".to_owned(), source)].into(), handoff, dead_letter }
    }

    #[test]
    fn the_defaults_fit_a_default_broker() {
        let limits = derive(&Config::default(), &sizes(1_048_588, 1_048_588, 1_048_588)).expect("fits");
        assert_eq!(limits.max_record_bytes, MIN_DERIVED_RECORD_BYTES);
        assert_eq!(limits.dead_letter_bytes, 1_048_588);
        assert!(limits.receive_message_bytes >= DEFAULT_RECEIVE_BYTES);
    }

    #[test]
    fn the_record_limit_follows_the_largest_source_topic_unless_set() {
        let big = 200 << 20;
        let limits = derive(&Config::default(), &sizes(big, 10 << 20, 10 << 20)).expect("fits");
        assert_eq!(limits.max_record_bytes, big);
        assert!(limits.receive_message_bytes > big, "the consumer can receive the largest batch");
        assert_eq!(limits.dead_letter_bytes, limits.producer_message_bytes, "the producer's limit is the lower");
        let mut cfg = Config::default();
        cfg.ingest.max_record_bytes = 4000;
        assert_eq!(derive(&cfg, &sizes(big, 10 << 20, 10 << 20)).expect("fits").max_record_bytes, 4000);
    }

    #[test]
    fn chunks_larger_than_the_handoff_topic_allows_are_refused_naming_the_setting() {
        let mut cfg = Config::default();
        cfg.ingest.chunk_bytes = 2 << 20;
        let err = derive(&cfg, &sizes(1 << 20, 1_048_588, 1 << 20)).expect_err("refused").to_string();
        assert!(err.contains("ingest.chunk_bytes = 2097152"), "{err}");
        assert!(err.contains("dwsync.handoff"), "{err}");
    }

    #[test]
    fn a_tiny_dead_letter_topic_is_refused() {
        let err = derive(&Config::default(), &sizes(1 << 20, 1 << 20, 1000)).expect_err("refused").to_string();
        assert!(err.contains("dwsync.dead-letters"), "{err}");
    }
}
