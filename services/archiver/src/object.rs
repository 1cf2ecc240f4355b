//! Encodes one archive object: the rows of one [`Part`] of a batch, sorted by workspace (stably:
//! a workspace's rows keep their offset order), one row group per workspace with column
//! statistics, the table's exact v5 schema, and the batch's provenance in the footer.

use std::collections::BTreeMap;

use bytes::Bytes;
use dwsync_format::{FileOptions, ParquetFileWriter, WriteError};
use dwsync_s3::create_only::Object;
use serde::Serialize;

use crate::file::ArchivedFile;
use crate::key::{BatchRange, Part, object_key};

/// The footer key-value metadata key holding [`Provenance`] as JSON.
pub const PROVENANCE_METADATA: &str = "dwsync.archive";

/// Where an object's rows came from: the footer's `dwsync.archive` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The handoff topic.
    pub topic: String,
    /// The handoff partition.
    pub partition: i32,
    /// The batch's first offset.
    pub start_offset: i64,
    /// The offset after the batch's last record.
    pub end_offset: i64,
    /// The table.
    pub table: String,
    /// `changes` for the change files of people, objects and object types, else `all`.
    pub kind: String,
    /// Per workspace, in row group order.
    pub workspaces: Vec<WorkspaceRows>,
}

/// One workspace's rows in an archive object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WorkspaceRows {
    /// The workspace.
    pub workspace_id: i64,
    /// Its row group (`None` when its files hold no rows).
    pub row_group: Option<usize>,
    /// Its rows.
    pub rows: u64,
    /// The handed-off files its rows came from, in offset order.
    pub files: Vec<SourceFile>,
}

/// A handed-off file whose rows an archive object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SourceFile {
    /// The file's id.
    pub file_id: String,
    /// Offset of its first chunk in the handoff partition (the uploader's `seq`).
    pub first_offset: i64,
    /// When its window closed, epoch milliseconds.
    pub window_closed_at_ms: i64,
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
fn options() -> FileOptions {
    FileOptions { max_row_group_rows: usize::MAX, max_row_group_bytes: usize::MAX, ..FileOptions::default() }
}

/// Encodes the object of `part` of the batch `range` (read from `topic`) from `files`, in
/// offset order. `None` when the files hold no rows.
pub fn encode(
    topic: &str,
    prefix: &str,
    range: BatchRange,
    part: Part,
    files: &[ArchivedFile],
) -> Result<Option<Encoded>, WriteError> {
    let mut by_workspace: BTreeMap<i64, Vec<&ArchivedFile>> = BTreeMap::new();
    for file in files {
        by_workspace.entry(file.meta.workspace_id).or_default().push(file);
    }
    let rows: usize = files.iter().map(ArchivedFile::rows).sum();
    if rows == 0 {
        return Ok(None);
    }
    let mut writer = ParquetFileWriter::new(part.table, Vec::new(), &options())?;
    let mut workspaces = Vec::with_capacity(by_workspace.len());
    let mut row_groups = 0;
    for (workspace_id, files) in by_workspace {
        let mut written = 0u64;
        for batch in files.iter().flat_map(|f| &f.batches) {
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
                file_id: f.meta.file_id.clone(),
                first_offset: f.first_offset,
                window_closed_at_ms: f.meta.window_closed_at_ms,
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
        kind: if part.kind == dwsync_handoff::FileKind::Changes { "changes" } else { "all" }.to_owned(),
        workspaces,
    };
    // Serializing plain strings and numbers cannot fail.
    let json = serde_json::to_string(&provenance).unwrap_or_default();
    writer.append_metadata(PROVENANCE_METADATA, json);
    let body = writer.finish()?;
    let sha256_hex = hex::encode(dwsync_handoff::chunk::sha256(&body));
    let object =
        Object { key: object_key(prefix, range, part), body: Bytes::from(body), sha256_hex, rows: rows as u64 };
    Ok(Some(Encoded { part, object }))
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use dwsync_contract::{BatchBuilder, Encoding, Table, arrow_schema, decode};
    use dwsync_handoff::{FileKind, FileMeta};
    use dwsync_loadgen::{Generator, id_column};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::statistics::Statistics;

    use super::*;

    /// A decoded file of `rows` records `first..` of `table` for `workspace_id`; its ids.
    fn file(table: Table, workspace_id: i64, first: u64, rows: u64, offset: i64) -> (ArchivedFile, Vec<String>) {
        let mut generator = Generator::new(3);
        let mut builder = BatchBuilder::new(table);
        let mut ids = Vec::new();
        for n in first..first + rows {
            let record = generator.record(table, workspace_id, n);
            builder.append(&decode(table, Encoding::Json, record.encoded(Encoding::Json)).expect("valid record"));
            ids.push(record.id);
        }
        let meta = FileMeta {
            row_count: rows,
            window_closed_at_ms: 1_000 + offset,
            ..FileMeta::fixture(&format!("f{offset}"), workspace_id, table, FileKind::Unspecified)
        };
        let batches = builder.finish().expect("batches");
        (ArchivedFile { meta, first_offset: offset, batches, input_bytes: 100 }, ids)
    }

    fn ids(batch: &arrow_array::RecordBatch, table: Table) -> Vec<String> {
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
        let (files, file_ids): (Vec<_>, Vec<_>) =
            specs.iter().map(|&(ws, first, rows, offset)| file(table, ws, first, rows, offset)).unzip();
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
        let want: Vec<String> = [1, 4, 0, 2, 3].iter().flat_map(|i| file_ids[*i].clone()).collect();
        assert_eq!(got, want);

        let footer = metadata.file_metadata().key_value_metadata().expect("footer metadata");
        let json = footer.iter().find(|kv| kv.key == PROVENANCE_METADATA).and_then(|kv| kv.value.clone());
        let provenance: Provenance = serde_json::from_str(&json.expect("provenance")).expect("json");
        assert_eq!((provenance.partition, provenance.start_offset, provenance.end_offset), (5, 10, 32));
        assert_eq!((provenance.topic.as_str(), provenance.table.as_str()), ("handoff", "metrics"));
        let summary: Vec<(i64, Option<usize>, u64, Vec<i64>)> = provenance
            .workspaces
            .iter()
            .map(|w| (w.workspace_id, w.row_group, w.rows, w.files.iter().map(|f| f.first_offset).collect()))
            .collect();
        assert_eq!(summary, [(1, Some(0), 5, vec![11, 31]), (2, Some(1), 9, vec![10, 14]), (3, Some(2), 6, vec![20])]);
        assert_eq!(provenance.workspaces[0].files[1].window_closed_at_ms, 1_031);
        assert_eq!(provenance.workspaces[0].files[1].file_id, "f31");
    }

    #[test]
    fn files_without_rows_make_no_object() {
        let (empty, _) = file(Table::Events, 1, 0, 0, 3);
        let range = BatchRange { partition: 0, start: 0, end: 4 };
        let part = Part::of(Table::Events, FileKind::Unspecified);
        assert!(encode("h", "arc", range, part, &[empty]).expect("encodes").is_none());
    }
}
