//! The parking lot: files that cannot be written now (their table is turned off, or their
//! destination fails) are copied to the lot topic, so the handoff moves on and other workspaces
//! are not held up; they are written later, oldest first, before newer files of their table.
//!
//! The lot topic has as many partitions as the handoff topic, and a file of handoff partition
//! `p` is parked on lot partition `p`, so whoever owns a handoff partition owns its lot. A parked
//! file is the file's chunks again, each with a [`SEQ_HEADER`] holding the file's sequence number
//! (the handoff offset that names its object); once written, a marker record with a
//! [`DELIVERED_HEADER`] says so. On assignment the uploader reads the lot partition from the
//! start to rebuild its index, which holds positions only: a file's bytes are read back when it
//! is delivered. Parking twice (a crash between parking and the handoff commit) or delivering
//! twice is harmless: the object key is the same and the write is conditional. The topic's
//! retention (7 days by default) bounds how long a file is kept.
//!
//! The reader is a plain consumer polled only while a read runs, so librdkafka's error events
//! (`AllBrokersDown`, transport failures: informational, it reconnects by itself) pile up on its
//! queue between reads — many of them during a broker outage. A read drops those left from
//! before it, logs the ones that come while it runs and reads on; its deadline bounds it. A
//! reader (or producer) that keeps failing, or fails fatally, is replaced by a new client.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use dwsync_config::KafkaConfig;
use dwsync_contract::Table;
use dwsync_handoff::{CompleteFile, Reassembler, split};
use dwsync_producer::DeliveryProducer;
use dwsync_proto::Message as _;
use dwsync_sync_config::is_transient;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::producer::Producer as _;
use tokio_util::sync::CancellationToken;

use crate::config::LotConfig;

mod read;

use read::{LotRecord, index, new_reader, read_all, read_range};

/// Header of a parked chunk: the file's sequence number, in decimal.
pub const SEQ_HEADER: &str = "dwsync-lot-seq";
/// Header of a marker record: the sequence number of the file that was written, in decimal.
pub const DELIVERED_HEADER: &str = "dwsync-lot-delivered";

/// Data bytes per parked chunk (under Kafka's default 1 MiB message limit).
const CHUNK_BYTES: usize = 900 * 1024;

/// Longest wait for a metadata or watermark answer (a blocking call: it bounds how long a read
/// may outlive shutdown).
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Failed reads (or writes) in a row after which the reader (or producer) is replaced.
const REPLACE_AFTER: u32 = 3;

/// Why the lot could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LotError {
    /// Kafka refused or failed a request.
    #[error("lot topic: {0}")]
    Kafka(#[from] KafkaError),
    /// The lot topic's partitions do not match the handoff topic's.
    #[error("the lot topic {topic} has {found} partitions, the handoff topic {expected}; they must match")]
    Partitions {
        /// The lot topic.
        topic: String,
        /// Its partitions.
        found: usize,
        /// The handoff topic's.
        expected: usize,
    },
    /// Records did not arrive in time.
    #[error("reading the lot topic timed out at partition {partition} offset {offset}")]
    Timeout {
        /// The partition.
        partition: i32,
        /// The offset waited for.
        offset: i64,
    },
    /// A parked file could not be put together again.
    #[error("parked file {seq} cannot be read back: {reason}")]
    Broken {
        /// Its sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A blocking task died, or shutdown began during a read.
    #[error("a lot task stopped")]
    Stopped,
}

impl LotError {
    /// Whether a new client may help: anything but a transient Kafka error (the broker is
    /// away; librdkafka reconnects by itself) or a broken file.
    fn wants_new_client(&self) -> bool {
        match self {
            Self::Kafka(error) => !is_transient(error),
            Self::Timeout { .. } | Self::Partitions { .. } => true,
            Self::Broken { .. } | Self::Stopped => false,
        }
    }
}

/// A parked file: where its chunks are and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file's sequence number (its object key's).
    pub seq: u64,
    /// The file's id.
    pub file_id: String,
    /// When its window closed, ms since the Unix epoch.
    pub window_closed_at_ms: i64,
    /// Offset of its first chunk in the lot partition.
    first: i64,
    /// Offset of its last chunk.
    last: i64,
}

/// Which files wait together, in sequence order: one workspace's files of one table.
pub type QueueKey = (i64, Table);

/// The files waiting in one lot partition.
#[derive(Debug, Default)]
struct PartitionLot {
    queues: BTreeMap<QueueKey, VecDeque<Entry>>,
}

/// The lot of the handoff partitions this uploader owns.
pub struct Lot {
    kafka: KafkaConfig,
    cfg: LotConfig,
    handoff_topic: String,
    producer: DeliveryProducer,
    reader: Arc<BaseConsumer>,
    partitions: HashMap<i32, PartitionLot>,
    topic_ready: bool,
    /// Reads that failed in a row (the reader is replaced after [`REPLACE_AFTER`]).
    read_failures: u32,
    /// Writes that failed in a row (the producer is replaced after [`REPLACE_AFTER`]).
    write_failures: u32,
    /// Ends blocking reads early.
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Lot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lot").field("topic", &self.cfg.topic).field("partitions", &self.partitions).finish()
    }
}

impl Lot {
    /// A lot on `cfg.topic` for the partitions of `handoff_topic` (no network access yet);
    /// `shutdown` ends its reads early.
    pub fn new(
        kafka: &KafkaConfig,
        cfg: &LotConfig,
        handoff_topic: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, LotError> {
        Ok(Self {
            kafka: kafka.clone(),
            cfg: cfg.clone(),
            handoff_topic: handoff_topic.to_owned(),
            producer: new_producer(kafka)?,
            reader: Arc::new(new_reader(kafka)?),
            partitions: HashMap::new(),
            topic_ready: false,
            read_failures: 0,
            write_failures: 0,
            shutdown,
        })
    }

    /// Reads lot partition `partition` into the index (call when the handoff partition is
    /// assigned, before any of its files is handled).
    pub async fn load(&mut self, partition: i32) -> Result<(), LotError> {
        self.ensure_topic().await?;
        let records = self.read(move |reader, topic, stop| read_all(reader, topic, partition, stop)).await?;
        let lot = index(records);
        let waiting: usize = lot.queues.values().map(VecDeque::len).sum();
        if waiting > 0 {
            tracing::info!(partition, waiting, "Parked files found in the lot.");
        }
        let _ = self.partitions.insert(partition, lot);
        Ok(())
    }

    /// Forgets a partition that was revoked.
    pub fn forget(&mut self, partition: i32) {
        let _ = self.partitions.remove(&partition);
    }

    /// Whether files of `key` wait in `partition` (a newer file must then wait behind them).
    pub fn is_waiting(&self, partition: i32, key: QueueKey) -> bool {
        self.partitions.get(&partition).and_then(|p| p.queues.get(&key)).is_some_and(|q| !q.is_empty())
    }

    /// Parks `file` (sequence number `seq`) of handoff `partition`; returns once Kafka has it.
    pub async fn park(&mut self, partition: i32, file: &CompleteFile, seq: u64) -> Result<(), LotError> {
        self.ensure_topic().await?;
        let meta = &file.meta;
        let chunks = split(meta, &file.bytes, CHUNK_BYTES);
        let key = meta.workspace_id.to_string();
        let seq_text = seq.to_string();
        let mut pending = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            let payload = chunk.encode_to_vec();
            let headers = OwnedHeaders::new().insert(Header { key: SEQ_HEADER, value: Some(seq_text.as_bytes()) });
            let record = FutureRecord::to(&self.cfg.topic)
                .partition(partition)
                .key(key.as_bytes())
                .payload(&payload)
                .headers(headers);
            let delivery = self.producer.send_result(record).map_err(|(error, _)| LotError::Kafka(error));
            let delivery = self.wrote(delivery)?;
            pending.push(delivery);
        }
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for delivery in pending {
            let delivered = delivery.await.map_err(|error| match error {
                KafkaError::Canceled => LotError::Stopped,
                error => LotError::Kafka(error),
            });
            let delivered = self.wrote(delivered)?;
            first = first.min(delivered.offset);
            last = last.max(delivered.offset);
        }
        let entry =
            Entry { seq, file_id: meta.file_id.clone(), window_closed_at_ms: meta.window_closed_at_ms, first, last };
        let queue =
            self.partitions.entry(partition).or_default().queues.entry((meta.workspace_id, meta.table)).or_default();
        if !queue.iter().any(|e| e.seq == seq) {
            queue.push_back(entry);
        }
        Ok(())
    }

    /// The oldest waiting file of every queue: `(partition, queue, entry)`.
    pub fn heads(&self) -> Vec<(i32, QueueKey, Entry)> {
        let mut heads = Vec::new();
        for (partition, lot) in &self.partitions {
            for (key, queue) in &lot.queues {
                if let Some(head) = queue.front() {
                    heads.push((*partition, *key, head.clone()));
                }
            }
        }
        heads
    }

    /// Reads a parked file back.
    pub async fn fetch(&mut self, partition: i32, entry: &Entry) -> Result<CompleteFile, LotError> {
        let (first, last) = (entry.first, entry.last);
        let records =
            self.read(move |reader, topic, stop| read_range(reader, topic, partition, (first, last), stop)).await?;
        let broken = |reason: String| LotError::Broken { seq: entry.seq, reason };
        let mut reassembler = Reassembler::new();
        let mut expected = 0;
        for record in records {
            // Only this file's chunks, once each (a repeated parking repeats them).
            let Some(chunk) = record
                .chunk
                .filter(|c| c.file_id == entry.file_id && record.seq == Some(entry.seq) && c.chunk_index == expected)
            else {
                continue;
            };
            expected += 1;
            if let Some(mut file) = reassembler.push(record.offset, chunk).map_err(|e| broken(e.to_string()))? {
                file.first_offset = i64::try_from(entry.seq).unwrap_or(i64::MAX);
                return Ok(file);
            }
        }
        Err(broken("its chunks are incomplete".into()))
    }

    /// Records that the head of `key` in `partition`, `seq`, was written (or dropped) and
    /// removes it from the queue.
    pub async fn done(&mut self, partition: i32, key: QueueKey, seq: u64) -> Result<(), LotError> {
        let seq_text = seq.to_string();
        let headers = OwnedHeaders::new().insert(Header { key: DELIVERED_HEADER, value: Some(seq_text.as_bytes()) });
        let record_key = key.0.to_string();
        let record = FutureRecord::<[u8], [u8]>::to(&self.cfg.topic)
            .partition(partition)
            .key(record_key.as_bytes())
            .headers(headers);
        let sent = self.producer.send(record, None).await.map_err(LotError::from);
        let _ = self.wrote(sent)?;
        if let Some(queue) = self.partitions.get_mut(&partition).and_then(|p| p.queues.get_mut(&key)) {
            queue.retain(|e| e.seq != seq);
        }
        Ok(())
    }

    /// Per workspace: files waiting, of those in `paused` queues, and the oldest window close.
    pub fn summary(&self, mut paused: impl FnMut(QueueKey) -> bool) -> HashMap<i64, ParkedFiles> {
        let mut out: HashMap<i64, ParkedFiles> = HashMap::new();
        for lot in self.partitions.values() {
            for (key, queue) in &lot.queues {
                let Some(oldest) = queue.iter().map(|e| e.window_closed_at_ms).min() else { continue };
                let w = out.entry(key.0).or_default();
                w.files += queue.len() as u64;
                if paused(*key) {
                    w.paused += queue.len() as u64;
                }
                w.oldest_window_closed_at_ms = Some(w.oldest_window_closed_at_ms.map_or(oldest, |o| o.min(oldest)));
            }
        }
        out
    }

    /// Runs a blocking read with the reader, replacing the reader when reads keep failing (or
    /// fail otherwise than transiently) so that a client that stays broken does not stay.
    async fn read<F>(&mut self, read: F) -> Result<Vec<LotRecord>, LotError>
    where
        F: FnOnce(&BaseConsumer, &str, &CancellationToken) -> Result<Vec<LotRecord>, LotError> + Send + 'static,
    {
        let (reader, topic, stop) = (Arc::clone(&self.reader), self.cfg.topic.clone(), self.shutdown.clone());
        let result = tokio::task::spawn_blocking(move || read(&reader, &topic, &stop))
            .await
            .map_err(|_| LotError::Stopped)
            .and_then(|read| read);
        match &result {
            Ok(_) => self.read_failures = 0,
            Err(error) => {
                self.read_failures = self.read_failures.saturating_add(1);
                if error.wants_new_client() || self.read_failures >= REPLACE_AFTER {
                    tracing::info!(%error, failures = self.read_failures, "Replacing the lot's reader.");
                    self.reader = Arc::new(new_reader(&self.kafka)?);
                    self.read_failures = 0;
                }
            }
        }
        result
    }

    /// Counts a write's outcome, replacing the producer when writes keep failing or it failed
    /// fatally (an idempotent producer's fatal error is permanent).
    fn wrote<T>(&mut self, outcome: Result<T, LotError>) -> Result<T, LotError> {
        match &outcome {
            Ok(_) => self.write_failures = 0,
            Err(LotError::Stopped) => {}
            Err(error) => {
                self.write_failures = self.write_failures.saturating_add(1);
                let fatal = self.producer.producer().client().fatal_error();
                if fatal.is_some() || self.write_failures >= REPLACE_AFTER {
                    tracing::info!(%error, ?fatal, failures = self.write_failures, "Replacing the lot's producer.");
                    self.producer = new_producer(&self.kafka)?;
                    self.write_failures = 0;
                }
            }
        }
        outcome
    }

    /// Creates the lot topic unless it exists, with the handoff topic's partition count, and
    /// checks the counts match.
    async fn ensure_topic(&mut self) -> Result<(), LotError> {
        if self.topic_ready {
            return Ok(());
        }
        let expected = self.partition_count(&self.handoff_topic.clone()).await?;
        let admin: AdminClient<DefaultClientContext> = self.kafka.client_config("uploader-lot-admin").create()?;
        let retention_ms = self.cfg.retention_hours.saturating_mul(3_600_000).to_string();
        let partitions = i32::try_from(expected).unwrap_or(i32::MAX);
        let topic = NewTopic::new(&self.cfg.topic, partitions, TopicReplication::Fixed(self.cfg.replication_factor))
            .set("retention.ms", &retention_ms);
        let opts =
            AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT)).request_timeout(Some(METADATA_TIMEOUT));
        for result in admin.create_topics([&topic], &opts).await? {
            match result {
                Ok(name) => tracing::info!(topic = %name, partitions, retention_ms, "Created the lot topic."),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(KafkaError::AdminOp(code).into()),
            }
        }
        let found = self.partition_count(&self.cfg.topic.clone()).await?;
        if found != expected {
            return Err(LotError::Partitions { topic: self.cfg.topic.clone(), found, expected });
        }
        self.topic_ready = true;
        Ok(())
    }

    /// How many partitions `topic` has (waiting for its metadata after creation).
    async fn partition_count(&self, topic: &str) -> Result<usize, LotError> {
        let reader = Arc::clone(&self.reader);
        let topic = topic.to_owned();
        let stop = self.shutdown.clone();
        tokio::task::spawn_blocking(move || {
            for _ in 0..100 {
                if stop.is_cancelled() {
                    return Err(LotError::Stopped);
                }
                let md = reader.fetch_metadata(Some(&topic), METADATA_TIMEOUT)?;
                let count = md.topics().iter().map(|t| t.partitions().len()).sum::<usize>();
                if count > 0 {
                    return Ok(count);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(LotError::Kafka(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition)))
        })
        .await
        .map_err(|_| LotError::Stopped)?
    }
}

/// The files parked in the lot for one workspace: how many, and how old the oldest is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParkedFiles {
    /// Files waiting.
    pub files: u64,
    /// Of those, files of tables turned off.
    pub paused: u64,
    /// When the oldest waiting file's window closed.
    pub oldest_window_closed_at_ms: Option<i64>,
}

/// The lot's producer (idempotent: a retried parking is not written twice).
fn new_producer(kafka: &KafkaConfig) -> Result<DeliveryProducer, KafkaError> {
    DeliveryProducer::new(
        kafka
            .client_config("uploader-lot")
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000"),
    )
}
