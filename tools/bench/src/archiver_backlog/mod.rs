//! `--scenario archiver-backlog`: the archiver's memory and throughput on a handoff backlog, and
//! control's memory under API load — the figures the Helm chart's requests and limits of both
//! come from (docs/DEPLOY.md, Resources).
//!
//! 1. The backlog: records of all 15 tables for many workspaces (the generators of the other
//!    scenarios, JSON and protobuf mixed) are pre-loaded into fresh source topics, and the real
//!    `dwsync-ingest` hands them off onto a fresh handoff topic; ingest is then stopped.
//! 2. `dwsync-archiver` starts on that handoff topic with its default `[archive]` settings (tiny
//!    ones with `--smoke`, so the short run reaches them too) and archives the whole backlog
//!    ([`drain`]): it reads far more decoded data than `archive.max_buffered_bytes`, so batches are
//!    written early for memory. Sampled from `/proc` and its `/metrics`: peak RSS, CPU, the
//!    largest `dwsync_archiver_buffered_bytes`, batches by reason; rows/s and MB/s of handed-off
//!    Parquet archived. Then every archive object is read back: they must hold every handed-off
//!    row.
//! 3. `dwsync-control` gets many workspaces' syncs through its API and rounds of status polls
//!    over all of them ([`control_load`]); its peak RSS and CPU.

mod control_load;
mod drain;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use dwsync_contract::Table;
use dwsync_loadgen::DEFAULT_EXPONENT;
use serde::Serialize;

use crate::handoff_files::{self, HandedOff};
use crate::scenario::{EncodingMode, Scenario, thousands};
use crate::services::{self, Place, RunNames, Service};

pub(crate) use drain::Limits;

/// The scenario's name.
pub(crate) const NAME: &str = "archiver-backlog";

/// Ingest handing off nothing new for this long fails the run.
const STALL: Duration = Duration::from_secs(120);

/// How often ingest's progress is looked at.
const TICK: Duration = Duration::from_millis(200);

/// What a run loads and asks.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Plan {
    /// Records per table of the backlog (every one of the 15 tables).
    pub(crate) records_per_table: u64,
    /// Workspaces of the backlog (Zipf 1.1).
    pub(crate) workspaces: usize,
    /// Source partitions per topic.
    pub(crate) partitions: i32,
    /// Ingest's window.
    pub(crate) window_ms: u64,
    /// Partitions of the handoff topic: ingest's default `handoff_partitions`, 48 (4 with
    /// `--smoke`: the archiver starts its partitions one after the other, about half a second
    /// each here).
    pub(crate) handoff_partitions: i32,
    /// The archiver's `[archive]` settings; `None`: its defaults.
    pub(crate) limits: Option<Limits>,
    /// Workspaces whose syncs control is given.
    pub(crate) control_workspaces: u64,
    /// Rounds of status requests over every one of them.
    pub(crate) poll_rounds: u32,
}

impl Plan {
    /// Full size: 200,000 records per table (3 M) over 1,000 workspaces, the archiver's defaults,
    /// 1,000 syncs; scaled by `scale`. Smoke: 200 per table over 20 workspaces, 256-KiB
    /// batches in a 512-KiB bound, 20 syncs.
    pub(crate) fn of(smoke: bool, scale: f64) -> Self {
        let scaled = |full: f64| ((full * scale).round() as u64).max(1);
        if smoke {
            Self {
                records_per_table: 200,
                workspaces: 20,
                partitions: 1,
                window_ms: 1_000,
                handoff_partitions: 4,
                limits: Some(Limits {
                    flush_bytes: 256 << 10,
                    flush_interval_ms: 1_000,
                    max_buffered_bytes: 512 << 10,
                }),
                control_workspaces: 20,
                poll_rounds: 2,
            }
        } else {
            Self {
                records_per_table: scaled(200_000.0),
                workspaces: 1_000,
                partitions: 4,
                window_ms: 15_000,
                handoff_partitions: 48,
                limits: None,
                control_workspaces: scaled(1_000.0),
                poll_rounds: 3,
            }
        }
    }

    /// The backlog as a scenario of the pre-load.
    fn scenario(&self) -> Scenario {
        Scenario {
            name: NAME,
            tables: Table::ALL.to_vec(),
            encoding: EncodingMode::Mixed,
            workspaces: self.workspaces,
            skew: DEFAULT_EXPONENT,
            records_per_table: self.records_per_table,
            partitions: self.partitions,
            window_ms: self.window_ms,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measured {
    /// What was loaded and asked.
    pub(crate) plan: Plan,
    /// Records pre-loaded (= rows handed off).
    pub(crate) records: u64,
    /// Files ingest handed off, and their Parquet bytes.
    pub(crate) handoff_files: u64,
    pub(crate) handoff_bytes: u64,
    /// The archiver's run.
    pub(crate) archiver: drain::Drained,
    /// Archive objects read back, their rows and bytes.
    pub(crate) archive_objects: u64,
    pub(crate) archive_rows: u64,
    pub(crate) archive_bytes: u64,
    /// Control's run.
    pub(crate) control: control_load::Loaded,
}

impl Measured {
    /// The table printed for the run.
    pub(crate) fn render(&self) -> String {
        let (n, mib) = (thousands, |b: u64| b as f64 / f64::from(1u32 << 20));
        let a = &self.archiver;
        let mut out = format!(
            "== {NAME}: {} records of all 15 tables, {} workspaces, handed off as {} files ({:.1} MiB of Parquet) ==\n",
            n(self.records),
            n(self.plan.workspaces as u64),
            n(self.handoff_files),
            mib(self.handoff_bytes)
        );
        out += &match &self.plan.limits {
            None => "archiver: its default [archive] settings\n".to_owned(),
            Some(l) => format!("archiver: {}\n", l.describe()),
        };
        out += &format!(
            "archiver: every row archived {:.1} s after its start, {:.1} s of them working ({:.1} s idle: stretches of 2 s or more \
             under 5 % of a core, waiting on Kafka at start or for the last batches' age); {} rows/s, {:.1} MiB/s of handed-off \
             Parquet while working\n",
            a.secs,
            a.busy_secs,
            a.secs - a.busy_secs,
            n(a.rows_per_sec.round() as u64),
            a.mib_per_sec
        );
        out += &format!(
            "archiver: peak RSS {:.0} MiB; largest dwsync_archiver_buffered_bytes sampled {:.1} MiB; CPU {:.1} s; batches by reason: {}\n",
            mib(a.peak_rss_bytes),
            mib(a.max_buffered_bytes),
            a.cpu_secs,
            a.batches_text()
        );
        out += &format!(
            "archive: {} objects, {} rows (every handed-off row), {:.1} MiB\n",
            n(self.archive_objects),
            n(self.archive_rows),
            mib(self.archive_bytes)
        );
        out += &self.control.render();
        out
    }
}

/// Pre-loads the backlog, has ingest hand it off, drains it with the archiver, loads control.
pub(crate) async fn run(at: Place<'_>, plan: Plan, seed: u64) -> anyhow::Result<Measured> {
    std::fs::create_dir_all(&at.dir).with_context(|| format!("cannot create {}", at.dir.display()))?;
    let scenario = plan.scenario();
    let base = format!("{}.{NAME}", at.run_id);
    let names = RunNames::under(at.bootstrap, &base, format!("{}-archiver-backlog", at.run_id), plan.window_ms);
    let s3 = crate::s3::client(at.s3);
    crate::s3::create_bucket(&s3, at.s3, &names.bucket).await?;
    let sources = crate::preload::topic_names(&scenario, &names.topic_prefix);
    let run = async {
        eprintln!("[{NAME}] pre-loading {} ...", scenario.describe());
        let loaded =
            crate::preload::preload(&scenario, at.bootstrap, &names.topic_prefix, plan.partitions, seed).await?;
        eprintln!("[{NAME}] pre-loaded in {:.1} s; ingest hands the backlog off ...", loaded.secs);
        let files = hand_off(&at, &plan, &names, loaded.records).await?;
        // The source topics are read: their disk is given back before the archiver runs.
        if let Err(e) = crate::kafka::delete_topics(at.bootstrap, &sources).await {
            eprintln!("[{NAME}] could not delete the source topics: {e:#}");
        }
        let handoff_bytes = files.iter().map(|f| f.bytes).sum();
        eprintln!("[{NAME}] {} files handed off; the archiver archives them ...", thousands(files.len() as u64));
        let archiver = drain::run(&at, &names, plan.limits, loaded.records, handoff_bytes).await?;
        eprintln!("[{NAME}] reading the archive back ...");
        let archive = crate::s3::parquet_objects(&s3, &names.bucket).await?;
        if archive.rows != loaded.records {
            bail!("the archive holds {} rows, {} were handed off", archive.rows, loaded.records);
        }
        eprintln!("[{NAME}] control: {} syncs through its API, then status polls ...", plan.control_workspaces);
        let control = control_load::run(&at, plan.control_workspaces, plan.poll_rounds).await?;
        Ok(Measured {
            plan,
            records: loaded.records,
            handoff_files: files.len() as u64,
            handoff_bytes,
            archiver,
            archive_objects: archive.objects,
            archive_rows: archive.rows,
            archive_bytes: archive.bytes,
            control,
        })
    }
    .await;
    if !at.keep_objects {
        crate::s3::delete_buckets(&s3, &[&names.bucket], NAME).await;
    }
    let topics: Vec<String> = sources.into_iter().chain([names.handoff.clone(), names.dead_letters.clone()]).collect();
    if let Err(e) = crate::kafka::delete_topics(at.bootstrap, &topics).await {
        eprintln!("[{NAME}] could not delete the run's topics: {e:#}");
    }
    run
}

/// Runs ingest until every one of the `records` pre-loaded is in a handed-off file, then stops
/// it; the files handed off.
async fn hand_off(at: &Place<'_>, plan: &Plan, names: &RunNames, records: u64) -> anyhow::Result<Vec<HandedOff>> {
    let scenario = &plan.scenario();
    crate::kafka::create_topics(at.bootstrap, std::slice::from_ref(&names.handoff), plan.handoff_partitions).await?;
    crate::kafka::create_topics(at.bootstrap, std::slice::from_ref(&names.dead_letters), 1).await?;
    let reader = handoff_files::Reader::start(at.bootstrap, &names.handoff)?;
    let mut ingest =
        Service::start("ingest", at.bin_dir, &at.dir, &[], |port| services::ingest_config(scenario, names, port))?;
    let (mut seen, mut last_progress) = (0, Instant::now());
    loop {
        tokio::time::sleep(TICK).await;
        ingest.check_running()?;
        let rows: u64 = reader.files().iter().map(|f| f.rows).sum();
        if rows >= records {
            break;
        }
        if rows != seen {
            (seen, last_progress) = (rows, Instant::now());
        } else if last_progress.elapsed() > STALL {
            bail!(
                "ingest handed off {rows} of {records} rows and nothing more for {STALL:?}; the end of {}:\n{}",
                ingest.log.display(),
                ingest.log_tail(20)
            );
        }
    }
    ingest.stop();
    reader.stop()
}
