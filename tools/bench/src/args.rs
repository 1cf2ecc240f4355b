//! Command-line arguments of `dwsync-bench`.

use std::path::PathBuf;

use clap::Parser;
use dwsync_config::{KafkaArgs, KafkaConfig};

use crate::scenario::Scenario;

/// Measures dwsync end to end next to the physical ceilings (raw Kafka consume, Parquet encode),
/// on the same machine and the same pre-loaded topics, and prints one table per scenario.
#[derive(Debug, Clone, Parser)]
#[command(name = "dwsync-bench", version)]
pub(crate) struct Args {
    /// Tiny sizes (a few thousand records per scenario, 1-second windows): checks that every row
    /// arrives and prints the figures; never judges them.
    #[arg(long)]
    pub(crate) smoke: bool,
    /// Scenarios to run, comma-separated (`metrics-json`, `metrics-protobuf`, `mixed-all-tables`,
    /// `workspaces-10k`; default all four), and the initial-sync scenarios, run only when named:
    /// `backfill-large` (one large workspace), `syncs-1000` (1,000 syncs created in a minute),
    /// `backfill-live` (other workspaces' close → visible during a large workspace's initial sync),
    /// `archiver-backlog` (the archiver's memory and throughput on a handoff backlog of all 15
    /// tables, and control's memory under API load), `soak` (a 30-minute steady stream of all 15
    /// tables and 1,000 workspaces: memory trend, close → visible over time, CPU per record,
    /// every record exported once; only row 3s, nothing pre-loaded).
    #[arg(long, value_delimiter = ',')]
    pub(crate) scenario: Vec<String>,
    /// Multiplies every scenario's record count (e.g. 0.1 for a quick run, 5 for a long one).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) scale: f64,
    /// Window length of the end-to-end run in ms (default 15000, 60000 for `workspaces-10k`;
    /// 1000 with --smoke).
    #[arg(long)]
    pub(crate) window_ms: Option<u64>,
    /// Generator seed: the same seed pre-loads the same records.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Partitions of each source topic (default 4, 16 for `workspaces-10k`; 1 with --smoke).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) partitions: Option<i32>,
    /// How to reach Kafka: the services' `[kafka]` section (brokers, TLS, SASL) from `--config`
    /// and `DWSYNC_KAFKA__*`, used by the harness's own clients and passed to every service it
    /// starts.
    #[command(flatten)]
    pub(crate) kafka: KafkaArgs,
    /// The brokers of the `[kafka]` section, once loaded ([`Args::load_kafka`]).
    #[arg(skip)]
    pub(crate) bootstrap: String,
    /// S3 endpoint (path-style, SigV4).
    #[arg(long, env = "DWSYNC_BENCH_S3_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    pub(crate) s3_endpoint: String,
    /// S3 access key id.
    #[arg(long, env = "S3_ACCESS_KEY", default_value = "dwsync-dev")]
    pub(crate) s3_access_key: String,
    /// S3 secret access key (never printed).
    #[arg(long, env = "S3_SECRET_KEY", default_value = "dwsync-dev-secret-key", hide_default_value = true)]
    pub(crate) s3_secret_key: String,
    /// Directory holding `dwsync-ingest` and `dwsync-uploader` (default: next to this binary).
    #[arg(long)]
    pub(crate) bin_dir: Option<PathBuf>,
    /// Where config files, service logs and profiles go (default: a new directory under /tmp).
    #[arg(long)]
    pub(crate) work_dir: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Skip the `kcat` row even when `kcat` is installed.
    #[arg(long)]
    pub(crate) no_kcat: bool,
    /// Record a `perf` profile of each service during the end-to-end run and print its top symbols.
    #[arg(long)]
    pub(crate) perf: bool,
    /// A librdkafka property for the harness's own consumers (rows 1 and 1+2), e.g.
    /// `fetch.queue.backoff.ms=1000` (repeatable).
    #[arg(long, value_parser = parse_env)]
    pub(crate) consumer_prop: Vec<(String, String)>,
    /// Extra environment for ingest, e.g. `DWSYNC_INGEST__FETCH_QUEUE_KBYTES=65536` (repeatable):
    /// any config key can be tried this way without editing the harness.
    #[arg(long, value_parser = parse_env)]
    pub(crate) ingest_env: Vec<(String, String)>,
    /// Extra environment for the uploader (repeatable), as for `--ingest-env`.
    #[arg(long, value_parser = parse_env)]
    pub(crate) uploader_env: Vec<(String, String)>,
    /// Records per second of `backfill-live`'s live stream (default 2000; 200 with --smoke).
    #[arg(long)]
    pub(crate) live_rate: Option<f64>,
    /// Extra environment for the backfill of `syncs-1000` and `backfill-live` (repeatable), e.g.
    /// `DWSYNC_BACKFILL__CONCURRENCY=4`.
    #[arg(long, value_parser = parse_env)]
    pub(crate) backfill_env: Vec<(String, String)>,
    /// Keep the run's topics (they are deleted after each scenario by default).
    #[arg(long)]
    pub(crate) keep_topics: bool,
    /// Keep each scenario's bucket and objects (deleted after its check by default).
    #[arg(long)]
    pub(crate) keep_objects: bool,
    /// Also run row 3 on a steady stream: the same records produced at an even pace over this
    /// many seconds into empty topics while the services run (close → visible without a
    /// backlog's catch-up). 0 = not run. For `soak`: the stream's length (default 1800; 20 with
    /// --smoke).
    #[arg(long, default_value_t = 0)]
    pub(crate) stream_secs: u64,
    /// Records per second of `soak`'s stream over all tables (default 2000; 100 with --smoke).
    #[arg(long, value_parser = positive_rate)]
    pub(crate) soak_rate: Option<f64>,
    /// How many times row 1 reads the topics, each with a fresh group (default 3; 1 with
    /// --smoke). The fastest read is the ceiling: on a shared machine reads of the same topics
    /// move by tens of percent from one minute to the next.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) raw_reads: Option<u32>,
}

impl Args {
    /// The scenario called `name` with the size, partitions and window asked for.
    pub(crate) fn scenario(&self, name: &str) -> anyhow::Result<Scenario> {
        let mut s = Scenario::named(name, self.smoke, self.scale)?;
        s.partitions = self.partitions.unwrap_or(s.partitions);
        s.window_ms = self.window_ms.unwrap_or(s.window_ms);
        Ok(s)
    }

    /// Loads the `[kafka]` section (defaults, `--config`, `DWSYNC_KAFKA__*`, `--bootstrap`) and
    /// keeps its brokers in [`bootstrap`](Self::bootstrap).
    pub(crate) fn load_kafka(&mut self) -> anyhow::Result<KafkaConfig> {
        let kafka = self.kafka.load()?;
        self.bootstrap.clone_from(&kafka.bootstrap_servers);
        Ok(kafka)
    }

    /// How many times row 1 reads the topics.
    pub(crate) fn raw_reads(&self) -> u32 {
        self.raw_reads.unwrap_or(if self.smoke { 1 } else { 3 })
    }
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a positive number of records per second")),
    }
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let args = Args::try_parse_from(["dwsync-bench"]).expect("defaults");
        assert!(!args.smoke && args.scenario.is_empty());
        let of = |args: &Args, name| args.scenario(name).map(|s| (s.window_ms, s.partitions)).expect("known");
        assert_eq!(of(&args, "metrics-json"), (15_000, 4));
        assert_eq!(of(&args, "workspaces-10k"), (60_000, 16));
        let smoke = Args::try_parse_from(["dwsync-bench", "--smoke", "--scenario", "metrics-json,workspaces-10k"])
            .expect("smoke");
        assert_eq!(of(&smoke, "metrics-json"), (1_000, 1));
        assert_eq!(of(&smoke, "workspaces-10k"), (1_000, 1));
        let set = Args::try_parse_from(["dwsync-bench", "--window-ms", "5000", "--partitions", "2"]).expect("set");
        assert_eq!(of(&set, "workspaces-10k"), (5_000, 2));
        assert_eq!(smoke.scenario, ["metrics-json", "workspaces-10k"]);
        assert_eq!((args.raw_reads(), smoke.raw_reads()), (3, 1));
        let reads = Args::try_parse_from(["dwsync-bench", "--smoke", "--raw-reads", "2"]).expect("reads");
        assert_eq!(reads.raw_reads(), 2);
        assert!(Args::try_parse_from(["dwsync-bench", "--raw-reads", "0"]).is_err());
        let env = Args::try_parse_from(["dwsync-bench", "--ingest-env", "A=1=2", "--ingest-env", "B="]).expect("env");
        assert_eq!(env.ingest_env, [("A".to_owned(), "1=2".to_owned()), ("B".to_owned(), String::new())]);
        assert!(Args::try_parse_from(["dwsync-bench", "--uploader-env", "novalue"]).is_err());
        let soak = Args::try_parse_from(["dwsync-bench", "--soak-rate", "500"]).expect("rate");
        assert_eq!((args.soak_rate, soak.soak_rate), (None, Some(500.0)));
        assert!(Args::try_parse_from(["dwsync-bench", "--soak-rate", "0"]).is_err());
    }
}
