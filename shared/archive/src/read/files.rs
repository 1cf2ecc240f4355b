//! A table's handed-off files of a workspace in an offset range, one file at a time and each
//! file's rows a decoded batch at a time ([`WorkspaceHistory::file_stream`], for a catch-up).
//!
//! Per archive batch the table's objects (one, or new and changes) are opened as for
//! [`TableStream`](super::TableStream) (footer, and the workspace's row group fetched
//! compressed); each object's rows are cut into its files by the footer's rows per file, and the
//! objects' files are taken in offset order (the two objects of people, objects and object types
//! interleave). A file's rows are decoded as they are asked for, at most 8,192 rows at a time:
//! what the stream holds decoded is at most one such batch per object of the archive batch, never
//! a whole file, let alone a batch's files. An object written before rows per file were recorded
//! is one file at its first file's offset, holding every row of the workspace in it.

use std::collections::VecDeque;

use arrow_array::RecordBatch;
use dwsync_contract::Table;
use dwsync_handoff::FileKind;

use super::object::LazySlice;
use super::{ReadAhead, ReadError, WorkspaceHistory};
use crate::footer::SourceFile;

/// One file of a [`FileStream`], its rows to come ([`FileStream::next_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStart {
    /// Offset of its first chunk in the handoff partition (the uploader's `seq`).
    pub first_offset: i64,
    /// [`FileKind::New`] or [`FileKind::Changes`] for people, objects and object types (from the
    /// archive object holding it), [`FileKind::Unspecified`] for every other table.
    pub kind: FileKind,
    /// Its rows.
    pub rows: u64,
}

/// One object of the current archive batch: its files still to come and its decoded rows not
/// returned yet.
struct Cursor {
    slice: LazySlice,
    kind: FileKind,
    /// (first offset, rows) of each file still to come.
    files: VecDeque<(i64, u64)>,
    /// Decoded rows not returned yet (the start of the next file's).
    held: Option<RecordBatch>,
}

/// `table`'s files of a workspace in `[from, to)`, in offset order ([`WorkspaceHistory::file_stream`]).
pub struct FileStream<'a> {
    history: &'a WorkspaceHistory,
    table: Table,
    from: i64,
    to: i64,
    /// The next listed batch to open.
    next: usize,
    cursors: Vec<Cursor>,
    /// The current file: its cursor and its rows not returned yet.
    current: Option<(usize, u64)>,
    /// Objects of the table whose footer was read so far.
    pub objects_opened: usize,
    /// Their total size.
    pub object_bytes: u64,
    /// Footers of the next batches, read ahead.
    ahead: ReadAhead,
}

impl std::fmt::Debug for FileStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStream").field("table", &self.table).field("next", &self.next).finish()
    }
}

/// Each file's (first offset, rows) in an object whose workspace rows are `rows`: by the footer's
/// rows per file, or — written before those were recorded, or if they do not add up — one file
/// at its first file's offset with every row.
pub(crate) fn file_rows(files: &[SourceFile], rows: u64) -> Vec<(i64, u64)> {
    let per_file: Option<Vec<u64>> = files.iter().map(|f| f.rows).collect();
    match per_file.filter(|each| each.iter().sum::<u64>() == rows) {
        Some(each) => files.iter().map(|f| f.first_offset).zip(each).collect(),
        None => vec![(files.first().map_or(i64::MIN, |f| f.first_offset), rows)],
    }
}

impl<'a> FileStream<'a> {
    pub(super) fn new(history: &'a WorkspaceHistory, table: Table, from: i64, to: i64) -> Self {
        Self {
            history,
            table,
            from,
            to,
            next: 0,
            cursors: Vec::new(),
            current: None,
            objects_opened: 0,
            object_bytes: 0,
            ahead: ReadAhead::default(),
        }
    }

    /// Rows decoded and not returned yet (at most one decoded batch per object of the current
    /// archive batch).
    pub fn held_rows(&self) -> usize {
        self.cursors.iter().filter_map(|c| c.held.as_ref()).map(RecordBatch::num_rows).sum()
    }

    /// The next file in the range; `None` after the last. The rows of the previous file not read
    /// yet are skipped.
    pub async fn next_file(&mut self) -> Result<Option<FileStart>, ReadError> {
        loop {
            while self.next_rows()?.is_some() {}
            let next = self.cursors.iter().enumerate().filter_map(|(i, c)| c.files.front().map(|f| (f.0, i))).min();
            if let Some((_, index)) = next {
                let cursor = &mut self.cursors[index];
                let Some((first_offset, rows)) = cursor.files.pop_front() else { continue };
                self.current = Some((index, rows));
                if (self.from..self.to).contains(&first_offset) {
                    return Ok(Some(FileStart { first_offset, kind: cursor.kind, rows }));
                }
                continue;
            }
            // Every file of the batch is read: its objects must hold no more rows.
            for mut cursor in self.cursors.drain(..) {
                let more = cursor.held.take().map_or(0, |b| b.num_rows());
                if more > 0 || cursor.slice.next_batch()?.is_some_and(|b| b.num_rows() > 0) {
                    return Err(ReadError::unreadable(cursor.slice.key(), "more rows than its footer's files"));
                }
            }
            let history = self.history;
            let index = self.next;
            let Some(batch) = history.batches.get(index).filter(|b| b.range.start < self.to) else {
                return Ok(None);
            };
            self.next += 1;
            if batch.range.end <= self.from {
                continue;
            }
            let wanted = (self.from, self.to);
            let (slices, opened, bytes) = history.open_slices(index, self.table, wanted, &mut self.ahead).await?;
            self.objects_opened += opened;
            self.object_bytes += bytes;
            for (_, part, slice) in slices {
                let kind = match (self.table.def().has_change_files, part.kind) {
                    (false, _) => FileKind::Unspecified,
                    (true, FileKind::Changes) => FileKind::Changes,
                    (true, _) => FileKind::New,
                };
                let files = file_rows(&slice.files, slice.expected_rows()).into();
                self.cursors.push(Cursor { slice, kind, files, held: None });
            }
        }
    }

    /// The current file's next rows (at most one decoded batch, 8,192 rows); `None` once they
    /// are all returned.
    pub fn next_rows(&mut self) -> Result<Option<RecordBatch>, ReadError> {
        let Some((index, left)) = self.current.as_mut() else { return Ok(None) };
        if *left == 0 {
            self.current = None;
            return Ok(None);
        }
        let cursor = &mut self.cursors[*index];
        let batch = match cursor.held.take() {
            Some(batch) => batch,
            None => loop {
                match cursor.slice.next_batch()? {
                    Some(batch) if batch.num_rows() == 0 => {}
                    Some(batch) => break batch,
                    None => {
                        return Err(ReadError::unreadable(cursor.slice.key(), "fewer rows than its footer's files"));
                    }
                }
            },
        };
        let n = usize::try_from(*left).unwrap_or(usize::MAX).min(batch.num_rows());
        if n < batch.num_rows() {
            cursor.held = Some(batch.slice(n, batch.num_rows() - n));
        }
        *left -= n as u64;
        Ok(Some(batch.slice(0, n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(first_offset: i64, rows: Option<u64>) -> SourceFile {
        SourceFile { first_offset, rows }
    }

    #[test]
    fn an_objects_rows_are_cut_by_its_files_or_kept_whole() {
        assert_eq!(file_rows(&[file(4, Some(2)), file(6, Some(1))], 3), [(4, 2), (6, 1)]);
        // Old objects (no rows per file), or rows per file that do not add up: one file.
        assert_eq!(file_rows(&[file(2, None), file(8, None)], 5), [(2, 5)]);
        assert_eq!(file_rows(&[file(2, Some(1)), file(8, Some(1))], 5), [(2, 5)]);
    }
}
