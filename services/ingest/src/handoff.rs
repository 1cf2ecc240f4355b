//! The transactional handoff: the chunks of finished files, the dead letters and the source
//! offsets they cover are committed in one Kafka transaction — or not at all.

use std::time::Duration;

use crate::blocking::block_in_place;
use dwsync_handoff::split;
use dwsync_proto::Message as _;
use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::dead_letter::DeadLetter;
use crate::encode::EncodedFile;

/// Creates the handoff and dead-letter topics if they do not exist yet.
pub async fn ensure_topics(
    config: &ClientConfig,
    topics: &[&str],
    partitions: i32,
    replication: i32,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(replication))).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(topic) => tracing::info!(topic, partitions, "Topic created."),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                tracing::error!(topic, error = %code, "Cannot create topic.");
                return Err(KafkaError::AdminOp(code));
            }
        }
    }
    Ok(())
}

/// A transactional producer for the handoff and dead-letter topics.
pub struct Handoff {
    producer: FutureProducer,
    handoff_topic: String,
    dead_letter_topic: String,
    chunk_bytes: usize,
    timeout: Duration,
}

/// What one committed transaction carried.
#[derive(Debug, Default, Clone, Copy)]
pub struct Committed {
    /// Files handed off.
    pub files: usize,
    /// Parquet bytes handed off.
    pub bytes: usize,
    /// Handoff messages (chunks).
    pub chunks: usize,
    /// Dead letters written.
    pub dead_letters: usize,
}

impl Handoff {
    /// Creates the producer with `transactional_id` and initialises transactions (fencing any
    /// older producer with the same id). Blocks: call it from `spawn_blocking`.
    pub fn new(
        mut config: ClientConfig,
        transactional_id: &str,
        handoff_topic: &str,
        dead_letter_topic: &str,
        chunk_bytes: usize,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let producer: FutureProducer = config
            .set("transactional.id", transactional_id)
            .set("enable.idempotence", "true")
            .set("transaction.timeout.ms", timeout.as_millis().to_string())
            .set("partitioner", "murmur2_random")
            .set("message.max.bytes", (chunk_bytes + (256 << 10)).max(1 << 20).to_string())
            .set("linger.ms", "5")
            .create()?;
        // A bounded first attempt: the loop retries, and shutdown need not wait long for it.
        producer.init_transactions(timeout.min(Duration::from_secs(10)))?;
        Ok(Self {
            producer,
            handoff_topic: handoff_topic.to_owned(),
            dead_letter_topic: dead_letter_topic.to_owned(),
            chunk_bytes,
            timeout,
        })
    }

    /// Produces `files` and `dead` and commits `offsets` for the consumer group, atomically.
    /// On error the transaction is aborted and nothing of it becomes visible.
    pub async fn commit(
        &self,
        files: &[EncodedFile],
        dead: &[DeadLetter],
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<Committed, KafkaError> {
        block_in_place(|| self.producer.begin_transaction())?;
        match self.produce_and_commit(files, dead, offsets, group).await {
            Ok(c) => Ok(c),
            Err(e) => {
                if let Err(abort) = block_in_place(|| self.producer.abort_transaction(self.timeout)) {
                    tracing::warn!(error = %abort, "Aborting the handoff transaction failed.");
                }
                Err(e)
            }
        }
    }

    async fn produce_and_commit(
        &self,
        files: &[EncodedFile],
        dead: &[DeadLetter],
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<Committed, KafkaError> {
        let mut committed = Committed::default();
        let mut deliveries = Vec::new();
        for file in files {
            let key = file.meta.workspace_id.to_string();
            for chunk in split(&file.meta, &file.bytes, self.chunk_bytes) {
                let payload = chunk.encode_to_vec();
                let record = FutureRecord::to(&self.handoff_topic).key(&key).payload(&payload);
                deliveries.push(self.producer.send_result(record).map_err(|(e, _)| e)?);
                committed.chunks += 1;
            }
            committed.files += 1;
            committed.bytes += file.bytes.len();
        }
        for letter in dead {
            let mut headers = OwnedHeaders::new_with_capacity(letter.headers.len());
            for (k, v) in &letter.headers {
                headers = headers.insert(rdkafka::message::Header { key: k, value: Some(v) });
            }
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.dead_letter_topic).headers(headers);
            if let Some(k) = &letter.key {
                record = record.key(k);
            }
            if let Some(p) = &letter.payload {
                record = record.payload(p);
            }
            deliveries.push(self.producer.send_result(record).map_err(|(e, _)| e)?);
            committed.dead_letters += 1;
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(e),
                Err(_) => return Err(KafkaError::Canceled),
            }
        }
        block_in_place(|| self.producer.send_offsets_to_transaction(offsets, group, self.timeout))?;
        block_in_place(|| self.producer.commit_transaction(self.timeout))?;
        Ok(committed)
    }
}
