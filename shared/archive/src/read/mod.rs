//! Reading one workspace's history from the archive: its handoff partition's batches listed in
//! offset order, and per (table, kind) object only the footer and that workspace's row group.
//!
//! Archive order: batches in offset order; within a batch, a workspace's rows in the order of
//! the handed-off files they came from (their first offsets), rows in file order. For the tables
//! with new and change files (people, objects, object types) the two objects of a batch are
//! merged by their files' offsets, using the rows per file the footer records. An object written
//! before that was recorded counts as one file at its first file's offset.
//!
//! **Up to a cut** ([`WorkspaceHistory::before`]): only the rows of files whose first offset is
//! below the cut (an initial sync's baseline). Batches starting at or after the cut are not
//! opened; inside a batch that straddles it, the workspace's rows are sliced by the footer's rows
//! per file. An object without rows per file counts as one file at its first file's offset: it is
//! kept whole when that offset is below the cut (rows of its later files past the cut included),
//! left out otherwise.
//!
//! **File by file in a range** ([`WorkspaceHistory::files`], for a catch-up): the files whose
//! first offset is in `[from, to)`, each on its own with its rows, first offset and kind (new or
//! changes), in offset order; sliced the same way, an old object counting as one file at its first
//! offset. [`WorkspaceHistory::file_stream`] gives them one file at a time, each file's rows a
//! decoded batch at a time.

mod error;
mod files;
mod memo;
mod object;
mod ranged;

pub(crate) use object::workspace_rows;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow_array::RecordBatch;
use dwsync_contract::{Table, arrow_schema};
use dwsync_handoff::FileKind;
use dwsync_s3::list::{Listed, list_prefix};
use futures_util::future::join_all;

pub use error::ReadError;
pub use files::{FileStart, FileStream};
pub use ranged::Fetched;

use crate::key::{BatchRange, ObjectKey, Part, parse_key, partition_prefix};
use crate::partition::handoff_partition;
use memo::FooterMemo;
use object::{LazySlice, Slice, WorkspaceFooter};
use ranged::RangedObject;

/// Batches whose footers a stream, or [`WorkspaceHistory::last_seq`], reads at once
/// (concurrently) ahead of the one it is at.
const READ_AHEAD_BATCHES: usize = 16;

/// One object of a listed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// Its (table, kind).
    pub part: Part,
    /// Its size in bytes, from the listing.
    pub size: u64,
}

/// One batch of a partition, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBatch {
    /// Its offsets.
    pub range: BatchRange,
    /// Its objects, by part.
    pub objects: Vec<ListedObject>,
}

/// Reads the archive in one bucket and prefix, written from a handoff topic of `partitions`
/// partitions. Counts every byte it fetches ([`Fetched`]).
#[derive(Debug, Clone)]
pub struct ArchiveReader {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    partitions: i32,
    fetched: Arc<Fetched>,
}

impl ArchiveReader {
    /// A reader of `s3://<bucket>/<prefix>` with `client`'s credentials and retry policy.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        partitions: i32,
    ) -> Result<Self, ReadError> {
        if partitions <= 0 {
            return Err(ReadError::Partitions(partitions));
        }
        let (bucket, prefix) = (bucket.into(), prefix.into());
        Ok(Self { client, bucket, prefix, partitions, fetched: Arc::default() })
    }

    /// Requests and bytes fetched by this reader (and its clones) so far, listings excluded.
    pub fn fetched(&self) -> &Fetched {
        &self.fetched
    }

    /// Every batch of `partition`, in offset order. A key under the partition's prefix that is
    /// not an archive key, or batches that overlap, are errors.
    pub async fn batches(&self, partition: i32) -> Result<Vec<ListedBatch>, ReadError> {
        let prefix = partition_prefix(&self.prefix, partition);
        let mut batches: BTreeMap<(i64, i64), ListedBatch> = BTreeMap::new();
        for Listed { key, size } in list_prefix(&self.client, &self.bucket, &prefix).await? {
            let Some(ObjectKey { range, part }) = parse_key(&self.prefix, &key) else {
                return Err(ReadError::ForeignKey { key });
            };
            let batch =
                batches.entry((range.start, range.end)).or_insert_with(|| ListedBatch { range, objects: Vec::new() });
            batch.objects.push(ListedObject { key, part, size });
        }
        let batches: Vec<ListedBatch> = batches.into_values().collect();
        for pair in batches.windows(2) {
            if pair[1].range.start < pair[0].range.end {
                let key = |b: &ListedBatch| b.objects.first().map(|o| o.key.clone()).unwrap_or_default();
                return Err(ReadError::Overlap { partition, previous: key(&pair[0]), key: key(&pair[1]) });
            }
        }
        Ok(batches)
    }

    /// `listed`, to read by byte ranges.
    fn object<'a>(&'a self, listed: &'a ListedObject) -> RangedObject<'a> {
        RangedObject {
            client: &self.client,
            bucket: &self.bucket,
            key: &listed.key,
            size: listed.size,
            fetched: &self.fetched,
        }
    }

    /// `workspace_id`'s history: its handoff partition's batches, listed now.
    pub async fn workspace(&self, workspace_id: i64) -> Result<WorkspaceHistory, ReadError> {
        let partition =
            handoff_partition(workspace_id, self.partitions).ok_or(ReadError::Partitions(self.partitions))?;
        let batches = self.batches(partition).await?;
        let footers = Arc::default();
        Ok(WorkspaceHistory { reader: self.clone(), workspace_id, partition, batches, cut: None, footers })
    }
}

/// One workspace's history as listed: read it table by table.
#[derive(Debug, Clone)]
pub struct WorkspaceHistory {
    reader: ArchiveReader,
    workspace_id: i64,
    partition: i32,
    batches: Vec<ListedBatch>,
    /// Only files whose first offset is below it, if set.
    cut: Option<i64>,
    /// Footers read so far, shared by its clones.
    footers: Arc<FooterMemo>,
}

/// One table's rows of a workspace, in archive order.
#[derive(Debug, Clone)]
pub struct TableHistory {
    /// The table.
    pub table: Table,
    /// Its rows, with the table's exact v5 schema, in archive order.
    pub batches: Vec<RecordBatch>,
    /// Objects of the table whose footer was read.
    pub objects_opened: usize,
    /// Their total size (what reading them whole would fetch).
    pub object_bytes: u64,
    /// The highest first offset of the handed-off files read (those of both objects for people,
    /// objects and object types; files without rows too); `None` when the workspace has no file
    /// of the table (before the cut, if one is set).
    pub last_seq: Option<i64>,
}

impl TableHistory {
    /// Rows read.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// One table's rows of a workspace, one archive batch at a time ([`WorkspaceHistory::stream`]).
#[derive(Debug)]
pub struct TableStream<'a> {
    history: &'a WorkspaceHistory,
    table: Table,
    /// The next listed batch to read.
    next: usize,
    /// Objects of the table whose footer was read so far.
    pub objects_opened: usize,
    /// Their total size.
    pub object_bytes: u64,
    /// The highest first offset of the files read so far ([`TableHistory::last_seq`]).
    pub last_seq: Option<i64>,
    /// The object being decoded batch by batch, when its rows need no reordering.
    current: Option<LazySlice>,
    /// Footers of the next batches, read ahead.
    ahead: ReadAhead,
}

/// Footers of the batches a stream reads next, read together: a history of thousands of small
/// batches is read [`READ_AHEAD_BATCHES`] round trips at a time, not one after another. Holds at
/// most that many batches' footers (and the small row groups fetched with them).
#[derive(Default)]
pub(crate) struct ReadAhead {
    footers: HashMap<String, Arc<WorkspaceFooter>>,
    /// Batches before this index have been read ahead.
    until: usize,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead").field("footers", &self.footers.len()).field("until", &self.until).finish()
    }
}

impl TableStream<'_> {
    /// The workspace's next rows in archive order; `None` after the last batch (below the cut).
    ///
    /// An archive batch whose rows of the table are in one object, all of files below the cut
    /// (every table but people, objects and object types, and those in a batch with only new or
    /// only change files), is decoded one batch of 8,192 rows per call: only its row group's
    /// compressed bytes are held. Otherwise (new and change objects to interleave by file, or a
    /// batch straddling the cut) the batch's rows are decoded at once and returned together.
    pub async fn next(&mut self) -> Result<Option<Vec<RecordBatch>>, ReadError> {
        let history = self.history;
        let cut = history.cut.unwrap_or(i64::MAX);
        loop {
            if let Some(current) = self.current.as_mut() {
                match current.next_batch()? {
                    Some(batch) if batch.num_rows() > 0 => return Ok(Some(vec![batch])),
                    Some(_) => continue,
                    None => self.current = None,
                }
            }
            let index = self.next;
            if history.batches.get(index).is_none_or(|b| b.range.start >= cut) {
                return Ok(None);
            }
            self.next += 1;
            let wanted = (i64::MIN, cut);
            let (mut slices, opened, bytes) = history.open_slices(index, self.table, wanted, &mut self.ahead).await?;
            self.objects_opened += opened;
            self.object_bytes += bytes;
            let below = |slice: &LazySlice| slice.files.iter().all(|f| f.first_offset < cut);
            if slices.len() <= 1 && slices.iter().all(|(_, _, slice)| below(slice)) {
                let last = slices.iter().flat_map(|(_, _, s)| &s.files).map(|f| f.first_offset).max();
                self.last_seq = self.last_seq.max(last);
                self.current = slices.pop().map(|(_, _, slice)| slice);
                continue;
            }
            let slices = slices
                .into_iter()
                .map(|(key, _, slice)| Ok((key, slice.collect()?)))
                .collect::<Result<Vec<_>, ReadError>>()?;
            let (rows, last) = in_file_order(self.table, slices, cut)?;
            self.last_seq = self.last_seq.max(last);
            if !rows.is_empty() {
                return Ok(Some(rows));
            }
        }
    }
}

impl WorkspaceHistory {
    /// The workspace's handoff partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The partition's batches, in offset order.
    pub fn batches(&self) -> &[ListedBatch] {
        &self.batches
    }

    /// The history up to `cut`: [`table`](Self::table) then returns only the rows of files whose
    /// first offset is below `cut`, and opens no batch that starts at or after it.
    pub fn before(mut self, cut: i64) -> Self {
        self.cut = Some(cut);
        self
    }

    /// Reads `table`'s rows of the workspace, batch after batch: per object of the table, its
    /// footer and the workspace's row group only. Holds the whole history: see
    /// [`stream`](Self::stream) for one archive batch at a time.
    pub async fn table(&self, table: Table) -> Result<TableHistory, ReadError> {
        let mut stream = self.stream(table);
        let mut batches = Vec::new();
        while let Some(rows) = stream.next().await? {
            batches.extend(rows);
        }
        Ok(TableHistory {
            table,
            batches,
            objects_opened: stream.objects_opened,
            object_bytes: stream.object_bytes,
            last_seq: stream.last_seq,
        })
    }

    /// `table`'s rows of the workspace one archive batch at a time, in archive order (up to the
    /// cut, if set): what [`table`](Self::table) returns, without holding more than one batch's
    /// rows of the workspace.
    pub fn stream(&self, table: Table) -> TableStream<'_> {
        TableStream {
            history: self,
            table,
            next: 0,
            objects_opened: 0,
            object_bytes: 0,
            last_seq: None,
            current: None,
            ahead: ReadAhead::default(),
        }
    }

    /// The highest first offset of the workspace's files of `table` (below the cut, if set):
    /// [`TableHistory::last_seq`], from the objects' footers only (no row group is read).
    pub async fn last_seq(&self, table: Table) -> Result<Option<i64>, ReadError> {
        let cut = self.cut.unwrap_or(i64::MAX);
        let mut last = None;
        let below: Vec<&ListedBatch> = self.batches.iter().take_while(|b| b.range.start < cut).collect();
        for batches in below.chunks(READ_AHEAD_BATCHES) {
            let objects =
                batches.iter().flat_map(|b| b.objects.iter().filter(|o| o.part.table == table).map(move |o| (*b, o)));
            for footer in join_all(objects.map(|(batch, listed)| self.footer(batch, listed))).await {
                // The files below the cut: an object kept whole (written before rows per file
                // were recorded) counts its files below the cut too, as `table` does.
                if let Some(files) = footer?.files() {
                    last = last.max(files.iter().map(|f| f.first_offset).filter(|o| *o < cut).max());
                }
            }
        }
        Ok(last)
    }

    /// The workspace's handed-off files of `table` whose first offset is in `[from, to)`, one by
    /// one in offset order, each with its own rows and kind (a catch-up replays them as they
    /// were). The cut of [`before`](Self::before) does not apply: the range does. Only batches
    /// that may hold such files are opened (those ending after `from` and starting before `to`).
    ///
    /// An object written before rows per file were recorded counts as one file at its first
    /// file's offset, holding every row of the workspace in it: returned whole when that offset
    /// is in the range (rows of its later files included, even past `to`), left out otherwise
    /// (rows of its later files in the range too). Such objects predate catch-ups.
    ///
    /// Holds every file of the range: see [`file_stream`](Self::file_stream) for one at a time.
    pub async fn files(&self, table: Table, from: i64, to: i64) -> Result<TableFiles, ReadError> {
        let mut stream = self.file_stream(table, from, to);
        let mut files = Vec::new();
        while let Some(file) = stream.next_file().await? {
            let mut rows = Vec::new();
            while let Some(batch) = stream.next_rows()? {
                rows.push(batch);
            }
            let rows = concat_batches(&arrow_schema(table), &rows)
                .map_err(|e| ReadError::unreadable(&format!("{table} file at {}", file.first_offset), e))?;
            files.push(ArchivedFile { first_offset: file.first_offset, kind: file.kind, rows });
        }
        Ok(TableFiles { table, files, objects_opened: stream.objects_opened, object_bytes: stream.object_bytes })
    }

    /// [`files`](Self::files) one at a time ([`FileStream::next_file`]), each file's rows a
    /// decoded batch at a time ([`FileStream::next_rows`]): at most one decoded batch (8,192 rows)
    /// per object of an archive batch is held, never a whole file.
    pub fn file_stream(&self, table: Table, from: i64, to: i64) -> FileStream<'_> {
        FileStream::new(self, table, from, to)
    }

    /// The workspace's rows in each of the objects of `table` of the batch at `index` that hold
    /// any (with the object's key and part), opened but not decoded yet; the objects opened and
    /// their total size. The footers of the next batches a stream reads (those overlapping
    /// `wanted`, a range of offsets) are read ahead together into `ahead`.
    async fn open_slices(
        &self,
        index: usize,
        table: Table,
        wanted: (i64, i64),
        ahead: &mut ReadAhead,
    ) -> Result<(Vec<(&str, Part, LazySlice)>, usize, u64), ReadError> {
        let Some(batch) = self.batches.get(index) else { return Ok((Vec::new(), 0, 0)) };
        if index >= ahead.until {
            self.read_ahead(index, table, wanted, ahead).await;
        }
        let (mut slices, mut opened, mut bytes) = (Vec::new(), 0, 0);
        for listed in batch.objects.iter().filter(|o| o.part.table == table) {
            opened += 1;
            bytes += listed.size;
            let footer = match ahead.footers.remove(&listed.key) {
                Some(footer) => footer,
                None => self.footer(batch, listed).await?,
            };
            let object = self.reader.object(listed);
            if let Some(slice) = object::open_workspace(&object, table, &footer, self.workspace_id).await? {
                slices.push((listed.key.as_str(), listed.part, slice));
            }
        }
        Ok((slices, opened, bytes))
    }

    /// Reads the footers of `table`'s objects in the batches from `index` on (up to
    /// [`READ_AHEAD_BATCHES`], those overlapping `wanted`) together into `ahead`. A footer that
    /// fails is left out: the stream reads it again when it comes to it, and reports its error.
    async fn read_ahead(&self, index: usize, table: Table, (from, to): (i64, i64), ahead: &mut ReadAhead) {
        let end = (index + READ_AHEAD_BATCHES).min(self.batches.len());
        let batches = self.batches[index..end].iter().take_while(|b| b.range.start < to).filter(|b| b.range.end > from);
        let objects: Vec<(&ListedBatch, &ListedObject)> =
            batches.flat_map(|b| b.objects.iter().filter(|o| o.part.table == table).map(move |o| (b, o))).collect();
        let footers = join_all(objects.iter().map(|&(batch, listed)| self.footer(batch, listed))).await;
        ahead.footers.clear();
        for ((_, listed), footer) in objects.iter().zip(footers) {
            if let Ok(footer) = footer {
                ahead.footers.insert(listed.key.clone(), footer);
            }
        }
        ahead.until = end;
    }

    /// `listed`'s footer for this workspace: from the memo, else read (and kept if there is room).
    async fn footer(&self, batch: &ListedBatch, listed: &ListedObject) -> Result<Arc<WorkspaceFooter>, ReadError> {
        if let Some(footer) = self.footers.get(&listed.key) {
            return Ok(footer);
        }
        let expected = ObjectKey { range: batch.range, part: listed.part };
        let footer = object::workspace_footer(&self.reader.object(listed), expected, self.workspace_id).await?;
        Ok(self.footers.keep(&listed.key, footer))
    }
}

/// One handed-off file of a table as archived: its first offset (the uploader's `seq`), its
/// kind and its rows.
#[derive(Debug, Clone)]
pub struct ArchivedFile {
    /// Offset of its first chunk in the handoff partition.
    pub first_offset: i64,
    /// [`FileKind::New`] or [`FileKind::Changes`] for people, objects and object types (from the
    /// archive object holding it), [`FileKind::Unspecified`] for every other table.
    pub kind: FileKind,
    /// Its rows, with the table's exact v5 schema, in file order (possibly none).
    pub rows: RecordBatch,
}

/// A table's handed-off files of a workspace in an offset range
/// ([`WorkspaceHistory::files`]).
#[derive(Debug, Clone)]
pub struct TableFiles {
    /// The table.
    pub table: Table,
    /// The files, in offset order.
    pub files: Vec<ArchivedFile>,
    /// Objects of the table whose footer was read.
    pub objects_opened: usize,
    /// Their total size.
    pub object_bytes: u64,
}

impl TableFiles {
    /// Rows of every file.
    pub fn rows(&self) -> usize {
        self.files.iter().map(|f| f.rows.num_rows()).sum()
    }
}

/// The rows of one batch's objects of one table (one, or new and changes) in the order of the
/// files they came from, only files whose first offset is below `cut`; and the highest first
/// offset of those files.
fn in_file_order(
    table: Table,
    slices: Vec<(&str, Slice)>,
    cut: i64,
) -> Result<(Vec<RecordBatch>, Option<i64>), ReadError> {
    let below = |slice: &Slice| slice.files.iter().all(|f| f.first_offset < cut);
    if slices.len() <= 1 && slices.iter().all(|(_, slice)| below(slice)) {
        let last = slices.iter().flat_map(|(_, s)| &s.files).map(|f| f.first_offset).max();
        return Ok((slices.into_iter().flat_map(|(_, slice)| slice.batches).collect(), last));
    }
    // (first offset of the file, the file's rows)
    let mut segments: Vec<(i64, RecordBatch)> = Vec::new();
    let mut last = None;
    for (key, slice) in slices {
        for segment in split(table, key, slice)?.into_iter().filter(|s| s.first_offset < cut) {
            // An old object kept whole: its files below the cut.
            last = last.max(segment.offsets.iter().copied().filter(|o| *o < cut).max());
            segments.push((segment.first_offset, segment.rows));
        }
    }
    segments.sort_by_key(|(offset, _)| *offset);
    Ok((segments.into_iter().map(|(_, rows)| rows).filter(|b| b.num_rows() > 0).collect(), last))
}

/// One object's rows of a workspace, cut into the handed-off files they came from.
struct Segment {
    /// The file's first offset.
    first_offset: i64,
    /// Its rows.
    rows: RecordBatch,
    /// The first offsets of the files whose rows it holds: its own, or every file of an object
    /// written before rows per file were recorded.
    offsets: Vec<i64>,
}

/// `slice`'s rows per file, in its files' order, using the footer's rows per file. An object
/// written before those were recorded (or whose rows per file do not add up) is one segment at
/// its first file's offset, holding every row.
fn split(table: Table, key: &str, slice: Slice) -> Result<Vec<Segment>, ReadError> {
    let rows = concat_batches(&arrow_schema(table), &slice.batches).map_err(|e| ReadError::unreadable(key, e))?;
    let each = files::file_rows(&slice.files, rows.num_rows() as u64);
    // Written before rows per file were recorded: one segment, at its first file, holding them all.
    let whole = each.len() != slice.files.len();
    let mut at = 0usize;
    let mut segments = Vec::with_capacity(each.len());
    for (first_offset, n) in each {
        let n = usize::try_from(n).map_err(|e| ReadError::unreadable(key, e))?;
        let offsets = if whole { slice.files.iter().map(|f| f.first_offset).collect() } else { vec![first_offset] };
        segments.push(Segment { first_offset, rows: rows.slice(at, n), offsets });
        at += n;
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use dwsync_contract::Table;
    use serde_json::json;

    use super::*;
    use crate::footer::SourceFile;
    use crate::testing::{col, rows};

    fn file(first_offset: i64, rows: Option<u64>) -> SourceFile {
        SourceFile { first_offset, rows }
    }

    fn slice(files: Vec<SourceFile>, ids: &[&str]) -> Slice {
        let fields: Vec<_> = ids.iter().map(|id| json!({ "internal_customer_id": id })).collect();
        Slice { files, batches: vec![rows(Table::People, &fields)] }
    }

    #[test]
    fn objects_without_rows_per_file_count_as_one_file_at_their_first_offset() {
        // New files at 2 (a) and 8 (b), rows per file unknown; a change file at 5 (c), known.
        let old = || slice(vec![file(2, None), file(8, None)], &["a", "b"]);
        let changes = || slice(vec![file(5, Some(1))], &["c"]);
        let read = |cut| {
            let (batches, last) =
                in_file_order(Table::People, vec![("new", old()), ("chngs", changes())], cut).expect("rows");
            (col(&batches, "internal_customer_id"), last)
        };
        // Kept whole at its first offset (2), before the change file at 5.
        assert_eq!(read(i64::MAX), (vec!["a".to_owned(), "b".to_owned(), "c".to_owned()], Some(8)));
        // Cut at 6: the old object is still kept whole (its file at 8 cannot be told apart).
        assert_eq!(read(6), (vec!["a".to_owned(), "b".to_owned(), "c".to_owned()], Some(5)));
        // Cut at 2: its first file is not below the cut: left out, with the change file.
        assert_eq!(read(2), (Vec::<String>::new(), None));
    }
}
