//! Splits a finished Parquet file into handoff chunks.

use dwsync_contract::{SCHEMA_VERSION, Table};
use dwsync_proto::internal::{FileChunk, FileKind, SourceRange};
use sha2::{Digest, Sha256};

/// What the uploader needs to know about a file besides its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct FileMeta {
    /// Identifies the file; stable when the same records are rebuilt after a crash.
    pub file_id: String,
    /// The workspace whose rows the file holds (all of them).
    pub workspace_id: i64,
    /// The file's table.
    pub table: Table,
    /// New-entity or change file (people, object, object_types), else unspecified.
    pub kind: FileKind,
    /// Rows in the file.
    pub row_count: u64,
    /// The source records the file holds.
    pub sources: Vec<SourceRange>,
    /// When the window opened, epoch milliseconds.
    pub window_opened_at_ms: i64,
    /// When the window closed, epoch milliseconds.
    pub window_closed_at_ms: i64,
    /// Why the window closed (`time`, `rows`, `bytes`, `partition`).
    pub close_reason: String,
}

impl FileMeta {
    /// The header of a file of `table` and `kind` for `workspace_id`, with no rows or sources,
    /// windows at 0, closed by time: a fixture for tests, which set what they need on it.
    pub fn fixture(file_id: &str, workspace_id: i64, table: Table, kind: FileKind) -> Self {
        Self {
            file_id: file_id.to_owned(),
            workspace_id,
            table,
            kind,
            row_count: 0,
            sources: Vec::new(),
            window_opened_at_ms: 0,
            window_closed_at_ms: 0,
            close_reason: "time".to_owned(),
        }
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Splits `file` into chunks of at most `chunk_bytes` data bytes, each carrying the full header.
pub fn split(meta: &FileMeta, file: &[u8], chunk_bytes: usize) -> Vec<FileChunk> {
    let chunk_bytes = chunk_bytes.max(1);
    let digest = sha256(file).to_vec();
    let pieces: Vec<&[u8]> = if file.is_empty() { vec![file] } else { file.chunks(chunk_bytes).collect() };
    let count = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, data)| FileChunk {
            file_id: meta.file_id.clone(),
            workspace_id: meta.workspace_id,
            table: meta.table.name().to_owned(),
            kind: meta.kind as i32,
            schema_version: SCHEMA_VERSION,
            row_count: meta.row_count,
            sources: meta.sources.clone(),
            sha256: digest.clone(),
            file_size: file.len() as u64,
            chunk_index: u32::try_from(i).unwrap_or(u32::MAX),
            chunk_count: count,
            data: data.to_vec(),
            window_opened_at_ms: meta.window_opened_at_ms,
            window_closed_at_ms: meta.window_closed_at_ms,
            close_reason: meta.close_reason.clone(),
        })
        .collect()
}
