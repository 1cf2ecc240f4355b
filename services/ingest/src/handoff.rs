//! The transactional handoff: the chunks of finished files, the dead letters and the source
//! offsets they cover are committed in one Kafka transaction — or not at all.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::blocking::block_in_place;
use dwsync_handoff::split;
use dwsync_producer::DeliveryProducer;
use dwsync_proto::Message as _;
use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::message::ToBytes;
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::dead_letter::DeadLetter;
use crate::encode::EncodedFile;
use crate::in_flight::{Carrying, CommitGate, Committer, CommittingTransaction, Deliveries, GroupMetadata};
use crate::limits::Limits;

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

/// The topics a [`Handoff`] writes.
#[derive(Debug, Clone, Copy)]
pub struct HandoffTopics<'a> {
    /// The handoff topic (file chunks).
    pub handoff: &'a str,
    /// The dead-letter topic.
    pub dead_letter: &'a str,
}

/// Most kilobytes the handoff producer holds unsent (librdkafka's default is 1 GiB).
const PRODUCER_QUEUE_KBYTES: usize = 16 << 10;
/// A produce batch's bytes beyond one full chunk (its `batch.size` is `chunk_bytes` plus this):
/// room for the chunk's header and a few small files, never for a second full chunk.
const BATCH_SLACK_BYTES: usize = 16 << 10;

/// A transactional producer for the handoff and dead-letter topics.
pub struct Handoff {
    producer: DeliveryProducer,
    handoff_topic: String,
    dead_letter_topic: String,
    chunk_bytes: usize,
    timeout: Duration,
    committer: Committer,
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
    /// Time spent waiting for the broker at the end: deliveries, offsets, commit.
    pub commit_wait: Duration,
    /// Of `commit_wait`: waiting for the files' and dead letters' deliveries.
    pub delivery_wait: Duration,
    /// Of `commit_wait`: adding the source offsets to the transaction.
    pub offsets_wait: Duration,
}

impl Handoff {
    /// Why a newer producer with this transactional id fenced this one, if one did: another
    /// ingest runs with this instance id (a twin, or this instance's replacement).
    pub fn fenced(&self) -> Option<String> {
        match self.producer.producer().client().fatal_error() {
            Some((RDKafkaErrorCode::Fenced, reason)) => Some(reason),
            _ => None,
        }
    }

    /// Creates the producer with `transactional_id` and initialises transactions (fencing any
    /// older producer with the same id), and starts the thread that commits its transactions,
    /// busy in `gate` while one commits; its records are at most `limits.producer_message_bytes`.
    /// Blocks: call it from `spawn_blocking`.
    pub fn new(
        mut config: ClientConfig,
        transactional_id: &str,
        topics: HandoffTopics<'_>,
        chunk_bytes: usize,
        limits: &Limits,
        timeout: Duration,
        gate: Arc<CommitGate>,
    ) -> Result<Self, KafkaError> {
        config
            .set("transactional.id", transactional_id)
            .set("enable.idempotence", "true")
            .set("transaction.timeout.ms", timeout.as_millis().to_string())
            .set("partitioner", "murmur2_random")
            .set("message.max.bytes", limits.producer_message_bytes.to_string())
            // A flush waits for its deliveries before committing: a linger would only delay
            // the last batch (chunks are large; what queues while a request is out still batches).
            .set("linger.ms", "0")
            // At most one full chunk per batch, so a produce request stays about `chunk_bytes`:
            // librdkafka's 1 MB batches made requests the broker allocates as humongous objects
            // (`ingest.chunk_bytes`). A larger single record is still sent, alone.
            .set("batch.size", (chunk_bytes + BATCH_SLACK_BYTES).to_string())
            // Bounded: a flush of many files waits for deliveries instead of buffering them all.
            .set("queue.buffering.max.kbytes", PRODUCER_QUEUE_KBYTES.max(4 * (chunk_bytes >> 10)).to_string());
        let producer = DeliveryProducer::new(&config)?;
        // A bounded first attempt: the loop retries, and shutdown need not wait long for it.
        producer.producer().init_transactions(timeout.min(Duration::from_secs(10)))?;
        let committer = Committer::start(producer.clone(), timeout, gate)?;
        Ok(Self {
            committer,
            producer,
            handoff_topic: topics.handoff.to_owned(),
            dead_letter_topic: topics.dead_letter.to_owned(),
            chunk_bytes,
            timeout,
        })
    }

    /// Begins a transaction: files and dead letters sent through it become visible together
    /// with the source offsets when it commits ([`Transaction::commit_in_background`]), or not
    /// at all.
    pub fn begin(&self) -> Result<Transaction<'_>, KafkaError> {
        block_in_place(|| self.producer.producer().begin_transaction())?;
        Ok(Transaction { handoff: self, deliveries: VecDeque::new(), committed: Committed::default(), open: true })
    }
}

/// An open handoff transaction. Dropped without [`commit_in_background`](Self::commit_in_background),
/// it is aborted.
pub struct Transaction<'h> {
    handoff: &'h Handoff,
    deliveries: Deliveries,
    committed: Committed,
    open: bool,
}

impl Transaction<'_> {
    /// Sends one file's chunks. The producer copies them: the caller may drop the file at once.
    pub async fn send_file(&mut self, file: &EncodedFile) -> Result<(), KafkaError> {
        let key = file.meta.workspace_id.to_string();
        for chunk in split(&file.meta, &file.bytes, self.handoff.chunk_bytes) {
            let payload = chunk.encode_to_vec();
            let record = FutureRecord::to(&self.handoff.handoff_topic).key(&key).payload(&payload);
            self.send(record, Carrying::FileChunk).await?;
            self.committed.chunks += 1;
        }
        self.committed.files += 1;
        self.committed.bytes += file.bytes.len();
        Ok(())
    }

    /// Sends one dead letter. An error leaves the transaction usable: the producer refused this
    /// record only (the caller logs it and goes on).
    pub async fn send_dead_letter(&mut self, letter: &DeadLetter) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(letter.headers.len());
        for (k, v) in &letter.headers {
            headers = headers.insert(rdkafka::message::Header { key: k, value: Some(v) });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.handoff.dead_letter_topic).headers(headers);
        if let Some(k) = &letter.key {
            record = record.key(k);
        }
        if let Some(p) = &letter.payload {
            record = record.payload(p);
        }
        self.send(record, Carrying::DeadLetter).await?;
        self.committed.dead_letters += 1;
        Ok(())
    }

    /// Enqueues a record; while the producer's bounded queue is full, waits for the oldest
    /// delivery first (backpressure instead of an unbounded buffer).
    async fn send<K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
        &mut self,
        mut record: FutureRecord<'_, K, P>,
        carrying: Carrying,
    ) -> Result<(), KafkaError> {
        loop {
            match self.handoff.producer.send_result(record) {
                Ok(delivery) => {
                    self.deliveries.push_back((delivery, carrying));
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    match self.deliveries.pop_front() {
                        Some((oldest, _)) => _ = oldest.await?,
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Hands the transaction to the committing thread, which waits for every delivery, then
    /// commits `offsets` for the consumer group (its metadata read from `group` just before)
    /// with the records (or aborts). The caller may read on meanwhile, but begins no
    /// transaction before the returned [`CommittingTransaction`] resolved.
    pub(crate) fn commit_in_background(
        mut self,
        offsets: TopicPartitionList,
        group: GroupMetadata,
    ) -> CommittingTransaction {
        // The committing thread decides the transaction now: not aborted on drop.
        self.open = false;
        let deliveries = std::mem::take(&mut self.deliveries);
        self.handoff.committer.submit(deliveries, self.committed, offsets, group)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open
            && let Err(abort) =
                block_in_place(|| self.handoff.producer.producer().abort_transaction(self.handoff.timeout))
        {
            tracing::warn!(error = %abort, "Aborting the handoff transaction failed.");
        }
    }
}
