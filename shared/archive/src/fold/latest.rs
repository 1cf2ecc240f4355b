//! The latest row per key, in memory: a `HashMap` from the key's bytes to the row's place among
//! the batches held. Superseded rows are dropped by compaction once they outnumber the live ones,
//! so what is held is about the live rows, not the whole history.

use std::collections::HashMap;

use arrow::compute::interleave_record_batch;
use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use super::keys::KeyColumns;

/// Rows per output batch.
pub(crate) const OUT_ROWS: usize = 8_192;

/// Rows held below which no compaction is tried.
const COMPACT_FLOOR: usize = 65_536;

/// The latest row per key of the batches pushed, in push (archive) order.
#[derive(Debug)]
pub(crate) struct Latest {
    schema: SchemaRef,
    keys: KeyColumns,
    batches: Vec<RecordBatch>,
    held_rows: usize,
    /// Bytes of the Arrow buffers of the batches held.
    held_bytes: usize,
    /// Bytes of the keys in the index.
    key_bytes: usize,
    /// Key → (batch, row) of its latest row. Ties cannot happen: each push comes after the
    /// previous ones, and a later row replaces an earlier one.
    index: HashMap<Box<[u8]>, (u32, u32)>,
}

impl Latest {
    /// Latest rows by the key columns `key` of batches with `schema`.
    pub(crate) fn new(schema: SchemaRef, key: &[&str]) -> Result<Self, ArrowError> {
        let keys = KeyColumns::new(&schema, key)?;
        Ok(Self { schema, keys, batches: Vec::new(), held_rows: 0, held_bytes: 0, key_bytes: 0, index: HashMap::new() })
    }

    /// Adds the next rows in archive order.
    pub(crate) fn push(&mut self, batch: RecordBatch) -> Result<(), ArrowError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let at = u32::try_from(self.batches.len()).map_err(|_| too_many())?;
        for (row, key) in self.keys.keys(&batch).into_iter().enumerate() {
            let row = u32::try_from(row).map_err(|_| too_many())?;
            let len = key.len();
            if self.index.insert(key, (at, row)).is_none() {
                self.key_bytes += len;
            }
        }
        self.held_rows += batch.num_rows();
        self.held_bytes += batch.get_array_memory_size();
        self.batches.push(batch);
        if self.held_rows > COMPACT_FLOOR.max(2 * self.index.len()) {
            self.compact()?;
        }
        Ok(())
    }

    /// About what it holds in memory: the rows' Arrow buffers, the index's entries and keys.
    pub(crate) fn memory_size(&self) -> usize {
        // An entry: the boxed key's pointer and length, the place, the table's control byte.
        const ENTRY: usize = 16 + 8 + 1;
        self.held_bytes + self.key_bytes + self.index.capacity() * ENTRY
    }

    /// Rows held (live and superseded).
    #[cfg(test)]
    pub(crate) fn held_rows(&self) -> usize {
        self.held_rows
    }

    /// Keys seen.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Every row held (superseded ones too), in archive order, without compacting: what a spill
    /// writes out (its partitions' folds drop the superseded rows).
    pub(crate) fn into_held(self) -> Vec<RecordBatch> {
        self.batches
    }

    /// The latest rows, in the archive order of those rows.
    pub(crate) fn finish(mut self) -> Result<Vec<RecordBatch>, ArrowError> {
        self.compact()?;
        Ok(self.batches)
    }

    /// Keeps only the latest rows (in their archive order), in batches of [`OUT_ROWS`].
    fn compact(&mut self) -> Result<(), ArrowError> {
        let mut winners: Vec<(u32, u32)> = self.index.values().copied().collect();
        winners.sort_unstable();
        let held: Vec<&RecordBatch> = self.batches.iter().collect();
        let mut batches = Vec::with_capacity(winners.len().div_ceil(OUT_ROWS));
        for chunk in winners.chunks(OUT_ROWS) {
            let indices: Vec<(usize, usize)> = chunk.iter().map(|&(b, r)| (b as usize, r as usize)).collect();
            batches.push(if held.is_empty() {
                RecordBatch::new_empty(self.schema.clone())
            } else {
                interleave_record_batch(&held, &indices)?
            });
        }
        // New places: the winners in order, OUT_ROWS per batch (batch and row fit in u32: the
        // old places did).
        for value in self.index.values_mut() {
            if let Ok(n) = winners.binary_search(value) {
                *value = ((n / OUT_ROWS) as u32, (n % OUT_ROWS) as u32);
            }
        }
        self.held_rows = winners.len();
        self.held_bytes = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        self.batches = batches;
        Ok(())
    }
}

fn too_many() -> ArrowError {
    ArrowError::InvalidArgumentError("more than 2^32 batches or rows in one batch".to_owned())
}
