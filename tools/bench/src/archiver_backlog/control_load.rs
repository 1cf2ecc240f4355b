//! `dwsync-control` under API load: many workspaces' syncs created through its API (each asking
//! for its initial syncs, which stay queued: no backfill runs), then rounds of status requests
//! over every workspace; its peak RSS and CPU.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::procstat;
use crate::services::Place;
use crate::syncs_1000::stack::{Stack, Topics};
use crate::syncs_1000::watch::Api;

/// The first workspace id of the run.
const FIRST_WS: i64 = 9_000_000;

/// Partitions of the run's handoff topic (control writes the initial syncs' cut records there).
const PARTITIONS: i32 = 16;

/// Requests in flight at once.
const IN_FLIGHT: usize = 8;

/// The seal key of the run.
const SEAL_KEY: [u8; 32] = [0x3d; 32];

/// Control's admin token in the run.
const ADMIN_TOKEN: &str = "bench-admin-token";

/// What control's run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Loaded {
    /// Syncs created.
    pub(crate) workspaces: u64,
    /// From the first create sent to the last answered.
    pub(crate) create_secs: f64,
    /// Status requests answered, and how long they took in all.
    pub(crate) polls: u64,
    pub(crate) poll_secs: f64,
    /// `VmHWM` at the end.
    pub(crate) peak_rss_bytes: u64,
    /// CPU time (user + system).
    pub(crate) cpu_secs: f64,
}

impl Loaded {
    /// Its line of the report.
    pub(crate) fn render(&self) -> String {
        format!(
            "control: {} syncs created in {:.1} s, {} status requests in {:.1} s ({:.0}/s); peak RSS {:.0} MiB, CPU {:.1} s\n",
            self.workspaces,
            self.create_secs,
            self.polls,
            self.poll_secs,
            self.polls as f64 / self.poll_secs.max(1e-9),
            self.peak_rss_bytes as f64 / f64::from(1u32 << 20),
            self.cpu_secs
        )
    }
}

/// Starts control on fresh topics, creates `workspaces` syncs, polls every status
/// `rounds` times, and stops it.
pub(crate) async fn run(at: &Place<'_>, workspaces: u64, rounds: u32) -> anyhow::Result<Loaded> {
    let topics = Topics::new(&format!("{}.{}.control", at.run_id, super::NAME));
    let dest = format!("{}-archiver-backlog-dest", at.run_id);
    let s3 = crate::s3::client(at.s3);
    crate::s3::create_bucket(&s3, at.s3, &dest).await?;
    let result = async {
        crate::kafka::create_topics(at.bootstrap, std::slice::from_ref(&topics.handoff), PARTITIONS).await?;
        let api_port = crate::services::free_port()?;
        let stack = Stack { at, topics: &topics, seal_key: SEAL_KEY, admin_token: ADMIN_TOKEN };
        let mut control = stack.control(api_port)?;
        control.wait_ready(Duration::from_secs(60))?;
        let api = Api::new(format!("http://127.0.0.1:{api_port}"), ADMIN_TOKEN, at.s3, &dest);
        let ids: Vec<i64> = (0..workspaces).map(|i| FIRST_WS + i as i64).collect();

        let started = Instant::now();
        each(&api, &ids, |api, ws| async move { api.create(ws).await }).await?;
        let create_secs = started.elapsed().as_secs_f64();
        control.check_running()?;
        let started = Instant::now();
        for _ in 0..rounds {
            each(&api, &ids, |api, ws| async move { api.progress(ws).await.map(drop) }).await?;
        }
        let poll_secs = started.elapsed().as_secs_f64();
        control.check_running()?;
        let loaded = Loaded {
            workspaces,
            create_secs,
            polls: workspaces * u64::from(rounds),
            poll_secs,
            peak_rss_bytes: procstat::peak_rss_bytes(control.pid()).unwrap_or(0),
            cpu_secs: procstat::cpu_seconds(control.pid()).unwrap_or(0.0),
        };
        control.stop();
        Ok(loaded)
    }
    .await;
    if !at.keep_objects {
        crate::s3::delete_buckets(&s3, &[&dest], super::NAME).await;
    }
    if let Err(e) = crate::kafka::delete_topics(at.bootstrap, &topics.all()).await {
        eprintln!("[{}] could not delete control's topics: {e:#}", super::NAME);
    }
    result
}

/// Runs `request` for every workspace of `ids`, [`IN_FLIGHT`] at once; the first failure fails.
async fn each<F, Fut>(api: &Api, ids: &[i64], request: F) -> anyhow::Result<()>
where
    F: Fn(Api, i64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut running = JoinSet::new();
    for &ws in ids {
        if running.len() >= IN_FLIGHT
            && let Some(done) = running.join_next().await
        {
            done.context("a request task failed")??;
        }
        let _ = running.spawn(request(api.clone(), ws));
    }
    while let Some(done) = running.join_next().await {
        done.context("a request task failed")??;
    }
    Ok(())
}
