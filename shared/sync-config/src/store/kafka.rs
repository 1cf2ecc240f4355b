//! [`KafkaStore`]: configurations on a compacted topic, keyed by workspace id.
//!
//! Every replica reads the whole topic from the beginning into a [`View`] and keeps following
//! it, so replicas agree without sharing state. A write produces the record (acks=all,
//! idempotent) and returns once this replica's view has read it; a read first asks the broker
//! for each partition's end and waits until the view has read that far, so it sees every write
//! any replica finished before it.
//!
//! librdkafka reports broker trouble (`AllBrokersDown`, transport failures, timeouts) as error
//! events on the consumer's queue; they are informational — the client reconnects by itself —
//! and an outage queues many of them. The [`Follower`] logs them and reads on at once (waiting
//! after each would leave it reading stale errors long after the broker is back). Every
//! [`CHECK_INTERVAL`] it asks the broker for the topic's ends: the answer sets [`Following`],
//! and a reader that makes no progress towards ends the broker reports for [`STALL_LIMIT`] is
//! replaced by a new one, starting where the view stands.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dwsync_config::KafkaConfig;
use dwsync_producer::DeliveryProducer;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::view::View;
use super::{ConfigStore, StoreConfig, StoreError, TopicValue, codec};
use crate::model::{SyncConfig, WorkspaceId};

/// How often the follower compares its view with the topic's ends.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// How long the follower may stay behind ends the broker reports, without reading anything,
/// before its reader is replaced.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Longest wait for the topic's ends in a check (shorter than the store's reads: a check that
/// gets no answer only says the broker does not answer).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the follower keeps up with the topic, as its last check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Following {
    /// Not checked yet.
    Starting,
    /// The view has read everything the broker reported at the last check, or is reading
    /// towards it.
    Current,
    /// The broker did not answer, or the view stays behind: why.
    Failing(String),
}

/// Calls `on_change` with each state of a follower (`None` while it keeps up, `Some(problem)`
/// while it does not) until `shutdown` or the follower stops: how a service keeps a readiness
/// component in step with [`KafkaStore::following`].
pub async fn on_following(
    mut following: watch::Receiver<Following>,
    shutdown: CancellationToken,
    mut on_change: impl FnMut(Option<&str>) + Send,
) {
    loop {
        match &*following.borrow_and_update() {
            Following::Failing(problem) => on_change(Some(problem)),
            Following::Starting | Following::Current => on_change(None),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = following.changed() => if changed.is_err() { return },
        }
    }
}

/// Kafka errors that pass by themselves: librdkafka reconnects and retries. A consumer reports
/// them as informational events; only a fatal error (`MessageConsumptionFatal`) needs a new
/// client.
pub fn is_transient(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match error {
        KafkaError::MessageConsumptionFatal(_) => false,
        KafkaError::MessageConsumption(_) | KafkaError::PartitionEOF(_) => true,
        KafkaError::MetadataFetch(code) | KafkaError::OffsetFetch(code) => matches!(
            code,
            C::AllBrokersDown
                | C::BrokerTransportFailure
                | C::OperationTimedOut
                | C::RequestTimedOut
                | C::NetworkException
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::BrokerNotAvailable
                | C::Resolve
        ),
        _ => false,
    }
}

/// Values keyed by workspace on a compacted topic (the configurations by default). Cheap to
/// clone; run [`Follower::run`] alongside it.
pub struct KafkaStore<T = SyncConfig> {
    producer: DeliveryProducer,
    view: Arc<View<T>>,
    topic: String,
    partitions: Arc<[i32]>,
    timeout: Duration,
    following: watch::Receiver<Following>,
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
            following: self.following.clone(),
        }
    }
}

/// Reads the topic into the view until shutdown; the store's reads wait on it.
pub struct Follower<T = SyncConfig> {
    consumer: Arc<StreamConsumer>,
    view: Arc<View<T>>,
    kafka: KafkaConfig,
    topic: String,
    partitions: Arc<[i32]>,
    /// Asks the topic's ends (through the store producer's connections).
    producer: DeliveryProducer,
    following: watch::Sender<Following>,
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
        let consumer = Arc::new(reader(kafka)?);
        let partitions = partitions(&consumer, &cfg.topic, kafka.metadata_timeout()).await?;
        let view = Arc::new(View::new());
        assign(&consumer, &cfg.topic, &partitions, &view)?;
        tracing::info!(topic = %cfg.topic, partitions = partitions.len(), "Following a compacted topic.");
        let (following, watching) = watch::channel(Following::Starting);
        let follower = Follower {
            consumer,
            view: view.clone(),
            kafka: kafka.clone(),
            topic: cfg.topic.clone(),
            partitions: partitions.clone(),
            producer: producer.clone(),
            following,
        };
        let store = Self { producer, view, topic: cfg.topic.clone(), partitions, timeout, following: watching };
        Ok((store, follower))
    }

    /// Waits until the view has read everything on the topic when called.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        let targets = ends(&self.producer, &self.topic, &self.partitions, self.timeout).await?;
        self.view.wait_for(&targets, self.timeout).await
    }

    /// Whether the [`Follower`] keeps up with the topic, updated at each of its checks.
    pub fn following(&self) -> watch::Receiver<Following> {
        self.following.clone()
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
    /// Applies every record of the topic to the view until `shutdown` is cancelled; checks
    /// every [`CHECK_INTERVAL`] that it keeps up, and replaces a stalled reader.
    #[tracing::instrument(name = "follow", skip_all, fields(topic = %self.topic))]
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let mut check = tokio::time::interval(CHECK_INTERVAL);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut errors = Errors::default();
        let mut stall = Stall::default();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = check.tick() => {
                    let outcome = tokio::select! {
                        () = shutdown.cancelled() => break,
                        outcome = self.check(&mut stall) => outcome,
                    };
                    self.report(outcome, &mut errors);
                }
                received = self.consumer.recv() => match received {
                    Ok(m) => self.view.apply(m.partition(), m.offset(), m.key(), m.payload()),
                    Err(error) if is_transient(&error) => errors.seen(&error),
                    Err(error) => {
                        tracing::warn!(%error, "Reading a compacted topic failed; replacing its reader.");
                        self.rebuild();
                    }
                },
            }
        }
        self.view.stop();
        Ok(())
    }

    /// Compares the view with the topic's ends: `Ok` when current or reading towards them,
    /// the problem otherwise (replacing the reader once it stalled for [`STALL_LIMIT`]).
    async fn check(&mut self, stall: &mut Stall) -> Result<(), String> {
        let targets = ends(&self.producer, &self.topic, &self.partitions, CHECK_TIMEOUT)
            .await
            .map_err(|error| format!("the broker does not answer: {error}"))?;
        let read = self.view.read_count();
        if self.view.reached(&targets) || stall.moved(read) {
            *stall = Stall { read, since: None };
            return Ok(());
        }
        let since = *stall.since.get_or_insert_with(Instant::now);
        if since.elapsed() < STALL_LIMIT {
            return Ok(());
        }
        tracing::warn!(
            stalled_s = since.elapsed().as_secs(),
            "The reader of a compacted topic reads nothing while the broker reports more; replacing it."
        );
        self.rebuild();
        *stall = Stall { read, since: None };
        Err("its reader stalled and was replaced".into())
    }

    /// Publishes a check's outcome (logging changes).
    fn report(&self, outcome: Result<(), String>, errors: &mut Errors) {
        let now = match outcome {
            Ok(()) => {
                errors.recovered();
                Following::Current
            }
            Err(problem) => Following::Failing(problem),
        };
        let _ = self.following.send_if_modified(|state| {
            if *state == now {
                return false;
            }
            match &now {
                Following::Failing(problem) => tracing::warn!(%problem, "Not keeping up with a compacted topic."),
                _ if matches!(state, Following::Failing(_)) => {
                    tracing::info!("Keeping up with a compacted topic again.")
                }
                _ => {}
            }
            *state = now.clone();
            true
        });
    }

    /// Replaces the reader with a new client reading on from where the view stands.
    fn rebuild(&mut self) {
        let built = reader(&self.kafka).and_then(|consumer| {
            assign(&consumer, &self.topic, &self.partitions, &self.view)?;
            Ok(consumer)
        });
        match built {
            Ok(consumer) => self.consumer = Arc::new(consumer),
            Err(error) => {
                tracing::warn!(%error, "A new reader of a compacted topic could not be made; keeping the old one.")
            }
        }
    }
}

/// The follower's transient errors since it last kept up: the first is logged as a warning,
/// the others counted (at debug), and the count logged once it keeps up again.
#[derive(Debug, Default)]
struct Errors {
    count: u64,
}

impl Errors {
    fn seen(&mut self, error: &KafkaError) {
        if self.count == 0 {
            tracing::warn!(%error, "Reading a compacted topic: the broker does not answer; librdkafka retries.");
        } else {
            tracing::debug!(%error, count = self.count + 1, "Reading a compacted topic: transient error.");
        }
        self.count += 1;
    }

    fn recovered(&mut self) {
        if self.count > 0 {
            tracing::info!(transient_errors = self.count, "Reading a compacted topic works again.");
            self.count = 0;
        }
    }
}

/// Since when the view has read nothing while behind (and how much it had read then).
#[derive(Debug, Default)]
struct Stall {
    read: u64,
    since: Option<Instant>,
}

impl Stall {
    /// Whether the view read something since the last check.
    fn moved(&self, read: u64) -> bool {
        read != self.read
    }
}

/// A consumer for reading a topic by assignment.
fn reader(kafka: &KafkaConfig) -> Result<StreamConsumer, KafkaError> {
    kafka
        .client_config("store-view")
        // Never joins the group (partitions are assigned) nor commits; librdkafka wants an id.
        .set("group.id", "dwsync-topic-view")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
}

/// Assigns every partition of `topic` to `consumer`, from where `view` stands.
fn assign<T: TopicValue>(
    consumer: &StreamConsumer,
    topic: &str,
    partitions: &[i32],
    view: &View<T>,
) -> Result<(), KafkaError> {
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let from = view.position(*p).map_or(Offset::Beginning, Offset::Offset);
        assignment.add_partition_offset(topic, *p, from)?;
    }
    consumer.assign(&assignment)
}

/// Each partition's end (high watermark), asked through the producer's connections: the
/// consumer's are often held by a long-polling fetch, which would delay every read by up to
/// `fetch.wait.max.ms`.
async fn ends(
    producer: &DeliveryProducer,
    topic: &str,
    partitions: &Arc<[i32]>,
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, StoreError> {
    let (producer, topic, partitions) = (producer.clone(), topic.to_owned(), partitions.clone());
    tokio::task::spawn_blocking(move || {
        partitions
            .iter()
            .map(|p| producer.producer().client().fetch_watermarks(&topic, *p, timeout).map(|(_, high)| (*p, high)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| StoreError::Stopped)?
    .map_err(StoreError::from)
}

/// Creates the compacted topic unless it exists.
pub(crate) async fn ensure_topic(kafka: &KafkaConfig, cfg: &StoreConfig) -> Result<(), StoreError> {
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
    let backoff = dwsync_retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut attempt = 0u32;
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
        tokio::time::sleep(backoff.random_delay(attempt).min(deadline - tokio::time::Instant::now())).await;
        attempt = attempt.saturating_add(1);
    }
}
