//! Turns a closed window into a Parquet file and its handoff header.

use dwsync_format::{ParquetFileWriter, ParquetOptions, WriteError};
use dwsync_handoff::{FileMeta, SourceRange};

use crate::config::SourceTopic;
use crate::window::ClosedWindow;

/// A finished file, ready to hand off.
pub struct EncodedFile {
    /// Its header.
    pub meta: FileMeta,
    /// The Parquet bytes.
    pub bytes: Vec<u8>,
}

/// Why a window could not be encoded (a bug, not bad data: rows were validated on the way in).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Arrow refused the batch.
    #[error("building the Arrow batch failed: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The Parquet writer failed.
    #[error(transparent)]
    Parquet(#[from] WriteError),
}

/// Encodes a closed window into one Parquet file.
pub fn encode(
    mut closed: ClosedWindow,
    topics: &[SourceTopic],
    options: &ParquetOptions,
    now_ms: i64,
) -> Result<EncodedFile, EncodeError> {
    let rows = closed.window.builder.len();
    let mut writer = ParquetFileWriter::new(closed.key.table, Vec::new(), &options.for_rows(rows))?;
    // Chunk by chunk, each freed once written.
    for batch in closed.window.builder.finish()? {
        writer.write(&batch)?;
    }
    let rows = writer.rows();
    let bytes = writer.finish()?;
    let sources: Vec<SourceRange> = closed
        .window
        .sources
        .iter()
        .map(|(&(topic, partition), range)| SourceRange {
            topic: topics.get(topic).map(|t| t.topic.clone()).unwrap_or_default(),
            partition,
            first_offset: range.first,
            last_offset: range.last,
        })
        .collect();
    let file_id =
        std::iter::once(format!("{}:{}:{}", closed.key.table, closed.key.kind.as_str_name(), closed.key.workspace_id))
            .chain(sources.iter().map(|s| format!("{}/{}/{}-{}", s.topic, s.partition, s.first_offset, s.last_offset)))
            .collect::<Vec<_>>()
            .join(":");
    let meta = FileMeta {
        file_id,
        workspace_id: closed.key.workspace_id,
        table: closed.key.table,
        kind: closed.key.kind,
        row_count: rows,
        sources,
        window_opened_at_ms: closed.window.opened_at_ms,
        window_closed_at_ms: now_ms,
        close_reason: closed.reason.as_str().to_owned(),
    };
    Ok(EncodedFile { meta, bytes })
}
