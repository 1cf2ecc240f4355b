//! Reassembles handoff chunks into complete, checksum-verified files (one reassembler per
//! handoff partition), and tells which offset is safe to commit.

use std::collections::BTreeMap;

use dwsync_contract::{SCHEMA_VERSION, Table};
use dwsync_proto::internal::{FileChunk, FileKind};

use crate::chunk::{FileMeta, sha256};

/// A handoff record that cannot be turned into a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    /// The chunk names a table that is not a v5 table.
    #[error("file {file_id}: unknown table {table:?}")]
    UnknownTable {
        /// The file.
        file_id: String,
        /// The table it named.
        table: String,
    },
    /// The chunk was written for another schema version.
    #[error("file {file_id}: schema version {version}, this uploader writes v{SCHEMA_VERSION}")]
    SchemaVersion {
        /// The file.
        file_id: String,
        /// Its version.
        version: u32,
    },
    /// A chunk arrived out of order (a chunk lost or repeated).
    #[error("file {file_id}: expected chunk {expected}, got chunk {got} of {count}")]
    OutOfOrder {
        /// The file.
        file_id: String,
        /// The chunk index expected next.
        expected: u32,
        /// The chunk index received.
        got: u32,
        /// Chunks in the file.
        count: u32,
    },
    /// The reassembled bytes do not match the file's SHA-256 or size.
    #[error("file {file_id}: checksum or size mismatch after reassembly")]
    Checksum {
        /// The file.
        file_id: String,
    },
}

/// A reassembled, verified file.
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteFile {
    /// Its header.
    pub meta: FileMeta,
    /// Offset of its first chunk in the handoff partition: the file's sequence number.
    pub first_offset: i64,
    /// Offset of its last chunk.
    pub last_offset: i64,
    /// The Parquet bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256_hex: String,
}

struct Partial {
    first_offset: i64,
    next_index: u32,
    data: Vec<u8>,
}

/// Collects the chunks of one handoff partition.
#[derive(Default)]
pub struct Reassembler {
    partial: BTreeMap<String, Partial>,
    bytes: usize,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the chunk read at `offset`; returns the file when this was its last chunk.
    pub fn push(&mut self, offset: i64, chunk: FileChunk) -> Result<Option<CompleteFile>, HandoffError> {
        let file_id = chunk.file_id.clone();
        if chunk.schema_version != SCHEMA_VERSION {
            return Err(HandoffError::SchemaVersion { file_id, version: chunk.schema_version });
        }
        let table: Table = chunk
            .table
            .parse()
            .map_err(|_| HandoffError::UnknownTable { file_id: file_id.clone(), table: chunk.table.clone() })?;
        if chunk.chunk_index == 0 {
            // A first chunk starts the file afresh (a stale partial is dropped).
            if let Some(old) = self.partial.remove(&file_id) {
                self.bytes -= old.data.len();
            }
            let capacity = usize::try_from(chunk.file_size).unwrap_or(0).min(1 << 30);
            self.partial.insert(
                file_id.clone(),
                Partial { first_offset: offset, next_index: 0, data: Vec::with_capacity(capacity) },
            );
        }
        let Some(partial) = self.partial.get_mut(&file_id) else {
            return Err(HandoffError::OutOfOrder {
                file_id,
                expected: 0,
                got: chunk.chunk_index,
                count: chunk.chunk_count,
            });
        };
        if chunk.chunk_index != partial.next_index {
            let expected = partial.next_index;
            if let Some(old) = self.partial.remove(&file_id) {
                self.bytes -= old.data.len();
            }
            return Err(HandoffError::OutOfOrder {
                file_id,
                expected,
                got: chunk.chunk_index,
                count: chunk.chunk_count,
            });
        }
        partial.data.extend_from_slice(&chunk.data);
        partial.next_index += 1;
        self.bytes += chunk.data.len();
        if partial.next_index < chunk.chunk_count {
            return Ok(None);
        }
        let Some(done) = self.partial.remove(&file_id) else { return Ok(None) };
        self.bytes -= done.data.len();
        let digest = sha256(&done.data);
        if digest.as_slice() != chunk.sha256.as_slice() || done.data.len() as u64 != chunk.file_size {
            return Err(HandoffError::Checksum { file_id });
        }
        let meta = FileMeta {
            file_id,
            workspace_id: chunk.workspace_id,
            table,
            kind: FileKind::try_from(chunk.kind).unwrap_or(FileKind::Unspecified),
            row_count: chunk.row_count,
            sources: chunk.sources,
            window_opened_at_ms: chunk.window_opened_at_ms,
            window_closed_at_ms: chunk.window_closed_at_ms,
            close_reason: chunk.close_reason,
        };
        Ok(Some(CompleteFile {
            meta,
            first_offset: done.first_offset,
            last_offset: offset,
            bytes: done.data,
            sha256_hex: hex::encode(digest),
        }))
    }

    /// The lowest offset of a file still incomplete: nothing at or after it may be committed.
    pub fn low_watermark(&self) -> Option<i64> {
        self.partial.values().map(|p| p.first_offset).min()
    }

    /// Bytes held in incomplete files.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets every incomplete file (after a rebalance took the partition away).
    pub fn clear(&mut self) {
        self.partial.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::split;
    use dwsync_proto::internal::SourceRange;

    fn meta(id: &str) -> FileMeta {
        FileMeta {
            file_id: id.into(),
            workspace_id: 42,
            table: Table::People,
            kind: FileKind::Changes,
            row_count: 3,
            sources: vec![SourceRange { topic: "t".into(), partition: 1, first_offset: 5, last_offset: 9 }],
            window_opened_at_ms: 1,
            window_closed_at_ms: 2,
            close_reason: "time".into(),
        }
    }

    #[test]
    fn interleaved_files_reassemble_with_their_first_offsets() {
        let a: Vec<u8> = (0..=255).cycle().take(2500).collect();
        let b = b"small file".to_vec();
        let ca = split(&meta("a"), &a, 1000);
        let cb = split(&meta("b"), &b, 1000);
        assert_eq!(ca.len(), 3);
        assert!(ca.iter().all(|c| c.data.len() <= 1000 && c.chunk_count == 3));
        let mut r = Reassembler::new();
        assert_eq!(r.push(10, ca[0].clone()), Ok(None));
        assert_eq!(r.low_watermark(), Some(10));
        let done_b = r.push(11, cb[0].clone()).unwrap().unwrap();
        assert_eq!((done_b.first_offset, done_b.bytes.as_slice()), (11, b.as_slice()));
        assert_eq!(r.push(12, ca[1].clone()), Ok(None));
        assert_eq!(r.buffered_bytes(), 2000);
        let done_a = r.push(13, ca[2].clone()).unwrap().unwrap();
        assert_eq!((done_a.first_offset, done_a.last_offset), (10, 13));
        assert_eq!(done_a.bytes, a);
        assert_eq!(done_a.meta, meta("a"));
        assert_eq!(r.low_watermark(), None);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn corruption_and_gaps_are_errors() {
        let file = vec![7u8; 3000];
        let mut chunks = split(&meta("f"), &file, 1000);
        let mut r = Reassembler::new();
        r.push(0, chunks[0].clone()).unwrap();
        assert!(matches!(r.push(1, chunks[2].clone()), Err(HandoffError::OutOfOrder { expected: 1, got: 2, .. })));
        assert_eq!(r.low_watermark(), None, "the broken file is dropped from the watermark");

        chunks[1].data[0] ^= 1;
        r.push(2, chunks[0].clone()).unwrap();
        r.push(3, chunks[1].clone()).unwrap();
        assert!(matches!(r.push(4, chunks[2].clone()), Err(HandoffError::Checksum { .. })));

        let mut bad = chunks[0].clone();
        bad.table = "nope".into();
        assert!(matches!(r.push(5, bad), Err(HandoffError::UnknownTable { .. })));
    }

    #[test]
    fn an_empty_file_is_one_chunk() {
        let chunks = split(&meta("e"), &[], 10);
        assert_eq!(chunks.len(), 1);
        let done = Reassembler::new().push(0, chunks[0].clone()).unwrap().unwrap();
        assert!(done.bytes.is_empty());
    }
}
