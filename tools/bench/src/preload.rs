//! Pre-loads a scenario's records into fresh source topics, keyed by workspace, before anything
//! is measured: every row of the table then reads the same backlog.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};

use crate::kafka;
use crate::record_ids::IdDigest;
use crate::scenario::Scenario;

/// What was pre-loaded.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The source topic of each table (`<prefix><table>`).
    pub(crate) topics: Vec<String>,
    /// Records produced and delivered.
    pub(crate) records: u64,
    /// Payload bytes (keys and headers not counted).
    pub(crate) bytes: u64,
    /// Records and payload bytes per table.
    pub(crate) per_table: BTreeMap<&'static str, (u64, u64)>,
    /// Time to generate and produce them.
    pub(crate) secs: f64,
    /// The digest of each table's record ids ([`record_ids`]).
    pub(crate) ids: BTreeMap<&'static str, IdDigest>,
}

/// Counts delivery reports.
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                let _ = self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                let _ = self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    let _ = first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// The scenario's source topics under `prefix` (`<prefix><table>`), in its table order.
pub(crate) fn topic_names(scenario: &Scenario, prefix: &str) -> Vec<String> {
    scenario.tables.iter().map(|t| format!("{prefix}{}", t.name())).collect()
}

/// Creates the scenario's topics under `prefix` and produces its records to them.
pub(crate) async fn preload(
    scenario: &Scenario,
    bootstrap: &str,
    prefix: &str,
    partitions: i32,
    seed: u64,
) -> anyhow::Result<Loaded> {
    let topics = topic_names(scenario, prefix);
    kafka::create_topics(bootstrap, &topics, partitions).await?;
    produce(scenario, bootstrap, &topics, seed, None, None)
}

/// Produces the scenario's records (seed `seed`) to `topics` (from [`topic_names`]) and waits
/// until every one is delivered: as fast as possible, or `over` a time at an even pace (a
/// steady stream; blocks the calling thread for that long). Once `stop` is set it produces no
/// more and waits for the records produced so far.
pub(crate) fn produce(
    scenario: &Scenario,
    bootstrap: &str,
    topics: &[String],
    seed: u64,
    over: Option<Duration>,
    stop: Option<&AtomicBool>,
) -> anyhow::Result<Loaded> {
    let topics = topics.to_vec();
    let producer: ThreadedProducer<Deliveries> = kafka::config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", "120000")
        .create_with_context(Deliveries::default())
        .context("cannot create the Kafka producer")?;
    // Seconds between two records of a paced stream.
    let step = over.map(|d| d.as_secs_f64() / scenario.records().max(1) as f64);
    let started = Instant::now();
    let mut messages = scenario.messages(seed);
    let flagged = messages.flagged();
    let mut per_table: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    let mut ids: BTreeMap<&'static str, IdDigest> = BTreeMap::new();
    let (mut records, mut bytes) = (0, 0);
    for m in messages.by_ref() {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        if let Some(step) = step
            && records % 64 == 0
        {
            let due = started + Duration::from_secs_f64(records as f64 * step);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let topic = &topics[scenario.tables.iter().position(|t| *t == m.table).unwrap_or(0)];
        let key = m.workspace_id.to_string();
        let mut record = BaseRecord::to(topic).key(&key).payload(&m.payload);
        if flagged {
            let value = match m.encoding {
                dwsync_contract::Encoding::Json => "application/json",
                dwsync_contract::Encoding::Protobuf => "application/x-protobuf",
            };
            record = record.headers(OwnedHeaders::new().insert(Header { key: "content-type", value: Some(value) }));
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => bail!("cannot produce to {topic}: {e}"),
            }
        }
        records += 1;
        bytes += m.payload.len() as u64;
        let t = per_table.entry(m.table.name()).or_default();
        t.0 += 1;
        t.1 += m.payload.len() as u64;
        ids.entry(m.table.name()).or_default().add(&m.id);
    }
    producer.flush(Duration::from_secs(120)).context("the producer could not deliver every record in 120 s")?;
    let context = producer.context();
    let failed = context.failed.load(Ordering::Relaxed);
    if failed > 0 {
        let first = context.first_error.lock().ok().and_then(|e| e.clone()).unwrap_or_default();
        bail!("{failed} record(s) were not delivered; first error: {first}");
    }
    let delivered = context.delivered.load(Ordering::Relaxed);
    if delivered != records {
        bail!("only {delivered} of {records} records were delivered");
    }
    Ok(Loaded { topics, records, bytes, per_table, secs: started.elapsed().as_secs_f64(), ids })
}
