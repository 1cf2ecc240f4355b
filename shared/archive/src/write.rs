//! Encodes one archive object: the rows of one [`Part`] of a batch, sorted by workspace (stably:
//! a workspace's rows keep their offset order), one row group per workspace with column
//! statistics, the table's exact v5 schema, and the batch's [`Provenance`] in the footer.

use std::collections::BTreeMap;

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
    /// The file's id.
    pub file_id: &'a str,
    /// Offset of its first chunk in the handoff partition.
    pub first_offset: i64,
    /// When its window closed, epoch milliseconds.
    pub window_closed_at_ms: i64,
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

/// The writer options of archive objects: one row group per workspace however large (never
/// cut by rows or bytes), statistics and a page index on, dictionaries and zstd.
pub(crate) fn options() -> FileOptions {
    FileOptions { max_row_group_rows: usize::MAX, max_row_group_bytes: usize::MAX, ..FileOptions::default() }
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
    let mut writer = ParquetFileWriter::new(part.table, Vec::new(), &options())?;
    let mut workspaces = Vec::with_capacity(by_workspace.len());
    let mut row_groups = 0;
    for (workspace_id, files) in by_workspace {
        let mut written = 0u64;
        for batch in files.iter().flat_map(|f| f.batches) {
            writer.write(batch)?;
            written += batch.num_rows() as u64;
        }
        let row_group = (written > 0).then(|| {
            row_groups += 1;
            row_groups - 1
        });
        writer.end_row_group()?;
        let files = files
            .iter()
            .map(|f| SourceFile {
                file_id: f.file_id.to_owned(),
                first_offset: f.first_offset,
                window_closed_at_ms: f.window_closed_at_ms,
                rows: Some(f.rows()),
            })
            .collect();
        workspaces.push(WorkspaceRows { workspace_id, row_group, rows: written, files });
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
    writer.append_metadata(PROVENANCE_METADATA, provenance.to_json());
    let body = writer.finish()?;
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
    fn one_row_group_per_workspace_sorted_by_workspace_in_offset_order() {
        let table = Table::Metrics;
        // Files in offset order: workspaces 2, 1, 2, 3, 1.
        let specs = [(2, 0, 5, 10), (1, 100, 3, 11), (2, 5, 4, 14), (3, 0, 6, 20), (1, 103, 2, 31)];
        let made: Vec<_> = specs.iter().map(|&(ws, first, n, _)| rows(table, ws, first, n)).collect();
        let names: Vec<String> = specs.iter().map(|s| format!("f{}", s.3)).collect();
        let files: Vec<FileRows<'_>> = specs
            .iter()
            .zip(&made)
            .zip(&names)
            .map(|((&(ws, _, _, offset), (batches, _)), name)| FileRows {
                workspace_id: ws,
                file_id: name,
                first_offset: offset,
                window_closed_at_ms: 1_000 + offset,
                batches,
            })
            .collect();
        let range = BatchRange { partition: 5, start: 10, end: 32 };
        let part = Part::of(table, FileKind::Unspecified);
        let encoded = encode("handoff", "arc", range, part, &files).expect("encodes").expect("rows");
        assert_eq!(encoded.object.key, "arc/p0005/00000000000000000010-00000000000000000032/metrics.parquet");
        assert_eq!(encoded.object.rows, 20);

        let builder = ParquetRecordBatchReaderBuilder::try_new(encoded.object.body.clone()).expect("parquet");
        let metadata = builder.metadata().clone();
        assert_eq!(metadata.num_row_groups(), 3, "one row group per workspace");
        let ws_column = arrow_schema(table).index_of("workspace_id").expect("column");
        for (index, ws) in [1i64, 2, 3].into_iter().enumerate() {
            let row_group = metadata.row_group(index);
            match row_group.column(ws_column).statistics() {
                Some(Statistics::Int64(stats)) => {
                    assert_eq!((stats.min_opt(), stats.max_opt()), (Some(&ws), Some(&ws)), "row group {index}");
                }
                other => panic!("row group {index}: no workspace_id statistics: {other:?}"),
            }
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
        let summary: Vec<(i64, Option<usize>, u64, Files)> = provenance
            .workspaces
            .iter()
            .map(|w| (w.workspace_id, w.row_group, w.rows, w.files.iter().map(|f| (f.first_offset, f.rows)).collect()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, Some(0), 5, vec![(11, Some(3)), (31, Some(2))]),
                (2, Some(1), 9, vec![(10, Some(5)), (14, Some(4))]),
                (3, Some(2), 6, vec![(20, Some(6))])
            ]
        );
        assert_eq!(provenance.workspaces[0].files[1].window_closed_at_ms, 1_031);
        assert_eq!(provenance.workspaces[0].files[1].file_id, "f31");
    }

    #[test]
    fn files_without_rows_make_no_object() {
        let (empty, _) = rows(Table::Events, 1, 0, 0);
        let file = FileRows { workspace_id: 1, file_id: "f", first_offset: 3, window_closed_at_ms: 0, batches: &empty };
        let range = BatchRange { partition: 0, start: 0, end: 4 };
        let part = Part::of(Table::Events, FileKind::Unspecified);
        assert!(encode("h", "arc", range, part, &[file]).expect("encodes").is_none());
    }
}
