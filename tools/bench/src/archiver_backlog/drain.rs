//! `dwsync-archiver` as a process on a handoff backlog, sampled until every row is archived.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;

use crate::procstat;
use crate::services::{Place, RunNames, Service, prometheus_series, prometheus_value};

/// How often the archiver is sampled.
const TICK: Duration = Duration::from_millis(200);

/// A stretch at least this long with the archiver under [`IDLE_SHARE`] of a core is idle
/// (waiting for `archive.flush_interval_ms` with nothing left to read), not work.
const IDLE_STRETCH: Duration = Duration::from_secs(2);

/// Share of one core under which a sample interval counts as idle.
const IDLE_SHARE: f64 = 0.05;

/// No row newly archived for this long, beyond the flush interval, fails the run.
const STALL: Duration = Duration::from_secs(180);

/// The archive's prefix in the run's bucket.
const PREFIX: &str = "archive";

/// The archiver's `[archive]` batching and memory settings, when not its defaults.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Limits {
    /// `archive.flush_bytes`.
    pub(crate) flush_bytes: u64,
    /// `archive.flush_interval_ms`.
    pub(crate) flush_interval_ms: u64,
    /// `archive.max_buffered_bytes`.
    pub(crate) max_buffered_bytes: u64,
}

impl Limits {
    /// Their `[archive]` section.
    fn toml(&self) -> String {
        format!(
            "[archive]\nflush_bytes = {}\nflush_interval_ms = {}\nmax_buffered_bytes = {}\n",
            self.flush_bytes, self.flush_interval_ms, self.max_buffered_bytes
        )
    }

    /// One line for the report.
    pub(crate) fn describe(&self) -> String {
        format!(
            "flush_bytes {} KiB, flush_interval_ms {}, max_buffered_bytes {} KiB",
            self.flush_bytes >> 10,
            self.flush_interval_ms,
            self.max_buffered_bytes >> 10
        )
    }
}

/// What the archiver's run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Drained {
    /// From its start to every row archived.
    pub(crate) secs: f64,
    /// Of that, the time it worked: [`secs`](Self::secs) less the stretches of at least 2 s under
    /// 5 % of a core.
    pub(crate) busy_secs: f64,
    /// Rows archived per working second.
    pub(crate) rows_per_sec: f64,
    /// MiB of handed-off Parquet archived per working second.
    pub(crate) mib_per_sec: f64,
    /// `VmHWM` at the end.
    pub(crate) peak_rss_bytes: u64,
    /// CPU time (user + system).
    pub(crate) cpu_secs: f64,
    /// The largest `dwsync_archiver_buffered_bytes` sampled.
    pub(crate) max_buffered_bytes: u64,
    /// `dwsync_archiver_batches_total` by reason (`size`, `age`, `memory`, `forced`).
    pub(crate) batches: BTreeMap<String, u64>,
}

impl Drained {
    /// The batches by reason, as `memory 12, size 3`.
    pub(crate) fn batches_text(&self) -> String {
        let parts: Vec<String> = self.batches.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
    }
}

/// One look at the archiver.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    cpu_secs: f64,
}

/// Starts the archiver on `names.handoff` writing into `names.bucket`, waits until it has
/// archived `rows` rows (handed off as `handoff_bytes` of Parquet), and stops it.
pub(crate) async fn run(
    at: &Place<'_>,
    names: &RunNames,
    limits: Option<Limits>,
    rows: u64,
    handoff_bytes: u64,
) -> anyhow::Result<Drained> {
    let mut archiver = Service::start("archiver", at.bin_dir, &at.dir, &[], |port| {
        format!(
            "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
             [handoff]\ntopic = \"{handoff}\"\ngroup_id = \"{group}-archiver\"\n{archive}\
             [store]\nbucket = \"{bucket}\"\nprefix = \"{PREFIX}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n\
             access_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n",
            bootstrap = names.bootstrap,
            handoff = names.handoff,
            group = names.group_prefix,
            archive = limits.map(|l| l.toml()).unwrap_or_default(),
            bucket = names.bucket,
            endpoint = at.s3.endpoint,
            access = at.s3.access_key,
            secret = at.s3.secret_key,
        )
    })?;
    let started = Instant::now();
    let flush_interval = Duration::from_millis(limits.map_or(60_000, |l| l.flush_interval_ms));
    let mut samples = vec![Sample { at: Duration::ZERO, cpu_secs: 0.0 }];
    let (mut archived, mut max_buffered) = (0.0, 0.0f64);
    let mut last_progress = Instant::now();
    let metrics = loop {
        tokio::time::sleep(TICK).await;
        archiver.check_running()?;
        if let Some(cpu_secs) = procstat::cpu_seconds(archiver.pid()) {
            samples.push(Sample { at: started.elapsed(), cpu_secs });
        }
        let Some(text) = archiver.metrics_text() else { continue };
        max_buffered = max_buffered.max(prometheus_value(&text, "dwsync_archiver_buffered_bytes").unwrap_or(0.0));
        let now = prometheus_value(&text, "dwsync_archiver_rows_archived_total").unwrap_or(0.0);
        if now >= rows as f64 {
            break text;
        }
        if now > archived {
            (archived, last_progress) = (now, Instant::now());
        } else if last_progress.elapsed() > STALL + flush_interval {
            bail!(
                "the archiver archived {archived} of {rows} rows and nothing more for {:?}; the end of {}:\n{}",
                STALL + flush_interval,
                archiver.log.display(),
                archiver.log_tail(20)
            );
        }
    };
    let secs = started.elapsed().as_secs_f64();
    // Read before stopping: /proc forgets a process once it exits.
    let peak_rss_bytes = procstat::peak_rss_bytes(archiver.pid()).unwrap_or(0);
    let cpu_secs = procstat::cpu_seconds(archiver.pid()).unwrap_or(0.0);
    archiver.stop();
    let busy_secs = (secs - idle_secs(&samples).as_secs_f64()).max(1e-3);
    Ok(Drained {
        secs,
        busy_secs,
        rows_per_sec: rows as f64 / busy_secs,
        mib_per_sec: handoff_bytes as f64 / f64::from(1u32 << 20) / busy_secs,
        peak_rss_bytes,
        cpu_secs,
        max_buffered_bytes: max_buffered as u64,
        batches: batches_by_reason(&metrics),
    })
}

/// `dwsync_archiver_batches_total` by its `reason` label.
fn batches_by_reason(metrics: &str) -> BTreeMap<String, u64> {
    let mut by_reason = BTreeMap::new();
    for (labels, value) in prometheus_series(metrics, "dwsync_archiver_batches_total") {
        let reason = labels
            .split(',')
            .find_map(|l| l.strip_prefix("reason=\""))
            .map_or("unlabelled", |r| r.trim_end_matches('"'));
        *by_reason.entry(reason.to_owned()).or_insert(0) += value as u64;
    }
    by_reason
}

/// The total length of the stretches of at least [`IDLE_STRETCH`] in which the process used
/// under [`IDLE_SHARE`] of a core.
fn idle_secs(samples: &[Sample]) -> Duration {
    let (mut idle, mut stretch) = (Duration::ZERO, Duration::ZERO);
    for w in samples.windows(2) {
        let span = w[1].at.saturating_sub(w[0].at);
        let share = (w[1].cpu_secs - w[0].cpu_secs) / span.as_secs_f64().max(1e-9);
        if share < IDLE_SHARE {
            stretch += span;
        } else {
            if stretch >= IDLE_STRETCH {
                idle += stretch;
            }
            stretch = Duration::ZERO;
        }
    }
    if stretch >= IDLE_STRETCH { idle + stretch } else { idle }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, cpu_secs: f64) -> Sample {
        Sample { at: Duration::from_millis(ms), cpu_secs }
    }

    #[test]
    fn only_long_quiet_stretches_are_idle() {
        // Busy 0–1 s, quiet 1–1.6 s (too short), busy to 2 s, quiet 2–5 s, busy to 5.4 s.
        let samples = [at(0, 0.0), at(1_000, 0.9), at(1_600, 0.91), at(2_000, 1.3), at(5_000, 1.32), at(5_400, 1.7)];
        assert_eq!(idle_secs(&samples), Duration::from_secs(3));
        // A quiet stretch at the end counts too.
        assert_eq!(idle_secs(&[at(0, 0.0), at(1_000, 1.0), at(4_000, 1.0)]), Duration::from_secs(3));
        assert_eq!(idle_secs(&[at(0, 0.0)]), Duration::ZERO);
    }

    #[test]
    fn batches_are_counted_by_reason() {
        let text = "dwsync_archiver_batches_total{otel_scope_name=\"a\",reason=\"memory\"} 7\n\
                    dwsync_archiver_batches_total{reason=\"size\",otel_scope_name=\"a\"} 2\n\
                    dwsync_archiver_buffered_bytes 5\n";
        let batches = batches_by_reason(text);
        assert_eq!(batches, BTreeMap::from([("memory".to_owned(), 7), ("size".to_owned(), 2)]));
    }
}
