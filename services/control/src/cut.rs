//! Cut records: where an initial sync divides a workspace's handoff partition.
//!
//! When a sync needs a baseline (created, enabled after being disabled, a table turned on for the
//! first time), control produces a [`Cut`] record onto the workspace's handoff partition and
//! stores the record's offset in the table's [`Baseline`]. Files of the workspace that start below
//! it are folded into the baseline by the backfill; files after it are the incremental files.
//! The record is written before the configuration, so the cut is known when the configuration is.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dwsync_config::KafkaConfig;
use dwsync_handoff::{CUT_HEADER, Cut, Generation, handoff_partition};
use dwsync_producer::DeliveryProducer;
use dwsync_sync_config::WorkspaceId;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer as _};
use tokio::sync::OnceCell;

/// Where a cut record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The workspace's handoff partition.
    pub partition: i32,
    /// The record's position: its offset in the handoff topic's generation
    /// ([`Generation::position`]).
    pub offset: i64,
}

/// Why a cut record could not be written. Never holds configuration values.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    /// The handoff topic's partitions could not be read.
    #[error("reading the handoff topic {topic}'s partitions: {error}")]
    Metadata {
        /// The topic.
        topic: String,
        /// What failed.
        error: String,
    },
    /// The record's offset has no position in the generation.
    #[error(transparent)]
    OutOfSpan(#[from] dwsync_handoff::generation::OutOfSpan),
    /// The record was not written.
    #[error("writing the cut record to {topic}: {error}")]
    Write {
        /// The topic.
        topic: String,
        /// What failed.
        error: String,
    },
}

/// The boxed future of [`Cutter::cut`].
pub type CutFuture<'a> = Pin<Box<dyn Future<Output = Result<Placed, CutError>> + Send + 'a>>;

/// Writes cut records (a seam: Kafka in the service, a counter in unit tests).
pub trait Cutter: Send + Sync {
    /// Writes `cut` onto its workspace's handoff partition; answers where it landed.
    fn cut(&self, cut: Cut) -> CutFuture<'_>;
}

/// The cutter of the service: a producer on the handoff topic.
pub struct KafkaCutter {
    producer: DeliveryProducer,
    kafka: KafkaConfig,
    topic: String,
    generation: Generation,
    timeout: Duration,
    /// The handoff topic's partition count, read at the first cut (the topic is never
    /// repartitioned; ingest may create it after control starts).
    partitions: OnceCell<i32>,
}

impl std::fmt::Debug for KafkaCutter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCutter").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl KafkaCutter {
    /// A cutter on `topic` of `generation`; a write waits at most `timeout` for the broker.
    pub fn new(
        kafka: &KafkaConfig,
        topic: &str,
        generation: Generation,
        timeout: Duration,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer = DeliveryProducer::new(
            kafka
                .client_config("control-cuts")
                // Never create the handoff topic: ingest creates it with its partition count.
                .set("allow.auto.create.topics", "false")
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("message.timeout.ms", timeout.as_millis().to_string()),
        )?;
        Ok(Self {
            producer,
            kafka: kafka.clone(),
            topic: topic.to_owned(),
            generation,
            timeout,
            partitions: OnceCell::new(),
        })
    }

    async fn partitions(&self) -> Result<i32, CutError> {
        let read = || async {
            let producer = self.producer.clone();
            let (topic, timeout) = (self.topic.clone(), self.kafka.metadata_timeout());
            let counted = tokio::task::spawn_blocking(move || {
                let metadata = producer.producer().client().fetch_metadata(Some(&topic), timeout)?;
                Ok::<_, rdkafka::error::KafkaError>(metadata.topics().first().map_or(0, |t| t.partitions().len()))
            })
            .await;
            let error = |error: String| CutError::Metadata { topic: self.topic.clone(), error };
            match counted {
                Ok(Ok(n)) if n > 0 => i32::try_from(n).map_err(|e| error(e.to_string())),
                Ok(Ok(_)) => Err(error("the topic does not exist (ingest creates it)".into())),
                Ok(Err(e)) => Err(error(e.to_string())),
                Err(e) => Err(error(e.to_string())),
            }
        };
        self.partitions.get_or_try_init(read).await.copied()
    }
}

impl Cutter for KafkaCutter {
    fn cut(&self, cut: Cut) -> CutFuture<'_> {
        Box::pin(async move {
            let partitions = self.partitions().await?;
            let partition = handoff_partition(cut.workspace_id, partitions).ok_or_else(|| CutError::Metadata {
                topic: self.topic.clone(),
                error: format!("{partitions} partitions"),
            })?;
            let key = cut.workspace_id.to_string();
            let value = cut.header_value();
            let headers = OwnedHeaders::new().insert(Header { key: CUT_HEADER, value: Some(value.as_str()) });
            let record = FutureRecord::<str, [u8]>::to(&self.topic).key(&key).partition(partition).headers(headers);
            let delivered = self
                .producer
                .send(record, Some(self.timeout))
                .await
                .map_err(|e| CutError::Write { topic: self.topic.clone(), error: e.to_string() })?;
            tracing::info!(
                workspace_id = cut.workspace_id,
                epoch = cut.epoch,
                partition,
                offset = delivered.offset,
                generation = self.generation.get(),
                "Cut record written."
            );
            Ok(Placed { partition: delivered.partition, offset: self.generation.position(delivered.offset)? })
        })
    }
}

/// Writes a cut for `workspace_id`'s initial sync asked by configuration revision `epoch`.
pub async fn place(cutter: &Arc<dyn Cutter>, workspace_id: WorkspaceId, epoch: u64) -> Result<Placed, CutError> {
    cutter.cut(Cut { workspace_id: workspace_id.get(), epoch }).await
}
