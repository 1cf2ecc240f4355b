//! `dwsync dead-letters replay`: re-injects dead-lettered records into their source topic (e.g.
//! after a producer bug is fixed), optionally only some error classes or source topics.
//!
//! It reads the dead-letter topic from its start up to its end at the time it starts, and commits
//! nothing: every run re-injects every matching record. Run `--dry-run` first to see the counts.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use dwsync_handoff::dead_letter as header;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::Error;
use crate::kafka::{CliContext, KafkaArgs, failure};

/// Arguments of `dwsync dead-letters`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeadLettersArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: DeadLettersAction,
}

/// `dwsync dead-letters` actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DeadLettersAction {
    /// Re-inject dead-lettered records into their source topics.
    Replay(ReplayArgs),
}

/// Arguments of `dwsync dead-letters replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// How to reach Kafka.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The dead-letter topic.
    #[arg(long, default_value = "dwsync.dead-letters")]
    pub topic: String,
    /// Only records of this error class (repeatable), e.g. `--class wrong_type`.
    #[arg(long = "class")]
    pub classes: Vec<String>,
    /// Only records from this source topic (repeatable).
    #[arg(long = "source-topic")]
    pub source_topics: Vec<String>,
    /// Count what would be replayed, produce nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What a replay did: records per (source topic, error class), and records skipped by the filters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Records re-injected (or, with `--dry-run`, that would be).
    pub replayed: BTreeMap<(String, String), u64>,
    /// Records the filters left out.
    pub skipped: u64,
    /// Matching records whose dead letter holds only a prefix of the value or none (it did not
    /// fit the dead-letter topic): not replayed; their source topic, partition and offset are
    /// listed, where the whole record is while the topic retains it.
    pub truncated: Vec<String>,
}

/// Runs `dwsync dead-letters …`.
pub async fn run(args: &DeadLettersArgs, out: &mut dyn Write) -> Result<(), Error> {
    match &args.action {
        DeadLettersAction::Replay(replay_args) => {
            let done = replay(replay_args).await?;
            let verb = if replay_args.dry_run { "would replay" } else { "replayed" };
            for ((topic, class), n) in &done.replayed {
                writeln!(out, "{verb} {n:>8}  {class:<22} -> {topic}")?;
            }
            let total: u64 = done.replayed.values().sum();
            writeln!(out, "{verb} {total} record(s); {} left out by the filters", done.skipped)?;
            for at in &done.truncated {
                writeln!(out, "not replayed (the dead letter holds only part of the value or none): {at}")?;
            }
            Ok(())
        }
    }
}

/// Reads the dead-letter topic up to its current end and re-injects the matching records.
pub async fn replay(args: &ReplayArgs) -> Result<Replayed, Error> {
    let cfg = args.kafka.load()?;
    let consumer: BaseConsumer<CliContext> = cfg
        .client_config("cli-dead-letters")
        .set("group.id", "dwsync-dead-letter-replay")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create_with_context(CliContext::default())
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let kafka = |e: rdkafka::error::KafkaError| failure(&cfg, &consumer, &e);
    let producer: FutureProducer =
        cfg.client_config("cli-replay").set("enable.idempotence", "true").create().map_err(kafka)?;
    // Metadata and watermarks within `kafka.metadata_timeout_ms`; records within 10 s.
    let (timeout, records_within) = (cfg.metadata_timeout(), Duration::from_secs(10));
    let metadata = consumer.fetch_metadata(Some(&args.topic), timeout).map_err(kafka)?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(&args.topic, p, timeout).map_err(kafka)?;
        if high > low {
            let _ = ends.insert(p, high);
            assignment.add_partition_offset(&args.topic, p, Offset::Beginning).map_err(kafka)?;
        }
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let mut done = Replayed::default();
    let mut pending = Vec::new();
    while !ends.is_empty() {
        let Some(msg) = consumer.poll(records_within) else {
            return Err(Error::Kafka("no record within 10 s".into()));
        };
        let msg = msg.map_err(kafka)?;
        if ends.get(&msg.partition()).is_some_and(|&end| msg.offset() + 1 >= end) {
            let _ = ends.remove(&msg.partition());
        }
        let get = |name: &str| {
            msg.headers()
                .and_then(|hs| hs.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let (Some(source), class) = (get(header::TOPIC), get(header::ERROR_CLASS).unwrap_or_default()) else {
            done.skipped += 1;
            continue;
        };
        let wanted = (args.classes.is_empty() || args.classes.contains(&class))
            && (args.source_topics.is_empty() || args.source_topics.contains(&source));
        if !wanted {
            done.skipped += 1;
            continue;
        }
        if get(header::VALUE_TRUNCATED).as_deref() == Some("true")
            || get(header::VALUE_OMITTED).as_deref() == Some("true")
        {
            let (partition, offset) =
                (get(header::PARTITION).unwrap_or_default(), get(header::OFFSET).unwrap_or_default());
            done.truncated.push(format!("{source}/{partition}@{offset}"));
            continue;
        }
        *done.replayed.entry((source.clone(), class)).or_default() += 1;
        if args.dry_run {
            continue;
        }
        let mut headers = OwnedHeaders::new();
        if let Some(hs) = msg.headers() {
            for h in hs.iter().filter(|h| !h.key.starts_with(header::PREFIX)) {
                headers = headers.insert(Header { key: h.key, value: h.value });
            }
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(&source).headers(headers);
        if let Some(k) = msg.key() {
            record = record.key(k);
        }
        if let Some(p) = msg.payload() {
            record = record.payload(p);
        }
        pending.push(producer.send_result(record).map_err(|(e, _)| kafka(e))?);
    }
    for delivery in pending {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(kafka(e)),
            Err(_) => return Err(Error::Kafka("delivery cancelled".into())),
        }
    }
    Ok(done)
}
