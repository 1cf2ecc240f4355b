//! The latest row per key within a memory budget (Grace-hash partitioning to local disk).
//!
//! Rows are folded in memory ([`Latest`]) until what it holds passes the budget. Then every row
//! held and every row after it is written, with its **ordinal** (its place in archive order),
//! to one of [`FANOUT`] spill files chosen by a hash of its key: all rows of a key land in one
//! file. At the end each file is folded on its own (in memory when its rows fit the budget,
//! else partitioned again with another hash, up to [`MAX_DEPTH`] levels) into a **run**: its
//! winners in ordinal order. The runs are merged by ordinal, so the winners come out in archive
//! order, in batches of [`OUT_ROWS`] rows, exactly as the in-memory fold gives them whatever the
//! budget: the same archive folds into the same rows, in the same order and batches.
//!
//! Spill files are Arrow IPC streams (LZ4 frames) in a temporary directory under the configured
//! one, deleted as soon as they are read and all of them when the fold is dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::compute::{interleave_record_batch, take_record_batch};
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, RecordBatch, UInt32Array, UInt64Array};
use arrow_ipc::CompressionType;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use tempfile::TempDir;

use super::keys::KeyColumns;
use super::latest::{Latest, OUT_ROWS};

/// Spill files per level of partitioning.
pub const FANOUT: usize = 32;

/// Levels of partitioning at most; a file still too large at the last level (one key with a
/// huge history) is folded in memory, where [`Latest`] holds about its live keys only.
pub const MAX_DEPTH: u32 = 3;

/// Rows per batch of a run file (the merge holds one batch per run).
const RUN_ROWS: usize = 1_024;

/// Buffer of each spill file's writer and reader.
const IO_BUFFER: usize = 64 << 10;

/// The column carrying a row's place in archive order in spill files.
const ORDINAL: &str = "__dwsync_ordinal";

/// Where a fold may spill and how much it may hold in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spill {
    /// Directory of the spill files (a temporary directory is made in it per fold).
    pub dir: PathBuf,
    /// Bytes of rows (Arrow buffers) a fold holds in memory before it spills.
    pub budget_bytes: usize,
    /// What the folds spilling here wrote (shared by the clones of this `Spill`).
    pub counter: SpillCounter,
}

/// What folds spilled: the bytes of the spill files they wrote (every level of partitioning
/// and every run, as on disk: LZ4-compressed Arrow IPC) and how many folds passed their budget.
/// Clones count together; two counters are equal when they are the same one.
#[derive(Debug, Clone, Default)]
pub struct SpillCounter(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    bytes: AtomicU64,
    folds: AtomicU64,
}

impl SpillCounter {
    /// Bytes written to spill files so far (counted as each file is complete).
    pub fn bytes(&self) -> u64 {
        self.0.bytes.load(Ordering::Relaxed)
    }

    /// Folds that passed their memory budget and spilled, so far.
    pub fn folds(&self) -> u64 {
        self.0.folds.load(Ordering::Relaxed)
    }

    fn wrote(&self, bytes: u64) {
        let _ = self.0.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn spilled(&self) {
        let _ = self.0.folds.fetch_add(1, Ordering::Relaxed);
    }
}

impl PartialEq for SpillCounter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SpillCounter {}

/// Why a fold's spill failed.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    /// Arrow (a kernel, or the IPC encoding) failed.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// The spill directory or a spill file could not be made, written or read.
    #[error("spill file {path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpillError + '_ {
    move |error| SpillError::Io { path: path.to_owned(), error }
}

/// The latest row per key of the batches pushed, within [`Spill::budget_bytes`] of rows held.
#[derive(Debug)]
pub(crate) struct SpillLatest {
    schema: SchemaRef,
    key: Vec<String>,
    spill: Option<Spill>,
    state: State,
}

#[derive(Debug)]
enum State {
    Memory(Latest),
    Spilled(Partitions),
}

impl SpillLatest {
    /// Latest rows by the columns `key` of batches with `schema`; in memory only without `spill`.
    pub(crate) fn new(schema: SchemaRef, key: &[&str], spill: Option<Spill>) -> Result<Self, SpillError> {
        let latest = Latest::new(schema.clone(), key)?;
        let key = key.iter().map(|k| (*k).to_owned()).collect();
        Ok(Self { schema, key, spill, state: State::Memory(latest) })
    }

    /// Adds the next rows in archive order.
    pub(crate) fn push(&mut self, batch: RecordBatch) -> Result<(), SpillError> {
        let key: Vec<&str> = self.key.iter().map(String::as_str).collect();
        match &mut self.state {
            State::Spilled(partitions) => partitions.write_next(&batch),
            State::Memory(latest) => {
                latest.push(batch)?;
                let Some(spill) = &self.spill else { return Ok(()) };
                if latest.memory_size() <= spill.budget_bytes {
                    return Ok(());
                }
                let dir =
                    tempfile::Builder::new().prefix("dwsync-fold-").tempdir_in(&spill.dir).map_err(io(&spill.dir))?;
                let with_ordinal = with_ordinal_schema(&self.schema);
                let keys = KeyColumns::new(&with_ordinal, &key)?;
                let to = SpillTo { dir: Arc::new(dir), counter: spill.counter.clone() };
                spill.counter.spilled();
                let mut partitions = Partitions::create(to, PathBuf::new(), with_ordinal, keys, 0)?;
                let held = std::mem::replace(latest, Latest::new(self.schema.clone(), &key)?);
                // Held rows are in archive order (compaction keeps it): written as they are, each
                // batch freed once written, not compacted first (that would copy the budget).
                for rows in held.into_held() {
                    partitions.write_next(&rows)?;
                }
                tracing::debug!(budget = spill.budget_bytes, "A fold passed its memory budget: spilling.");
                self.state = State::Spilled(partitions);
                Ok(())
            }
        }
    }

    /// The latest rows, in archive order, in batches of [`OUT_ROWS`] rows (the last one fewer).
    pub(crate) fn finish(self) -> Result<Winners, SpillError> {
        match self.state {
            State::Memory(latest) => Ok(Winners::Memory(latest.finish()?.into_iter())),
            State::Spilled(partitions) => {
                let budget = self.spill.map_or(usize::MAX, |s| s.budget_bytes);
                let to = partitions.to.clone();
                let runs = partitions.fold(&self.key, budget)?;
                Ok(Winners::Merge { merge: Merge::open(runs, to.dir)?, table: self.schema })
            }
        }
    }
}

/// The winners of a [`SpillLatest`], batch by batch.
#[derive(Debug)]
pub(crate) enum Winners {
    /// Folded in memory.
    Memory(std::vec::IntoIter<RecordBatch>),
    /// Merged from runs on disk (their ordinal column dropped on the way out).
    Merge {
        /// The runs.
        merge: Merge,
        /// The rows' schema, without the ordinal.
        table: SchemaRef,
    },
}

impl Iterator for Winners {
    type Item = Result<RecordBatch, SpillError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Memory(batches) => batches.next().map(Ok),
            Self::Merge { merge, table } => match merge.next_batch(OUT_ROWS) {
                Ok(None) => None,
                Ok(Some(batch)) => Some(without_ordinal(&batch, table).map_err(SpillError::from)),
                Err(e) => Some(Err(e)),
            },
        }
    }
}

fn with_ordinal_schema(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(ORDINAL, DataType::UInt64, false)));
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn without_ordinal(batch: &RecordBatch, table: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = batch.columns()[..batch.num_columns().saturating_sub(1)].to_vec();
    RecordBatch::try_new(table.clone(), columns)
}

fn ordinals(batch: &RecordBatch) -> Result<&UInt64Array, ArrowError> {
    batch
        .column(batch.num_columns().saturating_sub(1))
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| ArrowError::SchemaError("a spill batch without its ordinal column".into()))
}

/// The partition of a key at a level: a hash of the key's bytes seeded by the level, so a
/// partition split again spreads its keys over new partitions.
fn partition_of(key: &[u8], level: u32) -> usize {
    // SipHash with fixed keys: the same partition on every run (not that the output depends on
    // it: the merge by ordinal restores archive order whatever the partitions).
    #[expect(deprecated, reason = "SipHasher is the std hasher with fixed keys")]
    let mut hasher = std::hash::SipHasher::new_with_keys(0x6477_7379_6e63, u64::from(level));
    key.hash(&mut hasher);
    (hasher.finish() % FANOUT as u64) as usize
}

/// A fold's spill directory and the counter of what it writes there.
#[derive(Debug, Clone)]
struct SpillTo {
    dir: Arc<TempDir>,
    counter: SpillCounter,
}

/// An IPC stream file being written.
struct SpillWriter {
    path: PathBuf,
    writer: StreamWriter<BufWriter<File>>,
    /// Bytes of the rows written (Arrow buffers, before compression).
    row_bytes: usize,
    /// Counts the file's bytes once it is complete.
    counter: SpillCounter,
}

impl std::fmt::Debug for SpillWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillWriter").field("path", &self.path).field("row_bytes", &self.row_bytes).finish()
    }
}

impl SpillWriter {
    fn create(path: PathBuf, schema: &Schema, counter: &SpillCounter) -> Result<Self, SpillError> {
        let file = File::create_new(&path).map_err(io(&path))?;
        let options = IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
        let writer = StreamWriter::try_new_with_options(BufWriter::with_capacity(IO_BUFFER, file), schema, options)?;
        Ok(Self { path, writer, row_bytes: 0, counter: counter.clone() })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), SpillError> {
        self.row_bytes += batch.get_array_memory_size();
        self.writer.write(batch).map_err(SpillError::from)
    }

    fn finish(mut self) -> Result<(PathBuf, usize), SpillError> {
        self.writer.finish()?;
        let file = self.writer.into_inner()?;
        let file = file.into_inner().map_err(|e| SpillError::Io { path: self.path.clone(), error: e.into_error() })?;
        self.counter.wrote(file.metadata().map_err(io(&self.path))?.len());
        Ok((self.path, self.row_bytes))
    }
}

/// Reads a spill file's batches, then deletes it.
struct SpillReader {
    path: PathBuf,
    reader: StreamReader<BufReader<File>>,
}

impl SpillReader {
    fn open(path: PathBuf) -> Result<Self, SpillError> {
        let file = File::open(&path).map_err(io(&path))?;
        let reader = StreamReader::try_new(BufReader::with_capacity(IO_BUFFER, file), None)?;
        Ok(Self { path, reader })
    }

    /// The next batch with rows, `None` at the end (the file is then deleted).
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, SpillError> {
        for batch in self.reader.by_ref() {
            let batch = batch?;
            if batch.num_rows() > 0 {
                return Ok(Some(batch));
            }
        }
        std::fs::remove_file(&self.path).map_err(io(&self.path))?;
        Ok(None)
    }
}

impl std::fmt::Debug for SpillReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillReader").field("path", &self.path).finish()
    }
}

/// [`FANOUT`] spill files of one level, rows with their ordinals, by a hash of the key.
#[derive(Debug)]
struct Partitions {
    to: SpillTo,
    /// Names of this level's files start with it (the parent's path).
    name: PathBuf,
    schema: SchemaRef,
    keys: KeyColumns,
    level: u32,
    files: Vec<SpillWriter>,
    /// The ordinal of the next row without one.
    next: u64,
}

impl Partitions {
    fn create(to: SpillTo, name: PathBuf, schema: SchemaRef, keys: KeyColumns, level: u32) -> Result<Self, SpillError> {
        let files = (0..FANOUT)
            .map(|p| {
                let file = format!("{}-{p:02}", name.display());
                SpillWriter::create(to.dir.path().join(file.trim_start_matches('-')), &schema, &to.counter)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { to, name, schema, keys, level, files, next: 0 })
    }

    /// Writes the next rows in archive order (without ordinals: they get the next ones).
    fn write_next(&mut self, batch: &RecordBatch) -> Result<(), SpillError> {
        let n = batch.num_rows() as u64;
        let ordinal: ArrayRef = Arc::new(UInt64Array::from_iter_values(self.next..self.next + n));
        self.next += n;
        let mut columns = batch.columns().to_vec();
        columns.push(ordinal);
        self.write(&RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Writes rows with their ordinals, each to its key's file.
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SpillError> {
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); FANOUT];
        for (row, key) in self.keys.keys(batch).iter().enumerate() {
            let row =
                u32::try_from(row).map_err(|_| ArrowError::InvalidArgumentError("a batch of 2^32 rows".into()))?;
            rows[partition_of(key, self.level)].push(row);
        }
        for (file, rows) in self.files.iter_mut().zip(rows) {
            if !rows.is_empty() {
                file.write(&take_record_batch(batch, &UInt32Array::from(rows))?)?;
            }
        }
        Ok(())
    }

    /// Folds every file into a run (its winners in ordinal order), in file order.
    fn fold(self, key: &[String], budget: usize) -> Result<Vec<PathBuf>, SpillError> {
        let Self { to, name, schema, keys, level, files, .. } = self;
        let key: Vec<&str> = key.iter().map(String::as_str).collect();
        let mut runs = Vec::with_capacity(files.len());
        for (p, file) in files.into_iter().enumerate() {
            let (path, row_bytes) = file.finish()?;
            let name = PathBuf::from(format!("{}-{p:02}", name.display()));
            let run = to.dir.path().join(format!("{}.run", name.display()).trim_start_matches('-'));
            if row_bytes <= budget || level + 1 >= MAX_DEPTH {
                fold_in_memory(&path, &run, &schema, &key, &to.counter)?;
            } else {
                // Too large to fold at once: split it again with the next level's hash, fold
                // those, and merge their runs into this one.
                let mut sub = Partitions::create(to.clone(), name, schema.clone(), keys.clone(), level + 1)?;
                let mut reader = SpillReader::open(path)?;
                while let Some(batch) = reader.next_batch()? {
                    sub.write(&batch)?;
                }
                let owned: Vec<String> = key.iter().map(|k| (*k).to_owned()).collect();
                let mut merge = Merge::open(sub.fold(&owned, budget)?, to.dir.clone())?;
                let mut out = SpillWriter::create(run.clone(), &schema, &to.counter)?;
                while let Some(batch) = merge.next_batch(RUN_ROWS)? {
                    out.write(&batch)?;
                }
                out.finish()?;
            }
            runs.push(run);
        }
        Ok(runs)
    }
}

/// Folds the spill file at `path` in memory into the run file `run` (winners by ordinal).
fn fold_in_memory(
    path: &Path,
    run: &Path,
    schema: &SchemaRef,
    key: &[&str],
    counter: &SpillCounter,
) -> Result<(), SpillError> {
    let mut latest = Latest::new(schema.clone(), key)?;
    let mut reader = SpillReader::open(path.to_owned())?;
    while let Some(batch) = reader.next_batch()? {
        latest.push(batch)?;
    }
    let mut out = SpillWriter::create(run.to_owned(), schema, counter)?;
    for batch in latest.finish()? {
        let mut at = 0;
        while at < batch.num_rows() {
            let n = RUN_ROWS.min(batch.num_rows() - at);
            out.write(&batch.slice(at, n))?;
            at += n;
        }
    }
    out.finish()?;
    Ok(())
}

/// One run being merged: its current batch and row.
#[derive(Debug)]
struct Run {
    reader: SpillReader,
    batch: RecordBatch,
    row: usize,
}

impl Run {
    fn ordinal(&self) -> Result<u64, ArrowError> {
        Ok(ordinals(&self.batch)?.value(self.row))
    }
}

/// A k-way merge of runs by ordinal (each run's rows ascending, no ordinal in two runs).
#[derive(Debug)]
pub(crate) struct Merge {
    /// The spill directory, deleted when the last holder is dropped.
    _dir: Arc<TempDir>,
    runs: Vec<Option<Run>>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

impl Merge {
    fn open(paths: Vec<PathBuf>, dir: Arc<TempDir>) -> Result<Self, SpillError> {
        let mut runs = Vec::with_capacity(paths.len());
        let mut heap = BinaryHeap::with_capacity(paths.len());
        for (index, path) in paths.into_iter().enumerate() {
            let mut reader = SpillReader::open(path)?;
            let run = match reader.next_batch()? {
                Some(batch) => {
                    let run = Run { reader, batch, row: 0 };
                    heap.push(Reverse((run.ordinal()?, index)));
                    Some(run)
                }
                None => None,
            };
            runs.push(run);
        }
        Ok(Self { _dir: dir, runs, heap })
    }

    /// The next (up to) `rows` rows in ordinal order; `None` when every run is done.
    fn next_batch(&mut self, rows: usize) -> Result<Option<RecordBatch>, SpillError> {
        let mut sources: Vec<RecordBatch> = Vec::new();
        let mut source_of: Vec<Option<usize>> = vec![None; self.runs.len()];
        let mut indices: Vec<(usize, usize)> = Vec::with_capacity(rows);
        while indices.len() < rows {
            let Some(Reverse((_, index))) = self.heap.pop() else { break };
            let Some(run) = self.runs[index].as_mut() else { continue };
            let source = match source_of[index] {
                Some(source) => source,
                None => {
                    sources.push(run.batch.clone());
                    source_of[index] = Some(sources.len() - 1);
                    sources.len() - 1
                }
            };
            indices.push((source, run.row));
            run.row += 1;
            if run.row == run.batch.num_rows() {
                source_of[index] = None;
                match run.reader.next_batch()? {
                    Some(batch) => (run.batch, run.row) = (batch, 0),
                    None => {
                        self.runs[index] = None;
                        continue;
                    }
                }
            }
            self.heap.push(Reverse((run.ordinal()?, index)));
        }
        if indices.is_empty() {
            return Ok(None);
        }
        let sources: Vec<&RecordBatch> = sources.iter().collect();
        Ok(Some(interleave_record_batch(&sources, &indices)?))
    }
}
