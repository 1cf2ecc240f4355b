//! A Kafka producer whose deliveries are futures, polled by a thread that waits in librdkafka.
//!
//! rdkafka's `FutureProducer` reads its delivery reports on a thread that calls
//! `BaseProducer::poll` for 100 ms at a time, and that call hands librdkafka the time left in
//! whole milliseconds, rounded down: the last fraction of a millisecond of every call is a busy
//! loop of `poll(0)` and `clock_gettime`, about 1 % of a core per producer, idle or not
//! (docs/PERFORMANCE.md). [`DeliveryProducer`] polls for a second at a time, which makes that
//! loop ten times rarer, and offers what the services used of `FutureProducer`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, FutureRecord, ProducerContext};
use tokio::sync::oneshot;

/// How long the polling thread waits in librdkafka per call (also the most its thread outlives
/// the last handle to the producer).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often [`DeliveryProducer::send`] retries while the producer's queue is full.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(10);

/// Where a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

/// The outcome of one record's delivery, once librdkafka reports it.
#[derive(Debug)]
pub struct Delivery(oneshot::Receiver<KafkaResult<Delivered>>);

impl Future for Delivery {
    type Output = KafkaResult<Delivered>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A dropped sender means the producer went away without reporting: the record's fate
        // is unknown, as with rdkafka's own `Canceled`.
        Pin::new(&mut self.0).poll(cx).map(|report| report.unwrap_or(Err(KafkaError::Canceled)))
    }
}

impl Delivery {
    /// Waits for the report on a plain thread (not in an async task: it would block the task's
    /// runtime thread).
    pub fn wait(self) -> KafkaResult<Delivered> {
        self.0.blocking_recv().unwrap_or(Err(KafkaError::Canceled))
    }
}

/// The producer's context: completes each record's [`Delivery`].
#[derive(Debug, Default)]
pub struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<oneshot::Sender<KafkaResult<Delivered>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, report: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Ok(Delivered { partition: message.partition(), offset: message.offset() }),
            Err((error, _)) => Err(error.clone()),
        };
        // The caller may have stopped waiting: nothing to tell then.
        let _ = report.send(outcome);
    }
}

/// Stops the polling thread when the last handle is dropped.
#[derive(Debug)]
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A Kafka producer with deliveries as futures; clones share it.
#[derive(Clone)]
pub struct DeliveryProducer {
    producer: Arc<BaseProducer<Reports>>,
    _stop: Arc<StopOnDrop>,
}

impl DeliveryProducer {
    /// Creates the producer and starts its polling thread.
    pub fn new(config: &ClientConfig) -> KafkaResult<Self> {
        let producer = Arc::new(BaseProducer::from_config_and_context(config, Reports)?);
        let stop = Arc::new(AtomicBool::new(false));
        let (polled, stopped) = (Arc::clone(&producer), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("kafka-delivery".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    polled.poll(POLL_INTERVAL);
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("starting the delivery thread: {e}")))?;
        Ok(Self { producer, _stop: Arc::new(StopOnDrop(stop)) })
    }

    /// The underlying producer: transactions, metadata, flush.
    pub fn producer(&self) -> &BaseProducer<Reports> {
        &self.producer
    }

    /// Enqueues a record; on failure (e.g. the queue is full) returns the error and the record.
    #[allow(clippy::result_large_err)]
    pub fn send_result<'a, K, P>(
        &self,
        record: FutureRecord<'a, K, P>,
    ) -> Result<Delivery, (KafkaError, FutureRecord<'a, K, P>)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (report, delivery) = oneshot::channel();
        let base = BaseRecord {
            topic: record.topic,
            partition: record.partition,
            payload: record.payload,
            key: record.key,
            timestamp: record.timestamp,
            headers: record.headers,
            delivery_opaque: Box::new(report),
        };
        self.producer.send(base).map(|()| Delivery(delivery)).map_err(|(error, back)| {
            let record = FutureRecord {
                topic: back.topic,
                partition: back.partition,
                payload: back.payload,
                key: back.key,
                timestamp: back.timestamp,
                headers: back.headers,
            };
            (error, record)
        })
    }

    /// Sends a record and waits for its delivery, retrying while the queue is full for up to
    /// `queue_timeout` (`None`: as long as it takes).
    pub async fn send<K, P>(
        &self,
        mut record: FutureRecord<'_, K, P>,
        queue_timeout: Option<Duration>,
    ) -> KafkaResult<Delivered>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let started = Instant::now();
        loop {
            match self.send_result(record) {
                Ok(delivery) => return delivery.await,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if queue_timeout.is_none_or(|limit| started.elapsed() < limit) =>
                {
                    record = back;
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }
}
