//! The files ingest hands off, read live from the handoff topic (`read_committed`, from the
//! beginning, no consumer group): each file's object key, rows and window close time. Cut
//! records are passed over.

use std::collections::BTreeMap;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, bail};
use dwsync_contract::Table;
use dwsync_handoff::{FileChunk, FileKind, data_key};
use dwsync_proto::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Headers as _;
use rdkafka::{Message as _, Offset, TopicPartitionList};

use crate::kafka;
use crate::services::workspace_prefix;

/// One handed-off file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HandedOff {
    /// The key the uploader writes it to (relative to the bucket).
    pub(crate) key: String,
    /// Its table.
    pub(crate) table: Table,
    /// Rows in the file.
    pub(crate) rows: u64,
    /// Parquet bytes.
    pub(crate) bytes: u64,
    /// When its window closed (epoch ms, ingest's clock).
    pub(crate) closed_at_ms: i64,
    /// Why it closed (`time`, `rows`, `bytes`, `memory`, `partition`).
    pub(crate) reason: String,
}

/// Files seen so far, by file id (a file rebuilt after a crash has the same id), and their rows.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// The files by file id.
    files: BTreeMap<String, HandedOff>,
    /// The sum of their rows, kept as they come (cheap to read on every tick of a long run).
    rows: u64,
}

impl Seen {
    /// Adds or replaces the file `id`.
    fn insert(&mut self, id: String, file: HandedOff) {
        self.rows += file.rows;
        if let Some(old) = self.files.insert(id, file) {
            self.rows -= old.rows;
        }
    }
}

/// [`Seen`], shared with the reader thread.
pub(crate) type Files = Arc<Mutex<Seen>>;

/// A reader thread; stopped and joined with [`Reader::stop`].
pub(crate) struct Reader {
    files: Files,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Reader {
    /// Starts reading every partition of `topic` from the beginning.
    pub(crate) fn start(bootstrap: &str, topic: &str) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = kafka::config(bootstrap)
            .set("group.id", "dwsync-bench-handoff-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .context("cannot create the handoff reader")?;
        // A topic created a moment ago can show no partitions in the broker's first answers.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let partitions = loop {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .context("cannot read the handoff topic's metadata")?;
            let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
            if partitions > 0 {
                break partitions;
            }
            if std::time::Instant::now() >= deadline {
                bail!("the handoff topic {topic} has no partitions after 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            assignment.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&assignment).context("cannot assign the handoff partitions")?;
        let files: Files = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (files_, stop_) = (Arc::clone(&files), Arc::clone(&stop));
        let thread = std::thread::spawn(move || read(&consumer, &files_, &stop_));
        Ok(Self { files, stop, thread: Some(thread) })
    }

    /// The files seen so far.
    pub(crate) fn files(&self) -> Vec<HandedOff> {
        self.files.lock().map(|f| f.files.values().cloned().collect()).unwrap_or_default()
    }

    /// How many files and rows were seen so far, without copying them (see [`Reader::files`]).
    pub(crate) fn totals(&self) -> (usize, u64) {
        self.files.lock().map(|f| (f.files.len(), f.rows)).unwrap_or_default()
    }

    /// Stops the thread; fails if reading failed.
    pub(crate) fn stop(mut self) -> anyhow::Result<Vec<HandedOff>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().map_err(|_| anyhow::anyhow!("the handoff reader panicked"))??;
        }
        Ok(self.files())
    }
}

fn read(consumer: &BaseConsumer, files: &Files, stop: &AtomicBool) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        // Kafka errors (a broker restarting) are transient: librdkafka reconnects by itself,
        // and a pipeline that really stops is caught by the run's stall timeout.
        let Some(Ok(msg)) = consumer.poll(Duration::from_millis(100)) else { continue };
        // Cut records (control's, for an initial sync or a purge) hold no file.
        if msg.headers().is_some_and(|h| dwsync_handoff::cut_value(h.iter().map(|h| (h.key, h.value))).is_some()) {
            continue;
        }
        let chunk = FileChunk::decode(msg.payload().unwrap_or_default()).context("a handoff record is no FileChunk")?;
        if chunk.chunk_index != 0 {
            continue;
        }
        let table = Table::from_str(&chunk.table).map_err(|e| anyhow::anyhow!("{e}"))?;
        let kind = FileKind::try_from(chunk.kind).unwrap_or(FileKind::Unspecified);
        // The object's seq is the offset of the file's first chunk (docs/PIPELINE.md).
        let seq = u64::try_from(msg.offset()).unwrap_or(0);
        let key = data_key(&workspace_prefix(chunk.workspace_id), table, kind, chunk.workspace_id, seq);
        let file = HandedOff {
            key,
            table,
            rows: chunk.row_count,
            bytes: chunk.file_size,
            closed_at_ms: chunk.window_closed_at_ms,
            reason: chunk.close_reason,
        };
        if let Ok(mut files) = files.lock() {
            files.insert(chunk.file_id, file);
        }
    }
    Ok(())
}
