//! Dropping buffered records and reading them again: after a revocation (the windows of the
//! revoked partitions and of every partition sharing them; the kept ones rewound to their first
//! uncommitted offset) and after an aborted handoff transaction (everything, every assigned
//! partition rewound to its committed offset). Kafka keeps the offsets, so nothing is lost.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::buffers::Buffers;
use super::sources::Sources;
use super::{Kafka, PipelineError};
use crate::blocking::block_in_place;
use crate::window::PartitionKey;

/// The partitions a revocation took from this instance, and those it kept but rewound.
#[derive(Debug, Default)]
pub(super) struct Rewound {
    /// Revoked: their records can only come again from a reassignment.
    pub(super) revoked: BTreeSet<PartitionKey>,
    /// Kept and rewound: their records come again from where they were rewound to.
    pub(super) rewound: BTreeSet<PartitionKey>,
}

impl Rewound {
    /// Every partition whose records received before the revocation are stale.
    pub(super) fn stale(&self) -> BTreeSet<PartitionKey> {
        self.revoked.union(&self.rewound).copied().collect()
    }
}

/// After partitions were revoked: drops the windows and dead letters holding their records,
/// with every window sharing a partition with those (the flush closure), and rewinds the
/// partitions this instance keeps to their first uncommitted offset. Nothing of a revoked
/// partition is committed, so its next owner reads it from the committed offset: no record
/// is lost or handed off twice. Records of both the revoked and the rewound partitions received
/// before the revocation are stale (a rewound partition delivers them again from where it was
/// rewound to). If a kept partition cannot be rewound, the loop restarts from the group's
/// committed offsets.
pub(super) fn after_revocation(
    buffers: &mut Buffers,
    sources: &Sources<'_>,
    consumer: &Kafka,
) -> Result<Rewound, PipelineError> {
    let revoked: BTreeSet<PartitionKey> =
        consumer.context().take_revoked().into_iter().filter_map(|(topic, p)| sources.key(&topic, p)).collect();
    if revoked.is_empty() {
        return Ok(Rewound::default());
    }
    let (windows, read) = buffers.drop_revoked(&revoked);
    let mut rewound = BTreeSet::new();
    for (p, from) in read {
        if revoked.contains(&p) {
            continue;
        }
        let topic = &sources.topic(p).topic;
        if let Err(error) = consumer.seek(topic, p.1, Offset::Offset(from), Duration::from_secs(10)) {
            // Reading on would skip the dropped records: start again from the committed offsets.
            tracing::error!(%error, topic, partition = p.1, "Cannot rewind a kept partition; restarting the loop.");
            return Err(PipelineError::Consume(error));
        }
        let _ = rewound.insert(p);
    }
    tracing::info!(
        revoked = revoked.len(),
        windows,
        rewound = rewound.len(),
        "Dropped the windows of revoked partitions."
    );
    Ok(Rewound { revoked, rewound })
}

/// After a handoff transaction was aborted: drops every window and dead letter and rewinds
/// every assigned partition to its committed offset — what a restart does, without leaving
/// the group (a restart would make the group rebalance again, which can abort the
/// transactions of the other instances in turn).
pub(super) fn read_again(buffers: &mut Buffers, consumer: &Kafka, error: &KafkaError) -> Result<(), PipelineError> {
    tracing::warn!(
        %error,
        open_windows = buffers.open_windows(),
        "The handoff transaction was aborted; reading again from the committed offsets."
    );
    crate::metrics::loop_restarted("reread");
    buffers.clear();
    let assigned: TopicPartitionList = consumer.assignment().map_err(PipelineError::Consume)?;
    let committed = block_in_place(|| consumer.committed_offsets(assigned, Duration::from_secs(10)))
        .map_err(PipelineError::Consume)?;
    for p in committed.elements() {
        // No commit yet: from the start, as `auto.offset.reset = earliest` read it.
        let offset = match p.offset() {
            Offset::Offset(n) => Offset::Offset(n),
            _ => Offset::Beginning,
        };
        consumer.seek(p.topic(), p.partition(), offset, Duration::from_secs(10)).map_err(PipelineError::Consume)?;
    }
    Ok(())
}
