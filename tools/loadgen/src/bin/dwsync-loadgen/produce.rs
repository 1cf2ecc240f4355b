//! Produces the generated records to Kafka and waits for every delivery.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use dwsync_config::KafkaConfig;
use dwsync_contract::{Encoding, Table};
use dwsync_loadgen::{Generator, Schedule, Workspaces};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::args::{Args, EncodingMode};
use crate::summary::Summary;

/// Deliveries awaited at most at once; beyond this the oldest is awaited first.
const MAX_IN_FLIGHT: usize = 20_000;

/// A message handed to the producer, waiting for its delivery report.
struct InFlight {
    slot: usize,
    workspace_id: i64,
    /// The record's id; `None` for a malformed message.
    id: Option<String>,
    bytes: usize,
    delivery: DeliveryFuture,
}

/// The production of one table.
struct TableRun {
    table: Table,
    topic: String,
    schedule: Schedule,
    sent: u64,
}

/// Where delivery reports are booked: counts, the ids file, the first error.
struct Books {
    summary: Summary,
    ids_out: Option<BufWriter<File>>,
    first_error: Option<String>,
}

impl Books {
    /// Awaits one delivery and books it.
    async fn settle(&mut self, msg: InFlight) -> anyhow::Result<()> {
        let outcome = match msg.delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(e.to_string()),
            Err(_) => Err("the producer dropped the message".to_owned()),
        };
        match outcome {
            Ok(()) => {
                self.summary.delivered(msg.slot, msg.id.is_some(), msg.bytes);
                if let (Some(out), Some(id)) = (self.ids_out.as_mut(), &msg.id) {
                    let table = self.summary.table(msg.slot);
                    writeln!(out, "{table},{},{id}", msg.workspace_id).context("cannot write the ids file")?;
                }
            }
            Err(e) => {
                self.summary.failed += 1;
                let _ = self.first_error.get_or_insert(e);
            }
        }
        Ok(())
    }
}

/// Creates the missing topics, produces every record and waits for all deliveries.
pub(crate) async fn run(args: &Args) -> anyhow::Result<Summary> {
    let tables = &args.tables.0;
    let topics: Vec<String> = tables.iter().map(|t| format!("{}{}", args.topic_prefix, t.name())).collect();
    let kafka = args.kafka.load().context("the Kafka settings")?;
    ensure_topics(&kafka, &topics, args.partitions).await?;
    let producer = producer(&kafka)?;

    let workspaces = Workspaces::zipf(args.workspaces as usize, args.skew);
    let mut runs: Vec<TableRun> = tables
        .iter()
        .zip(topics)
        .map(|(&table, topic)| TableRun {
            table,
            topic,
            schedule: workspaces.schedule(args.records, args.seed ^ table as u64),
            sent: 0,
        })
        .collect();
    let ids_out = match &args.ids_out {
        Some(path) => {
            Some(BufWriter::new(File::create(path).with_context(|| format!("cannot create {}", path.display()))?))
        }
        None => None,
    };
    let mut books = Books { summary: Summary::new(tables), ids_out, first_error: None };
    let mut generator = Generator::new(args.seed);
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let started = Instant::now();
    let mut produced: u64 = 0;
    // Round robin over the tables until every schedule is done.
    let mut active = true;
    while active {
        active = false;
        for (slot, run) in runs.iter_mut().enumerate() {
            let Some((workspace_id, n)) = run.schedule.next() else { continue };
            active = true;
            produced += 1;
            if args.rate > 0.0 {
                let due = started + Duration::from_secs_f64(produced as f64 / args.rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let encoding = args.encoding.encoding(run.sent);
            run.sent += 1;
            // Every Nth message of each topic is malformed, so every table gets some.
            let (payload, id) = if args.bad_every > 0 && run.sent.is_multiple_of(args.bad_every) {
                (generator.malformed(run.table, workspace_id, n, encoding), None)
            } else {
                let record = generator.record(run.table, workspace_id, n);
                let payload = if encoding == Encoding::Json { record.json } else { record.protobuf };
                (payload, Some(record.id))
            };
            let key = workspace_id.to_string();
            let mut message = FutureRecord::to(&run.topic).key(&key).payload(&payload);
            if args.encoding == EncodingMode::Mixed {
                message = message.headers(content_type(encoding));
            }
            let delivery = loop {
                match producer.send_result(message) {
                    Ok(delivery) => break delivery,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        message = back;
                        match in_flight.pop_front() {
                            Some(oldest) => books.settle(oldest).await?,
                            None => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                    Err((e, _)) => bail!("cannot produce to {}: {e}", run.topic),
                }
            };
            in_flight.push_back(InFlight { slot, workspace_id, id, bytes: payload.len(), delivery });
            if in_flight.len() > MAX_IN_FLIGHT
                && let Some(oldest) = in_flight.pop_front()
            {
                books.settle(oldest).await?;
            }
        }
    }
    while let Some(oldest) = in_flight.pop_front() {
        books.settle(oldest).await?;
    }
    let Books { mut summary, ids_out, first_error } = books;
    summary.elapsed = started.elapsed();
    if let Some(mut out) = ids_out {
        out.flush().context("cannot write the ids file")?;
    }
    if let Some(e) = first_error {
        bail!("{} message(s) were not delivered; first error: {e}\n{summary}", summary.failed);
    }
    Ok(summary)
}

/// An idempotent producer: acks from all replicas, lz4, 5 ms linger.
fn producer(kafka: &KafkaConfig) -> anyhow::Result<FutureProducer> {
    kafka
        .client_config("loadgen")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .context("cannot create the Kafka producer")
}

/// A `content-type` header for `encoding`.
fn content_type(encoding: Encoding) -> OwnedHeaders {
    let value = match encoding {
        Encoding::Json => "application/json",
        Encoding::Protobuf => "application/x-protobuf",
    };
    OwnedHeaders::new().insert(Header { key: "content-type", value: Some(value) })
}

/// Creates the topics that do not exist yet.
async fn ensure_topics(kafka: &KafkaConfig, topics: &[String], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config("loadgen-admin").create().context("cannot create a Kafka admin client")?;
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(15)));
    let results = admin.create_topics(&new, &opts).await.with_context(|| {
        format!(
            "cannot create topics on the Kafka cluster at {} ({})",
            kafka.bootstrap_servers,
            kafka.security_summary()
        )
    })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("cannot create topic {topic}: {code}"),
        }
    }
    Ok(())
}
