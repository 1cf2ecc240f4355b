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

mod error;
mod object;
mod ranged;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow_array::RecordBatch;
use dwsync_contract::{Table, arrow_schema};
use dwsync_s3::list::{Listed, list_prefix};

pub use error::ReadError;
pub use ranged::Fetched;

use crate::key::{BatchRange, ObjectKey, Part, parse_key, partition_prefix};
use crate::partition::handoff_partition;
use object::Slice;
use ranged::RangedObject;

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

    /// `workspace_id`'s history: its handoff partition's batches, listed now.
    pub async fn workspace(&self, workspace_id: i64) -> Result<WorkspaceHistory, ReadError> {
        let partition =
            handoff_partition(workspace_id, self.partitions).ok_or(ReadError::Partitions(self.partitions))?;
        let batches = self.batches(partition).await?;
        Ok(WorkspaceHistory { reader: self.clone(), workspace_id, partition, batches, cut: None })
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
    /// footer and the workspace's row group only.
    pub async fn table(&self, table: Table) -> Result<TableHistory, ReadError> {
        let reader = &self.reader;
        let mut history =
            TableHistory { table, batches: Vec::new(), objects_opened: 0, object_bytes: 0, last_seq: None };
        let cut = self.cut.unwrap_or(i64::MAX);
        for batch in self.batches.iter().take_while(|b| b.range.start < cut) {
            let mut slices = Vec::new();
            for listed in batch.objects.iter().filter(|o| o.part.table == table) {
                let object = RangedObject {
                    client: &reader.client,
                    bucket: &reader.bucket,
                    key: &listed.key,
                    size: listed.size,
                    fetched: &reader.fetched,
                };
                history.objects_opened += 1;
                history.object_bytes += listed.size;
                let expected = ObjectKey { range: batch.range, part: listed.part };
                if let Some(slice) = object::read_workspace(&object, expected, self.workspace_id).await? {
                    slices.push((listed.key.as_str(), slice));
                }
            }
            let (rows, last) = in_file_order(table, slices, cut)?;
            history.batches.extend(rows);
            history.last_seq = history.last_seq.max(last);
        }
        Ok(history)
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
        let rows = concat_batches(&arrow_schema(table), &slice.batches).map_err(|e| ReadError::unreadable(key, e))?;
        let per_file: Option<Vec<u64>> = slice.files.iter().map(|f| f.rows).collect();
        let first = slice.files.first().map_or(i64::MIN, |f| f.first_offset);
        match per_file.filter(|rows_each| rows_each.iter().sum::<u64>() == rows.num_rows() as u64) {
            Some(rows_each) => {
                let mut at = 0usize;
                for (file, n) in slice.files.iter().zip(rows_each) {
                    let n = usize::try_from(n).map_err(|e| ReadError::unreadable(key, e))?;
                    if file.first_offset < cut {
                        segments.push((file.first_offset, rows.slice(at, n)));
                        last = last.max(Some(file.first_offset));
                    }
                    at += n;
                }
            }
            // Written before rows per file were recorded: one segment, at its first file.
            None if first < cut => {
                last = last.max(slice.files.iter().map(|f| f.first_offset).filter(|o| *o < cut).max());
                segments.push((first, rows));
            }
            None => {}
        }
    }
    segments.sort_by_key(|(offset, _)| *offset);
    Ok((segments.into_iter().map(|(_, rows)| rows).filter(|b| b.num_rows() > 0).collect(), last))
}

#[cfg(test)]
mod tests {
    use dwsync_contract::Table;
    use serde_json::json;

    use super::*;
    use crate::footer::SourceFile;
    use crate::testing::{col, rows};

    fn file(first_offset: i64, rows: Option<u64>) -> SourceFile {
        SourceFile { file_id: format!("f{first_offset}"), first_offset, window_closed_at_ms: 0, rows }
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
