//! Archive batches written directly, for the tests of what reads the archive (the reader, the
//! purge, the backfill): the objects the archiver would write for a batch of handed-off files.

use arrow_array::RecordBatch;
use dwsync_contract::Table;
use dwsync_handoff::FileKind;

use crate::key::{BatchRange, Part};
use crate::write::{self, FileRows};

/// One handed-off file of a test batch.
#[derive(Debug, Clone)]
pub struct TestFile {
    /// Its workspace.
    pub workspace: i64,
    /// Its first chunk's offset (the uploader's `seq`).
    pub offset: i64,
    /// Its table.
    pub table: Table,
    /// New or change file (people, objects, object types), else unspecified.
    pub kind: FileKind,
    /// Its rows.
    pub rows: Vec<RecordBatch>,
}

/// Writes `files` as the archive objects of batch `range` under `prefix` (one object per
/// (table, kind) part, file ids `f<offset>`, footers naming the handoff `topic`); returns their keys.
pub async fn write_batch(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    (topic, prefix): (&str, &str),
    range: BatchRange,
    files: &[TestFile],
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let parts: std::collections::BTreeSet<Part> = files.iter().map(|f| Part::of(f.table, f.kind)).collect();
    let mut keys = Vec::new();
    for part in parts {
        let rows: Vec<FileRows<'_>> = files
            .iter()
            .filter(|f| Part::of(f.table, f.kind) == part)
            .map(|f| FileRows { workspace_id: f.workspace, first_offset: f.offset, batches: &f.rows })
            .collect();
        let Some(encoded) = write::encode(topic, prefix, range, part, &rows)? else { continue };
        s3.put_object().bucket(bucket).key(&encoded.object.key).body(encoded.object.body.into()).send().await?;
        keys.push(encoded.object.key);
    }
    Ok(keys)
}
