//! The results: one table per scenario (the four rows), a summary over all scenarios, and the
//! same as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::cpu_bound::CpuBound;
use crate::encode_ceiling::Encoded;
use crate::machine_cpu::MachineCpu;
use crate::s3_ceiling::WriteCeiling;
use crate::scenario::{Scenario, thousands};

/// Records and bytes over a time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Throughput {
    /// Records.
    pub(crate) records: u64,
    /// Input (payload) bytes.
    pub(crate) bytes: u64,
    /// Seconds.
    pub(crate) secs: f64,
    /// Records per second.
    pub(crate) records_per_sec: f64,
    /// Input megabytes (10^6) per second.
    pub(crate) mb_per_sec: f64,
}

impl Throughput {
    /// `records` and `bytes` in `secs`.
    pub(crate) fn new(records: u64, bytes: u64, secs: f64) -> Self {
        let s = secs.max(1e-9);
        Self { records, bytes, secs, records_per_sec: records as f64 / s, mb_per_sec: bytes as f64 / s / 1e6 }
    }
}

/// What one service used over the end-to-end run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Usage {
    /// CPU seconds (user + system, all threads) from start to the last object.
    pub(crate) cpu_secs: f64,
    /// CPU seconds per million records.
    pub(crate) cpu_secs_per_million: f64,
    /// Peak resident memory (`VmHWM`), MiB.
    pub(crate) peak_rss_mib: f64,
}

/// Window close → object visible, over every file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Latency {
    /// Files measured.
    pub(crate) files: usize,
    /// Median, ms.
    pub(crate) p50_ms: i64,
    /// 99th percentile, ms.
    pub(crate) p99_ms: i64,
    /// Largest, ms.
    pub(crate) max_ms: i64,
}

impl Latency {
    /// Nearest-rank percentiles of `values` (ms).
    pub(crate) fn of(mut values: Vec<i64>) -> Self {
        values.sort_unstable();
        let rank = |q: f64| -> i64 {
            if values.is_empty() {
                return 0;
            }
            let i = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values[i]
        };
        Self {
            files: values.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: values.last().copied().unwrap_or(0),
        }
    }
}

/// The end-to-end row: topics → S3 objects committed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct EndToEnd {
    /// Records over the busy time: wall time minus the idle waits for window closes.
    pub(crate) throughput: Throughput,
    /// From starting ingest to the last object written.
    pub(crate) wall_secs: f64,
    /// Both services idle (backlog consumed) before window closes: not a throughput cost.
    pub(crate) idle_secs: f64,
    /// Files written.
    pub(crate) files: u64,
    /// Their Parquet bytes.
    pub(crate) parquet_bytes: u64,
    /// Rows in them (= records).
    pub(crate) rows: u64,
    /// Files per window close reason.
    pub(crate) close_reasons: BTreeMap<String, u64>,
    /// `cio-validate` objects (one per workspace and sync).
    pub(crate) validates: u64,
    /// ingest's CPU and memory.
    pub(crate) ingest: Usage,
    /// The uploader's CPU and memory.
    pub(crate) uploader: Usage,
    /// CPU seconds over the stretches in which ingest or the uploader worked: the whole
    /// machine's (the services, the broker, the S3 server, this harness), the broker's and the S3
    /// server's.
    pub(crate) machine_cpu: MachineCpu,
    /// The same per million records.
    pub(crate) machine_cpu_per_million: MachineCpu,
    /// Window close → object visible.
    pub(crate) visible: Latency,
    /// The same per close reason (`time`, `memory`, `partition`, …).
    pub(crate) visible_by_reason: BTreeMap<String, Latency>,
    /// The same per close instant, in time order (files closed together: a flush).
    pub(crate) visible_by_close: Vec<CloseGroup>,
    /// `perf` flat profiles (top symbols), when asked for.
    pub(crate) profiles: BTreeMap<String, Vec<String>>,
    /// Row 5: the same objects written straight to the S3 server.
    pub(crate) s3_ceiling: WriteCeiling,
    /// Memory and close → visible over time, when watched (the soak).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) over_time: Option<crate::soak::OverTime>,
}

/// Close → visible of the files closed at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct CloseGroup {
    /// When they closed, ms after ingest started.
    pub(crate) closed_after_start_ms: i64,
    /// Their close → visible.
    pub(crate) visible: Latency,
}

/// Records and average size of one table's input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct TableInput {
    /// Records.
    pub(crate) records: u64,
    /// Average payload bytes.
    pub(crate) avg_bytes: u64,
}

/// Everything measured for one scenario.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenarioReport {
    /// The scenario.
    pub(crate) scenario: Scenario,
    /// Input per table.
    pub(crate) input: BTreeMap<String, TableInput>,
    /// The pre-load (generate + produce), for information.
    pub(crate) preload: Throughput,
    /// Row 1: librdkafka reading to nowhere, first record → last.
    pub(crate) raw_consume: Throughput,
    /// Row 1's group join (`subscribe` → first record), not in its figure.
    pub(crate) raw_consume_join_secs: f64,
    /// Records/s of each of row 1's reads, in order (row 1 is the fastest).
    pub(crate) raw_consume_reads: Vec<f64>,
    /// Row 1's CPU time over its read: the whole machine's and the broker's.
    pub(crate) raw_consume_cpu: MachineCpu,
    /// Row 1b: kcat, when installed.
    pub(crate) kcat: Option<Throughput>,
    /// Row 2: decode + Arrow + Parquet in memory, one thread.
    pub(crate) encode: Encoded,
    /// Rows 1 and 2 in one loop: consume, decode and encode on one thread.
    pub(crate) consume_encode: Encoded,
    /// Row 3: dwsync end to end.
    pub(crate) end_to_end: EndToEnd,
    /// Row 4: end-to-end records/s over raw consume records/s.
    pub(crate) ratio: f64,
    /// Row 3 over row 1 timed with its group join (as row 3 is), for comparison.
    pub(crate) ratio_with_join: f64,
    /// Row 6: the machine's CPU bound on row 3 (row 1's read + row 2's encode on every CPU),
    /// when row 1's CPU time was measured.
    pub(crate) cpu_bound: Option<CpuBound>,
    /// Row 3 again on a steady stream (`--stream-secs`), when asked for.
    pub(crate) stream: Option<Stream>,
}

/// Row 3 on a steady stream: the same records produced at an even pace while the services run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stream {
    /// Over how many seconds the records were produced.
    pub(crate) secs: f64,
    /// Records per second offered.
    pub(crate) offered_records_per_sec: f64,
    /// The run (its throughput is the offered rate's, not a ceiling).
    pub(crate) run: EndToEnd,
}

/// The machine and build the figures come from.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    /// Logical CPUs.
    pub(crate) cpus: usize,
    /// `model name` from /proc/cpuinfo.
    pub(crate) cpu_model: String,
    /// `MemTotal`, MiB.
    pub(crate) memory_mib: u64,
    /// `release` or `debug` (of this harness; the services are built alike by dev/bench).
    pub(crate) build: &'static str,
}

impl Machine {
    /// This machine's logical CPUs (those this process may use).
    pub(crate) fn cpus() -> usize {
        std::thread::available_parallelism().map(usize::from).unwrap_or(1)
    }

    /// This machine.
    pub(crate) fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
            .unwrap_or("unknown")
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = crate::procstat::parse_status_bytes(&meminfo, "MemTotal").unwrap_or(0) >> 20;
        Self {
            cpus: Self::cpus(),
            cpu_model,
            memory_mib,
            build: if cfg!(debug_assertions) { "debug" } else { "release" },
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// Where it ran.
    pub(crate) machine: Machine,
    /// Smoke sizes or full ones.
    pub(crate) smoke: bool,
    /// Extra environment given to ingest and the uploader (`KEY=VALUE`), if any.
    pub(crate) service_env: Vec<String>,
    /// One entry per scenario.
    pub(crate) scenarios: Vec<ScenarioReport>,
    /// The `backfill-large` run, if asked for.
    pub(crate) backfill: Option<crate::backfill_large::Measured>,
    /// The `syncs-1000` run, if asked for.
    pub(crate) syncs: Option<crate::syncs_1000::Measured>,
    /// The `backfill-live` run, if asked for.
    pub(crate) backfill_live: Option<crate::backfill_live::Measured>,
    /// The `archiver-backlog` run, if asked for.
    pub(crate) archiver_backlog: Option<crate::archiver_backlog::Measured>,
    /// The `soak` run, if asked for.
    pub(crate) soak: Option<crate::soak::Measured>,
}

fn rate(t: &Throughput) -> String {
    rate_of(t.records_per_sec)
}

fn rate_of(records_per_sec: f64) -> String {
    thousands(records_per_sec.round() as u64)
}

/// A ratio with two significant digits at least (`0.42×`, `0.0095×`).
fn ratio(r: f64) -> String {
    if r >= 0.1 || r == 0.0 { format!("{r:.2}×") } else { format!("{:.*}×", (1.0 - r.log10()).ceil() as usize, r) }
}

fn secs(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

impl ScenarioReport {
    /// The scenario's table: the four rows and the details of row 3.
    pub(crate) fn render(&self) -> String {
        let s = &self.scenario;
        let total = self.raw_consume;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "== {}: {}, {} B/record on average, {} of input",
            s.name,
            s.describe(),
            total.bytes / total.records.max(1),
            mib(total.bytes)
        );
        let _ = writeln!(out, "   {:<46} {:>12} {:>9}   notes", "row", "records/s", "MB/s");
        let mut row = |label: &str, t: &Throughput, note: String| {
            let _ = writeln!(out, "   {label:<46} {:>12} {:>9.1}   {note}", rate(t), t.mb_per_sec);
        };
        row(
            "1  raw consume (librdkafka, to nowhere)",
            &self.raw_consume,
            format!(
                "{:.2} s first record -> last (group join before it: {:.2} s){}",
                total.secs,
                self.raw_consume_join_secs,
                match self.raw_consume_reads.as_slice() {
                    [] | [_] => String::new(),
                    reads => format!(
                        "; the fastest of {} reads: {}",
                        reads.len(),
                        reads.iter().map(|r| thousands(r.round() as u64)).collect::<Vec<_>>().join(", ")
                    ),
                }
            ),
        );
        if let Some(k) = &self.kcat {
            row("   kcat -C -e (prints offsets)", k, format!("{:.2} s incl. process start and group join", k.secs));
        }
        let e = &self.encode;
        row(
            "2  Parquet encode (decode + Arrow + zstd, 1 core)",
            &e.throughput,
            format!("{:.2} s; {} files, {}", e.throughput.secs, thousands(e.files), mib(e.parquet_bytes)),
        );
        let c = &self.consume_encode;
        row(
            "1+2 consume + decode + encode, one loop",
            &c.throughput,
            format!("{:.2} s incl. group join; {} files", c.throughput.secs, thousands(c.files)),
        );
        let d = &self.end_to_end;
        row(
            "3  dwsync end to end (topics -> S3 objects)",
            &d.throughput,
            format!(
                "{:.2} s busy ({:.2} s wall, of which {:.2} s idle waiting for window closes)",
                d.throughput.secs, d.wall_secs, d.idle_secs
            ),
        );
        let _ = writeln!(
            out,
            "   {:<46} {:>12}             {} against row 1 with its group join",
            "4  ratio 3 / 1",
            ratio(self.ratio),
            ratio(self.ratio_with_join)
        );
        ceiling_line(&mut out, "5  S3 write ceiling (row 3's objects, PUT/s)", &d.s3_ceiling);
        bound_line(&mut out, self);
        details(&mut out, d);
        if let Some(st) = &self.stream {
            let _ = writeln!(
                out,
                "   3s dwsync on a steady stream: {} records/s offered evenly over {:.0} s into empty topics \
                 ({:.2} s from starting ingest to the last object)",
                rate_of(st.offered_records_per_sec),
                st.secs,
                st.run.wall_secs
            );
            ceiling_line(&mut out, "   5 after it (its objects, PUT/s)", &st.run.s3_ceiling);
            details(&mut out, &st.run);
        }
        out
    }
}

/// Row 5's line for the objects of one end-to-end run.
fn ceiling_line(out: &mut String, label: &str, w: &WriteCeiling) {
    let _ = writeln!(
        out,
        "   {:<46} {:>12}             {} objects ({}) in {:.2} s, {} in flight; per PUT p50 {} ms, p99 {} ms; \
         {:.1} s of this server per window close",
        label,
        thousands(w.puts_per_sec.round() as u64),
        thousands(w.objects),
        mib(w.bytes),
        w.secs,
        w.in_flight,
        w.put.p50_ms,
        w.put.p99_ms,
        w.secs_per_close
    );
}

/// Seconds with two decimals, or `?` for a part not measured.
fn part(secs: Option<f64>) -> String {
    secs.map_or_else(|| "?".to_owned(), |s| format!("{s:.2}"))
}

/// The broker's seconds with its JVM's JIT and GC parts: `2.60 (JIT 0.69, GC 0.73)`.
fn broker_part(m: &MachineCpu) -> String {
    match (m.broker, m.broker_jit, m.broker_gc) {
        (Some(b), Some(jit), Some(gc)) => format!("{b:.2} (JIT {jit:.2}, GC {gc:.2})"),
        (b, ..) => part(b),
    }
}

/// Row 6's line: the CPU bound and the machine's CPU per record it comes from, with row 3's.
fn bound_line(out: &mut String, r: &ScenarioReport) {
    let d = &r.end_to_end;
    let label = "6  CPU bound (1's read + 2's encode, all CPUs)";
    let m = d.machine_cpu_per_million;
    let servers = m.broker.unwrap_or(0.0) + m.s3_server.unwrap_or(0.0);
    let end_to_end = format!(
        "end to end {:.2} (broker {}, S3 server {}, ingest + uploader + harness {:.2})",
        m.machine,
        broker_part(&m),
        part(m.s3_server),
        (m.machine - servers).max(0.0)
    );
    let Some(b) = &r.cpu_bound else {
        let _ = writeln!(
            out,
            "   {label:<46} {:>12}             row 1's read too short to time its CPU; machine CPU s per million \
             records: {end_to_end}",
            "—",
        );
        return;
    };
    let read_broker = r.raw_consume_cpu.per_million(r.raw_consume.records);
    let _ = writeln!(
        out,
        "   {label:<46} {:>12}             = {} row 1 on {} CPUs; machine CPU s per million records: row 1's read \
         {:.2} (broker {}) + row 2's encode {:.2}; {end_to_end}: row 3 is {:.0} % of the bound",
        rate_of(b.records_per_sec),
        ratio(b.ratio),
        b.cpus,
        b.read_cpu_secs_per_million,
        broker_part(&read_broker),
        b.encode_cpu_secs_per_million,
        b.end_to_end_share * 100.0
    );
}

/// What one end-to-end run wrote, used and how soon its objects were visible.
fn details(out: &mut String, d: &EndToEnd) {
    let reasons: Vec<String> = d.close_reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = writeln!(
        out,
        "      files: {} ({}), {} Parquet, {} cio-validate; rows {}",
        thousands(d.files),
        reasons.join(", "),
        mib(d.parquet_bytes),
        thousands(d.validates),
        thousands(d.rows)
    );
    for (name, u) in [("ingest", &d.ingest), ("uploader", &d.uploader)] {
        let _ = writeln!(
            out,
            "      {name:<9} CPU {:>6.2} s ({:.2} s per million records), peak RSS {:.0} MiB",
            u.cpu_secs, u.cpu_secs_per_million, u.peak_rss_mib
        );
    }
    let v = &d.visible;
    let _ = writeln!(
        out,
        "      window close -> object visible: p50 {}, p99 {}, max {} ({} files)",
        secs(v.p50_ms),
        secs(v.p99_ms),
        secs(v.max_ms),
        thousands(v.files as u64)
    );
    let by_reason: Vec<String> = d
        .visible_by_reason
        .iter()
        .map(|(r, l)| format!("{r} p50 {}, p99 {} ({})", secs(l.p50_ms), secs(l.p99_ms), thousands(l.files as u64)))
        .collect();
    let _ = writeln!(out, "        by close reason: {}", by_reason.join("; "));
    let by_close: Vec<String> = d
        .visible_by_close
        .iter()
        .map(|g| {
            format!(
                "{}: {} p99 {}",
                secs(g.closed_after_start_ms),
                thousands(g.visible.files as u64),
                secs(g.visible.p99_ms)
            )
        })
        .collect();
    let _ = writeln!(out, "        by close (after start: files, p99): {}", by_close.join("; "));
    for (name, lines) in &d.profiles {
        let _ = writeln!(out, "      perf, {name} (top symbols):");
        for l in lines {
            let _ = writeln!(out, "        {l}");
        }
    }
}

impl Report {
    /// A Markdown summary: one line per scenario.
    pub(crate) fn summary(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "Summary ({} build, {} CPUs ({}), {} MiB RAM{}):\n\n",
            m.build,
            m.cpus,
            m.cpu_model,
            m.memory_mib,
            if self.smoke { ", SMOKE sizes" } else { "" }
        );
        if !self.service_env.is_empty() {
            let _ = writeln!(out, "Overrides: {}\n", self.service_env.join(" "));
        }
        out.push_str(
            "| scenario | records | MB in | 1 raw consume rec/s | 2 encode rec/s | 1+2 one loop rec/s | 3 end to end rec/s (MB/s) | 4 = 3/1 \
             | 6 CPU bound rec/s (÷ 1) | ingest CPU s/M rec | uploader CPU s/M rec | ingest peak RSS | uploader peak RSS | close → visible p50 / p99 \
             | 5 S3 PUT/s (s per close) | steady stream: close → visible p50 / p99 |\n",
        );
        out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
        for r in &self.scenarios {
            let d = &r.end_to_end;
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {} ({:.1}) | {} | {} | {:.2} | {:.2} | {:.0} MiB | {:.0} MiB | {} / {} | {} ({:.1} s) | {} |",
                r.scenario.name,
                thousands(r.raw_consume.records),
                r.raw_consume.bytes as f64 / 1e6,
                rate(&r.raw_consume),
                rate(&r.encode.throughput),
                rate(&r.consume_encode.throughput),
                rate(&d.throughput),
                d.throughput.mb_per_sec,
                ratio(r.ratio),
                r.cpu_bound
                    .map_or_else(|| "—".to_owned(), |b| format!("{} ({})", rate_of(b.records_per_sec), ratio(b.ratio))),
                d.ingest.cpu_secs_per_million,
                d.uploader.cpu_secs_per_million,
                d.ingest.peak_rss_mib,
                d.uploader.peak_rss_mib,
                secs(d.visible.p50_ms),
                secs(d.visible.p99_ms),
                thousands(d.s3_ceiling.puts_per_sec.round() as u64),
                d.s3_ceiling.secs_per_close,
                r.stream.as_ref().map_or_else(
                    || "—".to_owned(),
                    |st| format!(
                        "{} / {} ({} rec/s)",
                        secs(st.run.visible.p50_ms),
                        secs(st.run.visible.p99_ms),
                        rate_of(st.offered_records_per_sec)
                    )
                ),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let l = Latency::of((1..=100).rev().collect());
        assert_eq!((l.files, l.p50_ms, l.p99_ms, l.max_ms), (100, 50, 99, 100));
        let one = Latency::of(vec![7]);
        assert_eq!((one.p50_ms, one.p99_ms), (7, 7));
        assert_eq!(Latency::of(Vec::new()).files, 0);
    }

    #[test]
    fn ratios_keep_two_digits() {
        assert_eq!(ratio(0.734), "0.73×");
        assert_eq!(ratio(0.04), "0.040×");
        assert_eq!(ratio(0.0026), "0.0026×");
        assert_eq!(ratio(1.5), "1.50×");
    }

    #[test]
    fn throughput_rates() {
        let t = Throughput::new(1_000, 2_000_000, 2.0);
        assert_eq!(t.records_per_sec, 500.0);
        assert_eq!(t.mb_per_sec, 1.0);
    }
}
