//! The archive of many small workspaces, and the handoff records it spans.
//!
//! Per handoff partition, [`BATCHES`] archive batches hold one file per (workspace, table) of the
//! partition's workspaces: people (new rows), attribute changes (each person's two attributes set
//! once per batch: the baseline keeps the last) and metrics, split evenly over the batches, with
//! [`Shape::of`] rows. Each batch spans 3 offsets per workspace; the handoff partition gets as many
//! plain records first, so control's cut records land after the archive's end.

use std::collections::BTreeMap;

use anyhow::Context as _;
use dwsync_archive::fixture::{TestFile, write_batch};
use dwsync_archive::{BatchRange, handoff_partition};
use dwsync_contract::Table;
use dwsync_handoff::FileKind;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{Expected, PARTITIONS};
use crate::backfill_large::{attributes, metrics, people, share};

/// The archive's prefix in the run's archive bucket.
pub(crate) const PREFIX: &str = "archive";

/// Archive batches per handoff partition.
const BATCHES: u64 = 2;

/// The tables archived, in file order within a batch.
const TABLES: [Table; 3] = [Table::People, Table::Attributes, Table::Metrics];

/// One workspace's archived rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// People (none erased).
    pub(crate) people: u64,
    /// Metrics.
    pub(crate) metrics: u64,
}

impl Shape {
    /// The `n`-th workspace's: 10–99 people, 20–199 metrics.
    pub(crate) fn of(n: u64) -> Self {
        Self { people: 10 + (n * 7) % 90, metrics: 20 + (n * 13) % 180 }
    }

    /// Attribute changes archived: two per person and batch.
    fn attributes(self) -> u64 {
        2 * self.people * BATCHES
    }

    /// Rows archived for `table`.
    fn archived(self, table: Table) -> u64 {
        match table {
            Table::People => self.people,
            Table::Attributes => self.attributes(),
            _ => self.metrics,
        }
    }

    /// Rows of `table`'s baseline: every person, each person's two attributes, every metric.
    fn baseline(self, table: Table) -> u64 {
        match table {
            Table::Attributes => 2 * self.people,
            other => self.archived(other),
        }
    }
}

/// What was written.
#[derive(Debug)]
pub(crate) struct Written {
    /// Rows archived.
    pub(crate) rows: u64,
    /// Each workspace's expected baseline files.
    pub(crate) expected: Expected,
}

/// Writes the archive of `ids` and the handoff records its batches span.
pub(crate) async fn write(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    bootstrap: &str,
    handoff: &str,
    ids: &[i64],
) -> anyhow::Result<Written> {
    let mut by_partition: BTreeMap<i32, Vec<(u64, i64)>> = BTreeMap::new();
    for (n, ws) in ids.iter().enumerate() {
        let partition = handoff_partition(*ws, PARTITIONS).context("partition")?;
        by_partition.entry(partition).or_default().push((n as u64, *ws));
    }
    let mut written = Written { rows: 0, expected: BTreeMap::new() };
    let producer: FutureProducer =
        crate::kafka::config(bootstrap).set("linger.ms", "20").create().context("a Kafka producer")?;
    for (partition, members) in &by_partition {
        let span = (members.len() * TABLES.len()) as i64;
        for k in 0..BATCHES {
            let start = k as i64 * span;
            let mut files = Vec::with_capacity(members.len() * TABLES.len());
            for (j, (n, ws)) in members.iter().enumerate() {
                let shape = Shape::of(*n);
                for (t, table) in TABLES.iter().enumerate() {
                    let offset = start + (j * TABLES.len() + t) as i64;
                    let rows = match table {
                        Table::People => people(*ws, share(k, BATCHES, shape.people), false)?,
                        Table::Attributes => {
                            let per_batch = shape.attributes() / BATCHES;
                            attributes(*ws, k * per_batch..(k + 1) * per_batch, shape.people)?
                        }
                        _ => metrics(*ws, share(k, BATCHES, shape.metrics), shape.people)?,
                    };
                    written.rows += rows.num_rows() as u64;
                    let kind = if *table == Table::People { FileKind::New } else { FileKind::Unspecified };
                    files.push(TestFile { workspace: *ws, offset, table: *table, kind, rows: vec![rows] });
                    if k + 1 == BATCHES {
                        let part = (*table == Table::Metrics).then_some(0);
                        let key = dwsync_handoff::baseline_key(
                            &crate::services::workspace_prefix(*ws),
                            *table,
                            *ws,
                            offset as u64,
                            part,
                        );
                        let rows = shape.baseline(*table);
                        let _ = written.expected.entry(*ws).or_default().insert(*table, (Some(key), rows));
                    }
                }
            }
            let range = BatchRange { partition: *partition, start, end: start + span };
            write_batch(s3, bucket, (handoff, PREFIX), range, &files)
                .await
                .map_err(|e| anyhow::anyhow!("writing archive batch {range:?}: {e}"))?;
        }
        // The records the batches span, so the cut records come after them.
        let mut sent = Vec::new();
        for _ in 0..span * BATCHES as i64 {
            let record = FutureRecord::<(), [u8]>::to(handoff).partition(*partition).payload(b"archived".as_slice());
            sent.push(producer.send_result(record).map_err(|(e, _)| e).context("producing a handoff record")?);
        }
        for delivery in sent {
            let _ = delivery.await.context("a handoff record's delivery")?.map_err(|(e, _)| e)?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_tens_to_hundreds_of_rows_and_baselines_keep_the_latest() {
        let shapes: Vec<Shape> = (0..1_000).map(Shape::of).collect();
        assert!(shapes.iter().all(|s| (10..100).contains(&s.people) && (20..200).contains(&s.metrics)));
        let s = Shape::of(3);
        assert_eq!((s.people, s.metrics), (31, 59));
        assert_eq!(s.archived(Table::Attributes), 124);
        assert_eq!(
            (s.baseline(Table::People), s.baseline(Table::Attributes), s.baseline(Table::Metrics)),
            (31, 62, 59)
        );
    }
}
