//! Row 3: dwsync end to end on the pre-loaded topics — ingest and the uploader as processes,
//! static destinations (one per workspace, all in one fresh bucket), until every record is in
//! an object in S3. With a [`Feed`] the same run reads a steady stream instead: the records are
//! produced at an even pace into empty topics while the services run (`--stream-secs`).
//!
//! While it runs the harness samples both processes' CPU time every 200 ms, follows the handoff
//! topic (each file's key, rows and window close time) and the uploader's log (when each object
//! was written). At the end it looks every handed-off file up in the bucket (one HEAD each), and
//! every object the uploader logged must be a handed-off file.
//!
//! Throughput is records over the *busy* time: from starting ingest to the last object written,
//! minus the time both services sat idle — backlog consumed, files written — waiting for a
//! window's grid point (each source partition closes its windows on its own point of every
//! `window.duration_ms`; that wait is latency, not throughput).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

use crate::handoff_files::{self, HandedOff};
use crate::machine_cpu::{MachineCpu, Neighbours};
use crate::perf::Profiler;
use crate::preload::Loaded;
use crate::report::{CloseGroup, EndToEnd, Latency, Throughput, Usage};
use crate::s3_ceiling::{self, WriteCeiling};
use crate::scenario::Scenario;
use crate::services::{self, RunNames, S3Target, Service};
use crate::soak::{self, OverTime, RssSample, Watch};
use crate::upload_log::UploadLog;
use crate::{kafka, preload, procstat, record_ids, s3};

/// How often the processes, the handoff topic and the log are looked at.
const TICK: Duration = Duration::from_millis(200);

/// A service counts as busy above this share of one core.
const BUSY_CORES: f64 = 0.2;

/// HEAD requests in flight when the objects are looked up after the run.
const LOOKUPS_IN_FLIGHT: usize = 16;

/// Partitions of the handoff topic (ingest's default `handoff_partitions`).
const HANDOFF_PARTITIONS: i32 = 48;

/// What the run needs.
pub(crate) struct Setup<'a> {
    /// The scenario.
    pub(crate) scenario: &'a Scenario,
    /// Its pre-loaded topics.
    pub(crate) loaded: &'a Loaded,
    /// Topic, group and bucket names.
    pub(crate) names: RunNames,
    /// The S3 server.
    pub(crate) s3: &'a S3Target,
    /// Where the service binaries are.
    pub(crate) bin_dir: &'a Path,
    /// Where configs and logs go.
    pub(crate) dir: PathBuf,
    /// Record perf profiles.
    pub(crate) perf: bool,
    /// Extra environment of ingest and of the uploader.
    pub(crate) env: [&'a [(String, String)]; 2],
    /// Keep the bucket and its objects afterwards.
    pub(crate) keep_objects: bool,
    /// Produce the records while the services run (the topics are empty) instead of reading a
    /// backlog.
    pub(crate) feed: Option<Feed>,
    /// Also follow memory and close → visible over time (the soak).
    pub(crate) watch: Option<Watch>,
}

/// A steady stream: the scenario's records produced at an even pace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Feed {
    /// Over how long.
    pub(crate) over: Duration,
    /// The generator's seed (the records of the pre-load).
    pub(crate) seed: u64,
}

/// One CPU sample of ingest and the uploader, and of the machine around them.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: i64,
    /// CPU seconds of ingest and of the uploader so far.
    cpu_secs: [f64; 2],
    /// The machine's, the broker's and the S3 server's so far.
    machine: MachineCpu,
}

/// Whether either service used more than [`BUSY_CORES`] between two samples.
fn working(a: &Sample, b: &Sample) -> bool {
    let secs = (b.at_ms - a.at_ms).max(1) as f64 / 1000.0;
    (0..2).any(|i| (b.cpu_secs[i] - a.cpu_secs[i]) / secs > BUSY_CORES)
}

/// The machine's CPU time over the sample intervals in which ingest or the uploader worked: what
/// the records cost the machine, without the broker's and the S3 server's idle ticking while the
/// services wait for a window to close.
fn while_working(samples: &[Sample]) -> MachineCpu {
    samples
        .windows(2)
        .filter(|w| working(&w[0], &w[1]))
        .fold(MachineCpu::ZERO, |sum, w| sum + (w[1].machine - w[0].machine))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Runs the pipeline over the backlog and measures it.
pub(crate) async fn run(setup: Setup<'_>) -> anyhow::Result<EndToEnd> {
    let Setup {
        scenario,
        loaded,
        names,
        s3: target,
        bin_dir,
        dir,
        perf,
        env: [ingest_env, uploader_env],
        keep_objects,
        feed,
        watch,
    } = setup;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    kafka::create_topics(&names.bootstrap, std::slice::from_ref(&names.handoff), HANDOFF_PARTITIONS).await?;
    kafka::create_topics(&names.bootstrap, std::slice::from_ref(&names.dead_letters), 1).await?;
    let client = s3::client(target);
    s3::create_bucket(&client, target, &names.bucket).await?;
    let reader = handoff_files::Reader::start(&names.bootstrap, &names.handoff)?;

    let mut uploader = Service::start("uploader", bin_dir, &dir, uploader_env, |port| {
        services::uploader_config(scenario, &names, target, port, None)
    })?;
    uploader.wait_ready(Duration::from_secs(120))?;
    let started_ms = now_ms();
    let mut ingest =
        Service::start("ingest", bin_dir, &dir, ingest_env, |port| services::ingest_config(scenario, &names, port))?;
    let profilers: Vec<(&str, Profiler)> = if perf {
        [&ingest, &uploader]
            .iter()
            .filter_map(|s| Some((s.name(), Profiler::start(s.pid(), &dir, s.name())?)))
            .collect()
    } else {
        Vec::new()
    };

    let mut feeder = feed.map(|Feed { over, seed }| {
        let (scenario, bootstrap, topics) = (scenario.clone(), names.bootstrap.clone(), loaded.topics.clone());
        std::thread::spawn(move || preload::produce(&scenario, &bootstrap, &topics, seed, Some(over), None))
    });

    let mut log = UploadLog::new(&uploader.log);
    let neighbours = Neighbours::find(&names.bootstrap, &target.endpoint);
    let mut samples = vec![Sample {
        at_ms: started_ms,
        cpu_secs: [0.0, procstat::cpu_seconds(uploader.pid()).unwrap_or(0.0)],
        machine: neighbours.sample(),
    }];
    let mut rss = Vec::new();
    let mut next_rss = Instant::now();
    let mut produced = None;
    let stall = Duration::from_millis((4 * names.window_ms).max(60_000));
    let mut progress = (0, 0);
    let mut last_progress = Instant::now();
    let usage = loop {
        tokio::time::sleep(TICK).await;
        ingest.check_running()?;
        uploader.check_running()?;
        if let Some(done) = feeder.take_if(|f| f.is_finished()) {
            produced = Some(fed(done, loaded.records)?);
        }
        if let Some(w) = watch
            && Instant::now() >= next_rss
            && let (Some(i), Some(u)) = (procstat::rss_bytes(ingest.pid()), procstat::rss_bytes(uploader.pid()))
        {
            next_rss += w.rss_every;
            let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
            let at_secs = (now_ms() - started_ms) as f64 / 1000.0;
            rss.push(RssSample { at_secs, ingest_mib: mib(i), uploader_mib: mib(u) });
        }
        if let (Some(i), Some(u)) = (procstat::cpu_seconds(ingest.pid()), procstat::cpu_seconds(uploader.pid())) {
            samples.push(Sample { at_ms: now_ms(), cpu_secs: [i, u], machine: neighbours.sample() });
        }
        log.poll();
        // Counts only on most ticks: copying every file's entry 5 times a second would cost the
        // harness more than the services by the end of a long run. Objects written bound the
        // handed-off files among them from above; the files are matched only once both are in.
        let (handed_off, rows) = reader.totals();
        let uploaded = log.visible().len();
        if rows >= loaded.records && uploaded >= handed_off {
            let files = reader.files();
            if files.iter().all(|f| log.visible().contains_key(&f.key)) {
                // Read before stopping: /proc forgets a process once it exits.
                break [&ingest, &uploader].map(|s| usage_of(s.pid()));
            }
        }
        if (handed_off, uploaded) != progress {
            progress = (handed_off, uploaded);
            last_progress = Instant::now();
        } else if last_progress.elapsed() > stall {
            bail!(
                "the pipeline stalled for {stall:?}: {rows} of {} rows handed off, {uploaded} of {} files uploaded\n\
                 ingest log ({}):\n{}\nuploader log ({}):\n{}",
                loaded.records,
                handed_off,
                ingest.log.display(),
                ingest.log_tail(15),
                uploader.log.display(),
                uploader.log_tail(15)
            );
        }
    };
    if let Some(f) = feeder {
        produced = Some(fed(f, loaded.records)?);
    }
    // What was produced: the feed's count (with its bytes and tables) or the pre-load's.
    let produced = produced.unwrap_or_else(|| loaded.clone());
    let profiles: BTreeMap<String, Vec<String>> =
        profilers.into_iter().map(|(name, p)| (name.to_owned(), p.finish())).collect();
    ingest.stop();
    uploader.stop();
    let files = reader.stop()?;

    exactly_once(&files, &produced)?;
    // Every handed-off file and each workspace's `cio-validate`, looked up one by one.
    let workspaces = dwsync_loadgen::Workspaces::zipf(scenario.workspaces, scenario.skew);
    let validate_keys = workspaces.ids().iter().map(|&w| format!("{}/cio-validate", services::workspace_prefix(w)));
    let wanted: Vec<String> = files.iter().map(|f| f.key.clone()).chain(validate_keys).collect();
    let keys = s3::existing(&client, &names.bucket, wanted, LOOKUPS_IN_FLIGHT).await?;
    let missing: Vec<&str> = files.iter().map(|f| f.key.as_str()).filter(|k| !keys.contains(*k)).collect();
    if let Some(first) = missing.first() {
        bail!("{} of {} files are not in bucket {} (first: {first})", missing.len(), files.len(), names.bucket);
    }
    // A file written under a second key (handed off twice) would hold its rows twice: every
    // object the uploader wrote must be a handed-off file.
    let handed_off: std::collections::BTreeSet<&str> = files.iter().map(|f| f.key.as_str()).collect();
    let others: Vec<&String> =
        log.visible().keys().filter(|k| !k.ends_with("/cio-validate") && !handed_off.contains(k.as_str())).collect();
    if let Some(first) = others.first() {
        bail!("the uploader wrote {} object(s) that were not handed off (first: {first})", others.len());
    }
    if watch.is_some() {
        // A long run: each object read back, every record id once.
        eprintln!("[{}] reading {} objects back for their record ids ...", scenario.name, files.len());
        let read_back = record_ids::of_objects(&client, &names.bucket, &files, LOOKUPS_IN_FLIGHT).await?;
        record_ids::check(&produced.ids, &read_back)?;
    }
    let validates = keys.iter().filter(|k| k.ends_with("/cio-validate")).count() as u64;
    eprintln!(
        "[{}] 5: S3 write ceiling ({} objects again, {} in flight) ...",
        scenario.name,
        files.len() as u64 + validates,
        s3_ceiling::IN_FLIGHT
    );
    let ceiling = s3_ceiling::run(&client, &names.bucket, &files, validates).await;
    if !keep_objects {
        let mut all = keys;
        if let Ok((_, written)) = &ceiling {
            all.extend(written.iter().cloned());
        }
        if let Err(e) = s3::delete_bucket(&client, &names.bucket, &all).await {
            eprintln!("could not delete bucket {}: {e:#}", names.bucket);
        }
    }
    let (ceiling, _) = ceiling?;
    let visible = log.visible();
    let mut measured = measure(&files, visible, &samples, started_ms, &produced, usage, validates, profiles, ceiling);
    measured.over_time = watch.map(|w| over_time(w, &files, visible, &samples, started_ms, rss));
    Ok(measured)
}

/// Every record produced handed off once: as many rows as records, per table when the
/// producer counted them per table. Two files holding the same record make more rows than
/// records (a file rebuilt after a crash keeps its file id and counts once).
fn exactly_once(files: &[HandedOff], produced: &Loaded) -> anyhow::Result<()> {
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    if rows != produced.records {
        bail!("{rows} rows were handed off for {} records produced", produced.records);
    }
    let mut per_table: BTreeMap<&str, u64> = BTreeMap::new();
    for f in files {
        *per_table.entry(f.table.name()).or_default() += f.rows;
    }
    for (table, (records, _)) in &produced.per_table {
        let rows = per_table.get(table).copied().unwrap_or(0);
        if rows != *records {
            bail!("{table}: {rows} rows were handed off for {records} records produced");
        }
    }
    Ok(())
}

/// Memory, close → visible per interval and the servers' CPU over the whole run.
fn over_time(
    watch: Watch,
    files: &[HandedOff],
    visible: &BTreeMap<String, i64>,
    samples: &[Sample],
    started_ms: i64,
    rss: Vec<RssSample>,
) -> OverTime {
    let closes =
        files.iter().filter_map(|f| Some((f.closed_at_ms - started_ms, visible.get(&f.key)? - f.closed_at_ms)));
    let machine_cpu = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) => last.machine - first.machine,
        _ => MachineCpu::default(),
    };
    OverTime {
        rss,
        visible_by_interval: soak::by_interval(closes, watch.latency_interval.as_millis() as i64),
        machine_cpu,
    }
}

/// Waits for the stream's producer and checks it delivered `expected` records; what it produced.
fn fed(producer: std::thread::JoinHandle<anyhow::Result<Loaded>>, expected: u64) -> anyhow::Result<Loaded> {
    let fed = producer.join().map_err(|_| anyhow::anyhow!("the stream's producer panicked"))??;
    if fed.records != expected {
        bail!("the stream produced {} records, {expected} expected", fed.records);
    }
    Ok(fed)
}

/// CPU seconds and peak RSS of a live process.
fn usage_of(pid: u32) -> (f64, u64) {
    (procstat::cpu_seconds(pid).unwrap_or(0.0), procstat::peak_rss_bytes(pid).unwrap_or(0))
}

/// The figures of a finished run.
#[allow(clippy::too_many_arguments)]
fn measure(
    files: &[HandedOff],
    visible: &BTreeMap<String, i64>,
    samples: &[Sample],
    started_ms: i64,
    loaded: &Loaded,
    [(ingest_cpu, ingest_rss), (uploader_cpu, uploader_rss)]: [(f64, u64); 2],
    validates: u64,
    profiles: BTreeMap<String, Vec<String>>,
    s3_ceiling: WriteCeiling,
) -> EndToEnd {
    let last_visible = files.iter().filter_map(|f| visible.get(&f.key)).copied().max().unwrap_or(started_ms);
    let closes: Vec<i64> = files.iter().map(|f| f.closed_at_ms).collect();
    let idle_ms = idle_before_closes(samples, &closes);
    let wall_ms = (last_visible - started_ms).max(1);
    let busy_secs = (wall_ms - idle_ms).max(1) as f64 / 1000.0;
    let machine_cpu = while_working(samples);
    let mut close_reasons = BTreeMap::new();
    let mut by_reason: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut by_close: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for f in files {
        *close_reasons.entry(f.reason.clone()).or_default() += 1;
        if let Some(at) = visible.get(&f.key) {
            by_reason.entry(f.reason.clone()).or_default().push(at - f.closed_at_ms);
            by_close.entry(f.closed_at_ms).or_default().push(at - f.closed_at_ms);
        }
    }
    let usage = |cpu_secs: f64, rss: u64| Usage {
        cpu_secs,
        cpu_secs_per_million: cpu_secs / loaded.records.max(1) as f64 * 1e6,
        peak_rss_mib: rss as f64 / (1 << 20) as f64,
    };
    EndToEnd {
        throughput: Throughput::new(loaded.records, loaded.bytes, busy_secs),
        wall_secs: wall_ms as f64 / 1000.0,
        idle_secs: idle_ms as f64 / 1000.0,
        files: files.len() as u64,
        parquet_bytes: files.iter().map(|f| f.bytes).sum(),
        rows: files.iter().map(|f| f.rows).sum(),
        close_reasons,
        validates,
        ingest: usage(ingest_cpu, ingest_rss),
        uploader: usage(uploader_cpu, uploader_rss),
        machine_cpu,
        machine_cpu_per_million: machine_cpu.per_million(loaded.records),
        visible: Latency::of(by_reason.values().flatten().copied().collect()),
        visible_by_reason: by_reason.into_iter().map(|(r, v)| (r, Latency::of(v))).collect(),
        visible_by_close: by_close
            .into_iter()
            .map(|(at, v)| CloseGroup { closed_after_start_ms: at - started_ms, visible: Latency::of(v) })
            .collect(),
        profiles,
        s3_ceiling,
        over_time: None,
    }
}

/// How long both services sat idle waiting for window closes: for each close time, the stretch
/// from the end of the last sample interval before it in which either service was busy (above
/// [`BUSY_CORES`]) up to it; overlapping stretches count once. The interval holding the close is
/// quiet up to the close or, when it is busy, not counted at all: its busy part may lie before the
/// close (a long backlog closes windows every ~150 ms while the services work) or after it (the
/// flush the close starts); at worst the quiet part of that one interval, under 200 ms, stays in
/// the busy time. (Until commit `a332b9d` it counted as idle: with a close every ~150 ms half the
/// working time was subtracted.)
fn idle_before_closes(samples: &[Sample], closes: &[i64]) -> i64 {
    let mut closes = closes.to_vec();
    closes.sort_unstable();
    closes.dedup();
    let mut busy_until = samples.first().map_or(0, |s| s.at_ms);
    let mut intervals = samples.windows(2).peekable();
    let (mut idle, mut counted_to) = (0, i64::MIN);
    for close in closes {
        while let Some(w) = intervals.next_if(|w| w[1].at_ms <= close) {
            if working(&w[0], &w[1]) {
                busy_until = w[1].at_ms;
            }
        }
        let quiet_to = match intervals.peek() {
            Some(w) if w[0].at_ms < close && working(&w[0], &w[1]) => w[0].at_ms,
            _ => close,
        };
        let from = busy_until.max(counted_to);
        idle += (quiet_to - from).max(0);
        counted_to = counted_to.max(close);
    }
    idle
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples every 200 ms from 0 with ingest's and the uploader's share of a core; the broker
    /// uses a tenth of a core throughout, the machine that plus the services.
    fn samples(rates: &[(f64, f64)]) -> Vec<Sample> {
        let mut cpu = [0.0, 0.0];
        let mut machine = MachineCpu { machine: 100.0, broker: Some(50.0), s3_server: None, ..MachineCpu::ZERO };
        let mut out = vec![Sample { at_ms: 0, cpu_secs: cpu, machine }];
        for (i, (ingest, uploader)) in rates.iter().enumerate() {
            cpu = [cpu[0] + ingest * 0.2, cpu[1] + uploader * 0.2];
            let broker = machine.broker.map(|b| b + 0.02);
            machine = MachineCpu {
                machine: machine.machine + (ingest + uploader + 0.1) * 0.2,
                broker,
                s3_server: None,
                ..MachineCpu::ZERO
            };
            out.push(Sample { at_ms: (i as i64 + 1) * 200, cpu_secs: cpu, machine });
        }
        out
    }

    #[test]
    fn the_machine_counts_while_the_services_work() {
        // Busy for 1 s (ingest a core, the uploader half of one), then idle for 1 s.
        let mut rates = vec![(1.0, 0.5); 5];
        rates.extend([(0.0, 0.0); 5]);
        let cpu = while_working(&samples(&rates));
        assert!((cpu.machine - 1.6).abs() < 1e-9, "1.5 cores of services and 0.1 of broker for 1 s: {cpu:?}");
        assert!(cpu.broker.is_some_and(|b| (b - 0.1).abs() < 1e-9), "{cpu:?}");
        assert_eq!(cpu.s3_server, None, "no S3 server process found");
    }

    fn ingest_only(rates: &[f64]) -> Vec<Sample> {
        samples(&rates.iter().map(|r| (*r, 0.0)).collect::<Vec<_>>())
    }

    #[test]
    fn idle_is_the_quiet_stretch_before_a_close() {
        // Busy for 1 s, idle for 1 s, then the grid point at 2 s.
        let s = ingest_only(&[1.0, 1.0, 0.9, 1.0, 0.8, 0.01, 0.0, 0.02, 0.0, 0.0]);
        assert_eq!(idle_before_closes(&s, &[2_000]), 1_000);
        // Busy up to the close: nothing to subtract.
        assert_eq!(idle_before_closes(&ingest_only(&[1.0; 10]), &[2_000]), 0);
        // Samples after the close do not count.
        assert_eq!(idle_before_closes(&ingest_only(&[1.0, 0.0, 0.0, 1.0, 1.0]), &[600]), 400);
    }

    #[test]
    fn closes_inside_busy_intervals_take_no_idle() {
        // Busy throughout, a close every 150 ms (a long backlog closing windows by budget and
        // partition): nothing was idle.
        let s = ingest_only(&[1.0; 10]);
        let closes: Vec<i64> = (1..13).map(|i| i * 150).collect();
        assert_eq!(idle_before_closes(&s, &closes), 0);
    }

    #[test]
    fn a_flush_in_the_interval_of_its_close_keeps_the_wait_before_it() {
        // Busy to 0.4 s, quiet to 1.4 s, the close at 1.5 s starts a flush that makes the interval
        // 1.4–1.6 s busy: the wait 0.4–1.4 s is idle, the 0.1 s before the close is not known to be.
        let s = ingest_only(&[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        assert_eq!(idle_before_closes(&s, &[1_500]), 1_000);
        // The same close in a quiet interval: the whole wait.
        let s = ingest_only(&[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(idle_before_closes(&s, &[1_500]), 1_100);
    }

    #[test]
    fn idle_never_exceeds_the_quiet_intervals() {
        // Pseudo-random loads and closes: whatever counts as idle lies in intervals where neither
        // service worked, so working intervals stay inside the busy time the rate is taken over.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let rates: Vec<(f64, f64)> = (0..50)
                .map(|_| match next() % 3 {
                    0 => (0.0, 0.0),
                    1 => (1.0, 0.1),
                    _ => (0.05, 0.6),
                })
                .collect();
            let s = samples(&rates);
            let closes: Vec<i64> = (0..8).map(|_| (next() % 10_000) as i64).collect();
            let quiet: i64 = s.windows(2).filter(|w| !working(&w[0], &w[1])).map(|w| w[1].at_ms - w[0].at_ms).sum();
            let idle = idle_before_closes(&s, &closes);
            assert!(idle <= quiet, "idle {idle} ms > quiet {quiet} ms for {rates:?} / {closes:?}");
        }
    }

    #[test]
    fn the_uploader_at_work_is_not_idle() {
        // ingest done at 0.4 s; the uploader writes until 1.2 s; the close comes at 2 s.
        let mut rates = vec![(1.0, 0.0), (1.0, 0.5), (0.0, 0.6), (0.0, 0.6), (0.0, 0.5), (0.0, 0.6)];
        rates.extend([(0.0, 0.0); 4]);
        let s = samples(&rates);
        assert_eq!(idle_before_closes(&s, &[2_000]), 800);
    }

    #[test]
    fn quiet_stretches_before_each_staggered_close_add_up_once() {
        // Busy 0–0.4 s; close at 1 s (flush busy 1.0–1.2 s); close at 2 s; a memory close at 0.2 s.
        let s = ingest_only(&[1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(idle_before_closes(&s, &[2_000, 1_000, 200, 1_000]), 600 + 800);
        // Two closes with no work between them: the stretch is counted once.
        let quiet = ingest_only(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(idle_before_closes(&quiet, &[1_000, 2_000]), 1_800);
    }
}
