//! `dwsync handoff status|advance`: the handoff topic's generation, and whether the consumer
//! groups reading it have delivered everything on it.
//!
//! A file's `seq` is its position in the handoff topic, `generation × 10^12 + offset`. When the
//! topic is replaced (recreated, or the same name on a new Kafka cluster), its offsets start at
//! 0 again: `advance` moves the generation on so that every position after the switch lies
//! above every position before it. The procedure is in docs/DEPLOY.md: stop ingest, wait until
//! `status` shows the groups drained, stop the services that read the topic, replace it,
//! `advance`, start them again.

use std::io::Write;

use dwsync_sync_config::generation;
use dwsync_telemetry::group_lag::{GroupLagSampler, GroupLagSettings};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;

use crate::Error;
use crate::kafka::{CliContext, KafkaArgs, failure};

/// Arguments of `dwsync handoff`.
#[derive(Debug, Clone, clap::Args)]
pub struct HandoffArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: HandoffAction,
}

/// `dwsync handoff` actions.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HandoffAction {
    /// Show the generation, and per partition the end offset and what each group committed.
    Status(StatusArgs),
    /// Move the generation on, after the handoff topic was replaced (docs/DEPLOY.md).
    Advance(AdvanceArgs),
}

impl HandoffAction {
    /// The action's name, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status(_) => "status",
            Self::Advance(_) => "advance",
        }
    }
}

/// Arguments of `dwsync handoff status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// How to reach Kafka.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The handoff topic.
    #[arg(long, default_value = "dwsync.handoff")]
    pub topic: String,
    /// A consumer group whose committed offsets to compare with the ends (repeatable).
    #[arg(long = "group", default_values_t = ["dwsync-uploader".to_owned(), "dwsync-archiver".to_owned()])]
    pub groups: Vec<String>,
}

/// Arguments of `dwsync handoff advance`.
#[derive(Debug, Clone, clap::Args)]
pub struct AdvanceArgs {
    /// How to reach Kafka.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The handoff topic.
    #[arg(long, default_value = "dwsync.handoff")]
    pub topic: String,
    /// The generation to move to (default: the next one). Only forward: after a disaster
    /// recovery that lost the generation topic, name one above any used before (the highest
    /// `seq` in the buckets divided by 10^12, plus 1).
    #[arg(long)]
    pub to: Option<u32>,
}

/// One partition of the handoff topic: its end and what each group has still to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRow {
    /// The partition.
    pub partition: i32,
    /// Its end offset (the next record's).
    pub end: i64,
    /// Per group (in the order asked), the records it has not committed yet: 0 when only
    /// transaction markers follow its committed offset.
    pub pending: Vec<i64>,
}

/// Runs `dwsync handoff …`.
pub async fn run(args: &HandoffArgs, out: &mut dyn Write) -> Result<(), Error> {
    match &args.action {
        HandoffAction::Status(status) => {
            let cfg = status.kafka.load()?;
            let current = generation::current(&cfg, &status.topic).await.map_err(|e| Error::Kafka(e.to_string()))?;
            writeln!(
                out,
                "handoff topic {}: generation {} (positions from {})",
                status.topic,
                current.get(),
                current.start()
            )?;
            let rows = partitions(&cfg, &status.topic, &status.groups)?;
            writeln!(out, "{:>9} {:>14}  records pending: {}", "partition", "end", status.groups.join("  "))?;
            for row in &rows {
                let pending: Vec<String> = row.pending.iter().map(ToString::to_string).collect();
                writeln!(out, "{:>9} {:>14}  {}", row.partition, row.end, pending.join("  "))?;
            }
            for (i, group) in status.groups.iter().enumerate() {
                let drained = rows.iter().all(|row| row.pending.get(i).is_some_and(|p| *p == 0));
                writeln!(out, "{group}: {}", if drained { "drained" } else { "not drained" })?;
            }
            Ok(())
        }
        HandoffAction::Advance(advance) => {
            let cfg = advance.kafka.load()?;
            let now_ms = chrono::Utc::now().timestamp_millis();
            let (before, after) = generation::advance(&cfg, &advance.topic, advance.to, now_ms)
                .await
                .map_err(|e| Error::Kafka(e.to_string()))?;
            writeln!(
                out,
                "handoff topic {}: generation {} -> {} (positions from {}); start the services now",
                advance.topic,
                before.get(),
                after.get(),
                after.start()
            )?;
            Ok(())
        }
    }
}

/// Each partition of `topic` with its end and the records each of `groups` has still to read,
/// measured as the services measure their lag ([`GroupLagSampler`]: committed offsets against
/// the ends, a partition whose committed offset stays put probed `read_committed` for records
/// past it, so transaction markers do not count). Two samples: the second probes.
fn partitions(cfg: &dwsync_config::KafkaConfig, topic: &str, groups: &[String]) -> Result<Vec<PartitionRow>, Error> {
    let timeout = cfg.metadata_timeout();
    let probe: BaseConsumer<CliContext> = cfg
        .client_config("cli-handoff")
        .set("enable.auto.commit", "false")
        .create_with_context(CliContext::default())
        .map_err(|e| Error::Kafka(e.to_string()))?;
    let kafka = |e: KafkaError| failure(cfg, &probe, &e);
    let metadata = probe.fetch_metadata(Some(topic), timeout).map_err(kafka)?;
    let ids: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    if ids.is_empty() {
        return Err(Error::Kafka(format!("the handoff topic {topic} does not exist")));
    }
    let mut rows = Vec::with_capacity(ids.len());
    for &partition in &ids {
        let (_, end) = probe.fetch_watermarks(topic, partition, timeout).map_err(kafka)?;
        rows.push(PartitionRow { partition, end, pending: Vec::with_capacity(groups.len()) });
    }
    for group in groups {
        let settings = GroupLagSettings {
            group_id: group.clone(),
            topics: vec![topic.to_owned()],
            interval: timeout,
            stall_after: timeout,
            timeout,
        };
        let lag_error = |e: dwsync_telemetry::group_lag::GroupLagError| Error::Kafka(format!("group {group}: {e}"));
        let mut sampler = GroupLagSampler::new(cfg, "cli-handoff-lag", settings).map_err(lag_error)?;
        let _ = sampler.sample().map_err(lag_error)?;
        let lag = sampler.sample().map_err(lag_error)?;
        for row in &mut rows {
            row.pending.push(lag.partitions.get(&(topic.to_owned(), row.partition)).copied().unwrap_or(row.end));
        }
    }
    Ok(rows)
}
