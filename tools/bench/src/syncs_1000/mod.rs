//! `--scenario syncs-1000`: 1,000 syncs created in the same minute through control's REST API,
//! each asking for its initial syncs, delivered by the real `dwsync-backfill` binary
//! (docs/PERFORMANCE.md, Many initial syncs at once).
//!
//! The archive is written directly with the archive's object writer (as `backfill-large`), for
//! `workspaces` workspaces from [`FIRST_WS`] on, each with a few tables of tens to hundreds of
//! rows ([`archive`]). The handoff topic gets as many plain records per partition as the archive's
//! batches span, so the cut records control writes come after the archive's end with only other
//! cut records between (what an archive that has caught up looks like to the backfill). Then
//! `dwsync-control` and `dwsync-backfill` run as processes (default settings but the run's topics
//! and buckets; `--backfill-env` passes overrides), the syncs are created through
//! `POST /v1/workspaces/{id}/sync` (a few requests in flight) and every workspace's
//! `GET /v1/workspaces/{id}/status` is polled until all its initial syncs are done ([`watch`]).
//!
//! Reported: the time from the first create to the last done, the most jobs running at once (the
//! backfill's `dwsync_backfill_jobs_running`, sampled) against `backfill.concurrency`, each
//! workspace's created → done latency, how far the completion order departs from the creation
//! order, and the status's accuracy: each table's state only moves forward (queued → running →
//! done), a table is never seen done before its file is in the bucket, and at the end every
//! baseline file is there with the rows archived. Any accuracy failure fails the run.

mod archive;
pub(crate) mod stack;
pub(crate) mod watch;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::report::Latency;
use crate::services::Place;
use stack::Topics;

/// The scenario's name.
pub(crate) const NAME: &str = "syncs-1000";

/// The first workspace id of the run (ids are fresh per run's topics and buckets anyway).
const FIRST_WS: i64 = 7_000_000;

/// Partitions of the run's handoff topic.
const PARTITIONS: i32 = 16;

/// The seal key control and the backfill share.
const SEAL_KEY: [u8; 32] = [0x6b; 32];

/// Control's admin token in the run.
const ADMIN_TOKEN: &str = "bench-admin-token";

/// Sync creations in flight at once.
const CREATES_IN_FLIGHT: usize = 8;

/// A run with no table newly done for this long fails.
const STALL: Duration = Duration::from_secs(180);

/// The backfill's default `backfill.concurrency` (the run reports the one it set).
const DEFAULT_CONCURRENCY: u64 = 2;

/// How many workspaces: 1,000 times `scale`, 20 with `smoke`.
pub(crate) fn workspaces(smoke: bool, scale: f64) -> u64 {
    if smoke { 20 } else { ((1_000.0 * scale).round() as u64).max(1) }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measured {
    workspaces: u64,
    archive_rows: u64,
    /// `backfill.concurrency` of the run.
    concurrency: u64,
    /// Overrides given to the backfill (`--backfill-env`).
    backfill_env: Vec<String>,
    /// From the first create sent to the last create answered.
    create_secs: f64,
    /// From the first create sent to every initial sync seen done.
    all_done_secs: f64,
    /// The most jobs the backfill said it ran at once (`dwsync_backfill_jobs_running`, sampled
    /// every 200 ms).
    max_running_jobs: u64,
    /// The most workspaces seen `running` in one round of status polls.
    max_running_seen: u64,
    /// Created (201) → every table seen done, per workspace.
    created_to_done: Latency,
    /// How long one round of status polls over every workspace took at most.
    max_poll_round_ms: i64,
    /// Completion order against creation order.
    order: watch::Order,
    /// The status's accuracy.
    accuracy: watch::Accuracy,
    /// Baseline files found in the bucket at the end, and their rows.
    files: u64,
    rows: u64,
    backfill_cpu_secs: f64,
    backfill_peak_rss_bytes: u64,
    control_cpu_secs: f64,
}

impl Measured {
    /// The table printed for the run.
    pub(crate) fn render(&self) -> String {
        let n = crate::scenario::thousands;
        let mut out = format!(
            "== {NAME}: {} syncs created through control's API, {} archive rows ==\n",
            n(self.workspaces),
            n(self.archive_rows)
        );
        if !self.backfill_env.is_empty() {
            out += &format!("backfill overrides: {}\n", self.backfill_env.join(" "));
        }
        out += &format!(
            "created in {:.1} s; every initial sync done {:.1} s after the first create ({:.1} workspaces/s)\n",
            self.create_secs,
            self.all_done_secs,
            self.workspaces as f64 / self.all_done_secs.max(1e-9)
        );
        out += &format!(
            "jobs running at once: at most {} (dwsync_backfill_jobs_running), {} seen running in one poll round; backfill.concurrency {}\n",
            self.max_running_jobs, self.max_running_seen, self.concurrency
        );
        let l = &self.created_to_done;
        out += &format!(
            "created → done per workspace: p50 {:.1} s, p99 {:.1} s, max {:.1} s (status polled in rounds of at most {:.1} s)\n",
            l.p50_ms as f64 / 1e3,
            l.p99_ms as f64 / 1e3,
            l.max_ms as f64 / 1e3,
            self.max_poll_round_ms as f64 / 1e3
        );
        out += &self.order.render();
        out += &self.accuracy.render();
        out += &format!(
            "bucket: {} baseline files, {} rows, as archived; backfill CPU {:.1} s, peak RSS {:.0} MiB; control CPU {:.1} s\n",
            n(self.files),
            n(self.rows),
            self.backfill_cpu_secs,
            self.backfill_peak_rss_bytes as f64 / (1 << 20) as f64,
            self.control_cpu_secs
        );
        out
    }
}

/// Where the run is, and the services' extra environment.
pub(crate) struct Setup<'a> {
    /// The broker, S3, the binaries, the run's directory and names.
    pub(crate) at: Place<'a>,
    /// Extra environment for the backfill.
    pub(crate) backfill_env: &'a [(String, String)],
}

/// Writes the archive, starts control and the backfill, creates the syncs and watches them.
pub(crate) async fn run(setup: Setup<'_>, workspaces: u64) -> anyhow::Result<Measured> {
    std::fs::create_dir_all(&setup.at.dir)?;
    let s3 = crate::s3::client(setup.at.s3);
    let topics = Topics::new(&format!("{}.{NAME}", setup.at.run_id));
    let (archive_bucket, dest) = (format!("{}-s1k-archive", setup.at.run_id), format!("{}-s1k-dest", setup.at.run_id));
    for bucket in [&archive_bucket, &dest] {
        crate::s3::create_bucket(&s3, setup.at.s3, bucket).await?;
    }
    crate::kafka::create_topics(setup.at.bootstrap, std::slice::from_ref(&topics.handoff), PARTITIONS).await?;
    let ids: Vec<i64> = (0..workspaces).map(|i| FIRST_WS + i as i64).collect();
    eprintln!("[{NAME}] writing the archive of {workspaces} workspaces ...");
    let started = Instant::now();
    let written = archive::write(&s3, &archive_bucket, setup.at.bootstrap, &topics.handoff, &ids).await?;
    eprintln!(
        "[{NAME}] archive written: {} rows in {:.1} s; starting control and the backfill ...",
        written.rows,
        started.elapsed().as_secs_f64()
    );

    let result = run_services(&setup, &topics, &archive_bucket, &dest, &written).await;
    if !setup.at.keep_objects {
        crate::s3::delete_buckets(&s3, &[&archive_bucket, &dest], NAME).await;
    }
    if let Err(e) = crate::kafka::delete_topics(setup.at.bootstrap, &topics.all()).await {
        eprintln!("[{NAME}] could not delete the run's topics: {e:#}");
    }
    result
}

async fn run_services(
    setup: &Setup<'_>,
    topics: &Topics,
    archive_bucket: &str,
    dest: &str,
    written: &archive::Written,
) -> anyhow::Result<Measured> {
    let api_port = crate::services::free_port()?;
    let stack = stack::Stack { at: &setup.at, topics, seal_key: SEAL_KEY, admin_token: ADMIN_TOKEN };
    let mut control = stack.control(api_port)?;
    let mut backfill = stack.backfill(archive_bucket, archive::PREFIX, setup.backfill_env)?;
    control.wait_ready(Duration::from_secs(60))?;
    backfill.wait_ready(Duration::from_secs(60))?;
    let concurrency = setup
        .backfill_env
        .iter()
        .find(|(k, _)| k == "DWSYNC_BACKFILL__CONCURRENCY")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(DEFAULT_CONCURRENCY);

    let api = watch::Api::new(format!("http://127.0.0.1:{api_port}"), ADMIN_TOKEN, setup.at.s3, dest);
    eprintln!("[{NAME}] creating {} syncs through the API, polling their status ...", written.expected.len());
    let services = watch::Services { control: &mut control, backfill: &mut backfill };
    let watched = watch::run(&api, services, &written.expected, CREATES_IN_FLIGHT, STALL).await?;
    let (backfill_cpu_secs, backfill_peak_rss_bytes) = (
        crate::procstat::cpu_seconds(backfill.pid()).unwrap_or(0.0),
        crate::procstat::peak_rss_bytes(backfill.pid()).unwrap_or(0),
    );
    let control_cpu_secs = crate::procstat::cpu_seconds(control.pid()).unwrap_or(0.0);
    backfill.stop();
    control.stop();

    eprintln!("[{NAME}] checking every baseline file in the bucket ...");
    let (files, rows) = api.check_bucket(&written.expected).await?;
    if !watched.accuracy.is_exact() {
        bail!("the status was not accurate:\n{}", watched.accuracy.render());
    }
    let mut backfill_env: Vec<String> = setup.backfill_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    backfill_env.sort();
    Ok(Measured {
        workspaces: written.expected.len() as u64,
        archive_rows: written.rows,
        concurrency,
        backfill_env,
        create_secs: watched.create_secs,
        all_done_secs: watched.all_done_secs,
        max_running_jobs: watched.max_running_jobs,
        max_running_seen: watched.max_running_seen,
        created_to_done: Latency::of(watched.created_to_done_ms.clone()),
        max_poll_round_ms: watched.max_poll_round_ms,
        order: watched.order,
        accuracy: watched.accuracy,
        files,
        rows,
        backfill_cpu_secs,
        backfill_peak_rss_bytes,
        control_cpu_secs,
    })
}

/// What each workspace's baseline holds: per table its file's key (`None`: no rows, no file)
/// and rows.
pub(crate) type Expected = BTreeMap<i64, BTreeMap<dwsync_contract::Table, (Option<String>, u64)>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_names_fresh_topics_for_every_store_key() {
        let topics = Topics::new("bench-1.syncs-1000");
        let toml = topics.store_toml();
        assert!(toml.contains("topic = \"bench-1.syncs-1000.topic\"\n"), "{toml}");
        assert!(toml.contains("initial_sync_topic = \"bench-1.syncs-1000.initial-sync\"\n"), "{toml}");
        assert!(toml.contains("archive_purge_status_topic = \"bench-1.syncs-1000.archive-purge-status\"\n"));
        assert_eq!(topics.all().len(), 7);
        assert_eq!((workspaces(true, 1.0), workspaces(false, 1.0), workspaces(false, 0.1)), (20, 1_000, 100));
    }
}
