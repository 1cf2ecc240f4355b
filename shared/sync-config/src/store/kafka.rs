//! [`KafkaStore`]: configurations on a compacted topic, keyed by workspace id.
//!
//! Every replica reads the whole topic from the beginning into a [`View`] and keeps following
//! it, so replicas agree without sharing state. A write produces the record (acks=all,
//! idempotent) and returns once this replica's view has read it; a read first asks the broker
//! for each partition's end and waits until the view has read that far, so it sees every write
//! any replica finished before it.

use std::sync::Arc;
use std::time::Duration;

use dwsync_config::KafkaConfig;
use dwsync_producer::DeliveryProducer;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::view::View;
use super::{ConfigStore, StoreConfig, StoreError, TopicValue, codec};
use crate::model::{SyncConfig, WorkspaceId};

/// Pause after a failed read of the topic before trying again.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Values keyed by workspace on a compacted topic (the configurations by default). Cheap to
/// clone; run [`Follower::run`] alongside it.
pub struct KafkaStore<T = SyncConfig> {
    producer: DeliveryProducer,
    view: Arc<View<T>>,
    topic: String,
    partitions: Arc<[i32]>,
    timeout: Duration,
}

impl<T> std::fmt::Debug for KafkaStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStore").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl<T> Clone for KafkaStore<T> {
    fn clone(&self) -> Self {
        Self {
            producer: self.producer.clone(),
            view: Arc::clone(&self.view),
            topic: self.topic.clone(),
            partitions: Arc::clone(&self.partitions),
            timeout: self.timeout,
        }
    }
}

/// Reads the topic into the view until shutdown; the store's reads wait on it.
pub struct Follower<T = SyncConfig> {
    consumer: Arc<StreamConsumer>,
    view: Arc<View<T>>,
}

impl<T: TopicValue> KafkaStore<T> {
    /// Creates the topic if missing (`cleanup.policy=compact`), connects, and starts reading it
    /// from the beginning; run the returned [`Follower`].
    pub async fn connect(kafka: &KafkaConfig, cfg: &StoreConfig) -> Result<(Self, Follower<T>), StoreError> {
        ensure_topic(kafka, cfg).await?;
        let timeout = cfg.timeout();
        let producer = DeliveryProducer::new(
            kafka
                .client_config("store-producer")
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("message.timeout.ms", timeout.as_millis().to_string()),
        )?;
        let consumer: StreamConsumer = kafka
            .client_config("store-view")
            // Never joins the group (partitions are assigned) nor commits; librdkafka wants an id.
            .set("group.id", "dwsync-topic-view")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()?;
        let consumer = Arc::new(consumer);
        let partitions = partitions(&consumer, &cfg.topic, kafka.metadata_timeout()).await?;
        let mut assignment = TopicPartitionList::new();
        for p in partitions.iter() {
            assignment.add_partition_offset(&cfg.topic, *p, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        tracing::info!(topic = %cfg.topic, partitions = partitions.len(), "Following a compacted topic.");
        let view = Arc::new(View::new());
        let follower = Follower { consumer: consumer.clone(), view: view.clone() };
        Ok((Self { producer, view, topic: cfg.topic.clone(), partitions, timeout }, follower))
    }

    /// Waits until the view has read everything on the topic when called.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        // Asked through the producer's connections: the consumer's are often held by a
        // long-polling fetch, which would delay every read by up to `fetch.wait.max.ms`.
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        let partitions = self.partitions.clone();
        let timeout = self.timeout;
        let targets = tokio::task::spawn_blocking(move || {
            partitions
                .iter()
                .map(|p| producer.producer().client().fetch_watermarks(&topic, *p, timeout).map(|(_, high)| (*p, high)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|_| StoreError::Stopped)??;
        self.view.wait_for(&targets, self.timeout).await
    }

    /// The value of `id` as read so far, without waiting to catch up (for hot paths).
    pub fn cached(&self, id: WorkspaceId) -> Option<T> {
        self.view.get(id)
    }

    /// Every value as read so far, without waiting to catch up.
    pub fn cached_all(&self) -> Vec<T> {
        self.view.list()
    }

    /// The value of `id`, after catching up with every write finished before the call.
    pub async fn read(&self, id: WorkspaceId) -> Result<Option<T>, StoreError> {
        self.catch_up().await?;
        Ok(self.view.get(id))
    }

    /// Stores `value` (keyed by its workspace id), returning once this process's view has it.
    pub async fn write(&self, value: &T) -> Result<(), StoreError> {
        self.produce(value.workspace_id(), Some(value.encode())).await
    }

    async fn produce(&self, id: WorkspaceId, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let key = codec::key(id);
        let mut record = FutureRecord::<str, [u8]>::to(&self.topic).key(&key);
        if let Some(value) = &value {
            record = record.payload(value);
        }
        let delivery = self.producer.send(record, Some(self.timeout)).await?;
        tracing::debug!(workspace_id = %id, partition = delivery.partition, offset = delivery.offset, deleted = value.is_none(), "Configuration written.");
        self.view.wait_for(&[(delivery.partition, delivery.offset + 1)], self.timeout).await
    }
}

impl ConfigStore for KafkaStore<SyncConfig> {
    async fn get(&self, id: WorkspaceId) -> Result<Option<SyncConfig>, StoreError> {
        self.read(id).await
    }

    async fn list(&self) -> Result<Vec<SyncConfig>, StoreError> {
        self.catch_up().await?;
        Ok(self.view.list())
    }

    async fn put(&self, cfg: SyncConfig) -> Result<(), StoreError> {
        self.write(&cfg).await
    }

    async fn delete(&self, id: WorkspaceId) -> Result<(), StoreError> {
        self.produce(id, None).await
    }
}

impl<T: TopicValue> Follower<T> {
    /// Applies every record of the topic to the view until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), StoreError> {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                received = self.consumer.recv() => match received {
                    Ok(m) => self.view.apply(m.partition(), m.offset(), m.key(), m.payload()),
                    Err(err) => {
                        tracing::warn!(error = %err, "Reading a compacted topic failed; retrying.");
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                },
            }
        }
        self.view.stop();
        Ok(())
    }
}

/// Creates the compacted topic unless it exists.
async fn ensure_topic(kafka: &KafkaConfig, cfg: &StoreConfig) -> Result<(), StoreError> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config("store-admin").create()?;
    let topic = NewTopic::new(&cfg.topic, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor))
        .set("cleanup.policy", "compact");
    let opts = AdminOptions::new().operation_timeout(Some(cfg.timeout())).request_timeout(Some(cfg.timeout()));
    for result in admin.create_topics([&topic], &opts).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "Created a compacted topic."),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code).into()),
        }
    }
    Ok(())
}

/// The topic's partitions, waiting for its metadata to appear after creation.
async fn partitions(consumer: &Arc<StreamConsumer>, topic: &str, timeout: Duration) -> Result<Arc<[i32]>, StoreError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let consumer = consumer.clone();
        let name = topic.to_owned();
        let found = tokio::task::spawn_blocking(move || -> Result<Vec<i32>, KafkaError> {
            let md = consumer.fetch_metadata(Some(&name), timeout)?;
            Ok(md.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect())
        })
        .await
        .map_err(|_| StoreError::Stopped)??;
        if !found.is_empty() {
            return Ok(found.into());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(StoreError::Timeout(timeout));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
