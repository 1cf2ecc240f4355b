//! Encodes one archive object: the rows of one [`Part`] of a batch, sorted by workspace (stably:
//! a workspace's rows keep their offset order), workspaces packed into row groups of at least
//! [`PACKED_ROWS`] rows cut only between workspaces ([`Packer`]), column statistics, the table's
//! exact v5 schema, and the batch's [`Provenance`] in the footer.

use std::collections::BTreeMap;
use std::io::Write;

use arrow_array::RecordBatch;
use bytes::Bytes;
use dwsync_format::{FileOptions, ParquetFileWriter, WriteError};
use dwsync_s3::create_only::Object;

use crate::footer::{PROVENANCE_METADATA, Provenance, SourceFile, WorkspaceRows};
use crate::key::{BatchRange, Part, object_key};

/// One handed-off file's rows, as the writer takes them.
#[derive(Debug, Clone, Copy)]
pub struct FileRows<'a> {
    /// The file's workspace.
    pub workspace_id: i64,
    /// Offset of its first chunk in the handoff partition.
    pub first_offset: i64,
    /// Its rows, with the table's contract schema.
    pub batches: &'a [RecordBatch],
}

impl FileRows<'_> {
    fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }
}

/// An encoded archive object, ready to create.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Its part of the batch.
    pub part: Part,
    /// Key, bytes, SHA-256 and rows.
    pub object: Object,
}

/// The writer options of archive objects: row groups cut only by the [`Packer`] (never by rows
/// or bytes, so a workspace's rows are never split), statistics and a page index on,
/// dictionaries and zstd.
pub(crate) fn options() -> FileOptions {
    FileOptions { max_row_group_rows: usize::MAX, max_row_group_bytes: usize::MAX, ..FileOptions::default() }
}

/// Rows a row group holds before it ends at the next workspace boundary. A row group per
/// workspace cost ~4 KiB of column chunks and footer per workspace and batch whatever its rows,
/// and every reader reads every footer: measured in docs/HISTORY.md (Layout), packing made a
/// batch of ~1,000 workspaces 2.7 × smaller and one small workspace's history 4 × cheaper to read.
pub const PACKED_ROWS: u64 = 8_192;

/// Writes workspaces' rows one workspace after another, packing them into row groups of at
/// least [`PACKED_ROWS`] rows, cut only between two workspaces; says where each one's rows are.
pub(crate) struct Packer<W: Write + Send> {
    writer: ParquetFileWriter<W>,
    /// The open row group's index and rows.
    group: usize,
    rows_in_group: u64,
    /// The workspace being written: its rows so far.
    written: u64,
}

/// Where one workspace's rows are in an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    /// Its row group (`None`: no rows).
    pub(crate) row_group: Option<usize>,
    /// Its first row in it.
    pub(crate) first_row: u64,
    /// Its rows.
    pub(crate) rows: u64,
}

impl<W: Write + Send> Packer<W> {
    /// Packs into `writer` (made with [`options`]).
    pub(crate) fn new(writer: ParquetFileWriter<W>) -> Self {
        Self { writer, group: 0, rows_in_group: 0, written: 0 }
    }

    /// Writes a batch of the current workspace's rows.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        self.writer.write(batch)?;
        self.written += batch.num_rows() as u64;
        Ok(())
    }

    /// Ends the current workspace: where its rows are; the row group ends here if it is full.
    pub(crate) fn end_workspace(&mut self) -> Result<Placed, WriteError> {
        let rows = std::mem::take(&mut self.written);
        if rows == 0 {
            return Ok(Placed { row_group: None, first_row: 0, rows });
        }
        let placed = Placed { row_group: Some(self.group), first_row: self.rows_in_group, rows };
        self.rows_in_group += rows;
        if self.rows_in_group >= PACKED_ROWS {
            self.writer.end_row_group()?;
            self.group += 1;
            self.rows_in_group = 0;
        }
        Ok(placed)
    }

    /// The footer's metadata, then the file.
    pub(crate) fn finish(mut self, key: &str, value: String) -> Result<W, WriteError> {
        self.writer.append_metadata(key, value);
        self.writer.finish()
    }
}

/// Encodes the object of `part` of the batch `range` (read from `topic`) from `files`, in
/// offset order. `None` when the files hold no rows.
pub fn encode(
    topic: &str,
    prefix: &str,
    range: BatchRange,
    part: Part,
    files: &[FileRows<'_>],
) -> Result<Option<Encoded>, WriteError> {
    let mut by_workspace: BTreeMap<i64, Vec<&FileRows<'_>>> = BTreeMap::new();
    for file in files {
        by_workspace.entry(file.workspace_id).or_default().push(file);
    }
    let rows: u64 = files.iter().map(FileRows::rows).sum();
    if rows == 0 {
        return Ok(None);
    }
    let mut packer = Packer::new(ParquetFileWriter::new(part.table, Vec::new(), &options())?);
    let mut workspaces = Vec::with_capacity(by_workspace.len());
    for (workspace_id, files) in by_workspace {
        for batch in files.iter().flat_map(|f| f.batches) {
            packer.write(batch)?;
        }
        let Placed { row_group, first_row, rows: written } = packer.end_workspace()?;
        let files = files.iter().map(|f| SourceFile { first_offset: f.first_offset, rows: Some(f.rows()) }).collect();
        workspaces.push(WorkspaceRows { workspace_id, row_group, first_row, rows: written, files });
    }
    let provenance = Provenance {
        topic: topic.to_owned(),
        partition: range.partition,
        start_offset: range.start,
        end_offset: range.end,
        table: part.table.name().to_owned(),
        kind: part.kind_name().to_owned(),
        workspaces,
    };
    let body = packer.finish(PROVENANCE_METADATA, provenance.to_json())?;
    let sha256_hex = hex::encode(dwsync_handoff::chunk::sha256(&body));
    let object = Object { key: object_key(prefix, range, part), body: Bytes::from(body), sha256_hex, rows };
    Ok(Some(Encoded { part, object }))
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use dwsync_contract::{BatchBuilder, Encoding, Table, arrow_schema, decode};
    use dwsync_handoff::FileKind;
    use dwsync_loadgen::{Generator, id_column};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::statistics::Statistics;

    use super::*;

    /// `rows` records `first..` of `table` for `workspace_id` as batches; their ids.
    fn rows(table: Table, workspace_id: i64, first: u64, rows: u64) -> (Vec<RecordBatch>, Vec<String>) {
        let mut generator = Generator::new(3);
        let mut builder = BatchBuilder::new(table);
        let mut ids = Vec::new();
        for n in first..first + rows {
            let record = generator.record(table, workspace_id, n);
            builder.append(&decode(table, Encoding::Json, record.encoded(Encoding::Json)).expect("valid record"));
            ids.push(record.id);
        }
        (builder.finish().expect("batches"), ids)
    }

    fn ids(batch: &RecordBatch, table: Table) -> Vec<String> {
        let column = batch.column_by_name(id_column(table)).expect("id column");
        match column.data_type() {
            arrow_schema::DataType::Int64 => {
                column.as_primitive::<Int64Type>().iter().map(|v| v.unwrap_or_default().to_string()).collect()
            }
            _ => column.as_string::<i32>().iter().map(|v| v.unwrap_or_default().to_owned()).collect(),
        }
    }

    #[test]
    fn workspaces_share_row_groups_sorted_by_workspace_in_offset_order() {
        let table = Table::Metrics;
        // Files in offset order: workspaces 2, 1, 2, 3, 1.
        let specs = [(2, 0, 5, 10), (1, 100, 3, 11), (2, 5, 4, 14), (3, 0, 6, 20), (1, 103, 2, 31)];
        let made: Vec<_> = specs.iter().map(|&(ws, first, n, _)| rows(table, ws, first, n)).collect();
        let files: Vec<FileRows<'_>> = specs
            .iter()
            .zip(&made)
            .map(|(&(ws, _, _, offset), (batches, _))| FileRows { workspace_id: ws, first_offset: offset, batches })
            .collect();
        let range = BatchRange { partition: 5, start: 10, end: 32 };
        let part = Part::of(table, FileKind::Unspecified);
        let encoded = encode("handoff", "arc", range, part, &files).expect("encodes").expect("rows");
        assert_eq!(encoded.object.key, "arc/p0005/00000000000000000010-00000000000000000032/metrics.parquet");
        assert_eq!(encoded.object.rows, 20);

        let builder = ParquetRecordBatchReaderBuilder::try_new(encoded.object.body.clone()).expect("parquet");
        let metadata = builder.metadata().clone();
        assert_eq!(metadata.num_row_groups(), 1, "20 rows: the three workspaces share one row group");
        let ws_column = arrow_schema(table).index_of("workspace_id").expect("column");
        match metadata.row_group(0).column(ws_column).statistics() {
            Some(Statistics::Int64(stats)) => assert_eq!((stats.min_opt(), stats.max_opt()), (Some(&1), Some(&3))),
            other => panic!("no workspace_id statistics: {other:?}"),
        }
        let batches: Vec<_> = builder.build().expect("reader").collect::<Result<_, _>>().expect("rows");
        assert!(batches.iter().all(|b| b.schema() == arrow_schema(table)), "the exact v5 schema");
        let got: Vec<String> = batches.iter().flat_map(|b| ids(b, table)).collect();
        // Workspace 1 (files at offsets 11, 31), 2 (10, 14), 3 (20): each in offset order.
        let want: Vec<String> = [1, 4, 0, 2, 3].iter().flat_map(|i| made[*i].1.clone()).collect();
        assert_eq!(got, want);

        let footer = metadata.file_metadata().key_value_metadata();
        let provenance = Provenance::from_footer(footer).expect("provenance").expect("json");
        assert_eq!((provenance.partition, provenance.start_offset, provenance.end_offset), (5, 10, 32));
        assert_eq!((provenance.topic.as_str(), provenance.table.as_str()), ("handoff", "metrics"));
        type Files = Vec<(i64, Option<u64>)>;
        let summary: Vec<(i64, Option<usize>, u64, u64, Files)> = provenance
            .workspaces
            .iter()
            .map(|w| {
                let files = w.files.iter().map(|f| (f.first_offset, f.rows)).collect();
                (w.workspace_id, w.row_group, w.first_row, w.rows, files)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, Some(0), 0, 5, vec![(11, Some(3)), (31, Some(2))]),
                (2, Some(0), 5, 9, vec![(10, Some(5)), (14, Some(4))]),
                (3, Some(0), 14, 6, vec![(20, Some(6))])
            ]
        );
    }

    #[test]
    fn a_row_group_ends_at_the_first_workspace_boundary_past_the_packed_rows() {
        let table = Table::Attributes;
        // 8,000 + 300 rows pass PACKED_ROWS: the group ends after workspace 2, never inside it.
        let specs = [(1, 8_000), (2, 300), (3, 10), (4, 0)];
        let made: Vec<_> = specs.iter().map(|&(ws, n)| rows(table, ws, 0, n).0).collect();
        let files: Vec<FileRows<'_>> = specs
            .iter()
            .zip(&made)
            .enumerate()
            .map(|(i, (&(ws, _), batches))| FileRows { workspace_id: ws, first_offset: i as i64, batches })
            .collect();
        let range = BatchRange { partition: 0, start: 0, end: 4 };
        let part = Part::of(table, FileKind::Unspecified);
        let encoded = encode("h", "arc", range, part, &files).expect("encodes").expect("rows");
        let builder = ParquetRecordBatchReaderBuilder::try_new(encoded.object.body.clone()).expect("parquet");
        let metadata = builder.metadata().clone();
        let group_rows: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(group_rows, [8_300, 10]);
        let provenance =
            Provenance::from_footer(metadata.file_metadata().key_value_metadata()).expect("provenance").expect("json");
        let placed: Vec<_> = provenance.workspaces.iter().map(|w| (w.workspace_id, w.row_group, w.first_row)).collect();
        assert_eq!(placed, [(1, Some(0), 0), (2, Some(0), 8_000), (3, Some(1), 0), (4, None, 0)]);
    }

    #[test]
    fn each_workspace_adds_a_few_dozen_bytes_to_the_footer() {
        // What a reader of one workspace reads beyond its rows is the footer of each object of its
        // partition: with 1,000 small workspaces a batch, it must not be most of the object.
        let table = Table::Metrics;
        let workspaces = 1_000;
        let made: Vec<_> = (0..workspaces).map(|i| rows(table, 1_000_000 + i, 0, 2).0).collect();
        let files: Vec<FileRows<'_>> = made
            .iter()
            .zip(0..)
            .map(|(batches, i)| FileRows { workspace_id: 1_000_000 + i, first_offset: 50_000_000 + 3 * i, batches })
            .collect();
        let range = BatchRange { partition: 0, start: 50_000_000, end: 50_003_000 };
        let encoded = encode("dwsync.handoff", "arc", range, Part::of(table, FileKind::Unspecified), &files)
            .expect("encodes")
            .expect("rows");
        let body = &encoded.object.body;
        let tail: [u8; 4] = body[body.len() - 8..body.len() - 4].try_into().expect("4 bytes");
        let footer = u64::from(u32::from_le_bytes(tail));
        let metadata = ParquetRecordBatchReaderBuilder::try_new(body.clone()).expect("parquet").metadata().clone();
        let provenance = metadata
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == PROVENANCE_METADATA))
            .and_then(|kv| kv.value.clone())
            .expect("provenance");
        let per_workspace = provenance.len() as u64 / workspaces as u64;
        assert!(per_workspace <= 40, "{per_workspace} bytes of provenance per workspace");
        assert!(footer <= 48 * 1_024, "a footer of {footer} bytes for {workspaces} workspaces");
        assert!(footer * 2 < body.len() as u64, "a footer of {footer} bytes in an object of {}", body.len());
    }

    #[test]
    fn files_without_rows_make_no_object() {
        let (empty, _) = rows(Table::Events, 1, 0, 0);
        let file = FileRows { workspace_id: 1, first_offset: 3, batches: &empty };
        let range = BatchRange { partition: 0, start: 0, end: 4 };
        let part = Part::of(Table::Events, FileKind::Unspecified);
        assert!(encode("h", "arc", range, part, &[file]).expect("encodes").is_none());
    }
}
