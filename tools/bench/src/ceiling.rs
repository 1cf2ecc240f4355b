//! The raw consume ceiling: librdkafka reading the pre-loaded topics to nowhere, with the
//! consumer settings ingest uses, and the same read by `kcat` when it is installed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use dwsync_ingest::IngestConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};

use crate::kafka;
use crate::machine_cpu::{MachineCpu, Neighbours};
use crate::preload::Loaded;
use crate::report::Throughput;

/// Longest pause without a message before the read is given up.
const STALL: Duration = Duration::from_secs(30);

/// A consumer with the settings ingest's consumer uses by default, plus `props` (`--consumer-prop`).
pub(crate) fn consumer(bootstrap: &str, group: &str, props: &[(String, String)]) -> anyhow::Result<BaseConsumer> {
    let mut config = kafka::config(bootstrap);
    let _ = config.set("group.id", group);
    for (key, value) in IngestConfig::default().consumer_settings() {
        let _ = config.set(key, value);
    }
    for (key, value) in props {
        let _ = config.set(key, value);
    }
    config.create().context("cannot create the Kafka consumer")
}

/// Row 1: the read itself and the group join before it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawConsume {
    /// First record → last record: the ceiling the ratio divides by.
    pub(crate) read: Throughput,
    /// `subscribe` → first record (group join, first fetch).
    pub(crate) join_secs: f64,
    /// CPU time over the read (first record → last): the whole machine's (this consumer and the
    /// broker serving it) and the broker's.
    pub(crate) cpu: MachineCpu,
}

/// Reads every pre-loaded record once with a consumer that does nothing with them.
///
/// The read is timed from the first record to the last; the group join before it is kept apart:
/// on a broker whose `__consumer_offsets` is new it took 3 s of a 4-s run, and a ceiling that
/// moves with the coordinator's mood would flatter the ratio.
pub(crate) fn raw_consume(
    bootstrap: &str,
    loaded: &Loaded,
    group: &str,
    props: &[(String, String)],
    neighbours: &Neighbours,
) -> anyhow::Result<RawConsume> {
    let consumer = consumer(bootstrap, group, props)?;
    let topics: Vec<&str> = loaded.topics.iter().map(String::as_str).collect();
    let started = Instant::now();
    consumer.subscribe(&topics).context("cannot subscribe to the source topics")?;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut last = Instant::now();
    let mut first = None;
    let mut cpu_at_first = MachineCpu::default();
    while records < loaded.records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                if first.is_none() {
                    cpu_at_first = neighbours.sample();
                    first = Some(Instant::now());
                }
                records += 1;
                bytes += msg.payload_len() as u64;
                last = Instant::now();
            }
            // Kafka errors (a broker restarting) are transient; a read that stops is caught here.
            Some(Err(_)) | None if last.elapsed() > STALL => {
                bail!("the raw consumer read only {records} of {} records (nothing for {STALL:?})", loaded.records)
            }
            Some(Err(_)) | None => {}
        }
    }
    let cpu_at_last = neighbours.sample();
    let first = first.unwrap_or(started);
    Ok(RawConsume {
        read: Throughput::new(records, bytes, last.duration_since(first).as_secs_f64()),
        join_secs: first.duration_since(started).as_secs_f64(),
        cpu: cpu_at_last - cpu_at_first,
    })
}

/// The fastest of row 1's reads: the ceiling (`None` without reads).
pub(crate) fn fastest(reads: &[RawConsume]) -> Option<RawConsume> {
    reads.iter().copied().max_by(|a, b| a.read.records_per_sec.total_cmp(&b.read.records_per_sec))
}

/// `kcat` reading the topics (balanced consumer, from the beginning, exit at the end), printing
/// one offset per record so the records can be counted; `None` when `kcat` is not installed.
pub(crate) fn kcat(bootstrap: &str, loaded: &Loaded, group: &str) -> anyhow::Result<Option<Throughput>> {
    let installed = Command::new("kcat").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !installed.is_ok_and(|s| s.success()) {
        return Ok(None);
    }
    let started = Instant::now();
    let output = Command::new("kcat")
        .args(["-C", "-q", "-e", "-b", bootstrap, "-G", group, "-f", "%o\\n"])
        .args(["-X", "auto.offset.reset=earliest", "-X", "enable.auto.commit=false"])
        .args(&loaded.topics)
        .stdin(Stdio::null())
        .output()
        .context("cannot run kcat")?;
    let secs = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("kcat failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let records = output.stdout.iter().filter(|&&b| b == b'\n').count() as u64;
    if records != loaded.records {
        bail!("kcat read {records} of {} records", loaded.records);
    }
    Ok(Some(Throughput::new(records, loaded.bytes, secs)))
}
