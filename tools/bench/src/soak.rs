//! `--scenario soak`: row 3 on a long steady stream (all 15 tables, 1,000 workspaces, 30 minutes
//! by default) — whether ingest's and the uploader's memory stays flat, whether close → visible
//! degrades over time, CPU per record per process, and every record exported exactly once.
//!
//! It is row 3s ([`end_to_end::Feed`]) with nothing pre-loaded: the records are generated from
//! the seed as they are produced (the generator holds one schedule per table, O(workspaces)), and
//! rows 1, 2, 1+2, 6 and the backlog row 3 are not run. While it runs the harness reads both
//! services' `VmRSS` every 10 s; afterwards it fits a least-squares line to the last
//! [`TREND_WINDOW_SECS`] (or the last two thirds of a shorter run) and calls the memory flat when
//! the line rises less than [`FLAT_SHARE_PER_10_MIN`] of its mean per 10 minutes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use dwsync_contract::Table;
use dwsync_loadgen::DEFAULT_EXPONENT;
use serde::Serialize;

use crate::machine_cpu::MachineCpu;
use crate::preload::{self, Loaded};
use crate::report::{Latency, Stream};
use crate::scenario::{EncodingMode, Scenario, thousands};
use crate::services::{RunNames, S3Target};
use crate::{end_to_end, kafka};

/// The scenario's name.
pub(crate) const NAME: &str = "soak";

/// How often both services' resident memory is read (every second with `--smoke`, so its 20 s
/// hold a trend).
const RSS_EVERY: [Duration; 2] = [Duration::from_secs(10), Duration::from_secs(1)];

/// The stretch of close time each interval's close → visible covers (5 s with `--smoke`).
const LATENCY_INTERVAL: [Duration; 2] = [Duration::from_secs(300), Duration::from_secs(5)];

/// The memory trend is fitted over at most the last this many seconds of the run.
pub(crate) const TREND_WINDOW_SECS: f64 = 1_200.0;

/// Memory is flat when its fitted line rises less than this share of its mean per 10 minutes.
pub(crate) const FLAT_SHARE_PER_10_MIN: f64 = 0.02;

/// Default length of the stream: 30 minutes (20 s with `--smoke`).
const DEFAULT_SECS: [u64; 2] = [1_800, 20];

/// Default records per second over all tables (100 with `--smoke`); see docs/PERFORMANCE.md, "Soak".
pub(crate) const DEFAULT_RATE: f64 = 2_000.0;

/// What the soak runs: its scenario (the records of `rate` × `secs`), over how long.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Plan {
    /// The scenario: all 15 tables, 1,000 workspaces (50 with `--smoke`), mixed encodings.
    pub(crate) scenario: Scenario,
    /// Seconds over which the records are produced.
    pub(crate) secs: u64,
    /// Records per second offered, over all tables.
    pub(crate) rate: f64,
    /// What is followed over time.
    #[serde(skip)]
    pub(crate) watch: Watch,
}

/// The size of a soak run as asked for on the command line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    /// `--smoke`.
    pub(crate) smoke: bool,
    /// `--stream-secs` (0: the default).
    pub(crate) stream_secs: u64,
    /// `--soak-rate`.
    pub(crate) rate: Option<f64>,
    /// `--partitions`.
    pub(crate) partitions: Option<i32>,
    /// `--window-ms`.
    pub(crate) window_ms: Option<u64>,
}

impl Plan {
    /// The plan for `ask`.
    pub(crate) fn of(ask: Ask) -> Self {
        let smoke = usize::from(ask.smoke);
        let secs = if ask.stream_secs > 0 { ask.stream_secs } else { DEFAULT_SECS[smoke] };
        let rate = ask.rate.unwrap_or(if ask.smoke { 100.0 } else { DEFAULT_RATE }).max(1.0);
        let tables = Table::ALL.len() as u64;
        let records_per_table = ((rate * secs as f64) as u64).div_ceil(tables).max(1);
        let scenario = Scenario {
            name: NAME,
            tables: Table::ALL.to_vec(),
            encoding: EncodingMode::Mixed,
            workspaces: if ask.smoke { 50 } else { 1_000 },
            skew: DEFAULT_EXPONENT,
            records_per_table,
            partitions: ask.partitions.unwrap_or(if ask.smoke { 1 } else { 4 }),
            window_ms: ask.window_ms.unwrap_or(if ask.smoke { 1_000 } else { 15_000 }),
        };
        let watch = Watch { rss_every: RSS_EVERY[smoke], latency_interval: LATENCY_INTERVAL[smoke] };
        Self { scenario, secs, rate, watch }
    }
}

/// Both services' resident memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct RssSample {
    /// Seconds after ingest started.
    pub(crate) at_secs: f64,
    /// ingest's `VmRSS`, MiB.
    pub(crate) ingest_mib: f64,
    /// The uploader's `VmRSS`, MiB.
    pub(crate) uploader_mib: f64,
}

/// What a long run watches beside row 3's figures ([`end_to_end::Setup::watch`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watch {
    /// How often to read both services' `VmRSS`.
    pub(crate) rss_every: Duration,
    /// The length of each close → visible interval.
    pub(crate) latency_interval: Duration,
}

/// Close → visible of the files whose windows closed in one interval of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct IntervalLatency {
    /// Start of the interval, seconds after ingest started.
    pub(crate) from_secs: i64,
    /// The files closed in it.
    pub(crate) visible: Latency,
}

/// A long run's figures over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct OverTime {
    /// Both services' memory every [`Watch::rss_every`].
    pub(crate) rss: Vec<RssSample>,
    /// Close → visible per [`Watch::latency_interval`] of close time.
    pub(crate) visible_by_interval: Vec<IntervalLatency>,
    /// CPU seconds of the machine, the broker and the S3 server over the whole run (idle or not).
    pub(crate) machine_cpu: MachineCpu,
}

/// Close → visible per `every_ms` of close time: `closes` are (closed ms after start, close →
/// visible ms) of each file; an interval without a file is left out.
pub(crate) fn by_interval(closes: impl IntoIterator<Item = (i64, i64)>, every_ms: i64) -> Vec<IntervalLatency> {
    let every = every_ms.max(1);
    let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (closed, visible) in closes {
        groups.entry(closed.max(0) / every).or_default().push(visible);
    }
    groups.into_iter().map(|(i, v)| IntervalLatency { from_secs: i * every / 1000, visible: Latency::of(v) }).collect()
}

/// Whether memory rose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    /// The fitted line rises less than [`FLAT_SHARE_PER_10_MIN`] of the mean per 10 min (or falls).
    Flat,
    /// It rises faster.
    Rising,
}

/// The least-squares line through one service's memory over the end of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Trend {
    /// Seconds of the run fitted (its end).
    pub(crate) window_secs: f64,
    /// Samples in them.
    pub(crate) samples: usize,
    /// Slope, MiB per 10 minutes.
    pub(crate) mib_per_10_min: f64,
    /// Mean, smallest and largest sample, MiB.
    pub(crate) mean_mib: f64,
    /// Smallest sample, MiB.
    pub(crate) min_mib: f64,
    /// Largest sample, MiB.
    pub(crate) max_mib: f64,
    /// Flat or rising.
    pub(crate) verdict: Verdict,
}

/// The seconds at the end of a `run_secs` run the trend is fitted over: the last
/// [`TREND_WINDOW_SECS`], or the last two thirds of a shorter run.
pub(crate) fn trend_window(run_secs: f64) -> f64 {
    (run_secs * 2.0 / 3.0).min(TREND_WINDOW_SECS)
}

impl Trend {
    /// The trend of `(seconds, MiB)` samples over their last `window_secs`; `None` with fewer
    /// than three samples in it or all at one time.
    pub(crate) fn of(series: &[(f64, f64)], window_secs: f64) -> Option<Self> {
        let end = series.iter().map(|(t, _)| *t).fold(f64::NEG_INFINITY, f64::max);
        let points: Vec<(f64, f64)> = series.iter().copied().filter(|(t, _)| *t >= end - window_secs).collect();
        if points.len() < 3 {
            return None;
        }
        let n = points.len() as f64;
        let mean_t = points.iter().map(|(t, _)| t).sum::<f64>() / n;
        let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let sxy: f64 = points.iter().map(|(t, y)| (t - mean_t) * (y - mean_y)).sum();
        let mib_per_10_min = sxy / sxx * 600.0;
        let verdict = if mib_per_10_min < FLAT_SHARE_PER_10_MIN * mean_y { Verdict::Flat } else { Verdict::Rising };
        Some(Self {
            window_secs,
            samples: points.len(),
            mib_per_10_min,
            mean_mib: mean_y,
            min_mib: points.iter().map(|(_, y)| *y).fold(f64::INFINITY, f64::min),
            max_mib: points.iter().map(|(_, y)| *y).fold(f64::NEG_INFINITY, f64::max),
            verdict,
        })
    }
}

/// CPU seconds per million records of each process over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct CpuPerMillion {
    /// ingest.
    pub(crate) ingest: f64,
    /// The uploader.
    pub(crate) uploader: f64,
    /// The broker, when found on this machine.
    pub(crate) broker: Option<f64>,
    /// The S3 server, when found on this machine.
    pub(crate) s3_server: Option<f64>,
    /// The whole machine (these four, the harness and anything else running).
    pub(crate) machine: f64,
}

/// The soak's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measured {
    /// What ran.
    pub(crate) plan: Plan,
    /// Row 3s: the run (its RSS series and interval latencies in `run.over_time`).
    pub(crate) stream: Stream,
    /// ingest's memory trend, when the run held three samples.
    pub(crate) ingest_rss: Option<Trend>,
    /// The uploader's.
    pub(crate) uploader_rss: Option<Trend>,
    /// CPU per million records, over the whole run.
    pub(crate) cpu_per_million: CpuPerMillion,
}

impl Measured {
    /// The figures of a finished stream.
    pub(crate) fn of(plan: Plan, stream: Stream) -> Self {
        let run = &stream.run;
        let (rss, machine) = match &run.over_time {
            Some(o) => (o.rss.as_slice(), o.machine_cpu),
            None => (&[][..], MachineCpu::default()),
        };
        let run_secs = rss.last().map_or(0.0, |s| s.at_secs);
        let window = trend_window(run_secs);
        let series = |of: fn(&RssSample) -> f64| rss.iter().map(|s| (s.at_secs, of(s))).collect::<Vec<_>>();
        let per_million = machine.per_million(run.rows);
        Self {
            ingest_rss: Trend::of(&series(|s| s.ingest_mib), window),
            uploader_rss: Trend::of(&series(|s| s.uploader_mib), window),
            cpu_per_million: CpuPerMillion {
                ingest: run.ingest.cpu_secs_per_million,
                uploader: run.uploader.cpu_secs_per_million,
                broker: per_million.broker,
                s3_server: per_million.s3_server,
                machine: per_million.machine,
            },
            plan,
            stream,
        }
    }

    /// The soak's table.
    pub(crate) fn render(&self) -> String {
        let (p, run) = (&self.plan, &self.stream.run);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "== {NAME}: {} records/s offered evenly over {} s ({}); {:.1} s from starting ingest to the last object",
            thousands(p.rate.round() as u64),
            p.secs,
            p.scenario.describe(),
            run.wall_secs
        );
        for (name, trend, usage) in
            [("ingest", &self.ingest_rss, &run.ingest), ("uploader", &self.uploader_rss, &run.uploader)]
        {
            match trend {
                Some(t) => {
                    let _ = writeln!(
                        out,
                        "   {name:<9} RSS over the last {:.0} s ({} samples): {:+.1} MiB per 10 min, mean {:.1}, \
                         min {:.1}, max {:.1} MiB (peak {:.1}): {} (flat: < {:.0} % of the mean per 10 min)",
                        t.window_secs,
                        t.samples,
                        t.mib_per_10_min,
                        t.mean_mib,
                        t.min_mib,
                        t.max_mib,
                        usage.peak_rss_mib,
                        match t.verdict {
                            Verdict::Flat => "flat",
                            Verdict::Rising => "RISING",
                        },
                        FLAT_SHARE_PER_10_MIN * 100.0
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "   {name:<9} RSS: too few samples for a trend (peak {:.1} MiB)",
                        usage.peak_rss_mib
                    );
                }
            }
        }
        let c = &self.cpu_per_million;
        let part = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "   CPU s per million records (whole run): ingest {:.2}, uploader {:.2}, broker {}, S3 server {}; \
             machine {:.2}",
            c.ingest,
            c.uploader,
            part(c.broker),
            part(c.s3_server),
            c.machine
        );
        let v = &run.visible;
        let _ = writeln!(
            out,
            "   close -> visible, whole run: p50 {} ms, p99 {} ms, max {} ms over {} files",
            v.p50_ms,
            v.p99_ms,
            v.max_ms,
            thousands(v.files as u64)
        );
        for i in run.over_time.iter().flat_map(|o| &o.visible_by_interval) {
            let _ = writeln!(
                out,
                "     closed from {:>5} s: p50 {:>6} ms, p99 {:>6} ms, max {:>6} ms over {} files",
                i.from_secs,
                i.visible.p50_ms,
                i.visible.p99_ms,
                i.visible.max_ms,
                thousands(i.visible.files as u64)
            );
        }
        let _ = writeln!(
            out,
            "   exactly once: {} records produced = {} rows handed off and the same record ids in the {} \
             objects read back, per table; no object written that was not handed off",
            thousands(self.plan.scenario.records()),
            thousands(run.rows),
            thousands(run.files)
        );
        out
    }
}

/// Where the soak runs.
pub(crate) struct Setup<'a> {
    /// Broker, S3, binaries, directory and names.
    pub(crate) at: crate::services::Place<'a>,
    /// The services' extra environment (ingest, uploader).
    pub(crate) env: [&'a [(String, String)]; 2],
    /// The generator's seed.
    pub(crate) seed: u64,
    /// Record `perf` profiles.
    pub(crate) perf: bool,
    /// Keep the run's topics (`--keep-topics`).
    pub(crate) keep_topics: bool,
}

/// Streams the plan's records into fresh topics while ingest and the uploader run, and measures.
pub(crate) async fn run(setup: Setup<'_>, plan: Plan) -> anyhow::Result<Measured> {
    let Setup { at, env, seed, perf, keep_topics } = setup;
    let s = &plan.scenario;
    let base = format!("{}.{NAME}", at.run_id);
    let names = RunNames::under(at.bootstrap, &base, format!("{}-{NAME}", at.run_id), s.window_ms);
    eprintln!("[{NAME}] streaming {} over {} s ...", s.describe(), plan.secs);
    let topics = preload::topic_names(s, &names.topic_prefix);
    kafka::create_topics(at.bootstrap, &topics, s.partitions).await?;
    // Nothing is pre-loaded: the feed generates the records as it produces them.
    let expected =
        Loaded { topics, records: s.records(), bytes: 0, per_table: BTreeMap::new(), secs: 0.0, ids: BTreeMap::new() };
    let services = names.service_topics();
    let target: &S3Target = at.s3;
    let over = Duration::from_secs(plan.secs);
    let run = end_to_end::run(end_to_end::Setup {
        scenario: s,
        loaded: &expected,
        names,
        s3: target,
        bin_dir: at.bin_dir,
        dir: at.dir.clone(),
        perf,
        env,
        keep_objects: at.keep_objects,
        feed: Some(end_to_end::Feed { over, seed }),
        watch: Some(plan.watch),
    })
    .await;
    if !keep_topics {
        kafka::delete_run_topics(at.bootstrap, &expected.topics, &services, NAME).await;
    }
    let stream = Stream {
        secs: over.as_secs_f64(),
        offered_records_per_sec: expected.records as f64 / over.as_secs_f64().max(1e-9),
        run: run?,
    };
    Ok(Measured::of(plan, stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(smoke: bool) -> Ask {
        Ask { smoke, stream_secs: 0, rate: None, partitions: None, window_ms: None }
    }

    #[test]
    fn the_plan_is_all_tables_and_a_thousand_workspaces_for_half_an_hour() {
        let full = Plan::of(ask(false));
        assert_eq!((full.secs, full.scenario.workspaces, full.scenario.tables.len()), (1_800, 1_000, 15));
        assert_eq!(full.scenario.records(), 3_600_000, "2,000 records/s for 30 min");
        assert_eq!((full.scenario.partitions, full.scenario.window_ms), (4, 15_000));
        let smoke = Plan::of(ask(true));
        assert_eq!((smoke.secs, smoke.scenario.records(), smoke.scenario.window_ms), (20, 2_010, 1_000));
        assert_eq!((full.watch.rss_every.as_secs(), full.watch.latency_interval.as_secs()), (10, 300));
        assert_eq!((smoke.watch.rss_every.as_secs(), smoke.watch.latency_interval.as_secs()), (1, 5));
        let set = Plan::of(Ask { stream_secs: 180, rate: Some(500.0), ..ask(false) });
        assert_eq!((set.secs, set.scenario.records()), (180, 90_000));
    }

    #[test]
    fn a_steady_line_is_flat_and_a_leak_is_rising() {
        // 30 minutes every 10 s around 200 MiB with ±3 MiB of noise: flat.
        let noisy: Vec<(f64, f64)> =
            (0..=180).map(|i| (f64::from(i) * 10.0, 200.0 + if i % 2 == 0 { 3.0 } else { -3.0 })).collect();
        let t = Trend::of(&noisy, trend_window(1_800.0)).expect("trend");
        assert_eq!((t.window_secs, t.samples, t.verdict), (1_200.0, 121, Verdict::Flat));
        assert!(t.mib_per_10_min.abs() < 0.1, "{t:?}");
        assert_eq!((t.min_mib, t.max_mib), (197.0, 203.0));
        // 1 MiB per minute: 10 MiB per 10 min on ~200 MiB is 5 %: rising.
        let leak: Vec<(f64, f64)> = (0..=180).map(|i| (f64::from(i) * 10.0, 180.0 + f64::from(i) / 6.0)).collect();
        let t = Trend::of(&leak, 1_200.0).expect("trend");
        assert!((t.mib_per_10_min - 10.0).abs() < 1e-9, "{t:?}");
        assert_eq!(t.verdict, Verdict::Rising);
        // 2 % exactly is rising; just under it, flat; falling is flat.
        let at = |per_10_min: f64| -> Verdict {
            let s: Vec<(f64, f64)> =
                (0..=6).map(|i| (f64::from(i) * 100.0, 100.0 + per_10_min * f64::from(i) / 6.0)).collect();
            let mean = 100.0 + per_10_min / 2.0;
            let t = Trend::of(&s, 1_200.0).expect("trend");
            assert!((t.mean_mib - mean).abs() < 1e-9);
            t.verdict
        };
        assert_eq!(at(1.9), Verdict::Flat);
        assert_eq!(at(2.1), Verdict::Rising);
        assert_eq!(at(-30.0), Verdict::Flat);
    }

    #[test]
    fn the_trend_covers_the_end_of_the_run() {
        // A start-up climb in the first third does not count.
        let series: Vec<(f64, f64)> =
            (0..=90).map(|i| (f64::from(i) * 10.0, if i < 30 { 50.0 + f64::from(i) * 5.0 } else { 200.0 })).collect();
        let t = Trend::of(&series, trend_window(900.0)).expect("trend");
        assert_eq!((t.window_secs, t.samples, t.verdict), (600.0, 61, Verdict::Flat));
        assert_eq!(Trend::of(&series[..2], 600.0), None, "two samples");
        assert_eq!(Trend::of(&[(5.0, 1.0), (5.0, 2.0), (5.0, 3.0)], 600.0), None, "one instant");
        assert_eq!(trend_window(7_200.0), TREND_WINDOW_SECS);
    }

    #[test]
    fn interval_percentiles_follow_the_close_time() {
        // 0–5 min: 100 files at 100 ms and one at 5 s; 5–10 min: nothing; 10–15 min: 1–100 ms.
        let mut closes: Vec<(i64, i64)> = (0..100).map(|i| (i * 1_000, 100)).collect();
        closes.push((299_999, 5_000));
        closes.extend((1..=100).map(|ms| (600_000 + ms * 10, ms)));
        let intervals = by_interval(closes, 300_000);
        assert_eq!(intervals.len(), 2, "{intervals:?}");
        assert_eq!(intervals[0].from_secs, 0);
        assert_eq!((intervals[0].visible.files, intervals[0].visible.p50_ms), (101, 100));
        assert_eq!((intervals[0].visible.p99_ms, intervals[0].visible.max_ms), (100, 5_000));
        assert_eq!(intervals[1].from_secs, 600);
        assert_eq!((intervals[1].visible.p50_ms, intervals[1].visible.p99_ms), (50, 99));
        assert!(by_interval([], 300_000).is_empty());
    }
}
