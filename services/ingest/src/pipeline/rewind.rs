//! Dropping buffered records and reading them again: after a revocation (the windows of the
//! revoked partitions and of every partition sharing them; the kept ones rewound to their first
//! uncommitted offset) and after an aborted handoff transaction (everything, every assigned
//! partition rewound to its committed offset). Kafka keeps the offsets, so nothing is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset};

use super::{Kafka, PipelineError, State, Unflushed};
use crate::blocking::block_in_place;
use crate::window::PartitionKey;

impl State<'_> {
    /// After partitions were revoked: drops the windows and dead letters holding their records,
    /// with every window sharing a partition with those (the flush closure), and rewinds the
    /// partitions this instance keeps to their first uncommitted offset. Nothing of a revoked
    /// partition is committed, so its next owner reads it from the committed offset: no record
    /// is lost or handed off twice. Returns the revoked and the rewound partitions: records of
    /// both received before the revocation are stale (a rewound partition delivers them again
    /// from where it was rewound to). If a kept partition cannot be rewound, the loop restarts
    /// from the group's committed offsets.
    pub(super) fn check_rebalance(
        &mut self,
        consumer: &Kafka,
    ) -> Result<(BTreeSet<PartitionKey>, BTreeSet<PartitionKey>), PipelineError> {
        let revoked: BTreeSet<PartitionKey> = consumer
            .context()
            .take_revoked()
            .into_iter()
            .filter_map(|(topic, p)| self.topic_index.get(&topic).map(|&t| (t, p)))
            .collect();
        if revoked.is_empty() {
            return Ok(Default::default());
        }
        let mut dropped = revoked.clone();
        for key in self.windows.keys_touching(&revoked) {
            dropped.extend(self.windows.partitions_to_flush(key));
        }
        let windows = self.windows.close_partitions(&dropped, None).len();
        let _ = self.dead.take(&dropped);
        let mut rewound = BTreeSet::new();
        for p in &dropped {
            let Some(Unflushed { from, .. }) = self.unflushed.remove(p) else { continue };
            if revoked.contains(p) {
                continue;
            }
            let topic = &self.topics[p.0].topic;
            if let Err(error) = consumer.seek(topic, p.1, Offset::Offset(from), Duration::from_secs(10)) {
                // Reading on would skip the dropped records: start again from the committed offsets.
                tracing::error!(%error, topic, partition = p.1, "Cannot rewind a kept partition; restarting the loop.");
                return Err(error.into());
            }
            let _ = rewound.insert(*p);
        }
        tracing::info!(
            revoked = revoked.len(),
            windows,
            rewound = rewound.len(),
            "Dropped the windows of revoked partitions."
        );
        Ok((revoked, rewound))
    }

    /// After a handoff transaction was aborted: drops every window and dead letter and rewinds
    /// every assigned partition to its committed offset — what a restart does, without leaving
    /// the group (a restart would make the group rebalance again, which can abort the
    /// transactions of the other instances in turn).
    pub(super) fn read_again(&mut self, consumer: &Kafka, error: &KafkaError) -> Result<(), PipelineError> {
        tracing::warn!(
            %error,
            open_windows = self.windows.len(),
            "The handoff transaction was aborted; reading again from the committed offsets."
        );
        crate::metrics::loop_restarted("reread");
        self.windows.clear();
        self.dead.clear();
        self.unflushed.clear();
        let assigned = consumer.assignment()?;
        let committed = block_in_place(|| consumer.committed_offsets(assigned, Duration::from_secs(10)))?;
        for p in committed.elements() {
            // No commit yet: from the start, as `auto.offset.reset = earliest` read it.
            let offset = match p.offset() {
                Offset::Offset(n) => Offset::Offset(n),
                _ => Offset::Beginning,
            };
            consumer.seek(p.topic(), p.partition(), offset, Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// The source partition of a message, if it is of a topic ingest reads.
    pub(super) fn partition(&self, msg: &BorrowedMessage<'_>) -> Option<PartitionKey> {
        self.topic_index.get(msg.topic()).map(|&t| (t, msg.partition()))
    }
}
