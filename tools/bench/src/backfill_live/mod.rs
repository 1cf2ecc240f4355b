//! `--scenario backfill-live`: other workspaces' close → visible while one large workspace's
//! initial sync runs (docs/PERFORMANCE.md, Backfill, "A live stream during a large backfill").
//!
//! The archive of one large workspace is written directly, as `backfill-large` writes it (sizes
//! from `--scale`), on a handoff partition none of the live workspaces hands off to; the
//! partition gets as many records (epoch-0 cut records, which every reader passes over) as the
//! archive spans, so control's cut comes right after the archive's end. Then `dwsync-control`,
//! `dwsync-backfill`, `dwsync-uploader` (its static destinations for the live workspaces, and
//! control's configurations followed) and `dwsync-ingest` run as processes, and a steady stream
//! of metrics for [`LIVE_WORKSPACES`] other workspaces flows ([`live`]). After a stretch of
//! stream alone, the large workspace's sync is created through control's API; the stream goes on
//! until its status says every initial sync is done. Then every streamed record must be in a
//! file in the bucket.
//!
//! Reported: close → visible (p50/p99/max) of the live files closed during the backfill, and of
//! those closed in the stretch before the sync was created; the backfill's duration (sync
//! created → every initial sync done, status polled every 500 ms) and archive rows/s; CPU
//! seconds per process over both stretches (`/proc`), with the broker, the S3 server and the rest
//! of the machine.

mod live;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use dwsync_archive::handoff_partition;
use dwsync_contract::Table;
use dwsync_loadgen::{DEFAULT_EXPONENT, Workspaces};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Serialize;

use crate::backfill_large::{self, Archived, Size};
use crate::machine_cpu::Neighbours;
use crate::report::Latency;
use crate::scenario::{EncodingMode, Scenario, thousands};
use crate::services::{Place, RunNames, Service};
use crate::syncs_1000::stack::{Stack, Topics};
use crate::syncs_1000::watch::Api;

/// The scenario's name.
pub(crate) const NAME: &str = "backfill-live";

/// The large workspace is the first id from here on a handoff partition of its own.
const FIRST_WS: i64 = 8_000_000;

/// The workspace of the epoch-0 cut records filling the archive's offsets.
const FILLER_WS: i64 = 8_999_999;

/// Partitions of the handoff topic (ingest's default `handoff_partitions`).
const HANDOFF_PARTITIONS: i32 = 48;

/// Live workspaces (20 with `--smoke`).
const LIVE_WORKSPACES: usize = 100;

/// The stream's records are generated for at most this long (it stops when the sync is done).
const STREAM_CAP: Duration = Duration::from_secs(4 * 3600);

/// The seal key control, the backfill and the uploader share.
const SEAL_KEY: [u8; 32] = [0x7c; 32];

/// Control's admin token in the run.
const ADMIN_TOKEN: &str = "bench-admin-token";

/// What a run measures, and how long.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Plan {
    /// The large workspace's archive.
    pub(crate) size: Size,
    /// Live workspaces.
    pub(crate) workspaces: usize,
    /// Records per second offered by the stream.
    pub(crate) rate: f64,
    /// Ingest's window.
    pub(crate) window_ms: u64,
    /// Source partitions of the stream.
    pub(crate) partitions: i32,
    /// The stretch of stream alone measured before the sync is created (after two windows of
    /// warm-up).
    pub(crate) before_secs: u64,
    /// The generator's seed.
    pub(crate) seed: u64,
}

impl Plan {
    /// Full: `backfill-large`'s sizes times `scale`, 100 workspaces at 2,000 records/s, 5-s
    /// windows, 4 partitions, 60 s before. Smoke: its smoke size, 20 workspaces at 200 records/s,
    /// 1-s windows, 1 partition, 3 s before.
    pub(crate) fn of(smoke: bool, scale: f64, rate: Option<f64>, window_ms: Option<u64>, seed: u64) -> Self {
        let (workspaces, default_rate, window, partitions, before_secs) =
            if smoke { (20, 200.0, 1_000, 1, 3) } else { (LIVE_WORKSPACES, 2_000.0, 5_000, 4, 60) };
        Self {
            size: Size::of(smoke, scale),
            workspaces,
            rate: rate.unwrap_or(default_rate),
            window_ms: window_ms.unwrap_or(window),
            partitions,
            before_secs,
            seed,
        }
    }

    /// The live stream as a scenario: metrics as JSON, Zipf 1.1, as many records as
    /// [`STREAM_CAP`] at the rate.
    fn stream(&self) -> Scenario {
        Scenario {
            name: NAME,
            tables: vec![Table::Metrics],
            encoding: EncodingMode::Json,
            workspaces: self.workspaces,
            skew: DEFAULT_EXPONENT,
            records_per_table: (self.rate * STREAM_CAP.as_secs_f64()).round() as u64,
            partitions: self.partitions,
            window_ms: self.window_ms,
        }
    }
}

/// Close → visible and CPU over one stretch of the run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stretch {
    /// How long it lasted.
    pub(crate) secs: f64,
    /// Close → visible of the live files whose window closed in it.
    pub(crate) visible: Latency,
    /// CPU seconds used in it: per service, `harness` (this process: the stream's producer and
    /// the readers), `broker`, `s3_server`, `rest` (the machine's remainder: other work on the
    /// machine) and `machine`.
    pub(crate) cpu_secs: BTreeMap<String, f64>,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measured {
    plan: Plan,
    large_workspace: i64,
    archive_rows: u64,
    archive_bytes: u64,
    write_archive_secs: f64,
    /// Sync created → every initial sync seen done.
    backfill_secs: f64,
    rows_per_sec: f64,
    /// Rows and files the status reports for the baselines.
    baseline_rows: u64,
    baseline_files: u64,
    /// Status polls that showed a failed initial sync (tried again).
    failed_seen: u64,
    backfill_peak_rss_bytes: u64,
    live_records: u64,
    live_files: u64,
    before: Stretch,
    during: Stretch,
}

impl Measured {
    /// The table printed for the run.
    pub(crate) fn render(&self) -> String {
        let p = &self.plan;
        let mut out = format!(
            "== {NAME}: workspace {}'s initial sync ({} people, {} attribute changes, {} metrics) while {} other workspaces stream ==\n",
            self.large_workspace,
            thousands(p.size.people),
            thousands(p.size.attributes),
            thousands(p.size.metrics),
            p.workspaces
        );
        out += &format!(
            "live stream: metrics as JSON, Zipf 1.1, {} records/s offered, window {} s, {} source partition(s): {} records in {} files, every one in the bucket\n",
            thousands(p.rate.round() as u64),
            p.window_ms as f64 / 1e3,
            p.partitions,
            thousands(self.live_records),
            thousands(self.live_files)
        );
        out += &format!(
            "archive: {} rows, {:.0} MiB, written in {:.1} s\n",
            thousands(self.archive_rows),
            self.archive_bytes as f64 / f64::from(1 << 20),
            self.write_archive_secs
        );
        out += &format!(
            "backfill: {:.1} s from the sync created to every initial sync done: {} archive rows/s; baselines {} rows in {} files; peak RSS {:.0} MiB; failed attempts seen {}\n",
            self.backfill_secs,
            thousands(self.rows_per_sec as u64),
            thousands(self.baseline_rows),
            self.baseline_files,
            self.backfill_peak_rss_bytes as f64 / f64::from(1 << 20),
            self.failed_seen
        );
        out += "close → visible of the other workspaces' files  | files | p50 | p99 | max\n";
        for (label, s) in [("before the sync was created", &self.before), ("during the backfill", &self.during)] {
            let l = &s.visible;
            out += &format!(
                "  {label} ({:.0} s) | {} | {:.1} s | {:.1} s | {:.1} s\n",
                s.secs,
                l.files,
                l.p50_ms as f64 / 1e3,
                l.p99_ms as f64 / 1e3,
                l.max_ms as f64 / 1e3
            );
        }
        out += "CPU seconds (cores) | before | during\n";
        for name in self.during.cpu_secs.keys() {
            let of = |s: &Stretch| {
                let secs = s.cpu_secs.get(name).copied().unwrap_or(0.0);
                format!("{secs:.1} ({:.2})", secs / s.secs.max(1e-9))
            };
            out += &format!("  {name} | {} | {}\n", of(&self.before), of(&self.during));
        }
        out
    }
}

/// Where the run is, and the services' extra environment.
pub(crate) struct Setup<'a> {
    /// The broker, S3, the binaries, the run's directory and names.
    pub(crate) at: Place<'a>,
    /// Extra environment of ingest, the uploader and the backfill.
    pub(crate) env: [&'a [(String, String)]; 3],
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Runs the scenario; the run's buckets and topics are deleted afterwards, whatever happened.
pub(crate) async fn run(setup: Setup<'_>, plan: Plan) -> anyhow::Result<Measured> {
    std::fs::create_dir_all(&setup.at.dir)?;
    let s3 = crate::s3::client(setup.at.s3);
    let base = format!("{}.{NAME}", setup.at.run_id);
    let topics = Topics::new(&base);
    let names = RunNames {
        bootstrap: setup.at.bootstrap.to_owned(),
        topic_prefix: format!("{base}.source."),
        handoff: topics.handoff.clone(),
        dead_letters: format!("{base}.dead-letters"),
        lot: format!("{base}.lot"),
        group_prefix: base.clone(),
        bucket: format!("{}-bl-dest", setup.at.run_id),
        window_ms: plan.window_ms,
    };
    let archive_bucket = format!("{}-bl-archive", setup.at.run_id);
    let stream = plan.stream();
    let sources = crate::preload::topic_names(&stream, &names.topic_prefix);
    let result = async {
        for bucket in [&archive_bucket, &names.bucket] {
            crate::s3::create_bucket(&s3, setup.at.s3, bucket).await?;
        }
        crate::kafka::create_topics(setup.at.bootstrap, std::slice::from_ref(&names.handoff), HANDOFF_PARTITIONS)
            .await?;
        crate::kafka::create_topics(setup.at.bootstrap, std::slice::from_ref(&names.dead_letters), 1).await?;
        crate::kafka::create_topics(setup.at.bootstrap, &sources, plan.partitions).await?;
        run_services(&setup, &plan, &stream, &topics, &names, &archive_bucket).await
    }
    .await;
    if !setup.at.keep_objects {
        crate::s3::delete_buckets(&s3, &[&archive_bucket, &names.bucket], NAME).await;
    }
    let mut all = topics.all();
    all.extend([names.dead_letters.clone(), names.lot.clone()]);
    all.extend(sources);
    if let Err(e) = crate::kafka::delete_topics(setup.at.bootstrap, &all).await {
        eprintln!("[{NAME}] could not delete the run's topics: {e:#}");
    }
    let _ = std::fs::remove_dir_all(setup.at.dir.join("spill"));
    result
}

/// The first workspace from [`FIRST_WS`] whose handoff partition none of the live workspaces
/// uses, and that partition.
fn large_workspace(live: usize) -> anyhow::Result<(i64, i32)> {
    let used: BTreeSet<i32> = Workspaces::zipf(live, DEFAULT_EXPONENT)
        .ids()
        .iter()
        .filter_map(|ws| handoff_partition(*ws, HANDOFF_PARTITIONS))
        .collect();
    (FIRST_WS..FIRST_WS + 10_000)
        .find_map(|ws| handoff_partition(ws, HANDOFF_PARTITIONS).filter(|p| !used.contains(p)).map(|p| (ws, p)))
        .with_context(|| {
            format!("the {live} live workspaces use every one of the {HANDOFF_PARTITIONS} handoff partitions")
        })
}

/// Produces `n` epoch-0 cut records onto `partition`: the offsets the archive spans.
async fn fill(bootstrap: &str, topic: &str, partition: i32, n: i64) -> anyhow::Result<()> {
    let producer: FutureProducer = crate::kafka::config(bootstrap)
        .set("linger.ms", "20")
        .set("enable.idempotence", "true")
        .create()
        .context("a Kafka producer")?;
    let value = dwsync_handoff::Cut { workspace_id: FILLER_WS, epoch: 0 }.header_value();
    let mut sent = Vec::new();
    for _ in 0..n {
        let headers =
            OwnedHeaders::new().insert(Header { key: dwsync_handoff::CUT_HEADER, value: Some(value.as_str()) });
        let record = FutureRecord::<(), [u8]>::to(topic).partition(partition).headers(headers);
        sent.push(producer.send_result(record).map_err(|(e, _)| e).context("producing a handoff record")?);
    }
    for delivery in sent {
        let _ = delivery.await.context("a handoff record's delivery")?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// CPU seconds so far of the named processes, the broker, the S3 server and the machine.
fn cpu_now(pids: &[(&'static str, u32)], neighbours: &Neighbours) -> BTreeMap<String, f64> {
    let machine = neighbours.sample();
    let mut out: BTreeMap<String, f64> = pids
        .iter()
        .map(|(name, pid)| ((*name).to_owned(), crate::procstat::cpu_seconds(*pid).unwrap_or(0.0)))
        .collect();
    let _ = out.insert("broker".into(), machine.broker.unwrap_or(0.0));
    let _ = out.insert("s3_server".into(), machine.s3_server.unwrap_or(0.0));
    let _ = out.insert("machine".into(), machine.machine);
    out
}

/// `to − from` per process, and `rest`: the machine's time no listed process used.
fn cpu_between(from: &BTreeMap<String, f64>, to: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> =
        to.iter().map(|(k, v)| (k.clone(), (v - from.get(k).copied().unwrap_or(0.0)).max(0.0))).collect();
    let parts: f64 = out.iter().filter(|(k, _)| k.as_str() != "machine").map(|(_, v)| v).sum();
    let rest = (out.get("machine").copied().unwrap_or(0.0) - parts).max(0.0);
    let _ = out.insert("rest".into(), rest);
    out
}

async fn run_services(
    setup: &Setup<'_>,
    plan: &Plan,
    stream: &Scenario,
    topics: &Topics,
    names: &RunNames,
    archive_bucket: &str,
) -> anyhow::Result<Measured> {
    let s3 = crate::s3::client(setup.at.s3);
    let (ws, partition) = large_workspace(plan.workspaces)?;
    eprintln!("[{NAME}] writing workspace {ws}'s archive ({:?}) on handoff partition {partition} ...", plan.size);
    let started = Instant::now();
    let archived: Archived = backfill_large::write_archive(&s3, archive_bucket, ws, plan.size, partition).await?;
    let write_archive_secs = started.elapsed().as_secs_f64();
    fill(setup.at.bootstrap, &names.handoff, partition, archived.end).await?;
    eprintln!(
        "[{NAME}] archive written: {} rows in {write_archive_secs:.1} s; starting control, the backfill, the uploader and ingest ...",
        archived.rows
    );

    let stack = Stack { at: &setup.at, topics, seal_key: SEAL_KEY, admin_token: ADMIN_TOKEN };
    let [ingest_env, uploader_env, backfill_env] = setup.env;
    let api_port = crate::services::free_port()?;
    let mut control = stack.control(api_port)?;
    let mut backfill = stack.backfill(archive_bucket, backfill_large::PREFIX, backfill_env)?;
    control.wait_ready(Duration::from_secs(60))?;
    backfill.wait_ready(Duration::from_secs(60))?;
    let mut uploader_env = uploader_env.to_vec();
    uploader_env.extend(stack.seal_env());
    let store = topics.store_toml();
    eprintln!(
        "[{NAME}] live stream: {} workspaces, {} records/s, window {} ms",
        plan.workspaces, plan.rate, plan.window_ms
    );
    let mut pipeline = live::Pipeline::start(live::Start {
        scenario: stream,
        names,
        s3: setup.at.s3,
        bin_dir: setup.at.bin_dir,
        dir: &setup.at.dir,
        store: &store,
        env: [ingest_env, &uploader_env],
        seed: plan.seed,
        rate: plan.rate,
    })?;
    let pids = |p: &live::Pipeline, backfill: &Service, control: &Service| {
        let [ingest, uploader] = p.pids();
        [ingest, uploader, ("backfill", backfill.pid()), ("control", control.pid()), ("harness", std::process::id())]
    };
    let neighbours = Neighbours::find(setup.at.bootstrap, &setup.at.s3.endpoint);
    let check = |p: &mut live::Pipeline, backfill: &mut Service, control: &mut Service| -> anyhow::Result<()> {
        p.check()?;
        backfill.check_running()?;
        control.check_running()
    };

    // Warm-up, then the stretch of stream alone.
    let before_from = now_ms() + 2 * plan.window_ms as i64;
    while now_ms() < before_from {
        check(&mut pipeline, &mut backfill, &mut control)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu_before = cpu_now(&pids(&pipeline, &backfill, &control), &neighbours);
    eprintln!("[{NAME}] measuring the stream alone for {} s ...", plan.before_secs);
    let created_ms = before_from + plan.before_secs as i64 * 1_000;
    while now_ms() < created_ms {
        check(&mut pipeline, &mut backfill, &mut control)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu_created = cpu_now(&pids(&pipeline, &backfill, &control), &neighbours);

    eprintln!(
        "[{NAME}] creating workspace {ws}'s sync through control's API; streaming until its initial sync is done ..."
    );
    let api = Api::new(format!("http://127.0.0.1:{api_port}"), ADMIN_TOKEN, setup.at.s3, &names.bucket);
    let created_ms = now_ms();
    api.create(ws).await?;
    let (mut failed_seen, mut peak_rss) = (0u64, 0u64);
    let progress = loop {
        check(&mut pipeline, &mut backfill, &mut control)?;
        peak_rss = peak_rss.max(crate::procstat::peak_rss_bytes(backfill.pid()).unwrap_or(0));
        let progress = api.progress(ws).await?;
        failed_seen += u64::from(progress.failed > 0);
        if progress.all_done() {
            break progress;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let done_ms = now_ms();
    let cpu_done = cpu_now(&pids(&pipeline, &backfill, &control), &neighbours);
    peak_rss = peak_rss.max(crate::procstat::peak_rss_bytes(backfill.pid()).unwrap_or(0));
    eprintln!(
        "[{NAME}] initial sync done after {:.1} s; stopping the stream, checking every live record ...",
        (done_ms - created_ms) as f64 / 1e3
    );
    let stall = Duration::from_millis((4 * plan.window_ms).max(60_000));
    let finished = pipeline.finish(&s3, stall).await?;
    backfill.stop();
    control.stop();

    let latency = |from: i64, to: i64| {
        Latency::of(
            finished
                .files
                .iter()
                .filter(|f| (from..to).contains(&f.closed_at_ms))
                .filter_map(|f| Some(finished.visible.get(&f.key)? - f.closed_at_ms))
                .collect(),
        )
    };
    let before = Stretch {
        secs: (created_ms - before_from) as f64 / 1e3,
        visible: latency(before_from, created_ms),
        cpu_secs: cpu_between(&cpu_before, &cpu_created),
    };
    let during = Stretch {
        secs: (done_ms - created_ms) as f64 / 1e3,
        visible: latency(created_ms, done_ms + 1),
        cpu_secs: cpu_between(&cpu_created, &cpu_done),
    };
    if during.visible.files == 0 {
        bail!("no live file closed during the backfill ({:.1} s): nothing measured", during.secs);
    }
    let backfill_secs = during.secs;
    Ok(Measured {
        plan: *plan,
        large_workspace: ws,
        archive_rows: archived.rows,
        archive_bytes: archived.bytes,
        write_archive_secs,
        backfill_secs,
        rows_per_sec: archived.rows as f64 / backfill_secs.max(1e-9),
        baseline_rows: progress.rows,
        baseline_files: progress.files,
        failed_seen,
        backfill_peak_rss_bytes: peak_rss,
        live_records: finished.records,
        live_files: finished.files.len() as u64,
        before,
        during,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_large_workspace_has_a_handoff_partition_of_its_own() {
        for live in [20, LIVE_WORKSPACES] {
            let (ws, partition) = large_workspace(live).expect("a free partition");
            assert!(ws >= FIRST_WS);
            let ids = Workspaces::zipf(live, DEFAULT_EXPONENT);
            assert!(ids.ids().iter().all(|id| handoff_partition(*id, HANDOFF_PARTITIONS) != Some(partition)));
        }
    }

    #[test]
    fn cpu_between_keeps_the_rest_of_the_machine() {
        let at = |i: f64, m: f64| BTreeMap::from([("ingest".to_owned(), i), ("machine".to_owned(), m)]);
        let d = cpu_between(&at(1.0, 10.0), &at(3.0, 15.0));
        assert_eq!((d["ingest"], d["machine"], d["rest"]), (2.0, 5.0, 3.0));
    }

    #[test]
    fn plans_are_small_for_smoke() {
        let smoke = Plan::of(true, 1.0, None, None, 42);
        assert_eq!((smoke.workspaces, smoke.window_ms, smoke.rate), (20, 1_000, 200.0));
        let full = Plan::of(false, 0.1, Some(500.0), None, 42);
        assert_eq!((full.workspaces, full.rate, full.size.people), (100, 500.0, 500_000));
        assert!(full.stream().records() as f64 >= 500.0 * 3_600.0);
    }
}
