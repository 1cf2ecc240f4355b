//! The live side of `backfill-live`: ingest and the uploader as processes (the uploader following
//! control as well as its static destinations) on a steady stream of other workspaces' records,
//! produced at an even rate until told to stop; then every record checked in the bucket.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::handoff_files::{self, HandedOff};
use crate::preload::{self, Loaded};
use crate::scenario::Scenario;
use crate::services::{self, RunNames, S3Target, Service};
use crate::upload_log::UploadLog;

/// How often the stream's end is looked at while the last files are written.
const TICK: Duration = Duration::from_millis(200);

/// The stream's producer thread; told to stop when dropped (a failed run).
struct Stream {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<Loaded>>>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Ingest, the uploader, the stream feeding them and the harness's readers of both.
pub(crate) struct Pipeline {
    ingest: Service,
    uploader: Service,
    reader: handoff_files::Reader,
    log: UploadLog,
    stream: Option<Stream>,
    bucket: String,
}

/// What the stream delivered and where it went.
pub(crate) struct Finished {
    /// Records produced (and delivered to the source topics).
    pub(crate) records: u64,
    /// Every handed-off file, each in the bucket.
    pub(crate) files: Vec<HandedOff>,
    /// Object key → when the uploader wrote it (epoch ms).
    pub(crate) visible: BTreeMap<String, i64>,
}

/// Where the pipeline runs and with what.
pub(crate) struct Start<'a> {
    /// The live stream's scenario: its records per table bound the stream's length.
    pub(crate) scenario: &'a Scenario,
    /// Topic, group and bucket names.
    pub(crate) names: &'a RunNames,
    /// The S3 server.
    pub(crate) s3: &'a S3Target,
    /// Where the binaries are.
    pub(crate) bin_dir: &'a Path,
    /// Configs and logs.
    pub(crate) dir: &'a Path,
    /// The uploader's `[sync_config.store]` keys (control's topics).
    pub(crate) store: &'a str,
    /// Environment of ingest and of the uploader.
    pub(crate) env: [&'a [(String, String)]; 2],
    /// The generator's seed.
    pub(crate) seed: u64,
    /// Records per second offered.
    pub(crate) rate: f64,
}

impl Pipeline {
    /// Starts the uploader (until ready), ingest and the stream.
    pub(crate) fn start(s: Start<'_>) -> anyhow::Result<Self> {
        let reader = handoff_files::Reader::start(&s.names.bootstrap, &s.names.handoff)?;
        let [ingest_env, uploader_env] = s.env;
        let mut uploader = Service::start("uploader", s.bin_dir, s.dir, uploader_env, |port| {
            services::uploader_config(s.scenario, s.names, s.s3, port, Some(s.store))
        })?;
        uploader.wait_ready(Duration::from_secs(120))?;
        let ingest = Service::start("ingest", s.bin_dir, s.dir, ingest_env, |port| {
            services::ingest_config(s.scenario, s.names, port)
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let over = Duration::from_secs_f64(s.scenario.records() as f64 / s.rate.max(1e-9));
        let (scenario, bootstrap, seed, stopped) =
            (s.scenario.clone(), s.names.bootstrap.clone(), s.seed, Arc::clone(&stop));
        let topics = preload::topic_names(s.scenario, &s.names.topic_prefix);
        let thread = std::thread::spawn(move || {
            preload::produce(&scenario, &bootstrap, &topics, seed, Some(over), Some(&stopped))
        });
        let log = UploadLog::new(&uploader.log);
        Ok(Self {
            ingest,
            uploader,
            reader,
            log,
            stream: Some(Stream { stop, thread: Some(thread) }),
            bucket: s.names.bucket.clone(),
        })
    }

    /// Fails if a service exited or the stream ended before it was told to.
    pub(crate) fn check(&mut self) -> anyhow::Result<()> {
        self.ingest.check_running()?;
        self.uploader.check_running()?;
        if self.stream.as_ref().and_then(|s| s.thread.as_ref()).is_some_and(JoinHandle::is_finished) {
            bail!("the live stream ended before the initial sync was done (its length is capped)");
        }
        self.log.poll();
        Ok(())
    }

    /// The pids of ingest and the uploader.
    pub(crate) fn pids(&self) -> [(&'static str, u32); 2] {
        [("ingest", self.ingest.pid()), ("uploader", self.uploader.pid())]
    }

    /// Stops the stream, waits until every record produced is in a handed-off file and every
    /// file uploaded (failing after `stall` without progress), stops both services and checks
    /// that the bucket holds every file.
    pub(crate) async fn finish(mut self, s3: &aws_sdk_s3::Client, stall: Duration) -> anyhow::Result<Finished> {
        let mut stream = self.stream.take().context("the stream was already stopped")?;
        stream.stop.store(true, Ordering::Relaxed);
        let thread = stream.thread.take().context("the stream was already stopped")?;
        let fed = thread.join().map_err(|_| anyhow::anyhow!("the stream's producer panicked"))??;
        let records = fed.records;
        let mut progress = (0, 0);
        let mut last_progress = Instant::now();
        loop {
            tokio::time::sleep(TICK).await;
            self.ingest.check_running()?;
            self.uploader.check_running()?;
            self.log.poll();
            let files = self.reader.files();
            let rows: u64 = files.iter().map(|f| f.rows).sum();
            let uploaded = files.iter().filter(|f| self.log.visible().contains_key(&f.key)).count();
            if rows >= records && uploaded == files.len() {
                break;
            }
            if (files.len(), uploaded) != progress {
                progress = (files.len(), uploaded);
                last_progress = Instant::now();
            } else if last_progress.elapsed() > stall {
                bail!(
                    "LIVE RECORDS MISSING: after {stall:?} without progress {rows} of {records} streamed rows are \
                     handed off and {uploaded} of {} files uploaded\ningest log ({}):\n{}\nuploader log ({}):\n{}",
                    files.len(),
                    self.ingest.log.display(),
                    self.ingest.log_tail(15),
                    self.uploader.log.display(),
                    self.uploader.log_tail(15)
                );
            }
        }
        self.ingest.stop();
        self.uploader.stop();
        self.log.poll();
        let files = self.reader.stop()?;
        let rows: u64 = files.iter().map(|f| f.rows).sum();
        if rows != records {
            bail!("LIVE RECORDS MISSING: {rows} rows were handed off for {records} records streamed");
        }
        let keys = crate::s3::list_keys(s3, &self.bucket).await?;
        let missing: Vec<&str> = files.iter().map(|f| f.key.as_str()).filter(|k| !keys.contains(*k)).collect();
        if let Some(first) = missing.first() {
            bail!(
                "LIVE RECORDS MISSING: {} of {} live files are not in bucket {} (first: {first})",
                missing.len(),
                files.len(),
                self.bucket
            );
        }
        Ok(Finished { records, files, visible: self.log.visible().clone() })
    }
}
