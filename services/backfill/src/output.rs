//! A table's baseline files, written as its rows come: encoded by the exported files' Parquet
//! writer row group by row group into temporary files on local disk (never a whole file in
//! memory), hashed on the way, then created in the bucket from the file. A catch-up's replayed
//! files are written the same way, one at a time under the uploader's keys ([`OneFile`]).
//!
//! Metrics are cut every `metrics_rows_per_file` rows into the spec's two-sequence files
//! (`metrics_v5_<ws>_<seq>_<part:06>`, parts from 0); every other table is one file
//! (`<stem>_v5_<ws>_<seq>`). No rows, no file. `seq` is the highest first offset of the table's
//! files below the cut.
//!
//! A file's encoding options depend on its rows ([`ParquetOptions::for_rows`]: small files are
//! snappy, without dictionaries or a page index); they are the same for every count from
//! [`OPTIONS_SETTLED`] rows on, so a file's first rows are held until it has that many (or ends),
//! and the file comes out as if its row count had been known from the start.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use arrow_array::RecordBatch;
use dwsync_contract::Table;
use dwsync_format::{ParquetFileWriter, ParquetOptions, WriteError};
use dwsync_s3::create_only::FileObject;
use dwsync_sync_config::WorkspaceId;
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

/// Write buffer of a baseline file.
const WRITE_BUFFER: usize = 256 << 10;

/// Why writing a baseline file to local disk failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The temporary file could not be made or written.
    #[error("writing a baseline file to local disk in {dir}: {error}")]
    Io {
        /// The spill directory.
        dir: String,
        /// The error.
        error: std::io::Error,
    },
    /// The Parquet encoding failed.
    #[error("encoding a baseline file: {0}")]
    Encode(#[from] WriteError),
}

/// The rows from which a file's encoding options no longer change with its row count.
pub fn options_settled(options: &ParquetOptions) -> usize {
    options.small_file_rows.max(options.dictionary_min_rows).max(options.page_index_min_rows).max(1)
}

/// [`options_settled`] of the default options (1,000 rows).
pub const OPTIONS_SETTLED: usize = 1_000;

/// One baseline file written to local disk, ready to create; the file is deleted when dropped.
#[derive(Debug)]
pub struct LocalFile {
    /// What to create (key, path, size, SHA-256, rows).
    pub object: FileObject,
    /// The temporary file (deleted on drop).
    _temp: NamedTempFile,
}

/// Counts and hashes what goes through to the file.
struct Hashing {
    inner: BufWriter<File>,
    sha256: Sha256,
    len: u64,
}

impl Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.sha256.update(&bytes[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One file being written: its first rows held until the options settle, then encoded.
struct Open {
    key: String,
    temp: NamedTempFile,
    held: Vec<RecordBatch>,
    rows: usize,
    writer: Option<ParquetFileWriter<Hashing>>,
}

impl Open {
    /// A new file for `key` in `dir`.
    fn new(dir: &Path, key: String) -> Result<Self, OutputError> {
        let io = |error| OutputError::Io { dir: dir.display().to_string(), error };
        let temp = tempfile::Builder::new().prefix("dwsync-baseline-").tempfile_in(dir).map_err(io)?;
        Ok(Self { key, temp, held: Vec::new(), rows: 0, writer: None })
    }

    /// Adds `rows`: held until the options settle, then encoded.
    fn write(&mut self, table: Table, options: &ParquetOptions, rows: &RecordBatch) -> Result<(), OutputError> {
        self.rows += rows.num_rows();
        match &mut self.writer {
            Some(writer) => writer.write(rows)?,
            None => {
                self.held.push(rows.clone());
                if self.rows >= options_settled(options) {
                    let writer = start(table, options, self)?;
                    self.writer = Some(writer);
                }
            }
        }
        Ok(())
    }

    /// The file, its footer written, flushed and hashed (with no rows too).
    fn close(mut self, table: Table, options: &ParquetOptions) -> Result<LocalFile, OutputError> {
        let writer = match self.writer.take() {
            Some(writer) => writer,
            None => start(table, options, &mut self)?,
        };
        let mut hashing = writer.finish()?;
        let io = |error| OutputError::Io { dir: self.temp.path().display().to_string(), error };
        hashing.flush().map_err(io)?;
        let object = FileObject {
            key: self.key,
            path: self.temp.path().to_owned(),
            len: hashing.len,
            sha256_hex: hex::encode(hashing.sha256.finalize()),
            rows: self.rows as u64,
        };
        Ok(LocalFile { object, _temp: self.temp })
    }
}

/// One file under a given key (a catch-up's replayed file), written as [`Files`] writes a
/// baseline file: the same bytes as the whole file encoded at once, a file without rows too.
pub struct OneFile {
    table: Table,
    options: ParquetOptions,
    open: Open,
}

impl std::fmt::Debug for OneFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneFile").field("key", &self.open.key).field("rows", &self.open.rows).finish()
    }
}

impl OneFile {
    /// The file `key` of `table`, written in `dir`.
    pub fn new(dir: &Path, table: Table, key: String) -> Result<Self, OutputError> {
        Ok(Self { table, options: ParquetOptions::default(), open: Open::new(dir, key)? })
    }

    /// Adds the next rows.
    pub fn push(&mut self, rows: &RecordBatch) -> Result<(), OutputError> {
        self.open.write(self.table, &self.options, rows)
    }

    /// The file, ready to create.
    pub fn finish(self) -> Result<LocalFile, OutputError> {
        self.open.close(self.table, &self.options)
    }
}

/// Cuts one table's baseline rows into its files on local disk.
pub struct Files<'a> {
    dir: &'a Path,
    prefix: &'a str,
    table: Table,
    workspace: WorkspaceId,
    seq: u64,
    rows_per_file: usize,
    options: ParquetOptions,
    open: Option<Open>,
    parts: u64,
}

impl std::fmt::Debug for Files<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files").field("table", &self.table).field("seq", &self.seq).field("parts", &self.parts).finish()
    }
}

impl<'a> Files<'a> {
    /// The files of `table`'s baseline under `prefix`, written in `dir`; metrics cut every
    /// `metrics_rows_per_file` rows.
    pub fn new(
        dir: &'a Path,
        prefix: &'a str,
        table: Table,
        workspace: WorkspaceId,
        seq: u64,
        metrics_rows_per_file: usize,
    ) -> Self {
        let rows_per_file = if table == Table::Metrics { metrics_rows_per_file.max(1) } else { usize::MAX };
        let options = ParquetOptions::default();
        Self { dir, prefix, table, workspace, seq, rows_per_file, options, open: None, parts: 0 }
    }

    /// Adds the next rows; returns the files they completed (metrics parts).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<LocalFile>, OutputError> {
        let mut done = Vec::new();
        let mut at = 0;
        while at < batch.num_rows() {
            if self.open.is_none() {
                let part = (self.table == Table::Metrics).then_some(self.parts);
                let key = dwsync_handoff::baseline_key(self.prefix, self.table, self.workspace.get(), self.seq, part);
                self.open = Some(Open::new(self.dir, key)?);
                self.parts += 1;
            }
            let room = self.rows_per_file - self.open.as_ref().map_or(0, |o| o.rows);
            let n = room.min(batch.num_rows() - at);
            self.write(&batch.slice(at, n))?;
            at += n;
            if self.open.as_ref().is_some_and(|o| o.rows == self.rows_per_file)
                && let Some(file) = self.close()?
            {
                done.push(file);
            }
        }
        Ok(done)
    }

    /// The last file, if it has rows.
    pub fn finish(mut self) -> Result<Option<LocalFile>, OutputError> {
        self.close()
    }

    fn write(&mut self, rows: &RecordBatch) -> Result<(), OutputError> {
        let (table, options) = (self.table, &self.options);
        self.open.as_mut().map_or(Ok(()), |open| open.write(table, options, rows))
    }

    /// Ends the open file, if it has rows.
    fn close(&mut self) -> Result<Option<LocalFile>, OutputError> {
        match self.open.take() {
            Some(open) if open.rows > 0 => open.close(self.table, &self.options).map(Some),
            _ => Ok(None),
        }
    }
}

/// The writer of `open`, with the options of its row count so far, its held rows written.
fn start(table: Table, options: &ParquetOptions, open: &mut Open) -> Result<ParquetFileWriter<Hashing>, OutputError> {
    let io = |error| OutputError::Io { dir: open.temp.path().display().to_string(), error };
    let file = open.temp.as_file().try_clone().map_err(io)?;
    let sink = Hashing { inner: BufWriter::with_capacity(WRITE_BUFFER, file), sha256: Sha256::new(), len: 0 };
    let mut writer = ParquetFileWriter::new(table, sink, &options.for_rows(open.rows))?;
    for rows in open.held.drain(..) {
        writer.write(&rows)?;
    }
    Ok(writer)
}

#[cfg(test)]
mod tests {
    use dwsync_contract::{BatchBuilder, Encoding, decode};
    use dwsync_loadgen::Generator;

    use super::*;

    fn rows(table: Table, n: usize) -> RecordBatch {
        let mut generator = Generator::new(3);
        let mut builder = BatchBuilder::new(table);
        for i in 0..n {
            let record = generator.record(table, 42, i as u64);
            builder.append(&decode(table, Encoding::Json, record.encoded(Encoding::Json)).expect("valid"));
        }
        let batches = builder.finish().expect("rows");
        arrow::compute::concat_batches(&dwsync_contract::arrow_schema(table), &batches).expect("one batch")
    }

    fn written(table: Table, batches: &[RecordBatch], per_file: usize) -> Vec<(String, u64, Vec<u8>)> {
        let dir = tempfile::tempdir().expect("dir");
        let ws = WorkspaceId::new(42).expect("id");
        let mut files = Files::new(dir.path(), "exp", table, ws, 17, per_file);
        let mut out = Vec::new();
        for batch in batches {
            out.extend(files.push(batch).expect("push"));
        }
        out.extend(files.finish().expect("finish"));
        out.iter()
            .map(|f| {
                let bytes = std::fs::read(&f.object.path).expect("file");
                assert_eq!(bytes.len() as u64, f.object.len);
                assert_eq!(hex::encode(dwsync_handoff::chunk::sha256(&bytes)), f.object.sha256_hex);
                (f.object.key.clone(), f.object.rows, bytes)
            })
            .collect()
    }

    /// The file as the whole-in-memory encoder writes it.
    fn whole(table: Table, batches: &[RecordBatch]) -> Vec<u8> {
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        let mut writer =
            ParquetFileWriter::new(table, Vec::new(), &ParquetOptions::default().for_rows(rows)).expect("writer");
        for batch in batches {
            writer.write(batch).expect("write");
        }
        writer.finish().expect("finish")
    }

    #[test]
    fn metrics_are_cut_into_two_sequence_files_and_other_tables_are_one_file() {
        let (a, b) = (rows(Table::Metrics, 7), rows(Table::Metrics, 6));
        let got = written(Table::Metrics, &[a.clone(), a.slice(0, 0), b.clone()], 5);
        let summary: Vec<(&str, u64)> = got.iter().map(|(k, r, _)| (k.as_str(), *r)).collect();
        assert_eq!(
            summary,
            [
                ("exp/metrics_v5_42_000000000017_000000.parquet", 5),
                ("exp/metrics_v5_42_000000000017_000001.parquet", 5),
                ("exp/metrics_v5_42_000000000017_000002.parquet", 3),
            ]
        );
        assert_eq!(got[2].2, whole(Table::Metrics, &[b.slice(3, 3)]), "the bytes the in-memory encoder writes");
        assert_eq!(written(Table::Metrics, &[rows(Table::Metrics, 10)], 5).len(), 2, "exactly full parts");
        assert!(written(Table::Metrics, &[a.slice(0, 0)], 5).is_empty(), "no rows, no file");
        let people = rows(Table::People, 13);
        let got = written(Table::People, &[people.slice(0, 7), people.slice(7, 6)], 5);
        assert_eq!((got.len(), got[0].0.as_str(), got[0].1), (1, "exp/people_v5_42_000000000017.parquet", 13));
        assert_eq!(got[0].2, whole(Table::People, &[people.slice(0, 7), people.slice(7, 6)]));
    }

    #[test]
    fn a_large_file_is_written_as_if_its_row_count_were_known() {
        let people = rows(Table::People, 2_500);
        let batches: Vec<RecordBatch> = (0..5).map(|i| people.slice(i * 500, 500)).collect();
        let got = written(Table::People, &batches, 5);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, whole(Table::People, &batches), "options settled at 1,000 rows: zstd, dictionaries");
        assert_eq!(options_settled(&ParquetOptions::default()), OPTIONS_SETTLED);
    }

    #[test]
    fn one_file_is_the_whole_file_encoded_at_once_with_or_without_rows() {
        let dir = tempfile::tempdir().expect("dir");
        let people = rows(Table::People, 2_500);
        for n in [0, 7, 2_500] {
            let key = format!("exp/people_v5_42_{n}.parquet");
            let mut file = OneFile::new(dir.path(), Table::People, key.clone()).expect("file");
            for at in (0..n).step_by(600) {
                file.push(&people.slice(at, 600.min(n - at))).expect("push");
            }
            let file = file.finish().expect("finish");
            let bytes = std::fs::read(&file.object.path).expect("file");
            assert_eq!(bytes, whole(Table::People, &[people.slice(0, n)]), "{n} rows");
            assert_eq!(
                (file.object.key.as_str(), file.object.rows, file.object.len),
                (key.as_str(), n as u64, bytes.len() as u64)
            );
            assert_eq!(hex::encode(dwsync_handoff::chunk::sha256(&bytes)), file.object.sha256_hex);
        }
    }
}
