//! Purging one workspace from the archive (a workspace leaving the platform): every archive
//! object of its handoff partition whose batch starts below a cut and whose footer lists it is
//! rewritten without its row group, or deleted when it held nothing else.
//!
//! This is the one place an archive object is overwritten (an unconditional PUT over the same
//! key). It is safe because the rewrite is a function of the object alone: the other workspaces'
//! row groups are decoded and encoded again by the archive's own writer settings (same values,
//! same order, one row group per workspace), the footer's `dwsync.archive` loses the workspace's
//! entry and nothing else changes. An object whose footer does not list the workspace is left
//! alone, so running a purge again (after a crash, or a second request) rewrites nothing twice.
//!
//! A rewrite keeps the object's archived time (`crate::retention`): the new object carries the
//! original's [`ARCHIVED_MS_METADATA`], so retention ages it from when it was archived, not from
//! the purge. And the purge never leaves an object retention would have deleted: an object whose
//! archived time is past its table's retention is deleted instead of rewritten, and checked again
//! after its rewrite (a retention sweep may have deleted it between the read and the write; the
//! rewrite would bring it back).
//!
//! The caller decides *when* a batch may be purged: its objects must all be written and the
//! archiver must never list the batch again (its committed offset is past the batch's end), or a
//! deleted object could be created again by an archiver restart (see `docs/HISTORY.md`).

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use aws_sdk_s3::error::SdkError;
use bytes::Bytes;
use dwsync_contract::arrow_schema;
use dwsync_format::ParquetFileWriter;
use dwsync_s3::error::StoreError;
use dwsync_s3::list::{Listed, list_prefix};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use crate::footer::{PROVENANCE_METADATA, Provenance, WorkspaceRows};
use crate::key::{BatchRange, ObjectKey, parse_key, partition_prefix};
use crate::read::workspace_rows;
use crate::retention::{ARCHIVED_MS_METADATA, RetentionDays, archived_ms};
use crate::write::Packer;

/// Why a purge of an archive object failed; each names the key.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// An S3 request failed (listing, reading, writing or deleting).
    #[error(transparent)]
    S3(#[from] StoreError),
    /// A key under the partition's prefix that is not an archive object key.
    #[error("archive key {key} is not an archive object key")]
    ForeignKey {
        /// The key.
        key: String,
    },
    /// The object is not a readable archive object (not Parquet, no or invalid footer, a footer
    /// naming another batch, row groups not as the footer says).
    #[error("archive object {key} cannot be purged: {reason}")]
    Unreadable {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl PurgeError {
    fn unreadable(key: &str, reason: impl std::fmt::Display) -> Self {
        Self::Unreadable { key: key.to_owned(), reason: reason.to_string() }
    }
}

/// An archive object without one workspace ([`without_workspace`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Rewrite {
    /// The footer does not list the workspace: the object stays as it is.
    Absent,
    /// The workspace was the only one: the object is to be deleted.
    Empty {
        /// The workspace's rows in it.
        rows_removed: u64,
    },
    /// The object without the workspace's row group.
    Rewritten {
        /// The new object's bytes.
        body: Bytes,
        /// The workspace's rows in the old one.
        rows_removed: u64,
    },
}

/// `body` (the archive object at `key`, named `expected` by its key) without `workspace_id`'s row
/// group and footer entry. Pure: no S3.
pub fn without_workspace(
    key: &str,
    expected: ObjectKey,
    body: &Bytes,
    workspace_id: i64,
) -> Result<Rewrite, PurgeError> {
    let metadata = ArrowReaderMetadata::load(body, ArrowReaderOptions::new())
        .map_err(|e| PurgeError::unreadable(key, format!("not Parquet: {e}")))?;
    let provenance = match Provenance::from_footer(metadata.metadata().file_metadata().key_value_metadata()) {
        None => return Err(PurgeError::unreadable(key, "no dwsync.archive footer metadata")),
        Some(Err(e)) => return Err(PurgeError::unreadable(key, format!("invalid dwsync.archive footer: {e}"))),
        Some(Ok(provenance)) => provenance,
    };
    let (range, part) = (expected.range, expected.part);
    if (provenance.partition, provenance.start_offset, provenance.end_offset)
        != (range.partition, range.start, range.end)
        || provenance.table != part.table.name()
        || provenance.kind != part.kind_name()
    {
        return Err(PurgeError::unreadable(key, "its footer names another batch or part than its key"));
    }
    let Some(purged) = provenance.workspace(workspace_id) else { return Ok(Rewrite::Absent) };
    let rows_removed = purged.rows;
    let kept: Vec<&WorkspaceRows> = provenance.workspaces.iter().filter(|w| w.workspace_id != workspace_id).collect();
    if kept.is_empty() {
        return Ok(Rewrite::Empty { rows_removed });
    }
    let row_groups = metadata.metadata().num_row_groups();
    let schema = arrow_schema(part.table);
    let writer = ParquetFileWriter::new(part.table, Vec::new(), &crate::write::options())
        .map_err(|e| PurgeError::unreadable(key, e))?;
    // The kept workspaces packed again as the archiver packs them (their rows may have shared a
    // row group with the purged workspace's).
    let mut packer = Packer::new(writer);
    let mut workspaces = Vec::with_capacity(kept.len());
    for entry in kept {
        if let Some(index) = entry.row_group {
            if index >= row_groups {
                return Err(PurgeError::unreadable(key, format!("its footer names row group {index} of {row_groups}")));
            }
            let selection =
                workspace_rows(metadata.metadata(), index, entry.first_row, entry.rows).ok_or_else(|| {
                    let (first, rows) = (entry.first_row, entry.rows);
                    PurgeError::unreadable(
                        key,
                        format!(
                            "its footer places {rows} rows from row {first} of row group {index}, which is shorter"
                        ),
                    )
                })?;
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(body.clone(), metadata.clone())
                .with_row_groups(vec![index])
                .with_row_selection(selection)
                .build()
                .map_err(|e| PurgeError::unreadable(key, e))?;
            let mut rows = 0u64;
            for batch in reader {
                let batch = batch.map_err(|e| PurgeError::unreadable(key, e))?;
                let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                    .map_err(|e| PurgeError::unreadable(key, format!("not the v5 schema: {e}")))?;
                rows += batch.num_rows() as u64;
                packer.write(&batch).map_err(|e| PurgeError::unreadable(key, e))?;
            }
            if rows != entry.rows {
                return Err(PurgeError::unreadable(
                    key,
                    format!("row group {index} gave {rows} of the workspace's rows, its footer says {}", entry.rows),
                ));
            }
        }
        let placed = packer.end_workspace().map_err(|e| PurgeError::unreadable(key, e))?;
        workspaces.push(WorkspaceRows { row_group: placed.row_group, first_row: placed.first_row, ..entry.clone() });
    }
    let provenance = Provenance { workspaces, ..provenance.clone() };
    let body = packer.finish(PROVENANCE_METADATA, provenance.to_json()).map_err(|e| PurgeError::unreadable(key, e))?;
    Ok(Rewrite::Rewritten { body: Bytes::from(body), rows_removed })
}

/// What purging one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectPurged {
    /// It did not hold the workspace (or was gone): untouched.
    Untouched,
    /// Rewritten without the workspace's rows.
    Rewritten {
        /// Rows removed.
        rows: u64,
    },
    /// Deleted: it held only the workspace.
    Deleted {
        /// Rows removed.
        rows: u64,
    },
}

/// Counts of a purge so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Objects whose footer was read.
    pub objects_read: u64,
    /// Objects rewritten without the workspace.
    pub objects_rewritten: u64,
    /// Objects deleted (they held only the workspace).
    pub objects_deleted: u64,
    /// The workspace's rows removed.
    pub rows_removed: u64,
}

impl Progress {
    /// Counts `purged`.
    pub fn add(&mut self, purged: ObjectPurged) {
        self.objects_read += 1;
        match purged {
            ObjectPurged::Untouched => {}
            ObjectPurged::Rewritten { rows } => {
                self.objects_rewritten += 1;
                self.rows_removed += rows;
            }
            ObjectPurged::Deleted { rows } => {
                self.objects_deleted += 1;
                self.rows_removed += rows;
            }
        }
    }
}

/// One listed archive object to purge: its key and what the key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The key.
    pub key: String,
    /// Its batch and part.
    pub named: ObjectKey,
}

/// An archive object as a purge read it.
#[derive(Debug, Clone)]
pub struct Original {
    /// Its bytes.
    pub body: Bytes,
    /// When it was archived ([`archived_ms`]), if the store said.
    pub archived_ms: Option<i64>,
}

/// Purges workspaces from the archive in one bucket and prefix.
#[derive(Debug, Clone)]
pub struct Purger {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    retention: RetentionDays,
}

impl Purger {
    /// A purger of `s3://<bucket>/<prefix>` with `client`'s credentials, for an archive whose
    /// tables are kept `retention` (the archiver's `archive.retention_days`).
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        retention: RetentionDays,
    ) -> Self {
        Self { client, bucket: bucket.into(), prefix: prefix.into(), retention }
    }

    /// Every batch of `partition` (its range), in offset order, with its objects.
    pub async fn batches(&self, partition: i32) -> Result<Vec<(BatchRange, Vec<Candidate>)>, PurgeError> {
        let prefix = partition_prefix(&self.prefix, partition);
        let mut batches: BTreeMap<(i64, i64), (BatchRange, Vec<Candidate>)> = BTreeMap::new();
        for Listed { key, .. } in list_prefix(&self.client, &self.bucket, &prefix).await? {
            let Some(named) = parse_key(&self.prefix, &key) else { return Err(PurgeError::ForeignKey { key }) };
            let range = named.range;
            batches
                .entry((range.start, range.end))
                .or_insert_with(|| (range, Vec::new()))
                .1
                .push(Candidate { key, named });
        }
        Ok(batches.into_values().collect())
    }

    /// Removes `workspace_id` from the object `candidate` ([`read`](Self::read), then
    /// [`apply`](Self::apply)); `now_ms` is the clock retention is judged by.
    pub async fn object(
        &self,
        candidate: &Candidate,
        workspace_id: i64,
        now_ms: &(dyn Fn() -> i64 + Sync),
    ) -> Result<ObjectPurged, PurgeError> {
        match self.read(candidate).await? {
            None => Ok(ObjectPurged::Untouched),
            Some(original) => self.apply(candidate, &original, workspace_id, now_ms).await,
        }
    }

    /// Reads the object `candidate`, with its archived time; `None` when it is gone (deleted by
    /// retention, or by an earlier run).
    pub async fn read(&self, candidate: &Candidate) -> Result<Option<Original>, PurgeError> {
        let key = candidate.key.as_str();
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => {
                let archived_ms = archived_ms(out.metadata(), out.last_modified().and_then(|t| t.to_millis().ok()));
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| PurgeError::unreadable(key, format!("reading the body: {e}")))?
                    .into_bytes();
                Ok(Some(Original { body, archived_ms }))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => Ok(None),
            Err(e) if dwsync_s3::error::status(&e) == Some(404) => Ok(None),
            Err(e) => Err(StoreError::from_sdk("GetObject", &self.bucket, key, e).into()),
        }
    }

    /// Removes `workspace_id` from `original` (the object `candidate` as read): untouched when
    /// it does not hold it; deleted when it held nothing else, or when it is past its table's
    /// retention at `now_ms()` — before the rewrite, or after it (a retention sweep deleted it
    /// in between: the rewrite brought it back); otherwise rewritten without it, keeping its
    /// archived time in [`ARCHIVED_MS_METADATA`].
    pub async fn apply(
        &self,
        candidate: &Candidate,
        original: &Original,
        workspace_id: i64,
        now_ms: &(dyn Fn() -> i64 + Sync),
    ) -> Result<ObjectPurged, PurgeError> {
        let key = candidate.key.as_str();
        let table = candidate.named.part.table;
        let expired = || original.archived_ms.is_some_and(|at| self.retention.expired(table, at, now_ms()));
        match without_workspace(key, candidate.named, &original.body, workspace_id)? {
            Rewrite::Absent => Ok(ObjectPurged::Untouched),
            Rewrite::Empty { rows_removed } => {
                self.delete(key).await?;
                tracing::info!(key, rows_removed, "Purge: deleted an archive object that held only the workspace.");
                Ok(ObjectPurged::Deleted { rows: rows_removed })
            }
            Rewrite::Rewritten { rows_removed, .. } if expired() => {
                self.delete(key).await?;
                tracing::info!(key, rows_removed, "Purge: deleted an archive object past its retention.");
                Ok(ObjectPurged::Deleted { rows: rows_removed })
            }
            Rewrite::Rewritten { body, rows_removed } => {
                // The one overwrite of an archive object: deterministic and idempotent (above).
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .set_metadata(
                        original.archived_ms.map(|at| {
                            std::collections::HashMap::from([(ARCHIVED_MS_METADATA.to_owned(), at.to_string())])
                        }),
                    )
                    .body(body.into())
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk("PutObject", &self.bucket, key, e))?;
                if expired() {
                    self.delete(key).await?;
                    tracing::info!(key, rows_removed, "Purge: deleted an archive object that passed its retention.");
                    return Ok(ObjectPurged::Deleted { rows: rows_removed });
                }
                tracing::info!(key, rows_removed, "Purge: rewrote an archive object without the workspace.");
                Ok(ObjectPurged::Rewritten { rows: rows_removed })
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<(), PurgeError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("DeleteObject", &self.bucket, key, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use dwsync_contract::Table;
    use dwsync_handoff::FileKind;
    use serde_json::json;

    use super::*;
    use crate::key::Part;
    use crate::testing::{col, rows};
    use crate::write::{FileRows, encode};

    fn object(workspaces: &[i64]) -> (ObjectKey, Bytes, Vec<RecordBatch>) {
        let part = Part::of(Table::Metrics, FileKind::Unspecified);
        let range = BatchRange { partition: 1, start: 10, end: 20 };
        let made: Vec<RecordBatch> = workspaces
            .iter()
            .map(|ws| {
                let batch = rows(
                    Table::Metrics,
                    &[json!({"event_id": format!("a{ws}")}), json!({"event_id": format!("b{ws}")})],
                );
                let column = arrow_array::Int64Array::from(vec![*ws; batch.num_rows()]);
                let index = arrow_schema(Table::Metrics).index_of("workspace_id").expect("column");
                let mut columns = batch.columns().to_vec();
                columns[index] = std::sync::Arc::new(column);
                RecordBatch::try_new(batch.schema(), columns).expect("batch")
            })
            .collect();
        let files: Vec<FileRows<'_>> = workspaces
            .iter()
            .zip(&made)
            .enumerate()
            .map(|(n, (ws, batch))| FileRows {
                workspace_id: *ws,
                first_offset: 11 + n as i64,
                batches: std::slice::from_ref(batch),
            })
            .collect();
        let encoded = encode("h", "arc", range, part, &files).expect("encodes").expect("rows");
        (ObjectKey { range, part }, encoded.object.body, made)
    }

    #[test]
    fn a_workspace_leaves_an_object_and_the_others_stay_as_they_were() {
        let (named, body, made) = object(&[3, 5, 9]);
        let Rewrite::Rewritten { body: rewritten, rows_removed } =
            without_workspace("k", named, &body, 5).expect("rewrites")
        else {
            panic!("rewritten")
        };
        assert_eq!(rows_removed, 2);
        let builder = ParquetRecordBatchReaderBuilder::try_new(rewritten.clone()).expect("parquet");
        assert_eq!(builder.metadata().num_row_groups(), 1, "the kept workspaces packed again");
        let footer = builder.metadata().file_metadata().key_value_metadata();
        let provenance = Provenance::from_footer(footer).expect("footer").expect("json");
        let listed: Vec<(i64, Option<usize>, u64)> =
            provenance.workspaces.iter().map(|w| (w.workspace_id, w.row_group, w.first_row)).collect();
        assert_eq!(listed, [(3, Some(0), 0), (9, Some(0), 2)], "workspace 9 moved up where 5 was");
        let batches: Vec<RecordBatch> = builder.build().expect("reader").collect::<Result<_, _>>().expect("rows");
        let want = [made[0].clone(), made[2].clone()];
        assert_eq!(col(&batches, "event_id"), col(&want, "event_id"));
        assert_eq!(col(&batches, "workspace_id"), ["3", "3", "9", "9"]);
        // Again: nothing to do.
        assert_eq!(without_workspace("k", named, &rewritten, 5).expect("reads"), Rewrite::Absent);
        // The last workspace: the object goes.
        let (named, body, _) = object(&[5]);
        assert_eq!(without_workspace("k", named, &body, 5).expect("reads"), Rewrite::Empty { rows_removed: 2 });
        // A footer naming another batch is refused.
        let other = ObjectKey { range: BatchRange { partition: 1, start: 10, end: 21 }, ..named };
        assert!(matches!(without_workspace("k", other, &body, 5), Err(PurgeError::Unreadable { .. })));
        assert!(matches!(
            without_workspace("k", named, &Bytes::from_static(b"junk"), 5),
            Err(PurgeError::Unreadable { .. })
        ));
    }
}
