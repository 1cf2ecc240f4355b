//! The consuming side of the loop: the handoff consumer is created and subscribed here, and the
//! [`Reader`] takes its records (copied out of librdkafka's buffer), its errors and the
//! rebalances its context recorded.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use dwsync_config::KafkaConfig;
use dwsync_handoff::{HandoffRecord, cut_value};
use dwsync_sync_config::is_transient;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers as _, Message as _};
use tokio_util::sync::CancellationToken;

use crate::config::HandoffConfig;
use crate::lag::HandoffConsumer;
use crate::metrics::Metrics;
use crate::rebalance::{HandoffContext, Rebalanced};

/// Pause after a consumer error before reading again (not after a transient one: librdkafka
/// queues many of those during a broker outage, and pausing after each would leave the loop
/// reading stale errors long after the broker is back).
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Why the consumer could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The Kafka consumer could not be created.
    #[error("creating the handoff consumer: {0}")]
    Create(KafkaError),
    /// The handoff topic could not be subscribed to.
    #[error("subscribing to the handoff topic {topic}: {error}")]
    Subscribe {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// The group fenced this static member: another uploader joined with the same
    /// `handoff.instance_id`. It stops rather than fence that one back.
    #[error("fenced by another uploader with the same instance id: {0}")]
    Fenced(KafkaError),
}

/// Creates the handoff consumer (`read_committed`, manual commits, from the earliest offset
/// when the group has none, the cooperative-sticky assignor, a static member with
/// `handoff.instance_id`) and subscribes it to the handoff topic.
pub fn subscribe(
    kafka: &KafkaConfig,
    handoff: &HandoffConfig,
    metrics: Arc<Metrics>,
) -> Result<Arc<HandoffConsumer>, ConsumerError> {
    let mut config = kafka.client_config("uploader");
    config
        .set("group.id", &handoff.group_id)
        .set("session.timeout.ms", handoff.session_timeout_ms.to_string())
        .set("isolation.level", "read_committed")
        .set("queued.max.messages.kbytes", handoff.fetch_queue_kbytes.max(1).to_string())
        .set("fetch.queue.backoff.ms", "10")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // A rebalance moves only the partitions that change owner; the others keep their files.
        .set("partition.assignment.strategy", "cooperative-sticky");
    if let Some(id) = handoff.group_instance_id() {
        config.set("group.instance.id", id);
    }
    let context = HandoffContext::new(&handoff.topic, metrics, handoff.leaves_on_shutdown());
    let consumer = HandoffConsumer::from_config_and_context(&config, context).map_err(ConsumerError::Create)?;
    consumer
        .subscribe(&[&handoff.topic])
        .map_err(|error| ConsumerError::Subscribe { topic: handoff.topic.clone(), error })?;
    Ok(Arc::new(consumer))
}

/// One handoff record, copied out of the consumer's buffer.
pub(super) struct Record {
    /// Its handoff partition.
    pub(super) partition: i32,
    /// Its offset in that partition.
    pub(super) offset: i64,
    /// The payload's size, counted while the record waits in its partition's lane.
    pub(super) bytes: u64,
    /// What it holds.
    pub(super) content: HandoffRecord,
}

impl Record {
    /// Copies `message` out of the consumer's buffer.
    fn copied(message: &BorrowedMessage<'_>) -> Self {
        let payload = message.payload();
        Self {
            partition: message.partition(),
            offset: message.offset(),
            bytes: payload.map_or(0, |p| p.len() as u64),
            content: HandoffRecord::classify(cut_header(message), payload),
        }
    }
}

/// Reads the handoff topic: records, errors (counting the transient ones while they last) and
/// the fence that stops a static member.
pub(super) struct Reader {
    consumer: Arc<HandoffConsumer>,
    /// Transient errors in a row since reading last worked.
    transient: u64,
    /// The fatal error of a fenced static member, once it came.
    fenced: Option<KafkaError>,
    shutdown: CancellationToken,
}

impl Reader {
    /// Reads with `consumer`, pausing after an error until `shutdown`.
    pub(super) fn new(consumer: Arc<HandoffConsumer>, shutdown: CancellationToken) -> Self {
        Self { consumer, transient: 0, fenced: None, shutdown }
    }

    /// The next record, or the consumer's error. `recv` only takes a message off librdkafka's
    /// queue in the poll that returns it, so dropping this future loses nothing.
    pub(super) async fn recv(&self) -> Result<Record, KafkaError> {
        self.consumer.recv().await.map(|message| Record::copied(&message))
    }

    /// The rebalances since the last call, oldest first.
    pub(super) fn take_rebalances(&self) -> Vec<Rebalanced> {
        self.consumer.context().take_rebalances()
    }

    /// Deals with what [`recv`](Self::recv) returned: the record to handle, or `None` after an
    /// error (logged, after a pause for one neither transient nor fatal). Breaks once fenced or on
    /// shutdown.
    pub(super) async fn received(&mut self, received: Result<Record, KafkaError>) -> ControlFlow<(), Option<Record>> {
        let error = match received {
            Ok(record) => {
                if self.transient > 0 {
                    tracing::info!(transient_errors = self.transient, "Reading the handoff topic works again.");
                    self.transient = 0;
                }
                return ControlFlow::Continue(Some(record));
            }
            Err(error) => error,
        };
        match error {
            error if is_transient(&error) => {
                // Informational: librdkafka reconnects and fetches on by itself.
                self.transient += 1;
                if self.transient == 1 {
                    tracing::warn!(%error, "Reading the handoff topic: the broker does not answer; librdkafka retries.");
                } else {
                    tracing::debug!(%error, count = self.transient, "Reading the handoff topic: transient error.");
                }
                ControlFlow::Continue(None)
            }
            // The only fatal error of a consumer: fenced as a static member.
            error @ KafkaError::MessageConsumptionFatal(_) => {
                let reason = self.consumer.client().fatal_error().map(|(_, reason)| reason).unwrap_or_default();
                tracing::error!(%error, reason, "Another uploader runs with this instance id; this one stops.");
                self.fenced = Some(error);
                ControlFlow::Break(())
            }
            error => {
                tracing::warn!(%error, "Reading the handoff topic failed; retrying.");
                tokio::select! {
                    () = self.shutdown.cancelled() => ControlFlow::Break(()),
                    () = tokio::time::sleep(ERROR_PAUSE) => ControlFlow::Continue(None),
                }
            }
        }
    }

    /// Stops reading: the error that fenced this member, if one did. The consumer closes when
    /// its last reference goes ([`Commits::close`](super::commits::Commits::close)).
    pub(super) fn stop(self) -> Option<KafkaError> {
        self.fenced
    }
}

/// The value of a record's cut header, if it has one.
fn cut_header<'a>(message: &'a BorrowedMessage<'_>) -> Option<&'a [u8]> {
    cut_value(message.headers()?.iter().map(|h| (h.key, h.value)))
}
