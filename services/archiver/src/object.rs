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
