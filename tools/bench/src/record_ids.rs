//! Every record exactly once, by its id: the producer folds each record's id (the table's
//! [`id_column`]) into a per-table digest as it produces it, and after the run the same digest
//! is folded from the id column of every object read back from the bucket. The digest is a
//! multiset fingerprint — the count and two wrapping sums of 64-bit hashes of the ids — so it
//! holds in constant memory, does not depend on order, and a record missing, duplicated or
//! swapped for another changes it (but for a hash collision).

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use arrow_array::cast::AsArray as _;
use arrow_array::types::{Int32Type, Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use aws_sdk_s3::error::DisplayErrorContext;
use dwsync_contract::Table;
use dwsync_loadgen::id_column;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::handoff_files::HandedOff;

/// The multiset fingerprint of a table's record ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct IdDigest {
    /// Ids folded in.
    pub(crate) count: u64,
    /// Wrapping sum of one hash of each id.
    sum: u64,
    /// Wrapping sum of a second, independent hash.
    sum2: u64,
}

/// FNV-1a of `bytes` from `seed`, then mixed (splitmix64's finalizer).
fn hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl IdDigest {
    /// Folds one id in.
    pub(crate) fn add(&mut self, id: &str) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(hash(0xcbf2_9ce4_8422_2325, id.as_bytes()));
        self.sum2 = self.sum2.wrapping_add(hash(0x9e37_79b9_7f4a_7c15, id.as_bytes()));
    }

    /// Folds every id of `column` in (strings, or integers as their decimal text).
    fn add_column(&mut self, column: &dyn Array) -> anyhow::Result<()> {
        if column.null_count() > 0 {
            bail!("{} null id(s)", column.null_count());
        }
        match column.data_type() {
            DataType::Utf8 => column.as_string::<i32>().iter().flatten().for_each(|id| self.add(id)),
            DataType::LargeUtf8 => column.as_string::<i64>().iter().flatten().for_each(|id| self.add(id)),
            DataType::Int64 => {
                column.as_primitive::<Int64Type>().iter().flatten().for_each(|id| self.add(&id.to_string()))
            }
            DataType::Int32 => {
                column.as_primitive::<Int32Type>().iter().flatten().for_each(|id| self.add(&id.to_string()))
            }
            DataType::UInt64 => {
                column.as_primitive::<UInt64Type>().iter().flatten().for_each(|id| self.add(&id.to_string()));
            }
            other => bail!("an id column of type {other} is not read"),
        }
        Ok(())
    }
}

/// The id digest of each table's objects among `files`, read back from `bucket` (the whole
/// object, one at a time per task, `in_flight` tasks).
pub(crate) async fn of_objects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    files: &[HandedOff],
    in_flight: usize,
) -> anyhow::Result<BTreeMap<&'static str, IdDigest>> {
    let per_task = files.len().div_ceil(in_flight.max(1)).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in files.chunks(per_task) {
        let chunk: Vec<(String, Table)> = chunk.iter().map(|f| (f.key.clone(), f.table)).collect();
        let (client, bucket) = (client.clone(), bucket.to_owned());
        let _ = tasks.spawn(async move {
            let mut digests: BTreeMap<&'static str, IdDigest> = BTreeMap::new();
            for (key, table) in chunk {
                let object = client
                    .get_object()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
                    .with_context(|| format!("cannot read {key}"))?;
                let body = object.body.collect().await.with_context(|| format!("reading {key}"))?.into_bytes();
                let digest = digests.entry(table.name()).or_default();
                for batch in id_batches(body, table).with_context(|| format!("{key}: its ids"))? {
                    let batch = batch.with_context(|| format!("{key}: a batch"))?;
                    digest.add_column(batch.column(0).as_ref()).with_context(|| key.clone())?;
                }
            }
            anyhow::Ok(digests)
        });
    }
    let mut all: BTreeMap<&'static str, IdDigest> = BTreeMap::new();
    while let Some(task) = tasks.join_next().await {
        for (table, d) in task.context("a read-back task failed")?? {
            let sum = all.entry(table).or_default();
            sum.count += d.count;
            sum.sum = sum.sum.wrapping_add(d.sum);
            sum.sum2 = sum.sum2.wrapping_add(d.sum2);
        }
    }
    Ok(all)
}

/// The batches of a Parquet file's id column.
fn id_batches(
    body: bytes::Bytes,
    table: Table,
) -> anyhow::Result<impl Iterator<Item = Result<RecordBatch, arrow_schema::ArrowError>>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(body).context("not Parquet")?;
    let column = id_column(table);
    let index = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts() == [column])
        .with_context(|| format!("no column {column}"))?;
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [index]);
    Ok(builder.with_projection(mask).build()?)
}

/// Fails unless the objects' digests are the produced ones, table by table.
pub(crate) fn check(
    produced: &BTreeMap<&'static str, IdDigest>,
    read_back: &BTreeMap<&'static str, IdDigest>,
) -> anyhow::Result<()> {
    for table in produced.keys().chain(read_back.keys()) {
        let (want, got) =
            (produced.get(table).copied().unwrap_or_default(), read_back.get(table).copied().unwrap_or_default());
        if want != got {
            bail!(
                "{table}: the objects hold {} ids, {} produced, and not the same ones (duplicates or missing records)",
                got.count,
                want.count
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(ids: &[&str]) -> IdDigest {
        let mut d = IdDigest::default();
        ids.iter().for_each(|id| d.add(id));
        d
    }

    #[test]
    fn the_digest_is_the_multiset() {
        assert_eq!(digest(&["a", "b", "c"]), digest(&["c", "a", "b"]), "order does not matter");
        assert_ne!(digest(&["a", "b", "c"]), digest(&["a", "b", "b"]), "a duplicate for a missing record");
        assert_ne!(digest(&["a", "b"]), digest(&["a", "b", "b"]), "a duplicate");
        assert_ne!(digest(&["a", "b"]), digest(&["a"]), "a missing record");
        let produced = BTreeMap::from([("metrics", digest(&["1", "2"]))]);
        assert!(check(&produced, &BTreeMap::from([("metrics", digest(&["2", "1"]))])).is_ok());
        assert!(check(&produced, &BTreeMap::from([("metrics", digest(&["2", "2"]))])).is_err());
        let extra = BTreeMap::from([("metrics", digest(&["2", "1"])), ("people", digest(&["x"]))]);
        assert!(check(&produced, &extra).is_err(), "a table never produced");
    }

    #[test]
    fn integer_and_string_columns_fold_alike() {
        let mut ints = IdDigest::default();
        ints.add_column(&arrow_array::Int64Array::from(vec![7, 42])).expect("ints");
        let mut strings = IdDigest::default();
        strings.add_column(&arrow_array::StringArray::from(vec!["42", "7"])).expect("strings");
        assert_eq!(ints, strings);
        assert!(IdDigest::default().add_column(&arrow_array::Float64Array::from(vec![1.0])).is_err());
    }
}
